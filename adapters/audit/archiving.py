"""The mover: sealed events older than the hot window go from Redis to the PostgreSQL archive
(adapters/audit/archive.py), and only once the archive has committed them are they trimmed from Redis
by retention's trim (adapters/audit/retention.py: a recorded trim event, a signed checkpoint of the
last moved event, the index entries removed in the same step). See docs/audit.md, *Archive*.

Why it neither loses nor duplicates (whatever step a SIGKILL of the mover, or of PostgreSQL or Redis,
interrupts):

* it reads Redis in seq order from the archive's head + 1 (the archive's last seq is committed in the
  same transaction as the events), and every batch is one transaction: committed whole or not at all;
* the archive only takes events continuing its head (seq + 1, prev = its mac) and ignores a seq it
  already holds with identical fields, so a rerun after a crash between commit and trim re-offers
  nothing new and stores nothing twice;
* Redis trims only events at or below the archive's committed head, after trim's own verification;
  until then they are in both tiers, and readers take each event from one tier only (the Redis
  boundary: see adapters/audit_reader.py);
* every event is verified (its mac and link, from the archive's head or Redis's checkpoint) before it
  is archived, so a tampered Redis stops the move instead of laundering into the archive.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
import structlog

from adapters.audit.across import verify_across  # noqa: F401 - part of this module's surface
from adapters.audit.archive import ArchiveHead, PgAuditArchive
from adapters.audit.keys import OUTAGE, ChainKeys, entries, head_and_checkpoint, seq_of
from adapters.audit.queries import _first_id_with_seq, _scan
from adapters.audit.retention import trim
from adapters.audit.sink import ChainedAuditSink
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable

log = structlog.get_logger("hallgate.audit")


@dataclass(frozen=True, slots=True)
class MoveResult:
    archived: int  # events newly stored in the archive by this run
    trimmed: int  # events removed from Redis by this run
    archive_last_seq: int | None  # the archive's head after the run
    complete: bool  # everything older than the cutoff is archived (False: max_events stopped it)


def cutoff_for(now: datetime, hot_days: float) -> datetime:
    if hot_days < 0:
        raise ValueError("the hot window must not be negative")
    return now - timedelta(days=hot_days)


async def _redis_start(client: aioredis.Redis, chain: str, head: ArchiveHead | None) -> str | None:
    """The stream id to read from: the first entry (no archive yet) or the first with seq > the
    archive's head; None when Redis holds nothing newer."""
    stream = ChainKeys.of(chain).stream
    if head is None:
        return "-"
    return await _first_id_with_seq(client, stream, head.last_seq + 1)


async def move(client: aioredis.Redis, archive: PgAuditArchive, chain: str, keys: Mapping[str, bytes], key_id: str,
               *, older_than: datetime | None = None, hot_days: float = 30, now: datetime | None = None,
               sink: ChainedAuditSink | None = None, actor: Mapping[str, str] | None = None, batch: int = 500,
               max_events: int | None = None) -> MoveResult:
    """Move the events older than `older_than` (default: `now` - `hot_days`) from Redis to the
    archive, then trim them from Redis. Idempotent and resumable: run it again after any failure.
    `max_events` bounds one run (the rest waits for the next).

    Raises ChainBroken when the events to move do not verify (nothing of them is archived),
    ArchiveConflict when the archive holds other content for a seq or Redis does not continue the
    archive (a gap: Redis was trimmed without archiving), DependencyUnavailable("audit") /
    ("audit-archive") for outages. Redis keeps every event the archive has not committed."""
    now = now or datetime.now(UTC)
    older_than = older_than or cutoff_for(now, hot_days)
    sink = sink or ChainedAuditSink(client, keys, key_id, chain)
    k = ChainKeys.of(chain)
    cutoff_id = ac.stream_id_at(older_than)
    head = await archive.head(chain)
    try:
        low = await _redis_start(client, chain, head)
        _, cp_fields = await head_and_checkpoint(client, k)
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e
    anchor: ac.Anchor
    if head is not None:
        anchor = ac.Anchor(head.last_seq, head.last_mac, "archive")
    else:
        found = ac.anchor_from_checkpoint(chain, keys, cp_fields)
        if isinstance(found, ac.VerifyResult):
            raise ac.ChainBroken(found)
        anchor = found
    verifier = ac.Verifier(chain, keys, anchor)
    archived = 0
    last_id: str | None = head.last_id if head is not None else None
    complete = True
    if low is not None and ac.parse_stream_id(low if low != "-" else "0-0") < ac.parse_stream_id(cutoff_id):
        async for page in _pages(client, k.stream, low, "(" + cutoff_id, batch):
            for entry_id, fields in page:
                verifier.feed(entry_id, fields)
            verdict = verifier.result(at_stream_end=False)
            if not verdict.ok:
                log.error("audit_archive_refused", chain=chain, **verdict.as_dict())
                raise ac.ChainBroken(verdict)
            stored = await archive.store(chain, [ac.record(chain, i, f) for i, f in page],
                                         anchor=cp_fields if head is None and cp_fields else None)
            archived += stored.inserted
            last_id = page[-1][0]
            if max_events is not None and archived >= max_events:
                complete = False
                break
    head = await archive.head(chain)
    trimmed = 0
    if head is not None:
        # trim what is archived: everything below the cutoff once the run is complete, else the
        # whole milliseconds before the last archived event (its millisecond may hold more to move)
        bound = older_than if complete else ac.time_of(last_id or head.last_id)
        trimmed = await _trim_archived(client, archive, chain, keys, key_id, head, bound, sink, actor)
    log.info("audit_archived", chain=chain, archived=archived, trimmed=trimmed,
             archive_last_seq=head.last_seq if head else None, complete=complete)
    return MoveResult(archived, trimmed, head.last_seq if head else None, complete)


async def _pages(client: aioredis.Redis, stream: str, low: str, high: str, batch: int
                 ) -> AsyncIterator[list[tuple[str, dict[str, str]]]]:
    page: list[tuple[str, dict[str, str]]] = []
    try:
        async for entry in _scan(client, stream, low, high, batch):
            page.append(entry)
            if len(page) >= batch:
                yield page
                page = []
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e
    if page:
        yield page


async def _trim_archived(client: aioredis.Redis, archive: PgAuditArchive, chain: str, keys: Mapping[str, bytes],
                         key_id: str, head: ArchiveHead, bound: datetime, sink: ChainedAuditSink,
                         actor: Mapping[str, str] | None) -> int:
    """Trim Redis below `bound`, but only if every event there is archived (its seq is at most the
    archive's committed head); otherwise trim nothing."""
    stream = ChainKeys.of(chain).stream
    try:
        last = entries(await client.xrevrange(stream, max="(" + ac.stream_id_at(bound), count=1))
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e
    if not last:
        return 0
    seq = seq_of(last[0][1].get("seq"))
    if seq is None or seq > head.last_seq:
        log.warning("audit_archive_trim_skipped", chain=chain, redis_seq=seq, archive_seq=head.last_seq)
        return 0
    who = {"moved_to": "archive", "archived_through_seq": str(head.last_seq), **(actor or {})}
    result = await trim(client, chain, keys, key_id, bound, sink=sink, actor=who)
    return result.trimmed


# ---------------------------------------------------------------------------------------------
# Running it from the host: `python -m adapters.audit.archiving` (settings from HALLGATE_*).


async def run(settings: Any, client: aioredis.Redis, *, hot_days: float | None = None, batch: int = 500,
              max_events: int | None = None, actor: Mapping[str, str] | None = None) -> MoveResult:
    """One move as the settings say (audit keys and durability, `audit_archive_url`, `audit_hot_days`)
    on the gateway's Redis: what `hallgate audit archive` calls."""
    from gateway.runtime.bootstrap import audit_sink

    if not settings.audit_archive_url:
        raise ValueError("no archive: set HALLGATE_AUDIT_ARCHIVE_URL")
    keys, kid = settings.audit_keys()
    archive = PgAuditArchive(settings.audit_archive_url)
    try:
        return await move(client, archive, settings.audit_chain, keys, kid,
                          hot_days=settings.audit_hot_days if hot_days is None else hot_days,
                          sink=audit_sink(settings, client), actor=actor, batch=batch, max_events=max_events)
    finally:
        await archive.close()


def main(argv: list[str] | None = None) -> int:
    from gateway.runtime.settings import from_env

    p = argparse.ArgumentParser(prog="python -m adapters.audit.archiving",
                                description="move audit events older than the hot window to the archive")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--max-events", type=int, default=None)
    args = p.parse_args(argv)
    settings = from_env()
    if not settings.redis_url:
        p.error("set HALLGATE_REDIS_URL (the gateway's Redis)")
    async def go() -> MoveResult:
        from adapters.redis_client import connect

        client = connect(settings.redis_url, 5.0)
        try:
            return await run(settings, client, batch=args.batch, max_events=args.max_events)
        finally:
            await client.aclose()

    result = asyncio.run(go())
    print(f"archived {result.archived} events, trimmed {result.trimmed} from Redis; archive at seq "
          f"{result.archive_last_seq}; {'complete' if result.complete else 'more to move'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
