"""The embedded staff directory and the staff/customer sessions, on Redis.

Staff records are hashes `hg:staff:{<id>}`; every key of one staff member shares its hash tag.
Sessions are stored under the SHA-256 of their token with an idle TTL, like kiosk tokens.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

import redis.asyncio as aioredis

from adapters.redis_state import guarded
from gateway.ports import CustomerSession, StaffRecord, StaffSession

S = TypeVar("S", StaffSession, CustomerSession)
STAFF_INDEX = "hg:staff-index"

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


def _staff_key(staff_id: str) -> str:
    return f"hg:staff:{{{staff_id}}}"


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


class RedisStaffStore:
    """StaffDirectory and Sessions ports on Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self._accept = client.register_script(ACCEPT_STEP)
        self._touch = client.register_script(TOUCH)

    @guarded
    async def get(self, staff_id: str) -> StaffRecord | None:
        raw = _decode(await self.r.hgetall(_staff_key(staff_id)))  # type: ignore[misc]
        if not raw:
            return None
        return StaffRecord(staff_id=raw["staff_id"], name=raw["name"], role=raw["role"], hall=raw["hall"],
                           password_hash=raw["password_hash"],
                           password_changed_at=float(raw["password_changed_at"]),
                           totp_secret=raw["totp_secret"], disabled=raw["disabled"] == "1")

    @guarded
    async def put(self, record: StaffRecord) -> None:
        mapping: dict[Any, Any] = {k: ("1" if v is True else "0" if v is False else str(v))
                                   for k, v in asdict(record).items()}
        # Index first, then the record (different cluster slots, so two steps): a lost second step
        # leaves an index entry `all()` skips, never an account missing from the list.
        await self.r.sadd(STAFF_INDEX, record.staff_id)  # type: ignore[misc]
        await self.r.hset(_staff_key(record.staff_id), mapping=mapping)  # type: ignore[misc]

    async def all(self) -> list[StaffRecord]:
        ids = sorted(m.decode() for m in await self._members())
        found = [await self.get(i) for i in ids]
        return [r for r in found if r is not None]

    @guarded
    async def _members(self) -> set[Any]:
        return set(await self.r.smembers(STAFF_INDEX))  # type: ignore[misc]

    @guarded
    async def is_active(self, staff_id: str) -> bool:
        return await self.r.hget(_staff_key(staff_id), "disabled") == b"0"  # type: ignore[misc]

    @guarded
    async def accept_totp_step(self, staff_id: str, step: int) -> bool:
        key = _staff_key(staff_id) + ":totp-step"
        return bool(await self._accept(keys=[key], args=[step, 10 * 60 * 1000]))

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
