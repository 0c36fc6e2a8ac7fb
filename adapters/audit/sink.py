"""The AuditSink port on a chain: a call is released only once its event is sealed, ordered and durable."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ResponseError

from adapters.audit.durability import probe
from adapters.audit.keys import OUTAGE, ChainKeys, index_keys_of, index_state_key, text
from adapters.audit.scripts import APPEND_LUA, Scripts
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable

log = structlog.get_logger("hallgate.audit")

# A replica counts as in sync for the replica probe when the master sees it `online` and heard its
# last acknowledgement at most this many seconds ago (replicas acknowledge every second; one that
# is hung or loading stops doing so, and its WAIT would time out).
IN_SYNC_LAG_S = 3


def wait_timeout_ms(client: aioredis.Redis, wanted_ms: int) -> int:
    """The WAIT/WAITAOF timeout to use: `wanted_ms`, but well inside the client's socket timeout.
    A WAIT that comes back short answers only when its timeout ends; if that is as late as the
    socket timeout, the reply is never read: the call fails with a TimeoutError, is retried (twice
    the wait), and the sink forgets what it knew. With the default 1 s for both, each refusal took
    2 s or more."""
    holder = getattr(client, "nodes_manager", None) or getattr(client, "connection_pool", None)
    socket_timeout = getattr(holder, "connection_kwargs", {}).get("socket_timeout")
    if not isinstance(socket_timeout, int | float) or socket_timeout <= 0:
        return wanted_ms
    return max(1, min(wanted_ms, int(socket_timeout * 1000 * 0.7)))


async def replicas_in_sync(client: aioredis.Redis, key: str) -> tuple[int | None, dict[str, Any]]:
    """How many replicas the master holding `key` has online and current (`INFO replication`), on
    the node the chain's writes go to (Redis Cluster: the slot owner, as WAIT after an append; Sentinel:
    the master the client resolves). None when this cannot say: the node answering is no master (a
    stale slot map or a demoted master: the next write finds out and is redirected) or INFO is not
    allowed. With what the verdict was drawn from, for the log. Outages raise."""
    node: dict[str, Any] = {}
    if hasattr(client, "get_node_from_key"):  # Redis Cluster: ask the node that holds the chain
        initialize = getattr(client, "initialize", None)
        if initialize is not None:
            await initialize()  # a client reset after a failure has no slot map until it reloads it
        node["target_nodes"] = client.get_node_from_key(key)
    try:
        info = await client.info("replication", **node)
    except ResponseError as e:  # INFO disabled or renamed (a managed Redis): WAIT alone decides
        return None, {"error": str(e)}
    role = text(info.get("role", ""))
    if role != "master":
        return None, {"role": role}
    online = 0
    for name, replica in info.items():
        if not (isinstance(name, str) and name.startswith("slave") and name[5:].isdigit()):
            continue
        if not isinstance(replica, dict):
            continue
        lag = replica.get("lag")
        if text(replica.get("state", "")) == "online" and isinstance(lag, int) and lag <= IN_SYNC_LAG_S:
            online += 1
    return online, {"role": role, "connected_slaves": info.get("connected_slaves"), "in_sync": online}


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an event landed, so that a caller can point at it (a trim names its own event)."""

    seq: int
    id: str
    mac: str


@dataclass(slots=True)
class _Pending:
    """Events one caller handed over together: they go into the same append, in this order."""

    events: list[dict[str, str]]
    future: asyncio.Future[list[Receipt]]


def _retrieve(future: asyncio.Future[list[Receipt]]) -> None:
    if not future.cancelled():
        future.exception()


def _fail(batch: list[_Pending], cause: BaseException) -> None:
    """An outage (or the loop shutting down) fails each waiting call with a DependencyUnavailable of
    its own; a bug reaches every caller as itself, so it ends INTERNAL and is logged, never passing
    for an outage."""
    for p in batch:
        if p.future.done():
            continue
        if isinstance(cause, Exception) and not isinstance(cause, DependencyUnavailable):
            p.future.set_exception(cause)
            continue
        err = DependencyUnavailable("audit")
        err.__cause__ = cause
        p.future.set_exception(err)


class ChainedAuditSink:
    """`append` returns once the event is in the chain and (per `durability`) on disk; otherwise it
    raises DependencyUnavailable("audit"), so the call fails closed.

    Redis Lua has no HMAC, so the sink seals and a script appends only if the head is still the one
    the seals were computed from (compare-and-set); on a conflict it re-seals after the head the
    script returned. One writer task per sink group-commits whatever calls are waiting, so a process
    never conflicts with itself and busy gateways do fewer round trips.

    durability:
      "strict" (default): before appending, make sure an acknowledged event is on disk: WAITAOF 1
               after each append on Redis ≥ 7.2, else the server must run appendonly yes with
               appendfsync always (checked with CONFIG GET; re-checked every `probe_interval` s).
               If neither holds (or cannot be checked), every append fails closed.
      "trust": skip the check (the operator vouches for the server's persistence, e.g. CONFIG
               is disabled on a managed Redis); never use it to paper over appendfsync everysec.

    replicas (>= 1): an append is acknowledged only once that many replicas confirm it (WAIT, or
      WAITAOF's replica count, after the write; short of them in time it fails closed). While the
      master is *known* to have fewer replicas in sync, an append is refused at once, before
      anything is written, instead of writing and waiting out the timeout (as after a failover
      that left the new master without a replica, which lasts until a replica returns). Known
      means: a WAIT came back short, or `INFO replication` on the chain's master (asked at
      startup, after any Redis error, and while short every `short_recheck` s) counts fewer
      online, current replicas. A probe can only refuse: when it finds enough replicas the append
      still writes and WAITs, and one that cannot tell (INFO not allowed, the node answering is no
      master) leaves it to the WAIT. A replica that returns is seen within `short_recheck` s.
      `stats["fast_refusals"]` counts the appends refused this way.
    """

    def __init__(self, client: aioredis.Redis, keys: Mapping[str, bytes], key_id: str, chain: str = "main", *,
                 durability: str = "strict", waitaof_replicas: int = 0, waitaof_timeout_ms: int = 1000,
                 replicas: int = 0, short_recheck: float = 0.5,
                 max_attempts: int = 400, max_batch: int = 128, probe_interval: float = 60.0) -> None:
        if durability not in ("strict", "trust"):
            raise ValueError("durability must be 'strict' or 'trust'")
        self.r = client
        self.keys = ac.check_keys(keys, key_id)
        self.key_id = key_id
        self.chain = ac.check_chain_name(chain)
        self.k = ChainKeys.of(chain)
        self._ix_state = index_state_key(chain)
        self._owner = secrets.token_hex(8)
        self.durability = durability
        self.waitaof = (waitaof_replicas, wait_timeout_ms(client, waitaof_timeout_ms))
        # Replication is asynchronous: an event acknowledged by a master that dies before a replica
        # has it is lost on failover. With `replicas`, the append waits for that many replicas
        # (WAIT, or WAITAOF's replica count) and fails closed when they do not confirm in time.
        self.replicas = replicas
        self.short_recheck = short_recheck
        self._short_at: float | None = None  # when the replicas were last found short; None: not known short
        self._replicas_unknown = True  # probe before the next write (startup, and after any Redis error)
        self.max_attempts = max_attempts
        self.max_batch = max_batch
        self.probe_interval = probe_interval
        self.mode: str | None = None  # "waitaof", "always" or "trust" once probed
        self._probed_at = 0.0
        self._head: ac.Head | None = None
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._scripts = Scripts(client)
        self.stats = {"appends": 0, "commits": 0, "conflicts": 0, "fast_refusals": 0}

    async def append(self, *events: Mapping[str, Any]) -> None:
        await self.record_all(events)

    async def check(self) -> None:
        """DependencyUnavailable("audit") unless the chain's Redis answers now, so a stream stops
        before its next page rather than releasing records it could not account for."""
        try:
            await self.r.ping()
        except OUTAGE as e:
            raise DependencyUnavailable("audit") from e

    async def record(self, event: Mapping[str, Any]) -> Receipt:
        """Append and return where the event landed (seq, stream id, mac)."""
        return (await self.record_all((event,)))[0]

    async def record_all(self, events: Sequence[Mapping[str, Any]]) -> list[Receipt]:
        """Append events together, in this order, in one script call: all of them are stored or
        none (a stream's opening and closing events when its only message is about to leave)."""
        batch = [ac.normalise(event) for event in events]
        if not batch:
            return []
        if self._known_short():  # refused before it is queued: nothing is written
            self._refuse_fast(len(batch))
        for fields in batch:
            fields[ac.EVENT_ID] = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        pending = _Pending(batch, loop.create_future())
        pending.future.add_done_callback(_retrieve)  # a cancelled caller leaves nobody to read it
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain())
        # shield: a cancelled call's event is still committed (and nobody else's is disturbed)
        return await asyncio.shield(pending.future)

    async def drain(self) -> None:
        """Wait until every event handed to `append` so far is committed or failed."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def run_script(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Run another chain script (retention's trim) on this sink's Redis after the same durability
        check as an append, with WAITAOF in the same pipeline where that is how durability is known,
        so what the script writes is no less durable than the events. Its WAITAOF reply is not
        judged. Outages raise DependencyUnavailable("audit")."""
        try:
            waitaof = await self._ensure_durable()
            res, _ = await self._scripts.run(source, keys, args, waitaof)
        except OUTAGE as e:
            self.mode = None  # probed again after any Redis error
            raise DependencyUnavailable("audit") from e
        return res

    def _next_batch(self) -> list[_Pending]:
        """The callers whose events go into the next append: up to `max_batch` events (always at
        least one caller's, whose events are never split)."""
        taken, events = 0, 0
        for p in self._queue:
            if taken and events + len(p.events) > self.max_batch:
                break
            taken, events = taken + 1, events + len(p.events)
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    async def _drain(self) -> None:
        while self._queue:
            batch = self._next_batch()
            try:
                receipts = await self._commit([e for p in batch for e in p.events])
            except BaseException as e:
                _fail(batch, e)
                if not isinstance(e, Exception):  # cancelled (loop shutting down): fail the rest too
                    _fail(self._queue, e)
                    self._queue = []
                    raise
                continue
            at = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result(receipts[at:at + len(p.events)])
                at += len(p.events)

    async def _ensure_durable(self) -> tuple[int, int] | None:
        """The WAITAOF arguments to use, or None; raises if persistence cannot be vouched for."""
        if self.durability == "trust":
            self.mode = "trust"
            return None
        if self.mode is None or time.monotonic() - self._probed_at > self.probe_interval:
            mode, seen = await probe(self.r, self.k.stream)
            if mode is None:
                self.mode = None
                log.error("audit_not_durable", **seen,
                          hint="run Redis with appendonly yes and appendfsync always (or Redis >= 7.2)")
                raise DependencyUnavailable("audit")
            self.mode, self._probed_at = mode, time.monotonic()
        if self.mode != "waitaof":
            return None
        return (max(self.waitaof[0], self.replicas), self.waitaof[1])

    def _forget(self) -> None:
        """After a failure neither the cached head nor the durability verdict can be trusted, nor
        what is known of the replicas (a failure is what a failover looks like from here)."""
        self._head = None
        self.mode = None
        self._replicas_unknown = True

    def _known_short(self) -> bool:
        return self._short_at is not None and time.monotonic() - self._short_at < self.short_recheck

    def _refuse_fast(self, events: int = 1) -> None:
        self.stats["fast_refusals"] += events
        raise DependencyUnavailable("audit")

    async def _ensure_replicated(self, events: int) -> None:
        """Before a write: refuse at once while the master is known to have fewer replicas in sync
        than `replicas` (the WAIT after the write would only time out). Never lets an append skip
        its WAIT."""
        if not self.replicas:
            return
        if self._known_short():
            self._refuse_fast(events)
        if self._short_at is None and not self._replicas_unknown:
            return
        in_sync, seen = await replicas_in_sync(self.r, self.k.stream)
        self._replicas_unknown = False
        if in_sync is not None and in_sync < self.replicas:
            if self._short_at is None:
                log.error("audit_replicas_short", wanted=self.replicas, chain=self.chain, **seen)
            self._short_at = time.monotonic()
            self._refuse_fast(events)
        if self._short_at is not None and in_sync is not None:
            log.warning("audit_replicas_back", wanted=self.replicas, chain=self.chain, **seen)
        self._short_at = None  # enough replicas, or the probe cannot tell: the WAIT decides

    async def _commit(self, events: list[dict[str, str]]) -> list[Receipt]:
        try:
            return await self._append(events)
        except DependencyUnavailable:
            raise
        except OUTAGE as e:
            self._forget()
            log.error("audit_append_failed", error=repr(e), chain=self.chain)
            raise DependencyUnavailable("audit") from e
        except Exception:
            self._forget()  # a bug: it propagates as itself (INTERNAL), not as an outage
            raise

    def _reply_head(self, res: Sequence[Any]) -> ac.Head:
        """The head the script saw. One whose seq is not a number (edited in Redis) leaves nothing to
        seal after: the append fails closed, as for an outage, until someone repairs the chain."""
        try:
            seq = int(text(res[1]))
        except ValueError as e:
            self._forget()
            log.error("audit_head_unreadable", seq=text(res[1]), chain=self.chain)
            raise DependencyUnavailable("audit") from e
        return ac.Head(seq, text(res[2]))

    async def _append(self, events: list[dict[str, str]]) -> list[Receipt]:
        key = self.keys[self.key_id]
        waitaof = await self._ensure_durable()
        await self._ensure_replicated(len(events))  # a fast refusal happens here, before anything is written
        # the index keys each event goes into, as positions in KEYS (the script's keys must be declared
        # for Redis Cluster; they all carry the chain's hash tag, so they sit on the chain's shard)
        script_keys = [self.k.stream, self.k.head, self.k.checkpoint, self.k.lease, self._ix_state]
        position: dict[str, int] = {}
        placed: list[list[str]] = []
        for event in events:
            spots = []
            for ix in index_keys_of(self.chain, event):
                if ix not in position:
                    script_keys.append(ix)
                    position[ix] = len(script_keys)  # Lua counts from 1
                spots.append(str(position[ix]))
            placed.append([str(len(spots)), *spots])
        for attempt in range(1, self.max_attempts + 1):
            head = self._head or ac.Head(0, "")
            sealed = ac.seal_batch(self.chain, events, head.seq, head.mac, self.key_id, key)
            args: list[str] = [str(head.seq), head.mac, sealed[-1]["seq"], sealed[-1]["mac"], str(len(sealed)),
                               sealed[0]["mac"], self._owner]
            for s, spots in zip(sealed, placed, strict=True):
                args.append(str(2 * len(s)))
                for k, v in s.items():
                    args += (k, v)
                args += spots
            wait = (self.replicas, self.waitaof[1]) if self.replicas and waitaof is None else None
            res, synced = await self._scripts.run(APPEND_LUA, script_keys, args, waitaof, wait)
            status, cur = int(res[0]), self._reply_head(res)
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
            ids = [text(i) for i in res[3:]]
            self.stats["commits"] += 1
            self.stats["appends"] += len(sealed)
            if wait is not None and (not isinstance(synced, int) or synced < self.replicas):
                log.error("audit_not_replicated", wanted=self.replicas, got=synced)
                self._short_at = time.monotonic()  # the next appends are refused before writing
                raise DependencyUnavailable("audit")
            if wait is None and synced is not None and (not isinstance(synced, list) or int(synced[0]) < 1
                                                        or int(synced[1]) < max(self.waitaof[0], self.replicas)):
                log.error("audit_not_synced", waitaof=synced)
                if isinstance(synced, list) and int(synced[1]) < self.replicas:
                    self._short_at = time.monotonic()
                raise DependencyUnavailable("audit")
            return [Receipt(int(s["seq"]), i, s["mac"]) for s, i in zip(sealed, ids, strict=True)]
        log.error("audit_append_contention", attempts=self.max_attempts, chain=self.chain)
        raise DependencyUnavailable("audit")
