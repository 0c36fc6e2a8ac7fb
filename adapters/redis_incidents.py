"""The incident register (gateway/domain/incidents.py) in Redis. Every key carries the hash tag
`{incidents}`, so each script stays in one Redis Cluster slot; creating, changing and disposing of
an incident are single Lua scripts, and a change applies only to the version it was computed from.

    hg:{incidents}:inc:<id>             string   the incident as JSON (its steps, notices, history)
    hg:{incidents}:all                  zset     every incident id, scored by report time (ms)
    hg:{incidents}:open                 set      ids not closed
    hg:{incidents}:closed               zset     closed ids, scored by closing time (ms)
    hg:{incidents}:alert:<id>:<kind>:<day>  string   an alert claim (SET NX, expires after 3 days)

No subscriber number is written here: an incident names an actor (staff id, terminal or hall) and a
window; who was affected is worked out from the audit trail when asked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from adapters.redis_state import guarded
from gateway.domain.incidents import Incident, State

PREFIX = "hg:{incidents}:"
ALL, OPEN, CLOSED = PREFIX + "all", PREFIX + "open", PREFIX + "closed"
ALERT_TTL = 3 * 86400

# KEYS: incident, all, open. ARGV: id, score ms, json. 1, or 0 if the id is taken.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""

# KEYS: incident, open, closed. ARGV: id, expected version, json, new version, closed score ms ("" open).
# 1 done, 0 no such incident, -1 it moved on.
UPDATE = """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local v = cjson.decode(cur)['version']
if tostring(v) ~= ARGV[2] then return -1 end
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[5] ~= '' then
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
end
return 1
"""

# KEYS: incident, all, open, closed. ARGV: id. Removes a closed incident (an open one never): 1 or 0.
DISPOSE = """
if not redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _key(incident_id: str) -> str:
    return f"{PREFIX}inc:{incident_id}"


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class RedisIncidentStore:
    """The IncidentStore port (gateway/domain/incidents.py), and the disposal hook for R8."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self._create = client.register_script(CREATE)
        self._update = client.register_script(UPDATE)
        self._dispose = client.register_script(DISPOSE)

    @guarded
    async def create(self, inc: Incident) -> None:
        ok = await self._create(keys=[_key(inc.incident_id), ALL, OPEN],
                                args=[inc.incident_id, _ms(inc.reported_at), inc.to_json()])
        if int(ok) != 1:
            raise RuntimeError(f"incident id {inc.incident_id} taken")

    @guarded
    async def get(self, incident_id: str) -> Incident | None:
        raw = await self.r.get(_key(incident_id))
        return None if raw is None else Incident.from_json(_s(raw))

    @guarded
    async def update(self, inc: Incident, expected_version: int) -> bool:
        closed = str(_ms(inc.closed_at)) if inc.state == State.CLOSED and inc.closed_at is not None else ""
        done = await self._update(keys=[_key(inc.incident_id), OPEN, CLOSED],
                                  args=[inc.incident_id, str(expected_version), inc.to_json(), inc.version, closed])
        return int(done) == 1

    @guarded
    async def page(self, offset: int, count: int) -> tuple[list[Incident], int]:
        total = int(await self.r.zcard(ALL))
        ids = [_s(i) for i in await self.r.zrevrange(ALL, offset, offset + max(count, 1) - 1)]
        raws = await self.r.mget([_key(i) for i in ids]) if ids else []
        return [Incident.from_json(_s(r)) for r in raws if r is not None], total

    @guarded
    async def open_ids(self) -> list[str]:
        return sorted(_s(i) for i in await self.r.smembers(OPEN))  # type: ignore[misc]

    @guarded
    async def claim_alert(self, incident_id: str, kind: str, day: str) -> bool:
        return bool(await self.r.set(f"{PREFIX}alert:{incident_id}:{kind}:{day}", "1", nx=True, ex=ALERT_TTL))

    @guarded
    async def release_alert(self, incident_id: str, kind: str, day: str) -> None:
        await self.r.delete(f"{PREFIX}alert:{incident_id}:{kind}:{day}")

    @guarded
    async def dispose_closed(self, before: datetime) -> list[str]:
        """Destroy every incident closed before `before` (R8, incident_retention_days; the retention
        runner records the disposal in the trail). Open incidents are never touched. Returns the ids."""
        due = [_s(i) for i in await self.r.zrangebyscore(CLOSED, "-inf", f"({_ms(before)}")]
        gone = []
        for incident_id in due:
            if int(await self._dispose(keys=[_key(incident_id), ALL, OPEN, CLOSED], args=[incident_id])) == 1:
                gone.append(incident_id)
        return gone

    @guarded
    async def count_closed(self, before: datetime) -> tuple[int, datetime | None]:
        """How many incidents `dispose_closed(before)` would destroy, and the oldest closing time."""
        first = await self.r.zrangebyscore(CLOSED, "-inf", f"({_ms(before)}", start=0, num=1, withscores=True)
        n = int(await self.r.zcount(CLOSED, "-inf", f"({_ms(before)}"))
        oldest = datetime.fromtimestamp(float(first[0][1]) / 1000, UTC) if first else None
        return n, oldest
