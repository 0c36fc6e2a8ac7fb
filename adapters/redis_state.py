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

from gateway.domain.errors import DependencyUnavailable
from gateway.domain.ports import Attempt, AttemptLimits, CodeClaim, SendSlot, Session

P = ParamSpec("P")
T = TypeVar("T")

# KEYS: last-send, hourly count, lock, code. ARGV: min interval ms, max per hour, digest ("" for
# none), code ttl ms. Returns {allowed, retry_after_ms, lock_ttl_ms}. The slot is taken even for
# unknown or locked numbers, so throttling behaves the same for every number; the code is stored
# only with a free slot, no lock and a digest, in the same step (no slot without its code).
ISSUE_CODE = """
local lock = redis.call('PTTL', KEYS[3])
local last = redis.call('PTTL', KEYS[1])
if last > 0 then return {0, last, lock} end
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
if count >= tonumber(ARGV[2]) then return {0, redis.call('PTTL', KEYS[2]), lock} end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], 3600000) end
if lock <= 0 and ARGV[3] ~= '' then
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[4], 'd', ARGV[3], 'tries', 0)
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
return {1, 0, lock}
"""

# KEYS: failures, lock[, code]. ARGV: threshold, memory ms, lock ms[, digest, max tries].
# Returns {lock_ms, number, code_ok, code_tries, code_ttl_ms}. Counts the attempt first: a locked
# subject, or one whose threshold is taken by attempts in flight, is refused (lock_ms > 0) before
# anything is compared. A matching code is taken (deleted) so no concurrent attempt can use it; a
# wrong one costs a try and dies at the limit.
BEGIN_ATTEMPT = """
local lock = redis.call('PTTL', KEYS[2])
if lock > 0 then return {lock, 0, 0, 0, 0} end
local n = redis.call('INCR', KEYS[1])
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return {tonumber(ARGV[3]), 0, 0, 0, 0}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if #KEYS < 3 then return {0, n, 0, 0, 0} end
local v = redis.call('HMGET', KEYS[3], 'd', 'tries')
if not v[1] then return {0, n, 0, 0, 0} end
local ttl = redis.call('PTTL', KEYS[3])
if v[1] == ARGV[4] then
  redis.call('DEL', KEYS[3])
  return {0, n, 1, tonumber(v[2]), ttl}
end
local tries = redis.call('HINCRBY', KEYS[3], 'tries', 1)
if tries >= tonumber(ARGV[5]) then redis.call('DEL', KEYS[3]) end
return {0, n, 0, tries, ttl}
"""

# KEYS: failures, lock. ARGV: attempt number, threshold, lock ms. The attempt stays counted; the
# one whose number reached the threshold sets the lock (NX: one lock, one notice) and clears the
# count. Returns the lock ms if this failure locked the subject, else 0.
FAIL_ATTEMPT = """
if tonumber(ARGV[1]) < tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('SET', KEYS[2], '1', 'PX', ARGV[3], 'NX') then return tonumber(ARGV[3]) end
return 0
"""

# KEYS: failures[, code]. ARGV: code ok (1/0), digest, tries, ttl ms. Uncounts an attempt a fault
# kept from being judged, and puts its code back: a taken code as it was (unless a newer one was
# issued meanwhile), a wrong guess's try returned.
RELEASE_ATTEMPT = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
if #KEYS < 2 then return 0 end
if ARGV[1] == '1' then
  if tonumber(ARGV[4]) > 0 and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HSET', KEYS[2], 'd', ARGV[2], 'tries', ARGV[3])
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  end
elseif tonumber(redis.call('HGET', KEYS[2], 'tries') or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], 'tries', -1)
end
return 0
"""

# KEYS: token. ARGV: terminal. Ends the session only for the terminal it was issued to.
END_SESSION = """
if redis.call('HGET', KEYS[1], 'terminal') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
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
        self._issue = client.register_script(ISSUE_CODE)
        self._begin = client.register_script(BEGIN_ATTEMPT)
        self._fail = client.register_script(FAIL_ATTEMPT)
        self._release = client.register_script(RELEASE_ATTEMPT)
        self._end = client.register_script(END_SESSION)
        self._touch = client.register_script(TOUCH_SESSION)

    @guarded
    async def issue_code(self, msisdn: str, purpose: str, digest: str | None, ttl: float, min_interval: float,
                         max_per_hour: int) -> SendSlot:
        keys = [number_key(msisdn, "send:last"), number_key(msisdn, "send:hour"), number_key(msisdn, "lock"),
                number_key(msisdn, f"code:{purpose}")]
        allowed, retry_ms, lock_ms = await self._issue(keys=keys, args=[ms(min_interval), max_per_hour,
                                                                        digest or "", ms(ttl)])
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
    async def begin_attempt(self, subject: str, limits: AttemptLimits, code: CodeClaim | None = None) -> Attempt:
        keys = [number_key(subject, "fails"), number_key(subject, "lock")]
        args: list[Any] = [limits.threshold, ms(limits.memory), ms(limits.lock_for)]
        if code is not None:
            keys.append(number_key(subject, f"code:{code.purpose}"))
            args += [code.digest, code.max_tries]
        lock_ms, n, ok, tries, ttl_ms = await self._begin(keys=keys, args=args)
        return Attempt(subject, max(lock_ms, 0) / 1000, int(n), code, bool(ok), int(tries), max(ttl_ms, 0) / 1000)

    @guarded
    async def fail_attempt(self, attempt: Attempt, limits: AttemptLimits) -> float:
        keys = [number_key(attempt.subject, "fails"), number_key(attempt.subject, "lock")]
        locked_ms = await self._fail(keys=keys, args=[attempt.number, limits.threshold, ms(limits.lock_for)])
        return int(locked_ms) / 1000

    @guarded
    async def release_attempt(self, attempt: Attempt) -> None:
        keys = [number_key(attempt.subject, "fails")]
        args: list[Any] = []
        if attempt.code is not None:
            keys.append(number_key(attempt.subject, f"code:{attempt.code.purpose}"))
            ttl = int(attempt.code_ttl * 1000) if attempt.code_ttl > 0 else 0
            args = ["1" if attempt.code_ok else "0", attempt.code.digest, attempt.code_tries, ttl]
        await self._release(keys=keys, args=args)

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
    async def end_session(self, token_digest: str, terminal: str) -> bool:
        return bool(await self._end(keys=[f"hg:tok:{token_digest}"], args=[terminal]))

    @guarded
    async def lock_remaining(self, subject: str) -> float:
        return max(await self.r.pttl(number_key(subject, "lock")), 0) / 1000

    @guarded
    async def reset_failures(self, subject: str, unlock: bool = False) -> None:
        keys = [number_key(subject, "fails")] + ([number_key(subject, "lock")] if unlock else [])
        await self.r.delete(*keys)
