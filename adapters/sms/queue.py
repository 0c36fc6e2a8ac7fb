"""The durable SMS queue in Redis: what the gateway enqueues and what dispatchers take from it.

Why a queue: a request must never wait for the SMS centre, a message must survive the process
that asked for it, and any number of gateway processes (and `hallgate sms-dispatch` processes)
must send each message once between them. One Redis stream with a consumer group does all three.

What Redis holds, and for how long:
- the stream `out` holds each message not yet handed to the SMSC: its kind, expiry and a sealed
  box (AES-GCM, gateway/domain/secretbox.py) with the number and the text. Once the SMSC has
  taken it (or it expired, or was dead-lettered) the entry is deleted, so no code text outlives
  its submission, and none is ever in Redis in the clear;
- `msg:<id>` holds its life (kind, state, times, SMSC id, attempts), never the text or the number,
  for two days; `last:<kind>:<ref>` names the newest message of a kind to a number (by its keyed
  pseudonym) for a day; `smsc:<smsc id>` maps an SMSC message id back, for receipts;
- `cap:<kind>:<ref>:<day>` counts notices per number, kind and (UTC) day;
- `fold:*` keep call-list months released in a kiosk session after its first (sealed number);
- `dead` lists messages dead-lettered (id, kind, error, time; never number or text), capped at
  DEAD_MAXLEN entries and disposed of after `sms_record_retention_days` (R8: `dead_letters_due`,
  `dispose_dead_letters`; docs/retention.md). Everything else above expires by TTL or is deleted
  when its message settles.

Every key carries the hash tag {hallgate:sms}: each step below is one Lua script, atomic on one
server or one Cluster slot.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError

from adapters.redis_state import guarded
from adapters.sms.events import NoEvents, SmsEvents
from gateway.domain import rules
from gateway.domain.ports import ReleaseFold, Sms, SmsDelivery, SmsKind
from gateway.domain.secretbox import SecretBox, SecretBoxError

log = structlog.get_logger("hallgate.sms")
TAG = "hg:{hallgate:sms}"
STREAM = f"{TAG}:out"
DEAD = f"{TAG}:dead"
FOLDS_DUE = f"{TAG}:folds"
AWAITING = f"{TAG}:awaiting"
GROUP = "dispatch"
MESSAGE_TTL = 2 * 86400
LAST_TTL = 86400
CAP_TTL = 2 * 86400
DEAD_MAXLEN = 100_000
FINAL_STATES = ("delivered", "undeliverable", "expired", "failed", "no_receipt")


def _msg(mid: str) -> str:
    return f"{TAG}:msg:{mid}"


def ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


# KEYS: stream, msg, last, cap ("" = none). ARGV: id, kind, box, expires, now, cap, msg ttl ms, last ttl ms,
# cap ttl ms. Returns 1 (queued) or 0 (held back by the daily cap; nothing stored).
ENQUEUE = """
local cap = tonumber(ARGV[6])
if cap > 0 then
  local n = redis.call('INCR', KEYS[4])
  if n == 1 then redis.call('PEXPIRE', KEYS[4], ARGV[9]) end
  if n > cap then return 0 end
end
redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'kind', ARGV[2], 'box', ARGV[3], 'exp', ARGV[4])
redis.call('HSET', KEYS[2], 'kind', ARGV[2], 'state', 'queued', 'queued', ARGV[5], 'updated', ARGV[5],
           'attempts', 0)
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[8])
return 1
"""

# KEYS: stream, msg[, smsc map, awaiting]. ARGV: entry id, group, state, now, error[, smsc id, msg id,
# receipt deadline, map ttl ms]. The entry leaves the queue (text and all); its life goes on in msg.
SETTLE = """
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'state', ARGV[3], 'updated', ARGV[4])
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], 'error', ARGV[5]) end
end
if #KEYS > 2 then
  redis.call('HSET', KEYS[2], 'smsc', ARGV[6])
  redis.call('SET', KEYS[3], ARGV[7], 'PX', ARGV[9])
  redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7])
end
return 1
"""

# KEYS: smsc map, awaiting. ARGV: state, now, msg key prefix. Returns the kind, or false when the
# receipt names no message we know (another segment's, a duplicate, or past the map's life). A
# receipt after `no_receipt` was recorded still sets the final state: the SMSC's word wins.
RECEIPT = """
local mid = redis.call('GET', KEYS[1])
if not mid then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], mid)
local key = ARGV[3] .. mid
if redis.call('EXISTS', key) == 0 then return false end
redis.call('HSET', key, 'state', ARGV[1], 'updated', ARGV[2])
return redis.call('HGET', key, 'kind')
"""

# KEYS: awaiting. ARGV: now, msg key prefix, limit. Submitted messages whose receipt is overdue.
OVERDUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, mid in ipairs(due) do
  redis.call('ZREM', KEYS[1], mid)
  local key = ARGV[2] .. mid
  if redis.call('HGET', key, 'state') == 'submitted' then
    redis.call('HSET', key, 'state', 'no_receipt', 'updated', ARGV[1])
  end
end
return #due
"""

# KEYS: first, months, fold, due-set. ARGV: month, box, due, session, first ttl ms.
# Returns 1 if this is the session's first release (tell it now), else 0 (kept for the fold).
FOLD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[5]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'box', ARGV[2])
local ttl = tonumber(ARGV[5]) + 86400000
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])
return 0
"""

# KEYS: due-set. ARGV: prefix, mode ("session"|"due"), session or due-by, limit.
# Takes folds atomically: {session, box, months...} per fold, each removed as it is taken.
TAKE_FOLDS = """
local sessions
if ARGV[2] == 'session' then
  sessions = {ARGV[3]}
else
  sessions = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
end
local out = {}
for _, s in ipairs(sessions) do
  if redis.call('ZREM', KEYS[1], s) == 1 then
    local fold = ARGV[1] .. ':fold:' .. s
    local months = ARGV[1] .. ':fold-months:' .. s
    local box = redis.call('HGET', fold, 'box')
    local m = redis.call('SMEMBERS', months)
    redis.call('DEL', fold, months)
    if box and #m > 0 then
      table.insert(out, {s, box, m})
    end
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Queued:
    """A message taken from the stream by a dispatcher, opened."""

    entry: str  # the stream entry id
    id: str
    kind: str
    to: str
    text: str
    expires_at: float


class RedisSmsQueue:
    """The SmsOutbox port (gateway/domain/ports.py) and the dispatcher's side of the same queue."""

    def __init__(self, client: aioredis.Redis, box: SecretBox, key: bytes, *,
                 events: SmsEvents | None = None, clock: Any = time.time, timezone: str = "UTC") -> None:
        self.r = client
        self.zone = ZoneInfo(timezone)  # the daily cap's day is the operator's
        self.events = events or NoEvents()
        self.box = box
        self.key = key
        self.clock = clock
        self._enqueue = client.register_script(ENQUEUE)
        self._settle = client.register_script(SETTLE)
        self._receipt = client.register_script(RECEIPT)
        self._overdue = client.register_script(OVERDUE)
        self._fold = client.register_script(FOLD)
        self._take = client.register_script(TAKE_FOLDS)

    def _ref(self, msisdn: str) -> str:
        return rules.subscriber_ref(self.key, msisdn)

    # -- the gateway's side (the port) --------------------------------------------------------

    @guarded
    async def send(self, sms: Sms) -> None:
        """Enqueue, or count the message as held back by its daily cap (then nothing is stored)."""
        mid = uuid.uuid4().hex
        now = self.clock()
        ref = self._ref(sms.to)
        day = datetime.fromtimestamp(now, self.zone).strftime("%Y%m%d")
        cap_key = f"{TAG}:cap:{sms.kind}:{ref}:{day}"
        box = self.box.seal(json.dumps({"to": sms.to, "text": sms.text}), f"sms:{mid}")
        queued = await self._enqueue(
            keys=[STREAM, _msg(mid), f"{TAG}:last:{sms.kind}:{ref}", cap_key],
            args=[mid, str(sms.kind), box, f"{sms.expires_at:.3f}", f"{now:.3f}", sms.daily_cap,
                  ms(MESSAGE_TTL), ms(LAST_TTL), ms(CAP_TTL)])
        if not queued:
            self.events.capped(str(sms.kind))

    @guarded
    async def fold_release(self, session: str, to: str, terminal: str, month: str, due: float,
                           ttl: float) -> bool:
        box = self.box.seal(json.dumps({"to": to, "terminal": terminal}), f"sms-fold:{session}")
        first = await self._fold(
            keys=[f"{TAG}:fold-first:{session}", f"{TAG}:fold-months:{session}", f"{TAG}:fold:{session}",
                  FOLDS_DUE],
            args=[month, box, f"{due:.3f}", session, ms(ttl)])
        return bool(first)

    @guarded
    async def take_folds(self, *, session: str | None = None, due_by: float | None = None) -> list[ReleaseFold]:
        if (session is None) == (due_by is None):
            raise ValueError("take_folds needs exactly one of session and due_by")
        mode, which = ("session", session) if session is not None else ("due", f"{due_by:.3f}")
        taken = await self._take(keys=[FOLDS_DUE], args=[TAG, mode, which, 100])
        folds = []
        for s, box, months in taken:
            s = s.decode() if isinstance(s, bytes) else s
            box = box.decode() if isinstance(box, bytes) else box
            try:
                opened = json.loads(self.box.open(box, f"sms-fold:{s}"))
            except (SecretBoxError, KeyError, ValueError):
                # Sealed under a key this process does not hold: it can never be told from here;
                # the others taken with it still are.
                log.error("release_fold_unreadable", sealed_under=self.box.kid_of(box), this_key=self.box.current_kid,
                          hint="every gateway and dispatcher must share one HALLGATE_SECRET_KEY")
                continue
            folds.append(ReleaseFold(opened["to"], opened["terminal"],
                                     tuple(sorted(m.decode() if isinstance(m, bytes) else m for m in months))))
        return folds

    @guarded
    async def last_delivery(self, msisdn: str, kind: SmsKind) -> SmsDelivery | None:
        mid = await self.r.get(f"{TAG}:last:{kind}:{self._ref(msisdn)}")
        if mid is None:
            return None
        life = await self.r.hgetall(_msg(mid.decode() if isinstance(mid, bytes) else mid))
        if not life:
            return None
        life = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                for k, v in life.items()}
        return SmsDelivery(str(life["state"]), float(life["queued"]), float(life["updated"]))

    # -- the dispatcher's side ----------------------------------------------------------------

    async def ensure_group(self) -> None:
        try:
            await self.r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    async def read(self, consumer: str, count: int, block_ms: int) -> list[Queued]:
        """New entries for this consumer (none after `block_ms`)."""
        answer: Any = await self.r.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count, block=block_ms)
        streams = answer.items() if isinstance(answer, dict) else answer or []
        return [q for _, entries in streams for q in await self._opened(entries)]

    async def claim_stale(self, consumer: str, idle: float, count: int) -> list[Queued]:
        """Entries another dispatcher took and left untouched for `idle` seconds (it died)."""
        # XAUTOCLAIM looks at no more than 10 x COUNT pending entries a call: follow its cursor
        # through the whole pending list (bounded), or entries other dispatchers keep fresh could
        # hide a dead dispatcher's ones behind them.
        found: list[Queued] = []
        cursor = "0-0"
        for _ in range(1000):
            answer: Any = await self.r.xautoclaim(STREAM, GROUP, consumer, ms(idle), cursor,
                                                  count=max(1, count - len(found)))
            found += await self._opened(answer[1])
            cursor = answer[0].decode() if isinstance(answer[0], bytes) else answer[0]
            if cursor == "0-0" or len(found) >= count:
                break
        return found

    async def keep(self, consumer: str, entries: list[str]) -> None:
        """Reset the idle time of entries this dispatcher still holds (retrying, throttled), so
        no other dispatcher takes them over as stale."""
        if entries:
            await self.r.xclaim(STREAM, GROUP, consumer, 0, list[Any](entries), justid=True)

    async def _opened(self, entries: list[Any]) -> list[Queued]:
        out = []
        for entry, fields in entries:
            entry = entry.decode() if isinstance(entry, bytes) else entry
            if not fields:  # deleted while pending
                await self.r.xack(STREAM, GROUP, entry)
                continue
            f = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                 for k, v in fields.items()}
            try:
                opened = json.loads(self.box.open(f["box"], f"sms:{f['id']}"))
            except (SecretBoxError, KeyError, ValueError):
                # Sealed under a key this process does not hold, or damaged: it can never be sent
                # from here, and must not block the queue.
                q = Queued(entry, f.get("id", ""), f.get("kind", ""), "", "", 0.0)
                await self.finished(q, "failed", "unreadable: sealed under another key or damaged")
                self.events.dropped(q.kind, "failed")
                log.error("sms_unreadable", message=q.id, kind=q.kind, sealed_under=self.box.kid_of(f.get("box", "")),
                          this_key=self.box.current_kid,
                          hint="every gateway and dispatcher must share one HALLGATE_SECRET_KEY")
                continue
            out.append(Queued(entry, f["id"], f["kind"], opened["to"], opened["text"], float(f["exp"])))
        return out

    async def submitted(self, q: Queued, smsc_id: str, receipt_timeout: float) -> None:
        now = self.clock()
        await self._settle(keys=[STREAM, _msg(q.id), f"{TAG}:smsc:{smsc_id}", AWAITING],
                           args=[q.entry, GROUP, "submitted", f"{now:.3f}", "", smsc_id, q.id,
                                 f"{now + receipt_timeout:.3f}", ms(max(receipt_timeout, LAST_TTL))])

    async def finished(self, q: Queued, state: str, error: str = "") -> None:
        """The entry leaves the queue unsent: expired before it could go, or dead-lettered."""
        await self._settle(keys=[STREAM, _msg(q.id)], args=[q.entry, GROUP, state, f"{self.clock():.3f}", error])
        if state == "failed":
            await self.r.xadd(DEAD, {"id": q.id, "kind": q.kind, "error": error, "at": f"{self.clock():.3f}"},
                              maxlen=DEAD_MAXLEN, approximate=True)

    async def attempted(self, q: Queued) -> int:
        return int(await self.r.hincrby(_msg(q.id), "attempts", 1))

    async def receipt(self, smsc_id: str, state: str) -> str | None:
        """Record a delivery receipt's final state; the kind of the message, or None if unknown."""
        kind = await self._receipt(keys=[f"{TAG}:smsc:{smsc_id}", AWAITING], args=[state, f"{self.clock():.3f}",
                                                                                   f"{TAG}:msg:"])
        return (kind.decode() if isinstance(kind, bytes) else kind) if kind else None

    async def overdue(self, limit: int = 500) -> int:
        """Mark submitted messages whose receipt did not come in time as no_receipt."""
        return int(await self._overdue(keys=[AWAITING], args=[f"{self.clock():.3f}", f"{TAG}:msg:", limit]))

    async def forget_idle_consumers(self, idle: float) -> int:
        """Remove consumers (dispatchers of processes long gone) that hold nothing and were idle
        for `idle` seconds, so the group does not collect a name per restart."""
        gone = 0
        consumers: list[dict[str, Any]] = await self.r.xinfo_consumers(STREAM, GROUP)
        for c in consumers:
            name = c["name"]
            if int(c["pending"]) == 0 and int(c["idle"]) >= idle * 1000:
                await self.r.xgroup_delconsumer(STREAM, GROUP, name)
                gone += 1
        return gone

    async def depth(self) -> int:
        """Messages waiting to be handed to the SMSC (each holds its sealed text)."""
        return int(await self.r.xlen(STREAM))

    async def state_of(self, mid: str) -> dict[str, str]:
        life = await self.r.hgetall(_msg(mid))
        return {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                for k, v in life.items()}


# -- disposal (R8): the dead-letter stream; functions of a client, as they need no key -----------


async def dead_letters_due(client: aioredis.Redis, before: float, limit: int) -> list[tuple[str, str]]:
    """(stream entry id, message id) of the oldest dead letters recorded before `before` (epoch
    seconds), at most `limit`, oldest first."""
    end = f"{int(before * 1000) - 1}"  # any entry of that millisecond: strictly before `before`
    raw: Any = await client.xrange(DEAD, "-", end, count=limit)
    return [(_s(entry), _s(fields.get(b"id", fields.get("id", b"")))) for entry, fields in raw]


async def dispose_dead_letters(client: aioredis.Redis, through: str) -> int:
    """Destroy every dead letter up to and including the entry `through` (XTRIM MINID: atomic;
    entries are only ever added after the newest, so this is exactly what was listed; again: 0)."""
    ms_, _, seq = through.partition("-")
    return int(await client.xtrim(DEAD, minid=f"{ms_}-{int(seq or 0) + 1}", approximate=False))


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


__all__ = ["FINAL_STATES", "Queued", "RedisError", "RedisSmsQueue"]
