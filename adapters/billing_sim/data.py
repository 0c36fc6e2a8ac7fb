"""The simulator's subscribers, passwords and call details, all derived from one seed (no gRPC here)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.domain.ports import CustomerProfile, Subscriber
from hallgate_pb.billing.v1 import billing_pb2

MSISDN_RE = re.compile(r"1[3-9][0-9]{9}")
MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
PASSWORD_RE = re.compile(r"[0-9]{6}")
HEAVY_EVERY = 500
SIM_CHANGED_YESTERDAY = 7  # index % 100
PORTED_TWO_DAYS_AGO = 8  # index % 100
CONTACTS = 20  # each subscriber mostly talks to the same few people, as real ones do

_OUT = billing_pb2.CALL_DIRECTION_OUTGOING
_IN = billing_pb2.CALL_DIRECTION_INCOMING
_VOICE = billing_pb2.CALL_KIND_VOICE
_SMS = billing_pb2.CALL_KIND_SMS
_DATA = billing_pb2.CALL_KIND_DATA

RESIDENT_ID_CARD = "resident_id_card"
PASSPORT = "passport"
DOCUMENT_TYPES = (RESIDENT_ID_CARD, PASSPORT)

# ISO 7064 MOD 11-2 as GB 11643-1999 applies it: weight 2**(17 - i) mod 11 for position i.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK_CHARS = "10X98765432"

# Real county-level codes (GB/T 2260), each with its province, prefecture-level city and two of its
# real streets, so that an owner's address always agrees with the first six digits of the ID.
_AREAS: tuple[tuple[str, str, str, str, tuple[str, str]], ...] = (
    ("110101", "北京市", "北京市", "东城区", ("东直门南大街", "王府井大街")),
    ("110105", "北京市", "北京市", "朝阳区", ("建国路", "朝阳北路")),
    ("310104", "上海市", "上海市", "徐汇区", ("漕溪北路", "衡山路")),
    ("310115", "上海市", "上海市", "浦东新区", ("世纪大道", "张杨路")),
    ("440305", "广东省", "深圳市", "南山区", ("科技南路", "南海大道")),
    ("440106", "广东省", "广州市", "天河区", ("天河路", "体育西路")),
    ("510107", "四川省", "成都市", "武侯区", ("人民南路四段", "武侯祠大街")),
    ("330106", "浙江省", "杭州市", "西湖区", ("文三路", "天目山路")),
    ("420106", "湖北省", "武汉市", "武昌区", ("中北路", "武珞路")),
    ("320102", "江苏省", "南京市", "玄武区", ("中山路", "北京东路")),
)
_FAMILY_NAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN_FEMALE = ("秀英", "丽", "静", "敏", "婷", "芳", "娜", "雪梅", "慧", "玲", "欣怡", "桂兰")
_GIVEN_MALE = ("伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "建国", "志强", "浩然")
_PLANS = ("畅享套餐 58元", "5G智享套餐 128元", "4G飞享套餐 38元", "全球通 188元")
_BORN_FIRST = date(1950, 1, 1)
_BORN_LAST = date(2005, 12, 31)
_MIN_AGE_AT_OPENING = 16  # the age from which a PRC resident may register a number with an ID card


def resident_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character ("0"-"9" or "X") of a PRC resident ID's first 17 digits.

    Raises ValueError unless `first17` is exactly 17 ASCII digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("a resident ID number starts with 17 digits")
    return _ID_CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def _luhn_check_digit(body: str) -> str:
    """The Luhn check digit an ICCID ends with (ITU-T E.118)."""
    total = 0
    for k, c in enumerate(reversed(body)):
        d = int(c) * (2 if k % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def _canonical_name(name: str) -> str:
    """A name as a clerk may type it: compatibility forms folded, no whitespace anywhere."""
    return "".join(unicodedata.normalize("NFKC", name).split())


@dataclass(frozen=True, slots=True)
class _StoredHash:
    """A salted scrypt digest: the only form in which the store keeps a password."""

    salt: bytes
    digest: bytes


@dataclass(frozen=True, slots=True)
class _MonthPlan:
    """A month cut into `full` equal slots, one record per slot; `count` slots lie wholly before now."""

    start: int  # epoch seconds of local midnight on the 1st
    span: int  # seconds in the month
    full: int
    count: int

    def slot(self, k: int) -> tuple[int, int]:
        return self.start + self.span * k // self.full, self.start + self.span * (k + 1) // self.full


def month_bounds(month: str, tz: ZoneInfo) -> tuple[int, int]:
    """Epoch seconds of the first and last-plus-one second of `month` ("YYYY-MM") in `tz`.

    Raises ValueError for anything that is not a calendar month between 1970-01 and 9998-12.
    """
    m = MONTH_RE.fullmatch(month)
    if not m:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    year, mon = int(m.group(1)), int(m.group(2))
    if not (1 <= mon <= 12 and 1970 <= year <= 9998):
        raise ValueError(f"month out of range: {month!r}")
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return int(start.timestamp()), int(end.timestamp())


class SeededBilling:
    """Everything the billing simulator knows, reproducible from `seed` so demos and tests agree.

    Call details are computed on demand, never stored, so a heavy user's 20,000 records per month
    cost nothing until asked for. Passwords are stored only as salted scrypt hashes, made lazily.
    """

    def __init__(
        self,
        seed: str = "hallgate-demo",
        subscribers: int = 3000,
        hash_n: int = 2**14,
        now: datetime | None = None,
        tz: str = "Asia/Shanghai",
    ) -> None:
        if hash_n < 2 or hash_n & (hash_n - 1):
            raise ValueError("hash_n must be a power of two greater than 1")
        if now is not None and now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        if not 0 <= subscribers <= 99_999_999:
            raise ValueError("subscribers must fit in 8 digits")
        self.seed = seed
        self.subscribers = subscribers
        self.hash_n = hash_n
        self.now = (now or datetime.now(UTC)).astimezone(UTC)
        self.tz = ZoneInfo(tz)
        self._key = hashlib.sha256(b"hallgate-billing-sim\x00" + seed.encode()).digest()
        self._hashes: dict[str, _StoredHash] = {}
        self._lock = threading.Lock()
        # Unknown numbers are hashed against this so they cost the same scrypt as known ones.
        self._dummy = _StoredHash(secrets.token_bytes(16), secrets.token_bytes(32))
        # How often each number's password was checked: tests of attempt limits count what reached us.
        self.password_checks: Counter[str] = Counter()

    # --- numbering -------------------------------------------------------------------------------

    def index(self, msisdn: str) -> int | None:
        """The subscriber's index 1..N, or None when the number is not one of ours."""
        if len(msisdn) != 11 or not msisdn.startswith("138") or not msisdn.isascii() or not msisdn.isdigit():
            return None
        i = int(msisdn[3:])
        return i if 1 <= i <= self.subscribers else None

    def _h(self, *parts: object) -> bytes:
        """One keyed digest per fact, so every derived value depends on the seed and nothing else."""
        return hashlib.blake2b("|".join(map(str, parts)).encode(), key=self._key, digest_size=32).digest()

    def subscriber(self, msisdn: str) -> Subscriber:
        i = self.index(msisdn)
        if i is None:
            return Subscriber(exists=False)
        if i % 100 == SIM_CHANGED_YESTERDAY:
            return Subscriber(exists=True, sim_changed_at=self.now - timedelta(days=1))
        if i % 100 == PORTED_TWO_DAYS_AGO:
            return Subscriber(exists=True, ported_at=self.now - timedelta(days=2))
        h = self._h("sim", msisdn)
        ago = timedelta(days=200 + int.from_bytes(h[:4]) % 700, seconds=int.from_bytes(h[4:8]) % 86400)
        return Subscriber(exists=True, sim_changed_at=self.now - ago)

    def demo_subscribers(self) -> list[tuple[str, str, str]]:
        """Numbers worth showing in a demo, with their passwords and what makes each interesting."""
        picks = [
            (1, "ordinary subscriber"),
            (HEAVY_EVERY, "heavy user: 20,000+ records per month"),
            (SIM_CHANGED_YESTERDAY, "SIM changed yesterday: gets no code"),
            (PORTED_TWO_DAYS_AGO, "ported in 2 days ago: gets no code"),
        ]
        out = []
        for i, note in picks:
            if i <= self.subscribers:
                msisdn = f"138{i:08d}"
                if i == 1:
                    owner = self.owner_of(msisdn)
                    note = f"{note}; owner {owner.name}, resident ID card {owner.document_number}"
                out.append((msisdn, self.password_for(msisdn), note))
        return out

    # --- registered owners -----------------------------------------------------------------------

    def _owner(self, d: bytes) -> CustomerProfile:
        """One owner from one digest: 0 sex, 1 family name, 2 given name, 3 area, 4-7 birth date,
        8-9 sequence, 10 street, 11-13 door, 14 plan, 15-20 ICCID, 21-25 IMSI."""
        male = d[0] & 1 == 1
        given = _GIVEN_MALE if male else _GIVEN_FEMALE
        name = _FAMILY_NAMES[d[1] % len(_FAMILY_NAMES)] + given[d[2] % len(given)]
        code, province, city, district, streets = _AREAS[d[3] % len(_AREAS)]
        born = _BORN_FIRST + timedelta(days=int.from_bytes(d[4:8]) % ((_BORN_LAST - _BORN_FIRST).days + 1))
        seq = 2 * (1 + int.from_bytes(d[8:10]) % 499) + (1 if male else 0)  # 002..998 even, 003..999 odd
        first17 = f"{code}{born:%Y%m%d}{seq:03d}"
        door = int.from_bytes(d[11:14])
        street = f"{streets[d[10] % 2]}{1 + door % 300}号{2 + door // 300 % 30}{1 + door // 9000 % 20:02d}室"
        iccid_body = f"898600{int.from_bytes(d[15:21]) % 10**13:013d}"
        return CustomerProfile(
            name=name,
            document_type=RESIDENT_ID_CARD,
            document_number=first17 + resident_id_check_char(first17),
            birth_date=born.isoformat(),
            sex="male" if male else "female",
            province=province,
            city=city,
            district=district,
            street=street,
            plan_name=_PLANS[d[14] % len(_PLANS)],
            account_status="active",
            iccid=iccid_body + _luhn_check_digit(iccid_body),
            imsi=f"46000{int.from_bytes(d[21:26]) % 10**10:010d}",
        )

    def owner_of(self, msisdn: str) -> CustomerProfile:
        """The registered owner's full profile, SIM data included (tests, the demo and the servicer).
        Raises KeyError for unknown numbers."""
        if self.index(msisdn) is None:
            raise KeyError(msisdn)
        return self._owner(self._h("owner", msisdn))

    def opened_at(self, msisdn: str) -> datetime:
        """When the subscription started: the day of porting in for ported numbers, otherwise some
        time before the last SIM change and after the owner's 16th birthday. KeyError if unknown."""
        owner = self.owner_of(msisdn)
        sub = self.subscriber(msisdn)
        if sub.ported_at is not None:
            return sub.ported_at
        latest = sub.sim_changed_at or self.now
        born = date.fromisoformat(owner.birth_date)
        try:
            adult = born.replace(year=born.year + _MIN_AGE_AT_OPENING)
        except ValueError:  # born on 29 February
            adult = date(born.year + _MIN_AGE_AT_OPENING, 3, 1)
        earliest = datetime(adult.year, adult.month, adult.day, tzinfo=self.tz).astimezone(UTC)
        h = self._h("opened", msisdn)
        opened = latest - timedelta(days=int.from_bytes(h[:4]) % 3650, seconds=int.from_bytes(h[4:8]) % 86400)
        return min(max(opened, earliest), latest)

    def verify_owner_document(self, msisdn: str, document_type: str, document_number: str, name: str) -> bool:
        """True only when `msisdn` is a subscriber and the document's type, number (a final x or X
        alike) and holder's name are the registered owner's. Unknown numbers are compared with a
        stand-in owner, so the answer's timing says nothing about whether the number exists."""
        known = self.index(msisdn) is not None
        owner = self._owner(self._h("owner", msisdn if known else "\x00no-such-subscriber"))
        typed = "\x00".join((document_type, document_number.upper(), _canonical_name(name)))
        held = "\x00".join((owner.document_type, owner.document_number.upper(), _canonical_name(owner.name)))
        same = hmac.compare_digest(
            hashlib.sha256(typed.encode("utf-8", "surrogatepass")).digest(),
            hashlib.sha256(held.encode()).digest(),
        )
        return known and same

    # --- service passwords -----------------------------------------------------------------------

    def password_for(self, msisdn: str) -> str:
        """The initial password, for the demo to print and tests to type; never consulted once a
        hash exists. Raises KeyError for unknown numbers."""
        if self.index(msisdn) is None:
            raise KeyError(msisdn)
        mac = hmac.new(self.seed.encode(), b"service-password\x00" + msisdn.encode(), hashlib.sha256)
        return f"{int.from_bytes(mac.digest()[:8]) % 1_000_000:06d}"

    def _scrypt(self, password: bytes, salt: bytes) -> bytes:
        return hashlib.scrypt(
            password, salt=salt, n=self.hash_n, r=8, p=1, dklen=32, maxmem=256 * 8 * self.hash_n + 2**20
        )

    def _hash(self, password: str) -> _StoredHash:
        salt = secrets.token_bytes(16)
        return _StoredHash(salt, self._scrypt(password.encode(), salt))

    def verify(self, msisdn: str, password: str) -> bool:
        """True only for a subscriber's current password. Every call costs exactly one scrypt,
        known number or not, so the answer's timing says nothing about whether the number exists.
        Blocking: call it from a thread."""
        typed = password.encode("utf-8", "surrogatepass")
        with self._lock:
            self.password_checks[msisdn] += 1
        if self.index(msisdn) is None:
            hmac.compare_digest(self._scrypt(typed, self._dummy.salt), self._dummy.digest)
            return False
        with self._lock:
            stored = self._hashes.get(msisdn)
        if stored is None:
            # First use: this call's one scrypt materialises the hash of the initial password, and the
            # typed password is compared with that one in constant time instead of hashing it again.
            initial = self.password_for(msisdn)
            fresh = self._hash(initial)
            with self._lock:
                stored = self._hashes.setdefault(msisdn, fresh)
            if stored is fresh:
                return hmac.compare_digest(typed, initial.encode())
            # A concurrent set_password (or first use) stored its hash first: that one is the truth.
        return hmac.compare_digest(self._scrypt(typed, stored.salt), stored.digest)

    def set_password(self, msisdn: str, new_password: str) -> None:
        """Replace a subscriber's password (a reset). Raises KeyError for an unknown number and
        ValueError unless the password is 6 ASCII digits. Blocking (one scrypt): call it from a thread."""
        if self.index(msisdn) is None:
            raise KeyError(msisdn)
        if not PASSWORD_RE.fullmatch(new_password):
            raise ValueError("a service password is 6 digits")
        fresh = self._hash(new_password)
        with self._lock:
            self._hashes[msisdn] = fresh

    # --- call details ----------------------------------------------------------------------------

    def _plan(self, msisdn: str, month: str) -> _MonthPlan | None:
        start, end = month_bounds(month, self.tz)  # validate the month even for unknown numbers
        i = self.index(msisdn)
        if i is None:
            return None
        h = int.from_bytes(self._h("count", msisdn, month)[:4])
        full = 20_000 + h % 2001 if i % HEAVY_EVERY == 0 else 150 + h % 101
        span = end - start
        elapsed = int(self.now.timestamp()) - start  # whole seconds, so slot ends compare exactly
        if elapsed >= span:
            count = full
        elif elapsed <= 0:
            count = 0
        else:  # slots k < count end at or before now: start + span*count//full <= now
            count = min(full, ((elapsed + 1) * full - 1) // span)
        return _MonthPlan(start, span, full, count)

    def record_count(self, msisdn: str, month: str) -> int:
        """How many records `month` holds now: all of a past month, the slots already over in the
        current one, none in the future or for unknown numbers. Raises ValueError for a bad month."""
        plan = self._plan(msisdn, month)
        return plan.count if plan else 0

    def records(
        self, msisdn: str, month: str, offset: int = 0, limit: int = 2**31
    ) -> list[billing_pb2.CallDetail]:
        """Records `offset` .. `offset + limit` of the month, oldest first, rebuilt from the seed."""
        plan = self._plan(msisdn, month)
        if plan is None or offset < 0 or limit <= 0:
            return []
        contacts = [self._number(self._h("contact", msisdn, j)) for j in range(CONTACTS)]
        prefix = f"cdr|{msisdn}|{month}|".encode()
        out = []
        for k in range(offset, min(plan.count, offset + limit)):
            d = hashlib.blake2b(prefix + str(k).encode(), key=self._key, digest_size=32).digest()
            lo, hi = plan.slot(k)
            out.append(self._record(d, lo + int.from_bytes(d[0:4]) % (hi - lo), contacts))
        return out

    @staticmethod
    def _number(d: bytes) -> str:
        return f"1{'3456789'[d[0] % 7]}{int.from_bytes(d[1:5]) % 10**9:09d}"

    def _record(self, d: bytes, start: int, contacts: list[str]) -> billing_pb2.CallDetail:
        """One record from one digest: bytes 0-3 jitter, 4 kind, 5 direction, 6-12 other party,
        13-15 duration, 16-19 volume."""
        kind = _VOICE if d[4] < 140 else _SMS if d[4] < 204 else _DATA
        spread = int.from_bytes(d[13:15])
        if kind == _DATA:
            volume = 1024 + int.from_bytes(d[16:20]) % (50 * 2**20)
            return billing_pb2.CallDetail(
                start_time={"seconds": start},
                direction=_OUT,
                duration_seconds=30 + spread % 3600,
                kind=kind,
                volume_bytes=volume,
                charge_fen=-(-volume // 2**20) * 3,
            )
        direction = _OUT if d[5] < 128 else _IN
        other = contacts[d[7] % CONTACTS] if d[6] < 179 else self._number(d[8:13])
        if kind == _SMS:
            duration, charge = 0, 10 if direction == _OUT else 0
        else:
            duration = 300 + spread % 3300 if d[15] < 26 else 5 + spread % 300
            charge = -(-duration // 60) * 15 if direction == _OUT else 0
        return billing_pb2.CallDetail(
            start_time={"seconds": start},
            direction=direction,
            other_party=other,
            duration_seconds=duration,
            kind=kind,
            charge_fen=charge,
        )
