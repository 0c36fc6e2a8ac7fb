"""The simulator's subscribers, passwords and call details, all derived from one seed (no gRPC here)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.ports import Subscriber
from hallgate_pb.billing.v1 import billing_pb2

MSISDN_RE = re.compile(r"1[3-9]\d{9}")
MONTH_RE = re.compile(r"(\d{4})-(\d{2})")
PASSWORD_RE = re.compile(r"\d{6}")
HEAVY_EVERY = 500
SIM_CHANGED_YESTERDAY = 7  # index % 100
PORTED_TWO_DAYS_AGO = 8  # index % 100
CONTACTS = 20  # each subscriber mostly talks to the same few people, as real ones do

_OUT = billing_pb2.CALL_DIRECTION_OUTGOING
_IN = billing_pb2.CALL_DIRECTION_INCOMING
_VOICE = billing_pb2.CALL_KIND_VOICE
_SMS = billing_pb2.CALL_KIND_SMS
_DATA = billing_pb2.CALL_KIND_DATA


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
                out.append((msisdn, self.password_for(msisdn), note))
        return out

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
        """Replace a subscriber's password (a reset). Blocking: call it from a thread."""
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
