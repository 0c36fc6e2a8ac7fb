"""Disposal of whole archive months past retention (hall rule R8: expired data is destroyed, and the
destruction is recorded). See docs/audit.md, *Archive*, *Disposal*.

`dispose` takes the archive's oldest months that end at or before the retention line
(`retention_cutoff(now, months)`, calendar months) and, for each in order:

1. verifies it (before any is disposed, all of them in one pass): from the archive's current anchor,
   every event's mac and link, and the month holding exactly its seq range. A month that does not
   verify is refused (DisposalRefused, logged) and nothing is disposed: disposing would launder the
   evidence;
2. records the disposal as an audit event through the sink (method maintenance/dispose, naming the
   month, its first and last seq, the events destroyed, when, and who ran it). If that fails, nothing
   is destroyed (fail closed), as for a trim;
3. in ONE PostgreSQL transaction (PgAuditArchive.dispose_month): the new anchor, a signed checkpoint
   (ac.Checkpoint, the same signature as the retention checkpoint) of the month's last event, and the
   drop of the month. DROP TABLE is transactional in PostgreSQL, so a crash leaves either the month and
   the old anchor or neither: never a month gone with the old anchor (which would read as a deletion)
   nor the new anchor with the month still there.

Idempotent: a disposed month is no longer in the archive, so a rerun does not see it. A run
interrupted between its event (2) and its transaction (3) has left the month and the old anchor; the
rerun finds its event by the disposal id it carries in `call` (indexed in Redis and in the archive),
checks its mac, and completes the drop under that event instead of recording a second one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import NoReturn

import redis.asyncio as aioredis
import structlog

from adapters.audit.archive import ArchiveConflict, ArchiveHead, PgAuditArchive, month_bounds
from adapters.audit.keys import OUTAGE, ChainKeys, seq_of
from adapters.audit.queries import _first_id_with_seq
from adapters.audit.sink import ChainedAuditSink
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable

log = structlog.get_logger("hallgate.audit")

METHOD = "maintenance/dispose"

Hook = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MonthDisposal:
    """One month destroyed (or, in a dry run, to be destroyed)."""

    month: str  # YYYY_MM
    first_seq: int
    last_seq: int
    events: int
    last_id: str  # the stream id of its last event: the new anchor's
    last_mac: str
    event_seq: int | None = None  # the seq of the disposal's own audit event (None: dry run)
    resumed: bool = False  # its event was recorded by an interrupted run, and this run completed it


@dataclass(frozen=True, slots=True)
class DisposeResult:
    cutoff: datetime  # months ending at or before this are past retention
    months: tuple[MonthDisposal, ...]
    dry_run: bool

    @property
    def events(self) -> int:
        return sum(m.events for m in self.months)


class DisposalRefused(ac.ChainBroken):
    """A month past retention does not verify (or the archive's anchor does not): nothing disposed."""

    def __init__(self, month: str, result: ac.VerifyResult) -> None:
        super().__init__(result)
        self.month = month
        self.args = (f"month {month} not disposed: {self.args[0]}",)


def disposal_id(chain: str, d: MonthDisposal) -> str:
    """What a disposal's event carries in `call`, so an interrupted run's event is found again."""
    return f"dispose:{chain}:{d.month}:{d.first_seq}-{d.last_seq}"


def past_retention(months: list[str], cutoff: datetime) -> list[str]:
    """The oldest months (YYYY_MM, oldest first) that end at or before `cutoff`: a prefix, so a
    disposal never leaves a hole in the middle of the archive."""
    out = []
    for month in sorted(months):
        if month_bounds(month)[1] > cutoff:
            break
        out.append(month)
    return out


async def dispose(client: aioredis.Redis, archive: PgAuditArchive, chain: str, keys: Mapping[str, bytes], kid: str,
                  *, now: datetime | None = None, retention_months: int = ac.DEFAULT_RETENTION_MONTHS,
                  sink: ChainedAuditSink | None = None, actor: Mapping[str, str] | None = None,
                  dry_run: bool = False, batch: int = 1000, hook: Hook | None = None) -> DisposeResult:
    """Dispose of the archive's months past retention (see the module's docstring); `dry_run`
    verifies and reports them without recording or destroying anything. `hook` (tests) is awaited
    with "recorded" after each month's event, then "anchored" and "dropped" inside its transaction.

    Raises DisposalRefused when a month (or the anchor) does not verify, ArchiveConflict when
    another disposal is running or the archive changed under this one, DependencyUnavailable
    ("audit" / "audit-archive") for outages; in every case nothing more is destroyed."""
    ac.check_keys(keys, kid)
    now = now or datetime.now(UTC)
    cutoff = ac.retention_cutoff(now, retention_months)
    async with archive.disposal_lock(chain) as mine:
        if not mine:
            raise ArchiveConflict(f"{chain}: another disposal is running")
        head = await archive.head(chain)
        if head is None:
            return DisposeResult(cutoff, (), dry_run)
        months = await _complete(client, chain, head, past_retention(await archive.months(chain), cutoff))
        if not months:
            return DisposeResult(cutoff, (), dry_run)
        plans = await _verify(archive, chain, keys, head, months, batch)
        if dry_run:
            return DisposeResult(cutoff, tuple(plans), True)
        sink = sink or ChainedAuditSink(client, keys, kid, chain)
        done: list[MonthDisposal] = []
        expect = head.anchor
        for plan in plans:
            event_seq, at, resumed = await _find_or_record(client, archive, chain, keys, sink, plan, now, cutoff,
                                                           retention_months, actor)
            if hook is not None:
                await hook("recorded")
            cp = ac.Checkpoint(plan.last_seq, plan.last_mac, plan.last_id, at, kid, event_seq).signed(chain, keys[kid])
            await archive.dispose_month(chain, plan.month, span=(plan.first_seq, plan.last_seq, plan.events),
                                        expect_anchor=expect, anchor=cp.as_fields(), hook=hook)
            expect = cp.as_fields()
            done.append(replace(plan, event_seq=event_seq, resumed=resumed))
            log.info("audit_month_disposed", chain=chain, month=plan.month, first_seq=plan.first_seq,
                     last_seq=plan.last_seq, events=plan.events, event_seq=event_seq, resumed=resumed)
        return DisposeResult(cutoff, tuple(done), False)


async def _complete(client: aioredis.Redis, chain: str, head: ArchiveHead, months: list[str]) -> list[str]:
    """Only months the archive holds entirely: a month that the archive's newest event is in may
    still have events in Redis (a mover that has not caught up); it waits for the next run."""
    if not months:
        return months
    last_end = month_bounds(months[-1])[1]
    if ac.time_of(head.last_id) >= last_end:
        return months
    try:
        nxt = await _first_id_with_seq(client, ChainKeys.of(chain).stream, head.last_seq + 1)
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e
    if nxt is None or ac.time_of(nxt) >= last_end:
        return months
    return [m for m in months if month_bounds(m)[1] <= ac.time_of(head.last_id)]


async def _verify(archive: PgAuditArchive, chain: str, keys: Mapping[str, bytes], head: ArchiveHead,
                  months: list[str], batch: int) -> list[MonthDisposal]:
    """The months' spans, verified in one pass from the archive's anchor; DisposalRefused if not."""
    found = ac.anchor_from_checkpoint(chain, keys, head.anchor)
    if isinstance(found, ac.VerifyResult):
        _refuse(chain, months[0], found)
    spans: list[tuple[str, tuple[int, int, int]]] = []
    for month in months:
        span = await archive.month_span(chain, month)
        if span is not None:
            spans.append((month, span))
    expected_first = head.first_seq
    for month, (first, last, rows) in spans:
        if first != expected_first or rows != last - first + 1:
            what = ac.DELETED if rows < last - first + 1 or first > expected_first else ac.REORDERED
            _refuse(chain, month, ac.VerifyResult(
                False, 0, min(first, expected_first), None, what,
                f"month {month} holds {rows} rows for seq {first}..{last}; the archive expects it to start at "
                f"seq {expected_first}", anchor=found.source))
        expected_first = last + 1
    if not spans:
        return []
    ends = {span[1]: month for month, span in spans}
    v = ac.Verifier(chain, keys, found, end_seq=spans[-1][1][1])
    seen: dict[str, tuple[str, str]] = {}
    async for entry_id, fields in archive.iter_from(chain, head.first_seq, batch=batch):
        v.feed(entry_id, fields)
        seq = seq_of(fields.get("seq"))
        if seq in ends and v.last_id == entry_id and v.prev_mac == fields.get("mac"):
            seen[ends[seq]] = (entry_id, fields["mac"])
        if not v.wants_more:
            break
    result = v.result(at_stream_end=False)
    if not result.ok or len(seen) != len(spans):
        if result.ok:
            result = ac.VerifyResult(False, result.checked, (result.last_seq or 0) + 1, None, ac.DELETED,
                                     f"the archive ends at seq {result.last_seq}", anchor=found.source)
        bad = result.first_bad_seq or 0
        month = next((m for m, (first, last, _) in spans if first <= bad <= last), spans[0][0])
        _refuse(chain, month, result)
    return [MonthDisposal(month, first, last, rows, *seen[month]) for month, (first, last, rows) in spans]


def _refuse(chain: str, month: str, result: ac.VerifyResult) -> NoReturn:
    log.error("audit_disposal_refused", chain=chain, month=month, **result.as_dict())
    raise DisposalRefused(month, result)


async def _find_or_record(client: aioredis.Redis, archive: PgAuditArchive, chain: str, keys: Mapping[str, bytes],
                          sink: ChainedAuditSink, plan: MonthDisposal, now: datetime, cutoff: datetime,
                          retention_months: int, actor: Mapping[str, str] | None) -> tuple[int, str, bool]:
    """(seq of the disposal's event, its time, whether an interrupted run had recorded it)."""
    from adapters.audit_reader import ChainAuditReader  # the read side, across both tiers

    did = disposal_id(chain, plan)
    where = ac.AuditFilter(start=month_bounds(plan.month)[1], extra=(("call", did),))
    async for rec in ChainAuditReader(client, chain, keys, archive=archive).query(where):
        f = {k: v for k, v in rec.items() if k not in ac.RECORD_FIELDS}
        if f.get("method") == METHOD and f.get("last_seq") == str(plan.last_seq) and ac.mac_ok(chain, keys, f):
            return int(f["seq"]), f.get("at", ""), True
    who = dict(actor or {})
    at = now.isoformat(timespec="milliseconds")
    start, end = month_bounds(plan.month)
    event = ac.AuditEvent(
        at=at, channel="maintenance", method=METHOD, decision="allowed", reason="retention", code="OK",
        staff_id=who.pop("staff_id", ""), role=who.pop("role", ""), call=did, records=plan.events,
        detail=(f"archive month {plan.month} of chain {chain} destroyed: seq {plan.first_seq}..{plan.last_seq}, "
                f"{plan.events} events of [{start.date()}, {end.date()}), past the {retention_months}-month "
                f"retention (before {cutoff.isoformat(timespec='seconds')}), at {at}"),
        extra={"month": plan.month, "first_seq": plan.first_seq, "last_seq": plan.last_seq, "events": plan.events,
               "retention_months": retention_months, "older_than": cutoff.isoformat(timespec="milliseconds"),
               "checkpoint_seq": plan.last_seq, "checkpoint_id": plan.last_id, "checkpoint_mac": plan.last_mac,
               **who})
    receipt = await sink.record(event.fields())
    return receipt.seq, at, False
