"""The audit chain on a Redis Stream: appends, queries, verification and retention.

Keys of one chain share a Redis Cluster hash tag, so a chain lives on one shard and its Lua scripts
may touch all of them (chains = partitions, e.g. one per hall, each verifiable on its own):

    hg:audit:{<chain>}:stream      the events (XADD; stream ids are the Redis clock in ms)
    hg:audit:{<chain>}:head        seq, mac and stream id of the newest event
    hg:audit:{<chain>}:checkpoint  the signed checkpoint of the last retention trim

Redis Lua has no SHA-256, so the gateway seals (gateway/audit_chain.py) and a script appends
only if the head still is the one the seals were computed from (compare-and-set). On a conflict
the script returns the current head and the gateway re-seals and retries. Appends of one process
are group-committed: one writer task per sink seals whatever calls are waiting and appends them
in one script call, so a process never conflicts with itself and busy gateways do fewer round trips.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import NoScriptError, RedisError, ResponseError

from gateway import audit_chain as ac
from gateway.errors import DependencyUnavailable

log = structlog.get_logger("hallgate.audit")

KEY_PREFIX = "hg:audit"


@dataclass(frozen=True, slots=True)
class ChainKeys:
    stream: str
    head: str
    checkpoint: str
    lease: str = ""  # whose turn it is after a conflict (fairness between gateway processes)

    @classmethod
    def of(cls, chain: str, prefix: str = KEY_PREFIX) -> ChainKeys:
        tag = "{" + ac.check_chain_name(chain) + "}"
        return cls(f"{prefix}:{tag}:stream", f"{prefix}:{tag}:head", f"{prefix}:{tag}:checkpoint",
                   f"{prefix}:{tag}:lease")


def stream_key(chain: str = "main") -> str:
    return ChainKeys.of(chain).stream


# KEYS: stream, head, checkpoint
# ARGV: expected head seq, expected head mac, new head seq, new head mac, n, first new mac,
#       then per event: 2*fields, field, value, ...
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
local out = {1, ARGV[3], ARGV[4]}
local i = 8
local id = ''
for _ = 1, n do
  local count = tonumber(ARGV[i])
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + count))
  out[#out + 1] = id
  i = i + count + 1
end
redis.call('HSET', KEYS[2], 'seq', ARGV[3], 'mac', ARGV[4], 'id', id)
if lease then redis.call('DEL', KEYS[4]) end
return out
"""

# KEYS: stream, checkpoint
# ARGV: expected checkpoint seq ("" for none), last trimmed id, its mac, MINID, new checkpoint's seq,
#       then the checkpoint's field, value, ...
# → {1, trimmed} | {0, why}
TRIM_LUA = """
local cur = redis.call('HMGET', KEYS[2], 'seq', 'mac')
local cur_seq = cur[1] or ''
if cur_seq ~= ARGV[1] then
  if cur_seq == ARGV[5] and cur[2] == ARGV[3] then return {1, 0} end
  return {0, 'the checkpoint changed meanwhile (another trim?)'}
end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then return {0, 'the last event to trim is gone'} end
local f, mac = e[1][2], nil
for i = 1, #f, 2 do if f[i] == 'mac' then mac = f[i + 1] end end
if mac ~= ARGV[3] then return {0, 'the last event to trim changed'} end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 6, #ARGV))
return {1, redis.call('XTRIM', KEYS[1], 'MINID', ARGV[4])}
"""


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _fields(raw: Mapping[Any, Any] | None) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in (raw or {}).items()}


def _entries(raw: Sequence[Any] | None) -> list[tuple[str, dict[str, str]]]:
    return [(_s(i), _fields(f)) for i, f in (raw or [])]


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an event landed."""

    seq: int
    id: str
    mac: str


@dataclass(frozen=True, slots=True)
class TrimResult:
    trimmed: int
    checkpoint: ac.Checkpoint | None
    event: Receipt


class _Scripts:
    """EVALSHA with a NOSCRIPT fallback; optionally followed on the same connection by WAITAOF."""

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
                sha = self.shas[source] = _s(await self.r.script_load(source))
            pipe = self.r.pipeline(transaction=False)
            pipe.evalsha(sha, len(keys), *keys, *args)
            if waitaof is not None:  # WAITAOF waits for this connection's writes: same pipeline
                pipe.execute_command("WAITAOF", 1, waitaof[0], waitaof[1])
            elif replicas is not None:  # WAIT likewise: replicas have this connection's writes
                pipe.execute_command("WAIT", replicas[0], replicas[1])
                waitaof = replicas
            async with pipe:
                res = await pipe.execute(raise_on_error=False)
            if isinstance(res[0], NoScriptError):
                self.shas.pop(source, None)
                continue
            if isinstance(res[0], Exception):
                raise res[0]
            if waitaof is not None and isinstance(res[1], Exception):
                raise res[1]
            return res[0], res[1] if waitaof is not None else None
        raise ResponseError("audit script could not be loaded")


@dataclass(slots=True)
class _Pending:
    event: dict[str, str]
    future: asyncio.Future[Receipt]


def _retrieve(future: asyncio.Future[Receipt]) -> None:
    if not future.cancelled():
        future.exception()


def _fail(batch: list[_Pending], cause: BaseException) -> None:
    for p in batch:
        if not p.future.done():
            err = DependencyUnavailable("audit")
            err.__cause__ = cause
            p.future.set_exception(err)


class ChainedAuditSink:
    """The AuditSink port on a hash chain in a Redis Stream. `append` returns once the event is in
    the chain and (per `durability`) on disk; otherwise it raises DependencyUnavailable("audit").

    durability:
      "strict" (default): before appending, make sure an acknowledged event is on disk: WAITAOF 1
               after each append on Redis ≥ 7.2, else the server must run appendonly yes with
               appendfsync always (checked with CONFIG GET; re-checked every `probe_interval` s).
               If neither holds (or cannot be checked), every append fails closed.
      "trust": skip the check (the operator vouches for the server's persistence, e.g. CONFIG
               is disabled on a managed Redis); never use it to paper over appendfsync everysec.
    """

    def __init__(self, client: aioredis.Redis, keys: Mapping[str, bytes], key_id: str, chain: str = "main", *,
                 durability: str = "strict", waitaof_replicas: int = 0, waitaof_timeout_ms: int = 1000,
                 replicas: int = 0,
                 max_attempts: int = 400, max_batch: int = 128, probe_interval: float = 60.0) -> None:
        if durability not in ("strict", "trust"):
            raise ValueError("durability must be 'strict' or 'trust'")
        self.r = client
        self.keys = ac.check_keys(keys, key_id)
        self.key_id = key_id
        self.chain = ac.check_chain_name(chain)
        self.k = ChainKeys.of(chain)
        self._owner = secrets.token_hex(8)
        self.durability = durability
        self.waitaof = (waitaof_replicas, waitaof_timeout_ms)
        # Replication is asynchronous: an event acknowledged by a master that dies before a replica
        # has it is lost on failover. With `replicas`, the append waits for that many replicas
        # (WAIT, or WAITAOF's replica count) and fails closed when they do not confirm in time.
        self.replicas = replicas
        self.max_attempts = max_attempts
        self.max_batch = max_batch
        self.probe_interval = probe_interval
        self.mode: str | None = None  # "waitaof", "always" or "trust" once probed
        self._probed_at = 0.0
        self._head: ac.Head | None = None
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._scripts = _Scripts(client)
        self.stats = {"appends": 0, "commits": 0, "conflicts": 0}

    async def append(self, event: Mapping[str, Any]) -> None:
        await self.record(event)

    async def check(self) -> None:
        """DependencyUnavailable("audit") unless the chain's Redis answers now."""
        try:
            await self.r.ping()
        except (RedisError, OSError) as e:
            raise DependencyUnavailable("audit") from e

    async def record(self, event: Mapping[str, Any]) -> Receipt:
        """Append and return where the event landed (seq, stream id, mac)."""
        fields = ac.normalise(event)
        fields[ac.EVENT_ID] = secrets.token_hex(8)
        pending = _Pending(fields, asyncio.get_running_loop().create_future())
        pending.future.add_done_callback(_retrieve)  # a cancelled caller leaves nobody to read it
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        # shield: a cancelled call's event is still committed (and nobody else's is disturbed)
        return await asyncio.shield(pending.future)

    async def drain(self) -> None:
        """Wait until every event handed to `append` so far is committed or failed."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            try:
                receipts = await self._commit([p.event for p in batch])
            except BaseException as e:
                _fail(batch, e)
                if not isinstance(e, Exception):  # cancelled (loop shutting down): fail the rest too
                    _fail(self._queue, e)
                    self._queue = []
                    raise
                continue
            for p, receipt in zip(batch, receipts, strict=True):
                if not p.future.done():
                    p.future.set_result(receipt)

    async def _ensure_durable(self) -> tuple[int, int] | None:
        """The WAITAOF arguments to use, or None; raises if persistence cannot be vouched for."""
        if self.durability == "trust":
            self.mode = "trust"
            return None
        if self.mode is None or time.monotonic() - self._probed_at > self.probe_interval:
            node: dict[str, Any] = {}
            if hasattr(self.r, "get_node_from_key"):  # Redis Cluster: ask the node that holds the chain
                node["target_nodes"] = self.r.get_node_from_key(self.k.stream)
            server = await self.r.info("server", **node)
            persistence = await self.r.info("persistence", **node)
            version = _s(server.get("redis_version", "0"))
            aof = int(persistence.get("aof_enabled", 0)) == 1
            fsync: str | None = None
            if ac.durability_mode(version, aof, None) is None:
                try:
                    cfg = await self.r.config_get("appendfsync", **node)
                    fsync = _s(next(iter(cfg.values()), "")) if cfg else None
                except ResponseError:
                    fsync = None  # CONFIG disabled: cannot vouch
            mode = ac.durability_mode(version, aof, fsync)
            if mode is None:
                self.mode = None
                log.error("audit_not_durable", redis_version=version, aof_enabled=aof, appendfsync=fsync,
                          hint="run Redis with appendonly yes and appendfsync always (or Redis >= 7.2)")
                raise DependencyUnavailable("audit")
            self.mode, self._probed_at = mode, time.monotonic()
        if self.mode != "waitaof":
            return None
        return (max(self.waitaof[0], self.replicas), self.waitaof[1])

    async def _commit(self, events: list[dict[str, str]]) -> list[Receipt]:
        key = self.keys[self.key_id]
        try:
            waitaof = await self._ensure_durable()
            for attempt in range(1, self.max_attempts + 1):
                head = self._head or ac.Head(0, "")
                sealed = ac.seal_batch(self.chain, events, head.seq, head.mac, self.key_id, key)
                args: list[str] = [str(head.seq), head.mac, sealed[-1]["seq"], sealed[-1]["mac"], str(len(sealed)),
                                   sealed[0]["mac"], self._owner]
                for s in sealed:
                    args.append(str(2 * len(s)))
                    for k, v in s.items():
                        args += (k, v)
                wait = (self.replicas, self.waitaof[1]) if self.replicas and waitaof is None else None
                res, synced = await self._scripts.run(
                    APPEND_LUA, [self.k.stream, self.k.head, self.k.checkpoint, self.k.lease], args, waitaof, wait)
                status, cur = int(res[0]), ac.Head(int(_s(res[1])), _s(res[2]))
                if status == 0:
                    if self._head is not None and cur.seq < self._head.seq:
                        # the chain went backwards under us: wiped, restored from an old copy, or a
                        # Redis that lost acknowledged writes. Appending goes on; the gap is logged
                        # here and shows at the shipper's SIEM copy.
                        log.error("audit_head_regressed", chain=self.chain, was=self._head.seq, now=cur.seq)
                    self._head = cur
                    self.stats["conflicts"] += 1
                    if attempt > 1:  # another process's turn (or several contending): wait a little
                        await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 10)))
                    continue
                self._head = cur  # 1: appended; 2: a retried call had appended it already
                ids = [_s(i) for i in res[3:]]
                self.stats["commits"] += 1
                self.stats["appends"] += len(sealed)
                if wait is not None and (not isinstance(synced, int) or synced < self.replicas):
                    log.error("audit_not_replicated", wanted=self.replicas, got=synced)
                    raise DependencyUnavailable("audit")
                if wait is None and synced is not None and (not isinstance(synced, list) or int(synced[0]) < 1
                                                            or int(synced[1]) < self.waitaof[0]):
                    log.error("audit_not_synced", waitaof=synced)
                    raise DependencyUnavailable("audit")
                return [Receipt(int(s["seq"]), i, s["mac"]) for s, i in zip(sealed, ids, strict=True)]
            log.error("audit_append_contention", attempts=self.max_attempts, chain=self.chain)
            raise DependencyUnavailable("audit")
        except (RedisError, ValueError, IndexError) as e:
            self._head = None
            self.mode = None
            log.error("audit_append_failed", error=repr(e), chain=self.chain)
            raise DependencyUnavailable("audit") from e


# ---------------------------------------------------------------------------------------------
# Reading


async def _head_and_checkpoint(client: aioredis.Redis, k: ChainKeys) -> tuple[ac.Head | None, dict[str, str]]:
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(k.head)
    pipe.hgetall(k.checkpoint)
    async with pipe:
        head_raw, cp_raw = await pipe.execute()
    h = _fields(head_raw)
    head = ac.Head(int(h["seq"]), h.get("mac", ""), h.get("id", "")) if h.get("seq", "").isdigit() else None
    return head, _fields(cp_raw)


@dataclass(frozen=True, slots=True)
class ChainStatus:
    head: ac.Head | None
    checkpoint: ac.Checkpoint | None
    length: int  # entries in the stream


async def chain_status(client: aioredis.Redis, chain: str) -> ChainStatus:
    """The head, the last retention checkpoint (unverified; `verify` checks it) and the length."""
    k = ChainKeys.of(chain)
    try:
        head, cp_fields = await _head_and_checkpoint(client, k)
        length = int(await client.xlen(k.stream))
    except RedisError as e:
        raise DependencyUnavailable("audit") from e
    try:
        cp = ac.Checkpoint.from_fields(cp_fields) if cp_fields else None
    except ValueError:
        cp = None
    return ChainStatus(head, cp, length)


async def _scan(client: aioredis.Redis, stream: str, low: str, high: str,
                batch: int) -> AsyncIterator[tuple[str, dict[str, str]]]:
    cursor = low
    while True:
        page = _entries(await client.xrange(stream, min=cursor, max=high, count=batch))
        for entry in page:
            yield entry
        if len(page) < batch:
            return
        cursor = "(" + page[-1][0]


async def query(client: aioredis.Redis, chain: str, where: ac.AuditFilter | None = None, *, batch: int = 500,
                limit: int | None = None, **criteria: Any) -> AsyncIterator[dict[str, str]]:
    """Records (chain, id, stored fields) matching `where` or keyword criteria (AuditFilter's
    fields: subscriber, staff_id, terminal, hall, method, decision, channel, start, end), oldest
    first, read in batches of `batch` so memory stays bounded. Redis failures raise
    DependencyUnavailable("audit")."""
    if where is None:
        where = ac.AuditFilter(**criteria)
    elif criteria:
        raise TypeError("give either an AuditFilter or keyword criteria")
    low, high = where.id_range()
    n = 0
    try:
        async for entry_id, entry in _scan(client, ChainKeys.of(chain).stream, low, high, batch):
            if where.matches(entry_id, entry):
                yield ac.record(chain, entry_id, entry)
                n += 1
                if limit is not None and n >= limit:
                    return
    except RedisError as e:
        raise DependencyUnavailable("audit") from e


async def export_jsonl(client: aioredis.Redis, chain: str, out: Any, where: ac.AuditFilter | None = None, *,
                       batch: int = 500) -> int:
    """Write matching records as JSON Lines to a text stream; returns how many."""
    n = 0
    async for rec in query(client, chain, where, batch=batch):
        out.write(ac.to_json_line(rec))
        n += 1
    return n


async def _first_id_with_seq(client: aioredis.Redis, stream: str, target: int) -> str | None:
    """The stream id of the first entry whose seq is ≥ target, by binary search over time (seqs
    grow with stream ids in an intact chain); None if there is none."""
    def seq_of(e: tuple[str, dict[str, str]]) -> int:
        s = e[1].get("seq", "")
        return int(s) if s.isdigit() else -1

    first = _entries(await client.xrange(stream, count=1))
    last = _entries(await client.xrevrange(stream, count=1))
    if not first or seq_of(last[0]) < target:
        return None
    if seq_of(first[0]) >= target:
        return first[0][0]
    lo, hi = ac.parse_stream_id(first[0][0])[0], ac.parse_stream_id(last[0][0])[0]
    while lo < hi:  # invariant: the first entry at or after `lo` ms has seq < target
        mid = (lo + hi + 1) // 2
        probe = _entries(await client.xrange(stream, min=f"{mid}-0", count=1))
        if probe and seq_of(probe[0]) < target:
            lo = mid
        else:
            hi = mid - 1
    async for entry in _scan(client, stream, f"{lo}-0", "+", 256):
        if seq_of(entry) >= target:
            return entry[0]
    return None


async def verify(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], start_seq: int | None = None,
                 end_seq: int | None = None, *, start: datetime | None = None, end: datetime | None = None,
                 batch: int = 1000) -> ac.VerifyResult:
    """Verify the chain, or a range of it by seq (inclusive) or by time ([start, end)), and report
    the first broken event and why. Without a start the chain is checked from the retention
    checkpoint (or its first event); with one, from the event just before the range. Redis
    failures raise DependencyUnavailable("audit")."""
    try:
        return await _verify(client, chain, keys, start_seq, end_seq,
                             ac.stream_id_at(start) if start is not None else None,
                             "(" + ac.stream_id_at(end) if end is not None else "+", batch)
    except RedisError as e:
        raise DependencyUnavailable("audit") from e


async def _verify(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], start_seq: int | None,
                  end_seq: int | None, low: str | None, high: str, batch: int) -> ac.VerifyResult:
    k = ChainKeys.of(chain)
    head, cp_fields = await _head_and_checkpoint(client, k)
    if start_seq is not None:
        low = await _first_id_with_seq(client, k.stream, start_seq)
        if low is None:  # nothing at or after start_seq; still notice a deleted tail below
            low = "+"
    anchor: ac.Anchor | None
    if low is None or low == "-":
        low = "-"
        found = ac.anchor_from_checkpoint(chain, keys, cp_fields)
        if isinstance(found, ac.VerifyResult):
            return found
        anchor = found
    else:
        before = _entries(await client.xrevrange(k.stream, max="(" + low if low != "+" else "+", count=1))
        if before:
            _, bf = before[0]
            anchor = ac.Anchor(int(bf["seq"]), bf["mac"], "predecessor") if ac.mac_ok(chain, keys, bf) else None
        else:
            found = ac.anchor_from_checkpoint(chain, keys, cp_fields)
            if isinstance(found, ac.VerifyResult):
                return found
            anchor = found
    v = ac.Verifier(chain, keys, anchor, head, end_seq)
    if low != "+":
        async for entry_id, entry in _scan(client, k.stream, low, high, batch):
            v.feed(entry_id, entry)
            if not v.wants_more:
                break
    return v.result(at_stream_end=high == "+")


# ---------------------------------------------------------------------------------------------
# Retention


async def trim(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], key_id: str, older_than: datetime, *,
               sink: ChainedAuditSink | None = None, actor: Mapping[str, str] | None = None,
               now: datetime | None = None, batch: int = 1000) -> TrimResult:
    """Trim events older than `older_than` (by stream time) without breaking verification.

    1. Verify the chain up to the last event to trim; a broken chain raises ChainBroken and
       nothing is trimmed (trimming would launder the evidence).
    2. Record the trim as an audit event (method maintenance/trim, decision allowed, the
       checkpoint in its fields; `actor` adds e.g. staff_id/role/hall). If that fails, nothing
       is trimmed (fail closed).
    3. One Lua script stores the signed checkpoint (seq, mac, stream id of the last trimmed event)
       and XTRIMs by MINID, so the checkpoint and the trim happen together or not at all.
    Redis failures raise DependencyUnavailable("audit")."""
    now = now or datetime.now(UTC)
    sink = sink or ChainedAuditSink(client, keys, key_id, chain)
    k = ChainKeys.of(chain)
    cutoff = ac.stream_id_at(older_than)
    try:
        last = _entries(await client.xrevrange(k.stream, max="(" + cutoff, count=1))
        _, cp_fields = await _head_and_checkpoint(client, k)
        if last:
            result = await _verify(client, chain, keys, None, None, "-", last[0][0], batch)
            if not result.ok:
                log.error("audit_trim_refused", **result.as_dict())
                raise ac.ChainBroken(result)
    except RedisError as e:
        raise DependencyUnavailable("audit") from e
    event: dict[str, Any] = {
        "at": now.isoformat(timespec="milliseconds"), "channel": "maintenance", "terminal": "", "peer": "",
        "method": "maintenance/trim", "subscriber": "", "decision": "allowed", "reason": "retention", "code": "OK",
        "records": 0, "duration_ms": "", "older_than": older_than.isoformat(timespec="milliseconds"),
        **(actor or {}),
    }
    if not last:
        return TrimResult(0, None, await sink.record(event))
    last_id, last_fields = last[0]
    cp = ac.Checkpoint(int(last_fields["seq"]), last_fields["mac"], last_id, event["at"], key_id)
    anchor_seq = int(cp_fields["seq"]) if cp_fields.get("seq", "").isdigit() else 0
    event.update(records=cp.seq - anchor_seq, checkpoint_seq=cp.seq, checkpoint_id=cp.id, checkpoint_mac=cp.mac)
    receipt = await sink.record(event)
    cp = ac.Checkpoint(cp.seq, cp.mac, cp.id, cp.at, key_id, receipt.seq).signed(chain, sink.keys[key_id])
    ms, seq = ac.parse_stream_id(last_id)
    args = [cp_fields.get("seq", ""), last_id, cp.mac, f"{ms}-{seq + 1}", str(cp.seq)]
    for f, v in cp.as_fields().items():
        args += (f, v)
    try:
        waitaof = await sink._ensure_durable()
        res, _ = await sink._scripts.run(TRIM_LUA, [k.stream, k.checkpoint], args, waitaof)
    except RedisError as e:
        raise DependencyUnavailable("audit") from e
    if int(res[0]) != 1:
        log.error("audit_trim_failed", why=_s(res[1]))
        raise DependencyUnavailable("audit")
    log.info("audit_trimmed", chain=chain, trimmed=int(res[1]), checkpoint_seq=cp.seq)
    return TrimResult(int(res[1]), cp, receipt)
