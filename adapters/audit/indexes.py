"""The chain's indexes: how a query by subscriber (pseudonym), staff id, terminal, hall or call id
reads only its matches, how retention removes trimmed events from them, and `reindex` for chains
that were written before the indexes existed.

Layout (all under the chain's hash tag, so one shard holds a chain, its indexes and its scripts'
keys on Redis Cluster):

    hg:audit:{main}:ix:sub:<subscriber_ref>   sorted set: member = stream id, score = its milliseconds
    hg:audit:{main}:ix:staff:<staff_id>       likewise; also :term:<terminal>, :hall:<hall>,
    hg:audit:{main}:ix:req:<call id>          :req:<call id> (the id a call's events share)
    hg:audit:{main}:ix:state                  hash; complete = "1" once the indexes cover the stream
    hg:audit:{main}:ix:reindex                a running reindex's position (stream id)

The append script (adapters/audit/scripts.py) adds an event's id to its index keys in the same
script that XADDs it, so an event and its index entries are stored together or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from adapters.audit.keys import (
    INDEX_FIELD,
    ChainKeys,
    entries,
    index_cursor_key,
    index_key,
    index_keys_of,
    index_prefix,
    index_state_key,
    text,
)
from gateway.domain import audit_chain as ac

# Removes from the index keys KEYS[i] (i ≥ FIRST) every member up to and including the stream id
# ARGV[2] (scores below its ms, and members of that very ms whose sequence part is not above it).
# Shared by retention's trim script (same step as the XTRIM) and by the follow-up cleanup.
UNINDEX_FN = """
local function unindex(key, last)
  local ms = string.match(last, '^(%d+)')
  local seq = tonumber(string.match(last, '-(%d+)$'))
  local removed = redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ms)
  local same = redis.call('ZRANGEBYSCORE', key, ms, ms)
  for _, m in ipairs(same) do
    if tonumber(string.match(m, '-(%d+)$')) <= seq then
      removed = removed + redis.call('ZREM', key, m)
    end
  end
  return removed
end
"""

# KEYS: index keys; ARGV: unused, the last trimmed stream id → members removed
UNINDEX_LUA = UNINDEX_FN + """
local n = 0
for i = 1, #KEYS do n = n + unindex(KEYS[i], ARGV[2]) end
return n
"""


def filter_terms(where: ac.AuditFilter) -> list[tuple[str, str]]:
    """The (kind, value) pairs of a filter that an index can answer: the pseudonym, staff id,
    terminal, hall and call id (via `extra`). A masked `subscriber` is shared by many numbers and
    is never indexed."""
    terms: list[tuple[str, str]] = []
    if where.subscriber_ref:
        terms.append(("sub", where.subscriber_ref))
    for kind, name in (("staff", "staff_id"), ("term", "terminal"), ("hall", "hall")):
        value = getattr(where, name)
        if value:
            terms.append((kind, value))
    for name, value in where.extra:
        if name == INDEX_FIELD["req"] and value:
            terms.append(("req", value))
    return terms


def _score_range(where: ac.AuditFilter) -> tuple[str, str]:
    """ZRANGEBYSCORE bounds for the filter's [start, end) in stream milliseconds."""
    low = str(int(where.start.timestamp() * 1000)) if where.start is not None else "-inf"  # as stream_id_at
    high = "(" + str(int(where.end.timestamp() * 1000)) if where.end is not None else "+inf"
    return low, high


async def choose(client: aioredis.Redis, chain: str, where: ac.AuditFilter) -> str | None:
    """The index key to answer `where` from (the one with the fewest members in the time range),
    or None when the filter names no indexed field or the indexes do not cover the chain yet (then
    the caller scans). One round trip."""
    terms = filter_terms(where)
    if not terms:
        return None
    low, high = _score_range(where)
    keys = [index_key(chain, kind, value) for kind, value in terms]
    pipe = client.pipeline(transaction=False)
    pipe.hget(index_state_key(chain), "complete")
    for key in keys:
        pipe.zcount(key, low, high)
    async with pipe:
        state, *counts = await pipe.execute()
    if state is None or text(state) != "1":
        return None
    return min(zip(counts, keys, strict=True))[1]


def _order(member: str) -> tuple[int, int]:
    return ac.parse_stream_id(member)


async def index_ids(client: aioredis.Redis, key: str, where: ac.AuditFilter, batch: int) -> AsyncIterator[list[str]]:
    """Stream ids in `key` within the filter's time range, oldest first, a batch at a time. Members
    that share a millisecond sort by text in Redis (…-10 before …-2), so each batch ends before its
    last millisecond, which the next batch starts with, and is sorted by (ms, seq) here."""
    low, high = _score_range(where)
    cursor = low
    while True:
        rows: list[Any] = await client.zrangebyscore(key, cursor, high, start=0, num=batch, withscores=True)
        page = [(text(row[0]), int(row[1])) for row in rows]
        if len(page) < batch:
            if page:
                yield sorted((m for m, _ in page), key=_order)
            return
        last = page[-1][1]
        head = [m for m, s in page if s < last]
        if head:
            cursor = str(last)
        else:  # a whole batch within one millisecond: take that millisecond whole
            head = [text(m) for m in await client.zrangebyscore(key, last, last)]
            cursor = f"({last}"
        yield sorted(head, key=_order)


async def fetch(client: aioredis.Redis, stream: str, ids: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """The entries with these ids, in the given order, in one round trip; ids no longer in the stream
    (trimmed while an index still named them) are left out."""
    pipe = client.pipeline(transaction=False)
    for entry_id in ids:
        pipe.xrange(stream, min=entry_id, max=entry_id, count=1)
    async with pipe:
        replies = await pipe.execute()
    out: list[tuple[str, dict[str, str]]] = []
    for reply in replies:
        out += entries(reply)
    return out


async def indexed_entries(client: aioredis.Redis, chain: str, key: str, where: ac.AuditFilter,
                          batch: int) -> AsyncIterator[tuple[str, dict[str, str]]]:
    stream = ChainKeys.of(chain).stream
    async for ids in index_ids(client, key, where, batch):
        for entry in await fetch(client, stream, ids):
            yield entry


# ---------------------------------------------------------------------------------------------
# Building and sweeping


async def add(client: aioredis.Redis, chain: str, batch: Iterable[tuple[str, dict[str, str]]]) -> int:
    """Index stored entries (idempotent: ZADD of the same member and score changes nothing)."""
    pipe = client.pipeline(transaction=False)
    n = 0
    for entry_id, fields in batch:
        ms = ac.parse_stream_id(entry_id)[0]
        for key in index_keys_of(chain, fields):
            pipe.zadd(key, {entry_id: ms})
            n += 1
    if n:
        async with pipe:
            await pipe.execute()
    return n


@dataclass(frozen=True, slots=True)
class ReindexResult:
    events: int  # stream entries read by this run
    members: int  # index entries written (existing ones count too; they are unchanged)
    swept: int  # index members removed because they point before the stream's first entry
    complete: bool


async def reindex(client: aioredis.Redis, chain: str, *, batch: int = 1000, max_events: int | None = None
                  ) -> ReindexResult:
    """Build a chain's indexes from its stream: for chains written before indexes existed. Idempotent
    and resumable: it records how far it got (`ix:reindex`) after every batch and goes on from there
    when run again; `max_events` stops early (a later run resumes). Events appended meanwhile are
    indexed by the append script. At the stream's end it removes index members older than the
    stream's first entry (left by a trim interrupted before its cleanup) and marks the indexes
    complete, from when on queries read them instead of scanning. Run it once every gateway runs the
    indexing append script. Redis errors propagate (it is an operator's command)."""
    k = ChainKeys.of(chain)
    cursor_key = index_cursor_key(chain)
    saved = await client.get(cursor_key)
    low = "(" + text(saved) if saved else "-"
    events = members = 0
    while True:
        page = entries(await client.xrange(k.stream, min=low, max="+", count=batch))
        if page:
            members += await add(client, chain, page)
            events += len(page)
            await client.set(cursor_key, page[-1][0])
            low = "(" + page[-1][0]
        if len(page) < batch:
            break
        if max_events is not None and events >= max_events:
            return ReindexResult(events, members, 0, False)
    swept = await sweep(client, chain)
    pipe = client.pipeline(transaction=True)
    pipe.hset(index_state_key(chain), "complete", "1")
    pipe.delete(cursor_key)
    async with pipe:
        await pipe.execute()
    return ReindexResult(events, members, swept, True)


async def sweep(client: aioredis.Redis, chain: str) -> int:
    """Remove index members that point before the stream's first entry (everything, for an empty
    stream): what a trim interrupted between its XTRIM and the index cleanup leaves behind. Walks the
    chain's index keys with SCAN (on Redis Cluster: on the chain's shard)."""
    k = ChainKeys.of(chain)
    first = entries(await client.xrange(k.stream, count=1))
    prefix = index_prefix(chain)
    meta = {index_state_key(chain), index_cursor_key(chain)}
    removed = 0
    async for raw in client.scan_iter(match=prefix + ":*", count=1000):
        key = text(raw)
        if key in meta:
            continue
        if not first:
            removed += int(await client.zcard(key))
            await client.delete(key)
            continue
        ms, seq = ac.parse_stream_id(first[0][0])
        removed += int(await client.zremrangebyscore(key, "-inf", f"({ms}"))
        stale = [m for m in (text(x) for x in await client.zrangebyscore(key, ms, ms)) if _order(m)[1] < seq]
        if stale:
            removed += int(await client.zrem(key, *stale))
    return removed
