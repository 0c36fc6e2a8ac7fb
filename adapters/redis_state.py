"""Sign-in state in Redis: codes, send throttles, failure counters, locks and access tokens.

Each public method is one round trip: a Lua script or a single command, so it is atomic and any
number of gateway processes sharing the Redis behave as one. All keys of one number share the hash
tag `{msisdn}`, so every script stays in one Redis Cluster slot.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.errors import DependencyUnavailable
from gateway.ports import CodeCheck, SendSlot, Session

P = ParamSpec("P")
T = TypeVar("T")

# KEYS: last-send, hourly count, lock. ARGV: min interval ms, max per hour.
# Returns {allowed, retry_after_ms, lock_ttl_ms}. The slot is taken even for unknown or locked
# numbers, so throttling behaves the same for every number.
TAKE_SEND_SLOT = """
local lock = redis.call('PTTL', KEYS[3])
local last = redis.call('PTTL', KEYS[1])
if last > 0 then return {0, last, lock} end
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
if count >= tonumber(ARGV[2]) then return {0, redis.call('PTTL', KEYS[2]), lock} end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], 3600000) end
return {1, 0, lock}
"""

# KEYS: code, lock. ARGV: digest, max tries. Returns {lock_ttl_ms, ok}. A matching code is
# consumed; a wrong one costs a try and dies at the limit.
CHECK_CODE = """
local lock = redis.call('PTTL', KEYS[2])
if lock > 0 then return {lock, 0} end
local digest = redis.call('HGET', KEYS[1], 'd')
if not digest then return {0, 0} end
if digest == ARGV[1] then redis.call('DEL', KEYS[1]) return {0, 1} end
if redis.call('HINCRBY', KEYS[1], 'tries', 1) >= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) end
return {0, 0}
"""

# KEYS: failures, lock. ARGV: threshold, lock ms, memory ms. Returns the lock ms if this failure
# locked the subject; 0 otherwise, including when it was locked already (no second lock, no reset).
RECORD_FAILURE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  redis.call('DEL', KEYS[1])
  return tonumber(ARGV[2])
end
return 0
"""

# KEYS: token. ARGV: now ms, idle ms. Returns {msisdn, scope, terminal} or nil; extends idle life
# but never past the absolute deadline. The extension is a write (and, with appendfsync always, an
# fsync), so it is skipped while the remaining life is within 10% of a full idle period: a session
# may idle out up to 10% early, never late.
TOUCH_SESSION = """
local v = redis.call('HMGET', KEYS[1], 'msisdn', 'scope', 'terminal', 'deadline')
if not v[1] then return nil end
local left = tonumber(v[4]) - tonumber(ARGV[1])
if left <= 0 then redis.call('DEL', KEYS[1]) return nil end
local want = math.min(tonumber(ARGV[2]), left)
local ttl = redis.call('PTTL', KEYS[1])
if ttl < want * 0.9 or ttl > want then redis.call('PEXPIRE', KEYS[1], want) end
return {v[1], v[2], v[3]}
"""


def ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def guarded(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Redis trouble of any kind becomes DependencyUnavailable: the caller fails closed."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except RedisError as e:
            raise DependencyUnavailable("redis") from e

    return wrapper


def number_key(msisdn: str, what: str) -> str:
    return f"hg:{{{msisdn}}}:{what}"


class RedisSignInState:
    """The SignInState port on Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self._send = client.register_script(TAKE_SEND_SLOT)
        self._check = client.register_script(CHECK_CODE)
        self._fail = client.register_script(RECORD_FAILURE)
        self._touch = client.register_script(TOUCH_SESSION)

    @guarded
    async def take_send_slot(self, msisdn: str, min_interval: float, max_per_hour: int) -> SendSlot:
        keys = [number_key(msisdn, "send:last"), number_key(msisdn, "send:hour"), number_key(msisdn, "lock")]
        allowed, retry_ms, lock_ms = await self._send(keys=keys, args=[ms(min_interval), max_per_hour])
        return SendSlot(bool(allowed), max(retry_ms, 0) / 1000, max(lock_ms, 0) / 1000)

    @guarded
    async def store_code(self, msisdn: str, purpose: str, digest: str, ttl: float) -> None:
        # One HSET + PEXPIRE in a MULTI: a new code replaces the old one with a fresh try count.
        key = number_key(msisdn, f"code:{purpose}")
        async with self.r.pipeline(transaction=True) as p:
            p.delete(key)
            p.hset(key, mapping={"d": digest, "tries": 0})
            p.pexpire(key, ms(ttl))
            await p.execute()

    @guarded
    async def check_code(self, msisdn: str, purpose: str, digest: str, max_tries: int) -> CodeCheck:
        keys = [number_key(msisdn, f"code:{purpose}"), number_key(msisdn, "lock")]
        lock_ms, ok = await self._check(keys=keys, args=[digest, max_tries])
        return CodeCheck(bool(ok), max(lock_ms, 0) / 1000)

    @guarded
    async def record_failure(self, msisdn: str, threshold: int, lock_for: float, memory: float) -> float:
        keys = [number_key(msisdn, "fails"), number_key(msisdn, "lock")]
        locked_ms = await self._fail(keys=keys, args=[threshold, ms(lock_for), ms(memory)])
        return int(locked_ms) / 1000

    @guarded
    async def open_session(self, msisdn: str, token_digest: str, session: Session, idle: float,
                           absolute: float, now: float) -> None:
        # Not one slot (the token key has no number tag), so a plain pipeline: clearing the failure
        # count and creating the token need not be atomic with each other.
        key = f"hg:tok:{token_digest}"
        fields: dict[Any, Any] = {"msisdn": session.msisdn, "scope": session.scope,
                                  "terminal": session.terminal, "deadline": ms(now + absolute)}
        async with self.r.pipeline(transaction=False) as p:
            p.delete(number_key(msisdn, "fails"))
            p.hset(key, mapping=fields)
            p.pexpire(key, ms(min(idle, absolute)))
            await p.execute()

    @guarded
    async def touch_session(self, token_digest: str, idle: float, now: float) -> Session | None:
        found = await self._touch(keys=[f"hg:tok:{token_digest}"], args=[ms(now), ms(idle)])
        if not found:
            return None
        msisdn, scope, terminal = (x.decode() if isinstance(x, bytes) else x for x in found)
        return Session(msisdn, scope, terminal)

    @guarded
    async def end_session(self, token_digest: str) -> None:
        await self.r.delete(f"hg:tok:{token_digest}")

    @guarded
    async def lock_remaining(self, subject: str) -> float:
        return max(await self.r.pttl(number_key(subject, "lock")), 0) / 1000

    @guarded
    async def reset_failures(self, subject: str, unlock: bool = False) -> None:
        keys = [number_key(subject, "fails")] + ([number_key(subject, "lock")] if unlock else [])
        await self.r.delete(*keys)
