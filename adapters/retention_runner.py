"""Disposal (hall rule R8): one runner for every retention rule of gateway/domain/retention.py.
See docs/retention.md.

For each rule with a disposer, in bounded batches (at most IDS_PER_EVENT records, at most
`max_batches` a run):

1. find what is due: closed before the rule's cutoff (`Disposer.next_batch`); nothing open;
2. write the batch to the disposal journal (`hg:{retention}:pending`, one hash field per disposal,
   by its id) — what it will destroy, the rule, the cutoff;
3. record the disposal as an audit event through the gateway's sink (as the gateway writes:
   durability, replicas), BEFORE anything is destroyed: if that fails, nothing is destroyed (fail
   closed), as for `hallgate audit trim` and `hallgate audit dispose`;
4. destroy (`Disposer.destroy`: each store's own atomic, idempotent disposal);
5. clear its journal entry.

A run interrupted anywhere leaves the journal entry. The next run completes every journal entry
first: it looks the disposal's event up by its id (`call`, indexed in the trail; its mac checked)
and, found, destroys under that event without recording a second one; not found (interrupted
before the event), it records it then. Destroying twice is harmless (every disposal is idempotent).
One run at a time: a lock in Redis (`hg:{retention}:lock`), renewed at every step, expiring
`lock_ttl` (10 minutes) after the last one, so a killed run's lock lapses; a second run is refused.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
import structlog

from adapters.legal_store import RedisLegalStore
from adapters.redis_state import guarded
from adapters.sms import queue as sms_queue
from gateway.domain import audit_chain as ac
from gateway.domain import retention as rt
from gateway.domain.legal import LegalConfig, LegalDesk, State, approval_expires_at

log = structlog.get_logger("hallgate.retention")

JOURNAL = "hg:{retention}:pending"
LOCK = "hg:{retention}:lock"
LOCK_TTL = 600.0  # seconds; renewed at every step of every batch, so only a dead run's lock lapses
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

Hook = Callable[[str], Awaitable[None]]


class RetentionConflict(RuntimeError):
    """Another `hallgate retention run` holds the lock."""


class Disposer(Protocol):
    """What the runner needs of a store, for one rule."""

    rule: rt.Rule

    async def due(self, before: datetime) -> tuple[int, datetime | None]:
        """How many records are due (closed before `before`) and when the oldest's clock started."""
        ...

    async def next_batch(self, before: datetime, limit: int) -> rt.Batch | None:
        """The oldest due records (at most `limit`) and what their disposal event names; None: none due."""
        ...

    async def destroy(self, batch: rt.Batch) -> dict[str, int]:
        """Destroy the batch, atomically per record and idempotently; counts of what went."""
        ...


class Letters(Protocol):
    """What a legal disposal needs of the letter store (FileDocumentStore, PgDocumentStore)."""

    async def delete(self, ref: str) -> bool: ...


def _iso(t: datetime | None) -> str:
    return "" if t is None else t.isoformat(timespec="seconds")


class LegalDisposer:
    """R8.legal: closed legal requests (request, history with the signed manifest, index entries),
    then their letters unless a request still kept references the same letter."""

    rule = rt.LEGAL

    def __init__(self, store: RedisLegalStore, letters: Letters, config: LegalConfig | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        """With `config` (the legal desk's), approvals that lapsed without anyone listing requests
        since are counted by `due` as expired at their lapse, and recorded as expired (as the desk
        records them) by `prepare` before a run: otherwise they would stay open forever."""
        self.store, self.letters, self.config = store, letters, config
        self.clock = clock or (lambda: datetime.now(UTC))

    async def prepare(self) -> None:
        if self.config is not None:
            desk = LegalDesk(self.store, cast(Any, self.letters), cast(Any, None), cast(Any, None), self.config,
                             clock=self.clock)  # settling lapses needs neither billing nor the signer
            await desk.settle_lapses()

    async def due(self, before: datetime) -> tuple[int, datetime | None]:
        found = [at for _, at, _ in await self.store.closed_due(before, rt.LEGAL_CLOSED)]
        if self.config is not None:  # lapsed, not recorded yet: `prepare` will record them expired at the lapse
            for r in await self.store.list(state=State.AWAITING_DISCLOSURE, limit=10_000):
                expires = approval_expires_at(r, self.config)
                if expires is not None and expires <= self.clock() and expires < before:
                    found.append(expires)
        return len(found), (min(found) if found else None)

    async def next_batch(self, before: datetime, limit: int) -> rt.Batch | None:
        found = (await self.store.closed_due(before, rt.LEGAL_CLOSED))[:limit]
        if not found:
            return None
        ids = [rid for rid, _, _ in found]
        refs = {ref for _, _, ref in found if ref}
        kept = await self.store.letters_in_use(refs, excluding=ids)
        return rt.Batch(self.rule.name, tuple(ids), _iso(found[0][1]),
                        {"letters": ",".join(sorted(refs - kept)), "letters_kept": str(len(refs & kept))})

    async def destroy(self, batch: rt.Batch) -> dict[str, int]:
        gone = refused = 0
        for rid in batch.ids:
            done = await self.store.dispose(rid, rt.LEGAL_CLOSED)
            if done < 0:  # cannot happen to a closed request (nothing leaves a closed state); kept
                refused += 1
                log.error("retention_refused_open", rule=self.rule.name, request_id=rid)
            gone += done > 0
        letters = [x for x in batch.details.get("letters", "").split(",") if x]
        # again, now: a request registered since with the same letter keeps it
        in_use = await self.store.letters_in_use(letters)
        deleted = 0
        for ref in letters:
            if ref in in_use:
                log.warning("retention_letter_kept", rule=self.rule.name, letter=ref, why="referenced since")
                continue
            deleted += await self.letters.delete(ref)
        return {"requests": gone, "refused": refused, "letters": deleted}


class SmsDeadLetterDisposer:
    """R8.sms-dead: entries of the SMS dead-letter stream older than the retention."""

    rule = rt.SMS_DEAD

    def __init__(self, client: aioredis.Redis, *, scan: int = 1000, max_entries: int = 1_000_000) -> None:
        self.r, self.scan, self.max_entries = client, scan, max_entries

    async def due(self, before: datetime) -> tuple[int, datetime | None]:
        n, oldest, start = 0, None, "-"
        while n < self.max_entries:
            raw: Any = await self.r.xrange(sms_queue.DEAD, start, f"{int(before.timestamp() * 1000) - 1}",
                                           count=self.scan)
            if not raw:
                break
            if oldest is None:
                oldest = _entry_time(sms_queue._s(raw[0][0]))
            n += len(raw)
            last = sms_queue._s(raw[-1][0])
            start = "(" + last
            if len(raw) < self.scan:
                break
        return n, oldest

    async def next_batch(self, before: datetime, limit: int) -> rt.Batch | None:
        entries = await sms_queue.dead_letters_due(self.r, before.timestamp(), limit)
        if not entries:
            return None
        ids = tuple(entry for entry, _ in entries)
        return rt.Batch(self.rule.name, ids, _iso(_entry_time(ids[0])), {"through": ids[-1]})

    async def destroy(self, batch: rt.Batch) -> dict[str, int]:
        return {"dead_letters": await sms_queue.dispose_dead_letters(self.r, batch.details["through"])}


def _entry_time(entry: str) -> datetime:
    return datetime.fromtimestamp(int(entry.partition("-")[0]) / 1000, UTC)


class CutoffDisposer:
    """A store that disposes of everything closed before a cutoff in one call (the lending
    register's `dispose_returned(before)`, the incidents' `dispose_closed(before)`): the disposal's
    event names the rule, the cutoff and the count due (when the store can count: `count_<method
    suffix>(before)`), recorded before the call; the call is idempotent for a cutoff, so a rerun of
    an interrupted one completes it."""

    def __init__(self, rule: rt.Rule, store: Any, method: str) -> None:
        self.rule, self.store, self.method = rule, store, method

    async def due(self, before: datetime) -> tuple[int, datetime | None]:
        counter = getattr(self.store, "count_" + self.method.removeprefix("dispose_"), None)
        if counter is None:
            return -1, None  # unknown
        got = await counter(before)
        return (got if isinstance(got, tuple) else (int(got), None))  # type: ignore[return-value]

    async def next_batch(self, before: datetime, limit: int) -> rt.Batch | None:
        n, oldest = await self.due(before)
        if n == 0:
            return None
        return rt.Batch(self.rule.name, (f"before:{before.isoformat()}",), _iso(oldest),
                        {"cutoff_disposal": "true", "count_due": str(n) if n >= 0 else "unknown"})

    async def destroy(self, batch: rt.Batch) -> dict[str, int]:
        before = datetime.fromisoformat(batch.ids[0].removeprefix("before:"))
        got = await getattr(self.store, self.method)(before)
        return {"records": len(got) if isinstance(got, (list, tuple, set)) else int(got or 0)}

    @property
    def single_shot(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class RuleStatus:
    rule: str
    kind: str
    how: str
    setting: str
    retention_days: float
    clock: str
    cutoff: str  # "" for rules without one here
    due: int | None  # None: nothing runs for it (TTL, audit, not wired); -1: unknown
    oldest_due: str
    note: str
    pending: int = 0  # disposals interrupted between their event and their destruction

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Disposal:
    rule: str
    disposal_id: str
    records: int
    destroyed: Mapping[str, int]
    event_seq: int | None  # None: dry run
    resumed: bool = False  # recorded by an interrupted run; completed by this one


@dataclass(frozen=True, slots=True)
class RunResult:
    disposals: tuple[Disposal, ...]
    dry_run: bool
    would: tuple[RuleStatus, ...] = ()  # dry run: what is due
    more: tuple[str, ...] = ()  # rules that stopped at max_batches with more due
    pending: tuple[str, ...] = field(default=())  # dry run: interrupted disposals a run would complete


class RetentionRunner:
    """Status and disposal for every rule; see the module's docstring."""

    def __init__(self, settings: Any, client: aioredis.Redis, disposers: Sequence[Disposer], *,
                 sink: Any, reader: Any, chain: str, keys: Mapping[str, bytes],
                 actor: Mapping[str, str], clock: Callable[[], float] = time.time,
                 batch: int = rt.IDS_PER_EVENT, max_batches: int = 1000, hook: Hook | None = None,
                 lock_ttl: float = LOCK_TTL) -> None:
        self.s, self.r = settings, client
        self.disposers = {d.rule.name: d for d in disposers}
        self.sink, self.reader, self.chain, self.keys = sink, reader, chain, keys
        self.actor = dict(actor)
        self.clock, self.batch, self.max_batches, self.hook = clock, batch, max_batches, hook
        self._release = client.register_script(RELEASE)
        self._renew = client.register_script(RENEW)
        self.lock_ttl_ms = max(1, int(lock_ttl * 1000))
        self._token = ""

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # --- status ------------------------------------------------------------------------------

    async def status(self) -> list[RuleStatus]:
        now = self._now()
        pending = await self._journal()
        out = []
        for rule in rt.RULES:
            days = rule.retention(self.s).total_seconds() / 86400
            waiting = sum(1 for e in pending.values() if e["batch"]["rule"] == rule.name)
            d = self.disposers.get(rule.name)
            if rule.how is rt.How.DISPOSAL and d is not None:
                cut = rule.cutoff(now, self.s)
                n, oldest = await d.due(cut)
                out.append(RuleStatus(rule.name, rule.kind, rule.how.value, rule.setting, days, rule.clock, _iso(cut),
                                      n, _iso(oldest), rule.note, waiting))
                continue
            note = rule.note if rule.how is not rt.How.DISPOSAL else \
                f"not wired: its store offers no disposal yet ({rule.note})"
            out.append(RuleStatus(rule.name, rule.kind, rule.how.value, rule.setting, days, rule.clock, "", None, "",
                                  note, waiting))
        return out

    # --- run ---------------------------------------------------------------------------------

    async def run(self, *, dry_run: bool = False) -> RunResult:
        if dry_run:
            return RunResult((), True, tuple(s for s in await self.status() if s.due is not None),
                             pending=tuple(await self._journal()))
        token = secrets.token_hex(8)
        if not await self.r.set(LOCK, token, nx=True, px=self.lock_ttl_ms):
            raise RetentionConflict(f"another retention run is going on, or one died less than "
                                    f"{self.lock_ttl_ms / 1000:g} s ago (hg:{{retention}}:lock)")
        self._token = token
        try:
            return await self._run()
        finally:
            await self._release(keys=[LOCK], args=[token])

    async def _still_mine(self) -> None:
        """Renew the lock; a run that lost it (paused past its life) stops before the next step."""
        if not int(await self._renew(keys=[LOCK], args=[self._token, self.lock_ttl_ms])):
            raise RetentionConflict("the retention lock lapsed during this run: stopped; run again")

    async def _run(self) -> RunResult:
        done: list[Disposal] = []
        for each in self.disposers.values():
            prepare = getattr(each, "prepare", None)
            if prepare is not None:
                await prepare()
        for did, entry in (await self._journal()).items():  # interrupted runs first
            owner = self.disposers.get(entry["batch"]["rule"])
            if owner is None:
                log.error("retention_pending_without_disposer", disposal=did, rule=entry["batch"]["rule"])
                continue
            done.append(await self._carry_out(owner, did, entry, resume=True))
        more: list[str] = []
        now = self._now()
        for d in self.disposers.values():
            cut = d.rule.cutoff(now, self.s)
            for _ in range(self.max_batches):
                batch = await d.next_batch(cut, self.batch)
                if batch is None:
                    break
                did = rt.disposal_id(batch.rule, batch.ids)
                entry = {"batch": batch.as_json(), "cutoff": cut.isoformat(),
                         "retention_days": d.rule.retention(self.s).total_seconds() / 86400,
                         "at": self._now().isoformat(timespec="milliseconds")}
                await self._journal_put(did, entry)
                done.append(await self._carry_out(d, did, entry, resume=False))
                if getattr(d, "single_shot", False):
                    break
            else:
                more.append(d.rule.name)
        return RunResult(tuple(done), False, more=tuple(more))

    async def _carry_out(self, d: Disposer, did: str, entry: Mapping[str, Any], *, resume: bool) -> Disposal:
        batch = rt.Batch.from_json(entry["batch"])
        await self._still_mine()
        found = await self._find(did, entry) if resume else None
        if found is None:
            event = rt.disposal_event(batch, cutoff_at=datetime.fromisoformat(entry["cutoff"]),
                                      retention_days=float(entry["retention_days"]),
                                      at=datetime.fromisoformat(entry["at"]), actor=self.actor)
            seq = (await self.sink.record(event.fields())).seq
        else:
            seq = found
        if self.hook is not None:
            await self.hook("recorded")
        await self._still_mine()
        destroyed = await d.destroy(batch)
        if self.hook is not None:
            await self.hook("destroyed")
        await self._journal_done(did)
        log.info("retention_disposed", rule=batch.rule, disposal=did, records=batch.records, event_seq=seq,
                 resumed=found is not None, destroyed=destroyed)
        return Disposal(batch.rule, did, batch.records, destroyed, seq, found is not None)

    async def _find(self, did: str, entry: Mapping[str, Any]) -> int | None:
        """The seq of the disposal's event if an interrupted run recorded it (its mac checked)."""
        since = datetime.fromisoformat(entry["at"]) - timedelta(hours=1)  # the stream's clock may differ a little
        where = ac.AuditFilter(start=since, extra=(("call", did),))
        async for rec in self.reader.query(where):
            f = {k: v for k, v in rec.items() if k not in ac.RECORD_FIELDS}
            if f.get("method") == rt.METHOD and ac.mac_ok(self.chain, self.keys, f):
                return int(f["seq"])
        return None

    # --- the journal -------------------------------------------------------------------------

    @guarded
    async def _journal(self) -> dict[str, dict[str, Any]]:
        raw = await self.r.hgetall(JOURNAL)  # type: ignore[misc]
        return {sms_queue._s(k): json.loads(v) for k, v in sorted(raw.items())}

    @guarded
    async def _journal_put(self, did: str, entry: Mapping[str, Any]) -> None:
        await self.r.hset(JOURNAL, did, json.dumps(entry))  # type: ignore[misc]

    @guarded
    async def _journal_done(self, did: str) -> None:
        await self.r.hdel(JOURNAL, did)  # type: ignore[misc]


def register_disposers(client: aioredis.Redis, key: bytes | None) -> list[Disposer]:
    """The registers that dispose of everything closed before a cutoff in one call: archive loans,
    breach incidents and (given the server secret it is sealed under) the pseudonym directory."""
    from adapters.pseudonyms import RedisPseudonymDirectory
    from adapters.redis_incidents import RedisIncidentStore
    from adapters.redis_lending import RedisLendingStore

    out: list[Disposer] = [CutoffDisposer(rt.LOANS, RedisLendingStore(client), "dispose_returned"),
                           CutoffDisposer(rt.INCIDENTS, RedisIncidentStore(client), "dispose_closed")]
    if key is not None:
        out.append(CutoffDisposer(rt.PSEUDONYMS, RedisPseudonymDirectory(client, key), "dispose_before"))
    return out
