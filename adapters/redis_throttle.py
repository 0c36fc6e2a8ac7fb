"""Throttle (gateway/domain/ports.py) on Redis: one fixed-window counter per key, shared by every
gateway process. The count and its window's expiry change in one script, so concurrent calls from
any number of processes are each counted exactly once and the window cannot lose its expiry."""

from __future__ import annotations

import redis.asyncio as aioredis

from adapters.redis_state import guarded, ms

# KEYS: counter. ARGV: limit, window ms. Counts first; returns 0 within the limit, else the ms left.
HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n <= tonumber(ARGV[1]) then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) left = tonumber(ARGV[2]) end
return left
"""


class RedisThrottle:
    def __init__(self, client: aioredis.Redis, prefix: str = "hg:throttle:") -> None:
        self._hit = client.register_script(HIT)
        self.prefix = prefix

    @guarded
    async def hit(self, key: str, limit: int, window: float) -> float:
        left = await self._hit(keys=[self.prefix + key], args=[limit, ms(window)])
        return int(left) / 1000
