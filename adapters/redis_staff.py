"""The embedded staff directory and the staff/customer sessions, on Redis.

Staff records are hashes `hg:staff:{<id>}`; every key of one staff member shares its hash tag.
Sessions are stored under the SHA-256 of their token with an idle TTL, like kiosk tokens.

TOTP secrets are sealed at rest (gateway/domain/secretbox.py) under the context "staff:<id>:totp_secret":
Redis holds `hgbox1.<key id>.<ciphertext>`, never the secret. Every write seals under the current
key, so a record written by an older version (plain text) or under a retired key is re-sealed the
next time it is written; `rekey` re-seals the rest in place.

One person, one account: `hg:person:{<employee no>}` holds the staff id of the one account of that
employee number. It is claimed atomically (a Lua GET-or-SET) before the record is written, so two
`staff add` runs with one employee number cannot both win, whatever their timing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

import redis.asyncio as aioredis

from adapters.redis_state import guarded
from gateway.domain.errors import DependencyUnavailable, FailedPrecondition
from gateway.domain.ports import CustomerSession, StaffRecord, StaffSession
from gateway.domain.secretbox import SecretBox, SecretBoxError, is_sealed

S = TypeVar("S", StaffSession, CustomerSession)
STAFF_INDEX = "hg:staff-index"
EMPLOYEE_NO_RE = re.compile(r"[A-Z0-9][A-Z0-9._/-]{0,31}")

# KEYS: last accepted step. ARGV: step, ttl ms. 1 if accepted (later than any before), else 0.
ACCEPT_STEP = """
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: session. ARGV: idle ms. The session's fields, its idle life extended, or nil.
TOUCH = """
local v = redis.call('HGETALL', KEYS[1])
if #v == 0 then return nil end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v
"""

# KEYS: person. ARGV: staff id. {holder, 1 if claimed by this call}: free or already ours -> ours.
CLAIM_PERSON = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1])
  return {ARGV[1], 1}
end
return {holder, 0}
"""

# KEYS: person. ARGV: staff id. Give a claim back, only if it is still this account's.
RELEASE_PERSON = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: staff record. ARGV: field, value, ... 1 if created, 0 if a record of that id exists.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS: staff record. ARGV: the sealed secret as read, the re-sealed one. 1 if replaced; 0 if the
# secret changed meanwhile (a reset-totp won: re-read and try again).
RESEAL = """
if redis.call('HGET', KEYS[1], 'totp_secret') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'totp_secret', ARGV[2])
return 1
"""


class StaffExists(FailedPrecondition):
    """`create` of a staff id that has a record already."""

    def __init__(self, staff_id: str) -> None:
        super().__init__("staff_exists")
        self.staff_id = staff_id


class PersonTaken(FailedPrecondition):
    """The employee number belongs to another account: one person holds one account."""

    def __init__(self, employee_no: str, holder: str) -> None:
        super().__init__("employee_no_taken")
        self.employee_no = employee_no
        self.holder = holder


@dataclass
class RekeyResult:
    """What `rekey` did: records re-sealed (of them, plain text before), already current, and the
    ids whose secret no key of the box opens (nothing was changed for those)."""

    resealed: int = 0
    were_plain: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)


def normalize_employee_no(raw: str) -> str:
    """The canonical form of an employee number (upper case, trimmed); ValueError if malformed."""
    value = raw.strip().upper()
    if not EMPLOYEE_NO_RE.fullmatch(value):
        raise ValueError("an employee number is 1-32 letters, digits, '.', '_', '/' or '-', starting with a "
                         "letter or digit")
    return value


def _staff_key(staff_id: str) -> str:
    return f"hg:staff:{{{staff_id}}}"


def _person_key(employee_no: str) -> str:
    return f"hg:person:{{{employee_no}}}"


def _context(staff_id: str) -> str:
    return f"staff:{staff_id}:totp_secret"


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStaffStore:
    """StaffDirectory and Sessions ports on Redis.

    `box` seals TOTP secrets. The gateway and the CLI always pass one; without it (callers not
    given a key, e.g. test harnesses) secrets are written as plain text as older versions did, and
    a sealed secret cannot be read (DependencyUnavailable)."""

    def __init__(self, client: aioredis.Redis, box: SecretBox | None = None) -> None:
        self.r = client
        self.box = box
        self._accept = client.register_script(ACCEPT_STEP)
        self._touch = client.register_script(TOUCH)
        self._claim = client.register_script(CLAIM_PERSON)
        self._release = client.register_script(RELEASE_PERSON)
        self._create = client.register_script(CREATE)
        self._reseal = client.register_script(RESEAL)

    # --- secrets at rest

    def _seal(self, record: StaffRecord) -> str:
        return self.box.seal(record.totp_secret, _context(record.staff_id)) if self.box else record.totp_secret

    def _unseal(self, staff_id: str, stored: str) -> str:
        if not is_sealed(stored):
            return stored  # written by a version before sealing: re-sealed at the next write or rekey
        if self.box is None:
            raise DependencyUnavailable("staff_secret_key")
        try:
            return self.box.open(stored, _context(staff_id))
        except SecretBoxError as e:
            raise DependencyUnavailable("staff_secret_key") from e

    def _mapping(self, record: StaffRecord) -> dict[Any, Any]:
        mapping: dict[Any, Any] = {k: ("1" if v is True else "0" if v is False else str(v))
                                   for k, v in asdict(record).items()}
        mapping["totp_secret"] = self._seal(record)
        return mapping

    # --- the directory

    @guarded
    async def get(self, staff_id: str) -> StaffRecord | None:
        raw = _decode(await self.r.hgetall(_staff_key(staff_id)))  # type: ignore[misc]
        if not raw:
            return None
        return StaffRecord(staff_id=raw["staff_id"], name=raw["name"], role=raw["role"], hall=raw["hall"],
                           password_hash=raw["password_hash"],
                           password_changed_at=float(raw["password_changed_at"]),
                           totp_secret=self._unseal(raw["staff_id"], raw["totp_secret"]),
                           disabled=raw["disabled"] == "1", employee_no=raw.get("employee_no", ""))

    @guarded
    async def put(self, record: StaffRecord) -> None:
        """Write the whole record, its secret sealed under the current key. A record naming an
        employee number claims that person first: PersonTaken if another account holds it."""
        if record.employee_no:
            await self._claim_person(record)
        # Index first, then the record (different cluster slots, so two steps): a lost second step
        # leaves an index entry `all()` skips, never an account missing from the list.
        await self.r.sadd(STAFF_INDEX, record.staff_id)  # type: ignore[misc]
        await self.r.hset(_staff_key(record.staff_id), mapping=self._mapping(record))  # type: ignore[misc]

    @guarded
    async def create(self, record: StaffRecord) -> None:
        """A new account: PersonTaken if its person has an account, StaffExists if its id is taken;
        neither check is a read-then-write."""
        claimed_now = False
        if record.employee_no:
            claimed_now = await self._claim_person(record)
        await self.r.sadd(STAFF_INDEX, record.staff_id)  # type: ignore[misc]
        flat = [x for kv in self._mapping(record).items() for x in kv]
        if not await self._create(keys=[_staff_key(record.staff_id)], args=flat):
            if claimed_now:
                await self._release(keys=[_person_key(record.employee_no)], args=[record.staff_id])
            raise StaffExists(record.staff_id)

    async def _claim_person(self, record: StaffRecord) -> bool:
        """Claim the record's person for its account; True if this call made the claim."""
        if not EMPLOYEE_NO_RE.fullmatch(record.employee_no):
            raise ValueError(f"{record.staff_id}: employee number not in canonical form (normalize_employee_no)")
        holder, made = await self._claim(keys=[_person_key(record.employee_no)], args=[record.staff_id])
        if _text(holder) != record.staff_id:
            raise PersonTaken(record.employee_no, _text(holder))
        return bool(int(made))

    @guarded
    async def holder_of(self, employee_no: str) -> str | None:
        """The staff id holding an employee number, if any."""
        raw = await self.r.get(_person_key(employee_no))
        return _text(raw) if raw is not None else None

    async def all(self) -> list[StaffRecord]:
        ids = sorted(m.decode() for m in await self._members())
        found = [await self.get(i) for i in ids]
        return [r for r in found if r is not None]

    @guarded
    async def _members(self) -> set[Any]:
        return set(await self.r.smembers(STAFF_INDEX))  # type: ignore[misc]

    @guarded
    async def rekey(self) -> RekeyResult:
        """Re-seal every stored TOTP secret that is plain text or sealed under a retired key, in
        place and without a read-then-write race: a secret changed meanwhile is read again."""
        if self.box is None:
            raise ValueError("rekey needs a secret box")
        result = RekeyResult()
        for staff_id in sorted(m.decode() for m in await self._members()):
            key = _staff_key(staff_id)
            for _ in range(5):
                raw = await self.r.hget(key, "totp_secret")  # type: ignore[misc]
                if raw is None:
                    break
                stored = _text(raw)
                if not self.box.needs_rekey(stored):
                    result.current += 1
                    break
                try:
                    plain = self.box.open(stored, _context(staff_id))
                except SecretBoxError:
                    result.unreadable.append(staff_id)
                    break
                if await self._reseal(keys=[key], args=[stored, self.box.seal(plain, _context(staff_id))]):
                    result.resealed += 1
                    result.were_plain += not is_sealed(stored)
                    break
        return result

    @guarded
    async def stored_secret(self, staff_id: str) -> str | None:
        """The TOTP secret as stored (sealed or, from older versions, plain): for `staff list`."""
        raw = await self.r.hget(_staff_key(staff_id), "totp_secret")  # type: ignore[misc]
        return _text(raw) if raw is not None else None

    @guarded
    async def is_active(self, staff_id: str) -> bool:
        return await self.r.hget(_staff_key(staff_id), "disabled") == b"0"  # type: ignore[misc]

    @guarded
    async def accept_totp_step(self, staff_id: str, step: int) -> bool:
        key = _staff_key(staff_id) + ":totp-step"
        return bool(await self._accept(keys=[key], args=[step, 10 * 60 * 1000]))

    # --- sessions

    async def open_staff(self, digest: str, session: StaffSession, idle: float) -> None:
        await self._open(f"hg:staff-session:{digest}", session, idle)

    async def staff(self, digest: str, idle: float) -> StaffSession | None:
        return await self._get(f"hg:staff-session:{digest}", StaffSession, idle)

    async def open_customer(self, digest: str, session: CustomerSession, idle: float) -> None:
        await self._open(f"hg:customer-session:{digest}", session, idle)

    async def customer(self, digest: str, idle: float) -> CustomerSession | None:
        return await self._get(f"hg:customer-session:{digest}", CustomerSession, idle)

    @guarded
    async def end(self, kind: str, digest: str) -> None:
        await self.r.delete(f"hg:{kind}-session:{digest}")

    @guarded
    async def _open(self, key: str, session: StaffSession | CustomerSession, idle: float) -> None:
        async with self.r.pipeline(transaction=True) as p:
            mapping: dict[Any, Any] = dict(asdict(session))
            p.hset(key, mapping=mapping)
            p.pexpire(key, max(1, int(idle * 1000)))
            await p.execute()

    @guarded
    async def _get(self, key: str, kind: type[S], idle: float) -> S | None:
        flat = await self._touch(keys=[key], args=[max(1, int(idle * 1000))])
        if not flat:
            return None
        raw = _decode(dict(zip(flat[::2], flat[1::2], strict=True)))
        return kind(**{f.name: raw.get(f.name, "") for f in fields(kind)})
