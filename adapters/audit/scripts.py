"""The Lua that appends to a chain and the runner that sends it: Redis decides the order, since
Lua has no HMAC and the gateway must seal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from adapters.audit.keys import text

# KEYS: stream, head, checkpoint, lease, index state, then the index keys of the batch's events
# ARGV: expected head seq, expected head mac, new head seq, new head mac, n, first new mac, owner (for
#       the lease), then per event: 2*fields, field, value, ..., m, m positions in KEYS of the index
#       keys this event goes into
# Each appended entry's id is added (score: its milliseconds) to its index keys in the same script, so
# an event and its index entries exist together or not at all; all keys share the chain's hash tag.
# → {1, head seq, head mac, id...}    appended
#   {0, head seq, head mac}           conflict: the head moved; nothing appended
#   {2, head seq, head mac, id...}    this very batch is already in the stream (a client-side retry
#                                     of a call whose first try went through): nothing appended
APPEND_LUA = """
local function field(f, name)
  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end
  return nil
end
local h = redis.call('HMGET', KEYS[2], 'seq', 'mac')
local seq, mac = h[1], h[2]
if not seq then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last > 0 then
    seq, mac = field(last[1][2], 'seq') or '0', field(last[1][2], 'mac') or ''
  else
    local c = redis.call('HMGET', KEYS[3], 'seq', 'mac')
    seq, mac = c[1] or '0', c[2] or ''
  end
end
mac = mac or ''
-- Fairness: the process that lost the last race holds a short lease and goes next, so a busy
-- process that always knows its own head cannot starve the others.
local lease = redis.call('GET', KEYS[4])
if lease and lease ~= ARGV[7] then return {0, seq, mac} end
local function conflict()
  if not lease then redis.call('SET', KEYS[4], ARGV[7], 'PX', 200) end
  return {0, seq, mac}
end
local n = tonumber(ARGV[5])
if seq ~= ARGV[1] or mac ~= ARGV[2] then
  local exp = tonumber(ARGV[1])
  local top = tonumber(seq) or 0
  if top <= exp or top - exp > 512 + n then return conflict() end
  local ids = {}
  local cursor = '+'
  local scanned = 0
  while scanned < 512 do
    local page = redis.call('XREVRANGE', KEYS[1], cursor, '-', 'COUNT', 64)
    if #page == 0 then break end
    for _, e in ipairs(page) do
      scanned = scanned + 1
      local s = tonumber(field(e[2], 'seq') or '')
      if s == nil or s <= exp then return conflict() end
      if s <= exp + n then ids[s - exp] = e[1] end
      if s == exp + 1 and field(e[2], 'mac') == ARGV[6] then
        local out = {2, seq, mac}
        for j = 1, n do out[#out + 1] = ids[j] or '' end
        return out
      end
    end
    cursor = '(' .. page[#page][1]
  end
  return conflict()
end
-- A chain indexed from its first event (or with every older event trimmed) is complete from the
-- start; an older chain becomes complete when `reindex` has gone through it.
if redis.call('XLEN', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('HSET', KEYS[5], 'complete', '1')
end
local out = {1, ARGV[3], ARGV[4]}
local i = 8
local id = ''
for _ = 1, n do
  local count = tonumber(ARGV[i])
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + count))
  out[#out + 1] = id
  i = i + count + 1
  local m = tonumber(ARGV[i])
  local ms = string.match(id, '^(%d+)')
  for j = i + 1, i + m do
    redis.call('ZADD', KEYS[tonumber(ARGV[j])], ms, id)
  end
  i = i + m + 1
end
redis.call('HSET', KEYS[2], 'seq', ARGV[3], 'mac', ARGV[4], 'id', id)
if lease then redis.call('DEL', KEYS[4]) end
return out
"""


class Scripts:
    """EVALSHA with a NOSCRIPT fallback (a restarted or failed-over Redis forgets loaded scripts),
    optionally followed by WAITAOF or WAIT in the same pipeline: both wait only for the writes of
    their own connection, so they must ride on the one that appended."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self.shas: dict[str, str] = {}

    async def run(self, source: str, keys: Sequence[str], args: Sequence[str],
                  waitaof: tuple[int, int] | None = None, replicas: tuple[int, int] | None = None,
                  ) -> tuple[Any, Any]:
        """`waitaof` = (replicas, timeout ms) on Redis >= 7.2; `replicas` = (n, timeout ms) for WAIT
        on older servers. Either is answered in the second element of the result."""
        for _ in range(2):
            sha = self.shas.get(source)
            if sha is None:
                sha = self.shas[source] = text(await self.r.script_load(source))
            if waitaof is None and replicas is None:  # nothing to wait for: no pipeline to build
                try:
                    return await self.r.evalsha(sha, len(keys), *keys, *args), None
                except NoScriptError:
                    self.shas.pop(source, None)
                    continue
            pipe = self.r.pipeline(transaction=False)
            pipe.evalsha(sha, len(keys), *keys, *args)
            if waitaof is not None:  # WAITAOF waits for this connection's writes: same pipeline
                pipe.execute_command("WAITAOF", 1, waitaof[0], waitaof[1])
            else:  # WAIT likewise: replicas have this connection's writes
                assert replicas is not None
                pipe.execute_command("WAIT", replicas[0], replicas[1])
            async with pipe:
                res = await pipe.execute(raise_on_error=False)
            if isinstance(res[0], NoScriptError):
                self.shas.pop(source, None)
                continue
            if isinstance(res[0], Exception):
                raise res[0]
            if isinstance(res[1], Exception):
                raise res[1]
            return res[0], res[1]
        raise ResponseError("audit script could not be loaded")
