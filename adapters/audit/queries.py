"""Reading a chain back for auditors, in bounded batches so a year of events never sits in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from adapters.audit import indexes
from adapters.audit.keys import OUTAGE, ChainKeys, entries, head_and_checkpoint, seq_of
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable


@dataclass(frozen=True, slots=True)
class ChainStatus:
    head: ac.Head | None
    checkpoint: ac.Checkpoint | None
    length: int  # entries in the stream


async def chain_status(client: aioredis.Redis, chain: str) -> ChainStatus:
    """The head, the last retention checkpoint and the length, for an operator's glance: the
    checkpoint is not verified (`verify` does that), and a malformed one shows as None."""
    k = ChainKeys.of(chain)
    try:
        head, cp_fields = await head_and_checkpoint(client, k)
        length = int(await client.xlen(k.stream))
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e
    try:
        cp = ac.Checkpoint.from_fields(cp_fields) if cp_fields else None
    except ValueError:  # malformed in Redis: for `verify` to report, not an error here
        cp = None
    return ChainStatus(head, cp, length)


async def _scan(client: aioredis.Redis, stream: str, low: str, high: str,
                batch: int) -> AsyncIterator[tuple[str, dict[str, str]]]:
    cursor = low
    while True:
        page = entries(await client.xrange(stream, min=cursor, max=high, count=batch))
        for entry in page:
            yield entry
        if len(page) < batch:
            return
        cursor = "(" + page[-1][0]


async def query(client: aioredis.Redis, chain: str, where: ac.AuditFilter | None = None, *, batch: int = 500,
                limit: int | None = None, **criteria: Any) -> AsyncIterator[dict[str, str]]:
    """Records (chain, id, stored fields) matching `where` or keyword criteria (AuditFilter's
    fields: subscriber, staff_id, terminal, hall, method, decision, channel, start, end), oldest
    first, read in batches of `batch` so memory stays bounded. A filter with an indexed field
    (subscriber_ref, staff_id, terminal, hall, or `call` in `extra`) costs O(matches) once the
    chain's indexes are complete; otherwise the time range is scanned. Redis failures raise
    DependencyUnavailable("audit")."""
    if where is None:
        where = ac.AuditFilter(**criteria)
    elif criteria:
        raise TypeError("give either an AuditFilter or keyword criteria")
    low, high = where.id_range()
    n = 0
    try:
        # a filter naming a subscriber pseudonym, staff id, terminal, hall or call id reads its
        # matches from an index (the smallest one in the time range); anything else scans the range
        key = await indexes.choose(client, chain, where)
        found = (indexes.indexed_entries(client, chain, key, where, batch) if key is not None
                 else _scan(client, ChainKeys.of(chain).stream, low, high, batch))
        async for entry_id, entry in found:
            if where.matches(entry_id, entry):
                yield ac.record(chain, entry_id, entry)
                n += 1
                if limit is not None and n >= limit:
                    return
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e


async def export_jsonl(client: aioredis.Redis, chain: str, out: Any, where: ac.AuditFilter | None = None, *,
                       batch: int = 500) -> int:
    """Write matching records as JSON Lines to a text stream, seals included so that the copy can be
    verified offline; returns how many."""
    n = 0
    async for rec in query(client, chain, where, batch=batch):
        out.write(ac.to_json_line(rec))
        n += 1
    return n


def _seq(e: tuple[str, dict[str, str]]) -> int:
    found = seq_of(e[1].get("seq"))
    return -1 if found is None else found


async def _first_id_with_seq(client: aioredis.Redis, stream: str, target: int) -> str | None:
    """The stream id of the first entry whose seq is ≥ target, by binary search over time (seqs
    grow with stream ids in an intact chain); None if there is none."""
    first = entries(await client.xrange(stream, count=1))
    last = entries(await client.xrevrange(stream, count=1))
    if not first or _seq(last[0]) < target:
        return None
    if _seq(first[0]) >= target:
        return first[0][0]
    lo, hi = ac.parse_stream_id(first[0][0])[0], ac.parse_stream_id(last[0][0])[0]
    while lo < hi:  # invariant: the first entry at or after `lo` ms has seq < target
        mid = (lo + hi + 1) // 2
        probe = entries(await client.xrange(stream, min=f"{mid}-0", count=1))
        if probe and _seq(probe[0]) < target:
            lo = mid
        else:
            hi = mid - 1
    async for entry in _scan(client, stream, f"{lo}-0", "+", 256):
        if _seq(entry) >= target:
            return entry[0]
    return None


async def verify(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], start_seq: int | None = None,
                 end_seq: int | None = None, *, start: datetime | None = None, end: datetime | None = None,
                 batch: int = 1000) -> ac.VerifyResult:
    """Verify the chain, or a range of it by seq (inclusive) or by time ([start, end)), and report
    the first broken event and why. Without a start the chain is checked from the retention
    checkpoint (or its first event); with one, from the event just before the range. Tampered data
    is a verdict, not an error; Redis failures raise DependencyUnavailable("audit")."""
    return await verify_between(client, chain, keys,
                                ac.stream_id_at(start) if start is not None else None,
                                "(" + ac.stream_id_at(end) if end is not None else "+",
                                start_seq=start_seq, end_seq=end_seq, batch=batch)


async def verify_between(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], low: str | None,
                         high: str = "+", *, start_seq: int | None = None, end_seq: int | None = None,
                         batch: int = 1000) -> ac.VerifyResult:
    """`verify` between two stream ids (XRANGE bounds; `low` None or "-" from the anchor), for a
    caller that knows ids rather than times, as retention does. A `start_seq` overrides `low`."""
    try:
        return await _verify(client, chain, keys, start_seq, end_seq, low, high, batch)
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e


async def _verify(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], start_seq: int | None,
                  end_seq: int | None, low: str | None, high: str, batch: int) -> ac.VerifyResult:
    k = ChainKeys.of(chain)
    head, cp_fields = await head_and_checkpoint(client, k)
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
        before = entries(await client.xrevrange(k.stream, max="(" + low if low != "+" else "+", count=1))
        if before:
            _, bf = before[0]
            bf_seq = seq_of(bf.get("seq"))
            # a predecessor that fails its mac (or has no readable seq) cannot anchor the range:
            # the range is then checked from its own first event
            anchor = (ac.Anchor(bf_seq, bf["mac"], "predecessor")
                      if bf_seq is not None and ac.mac_ok(chain, keys, bf) else None)
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
