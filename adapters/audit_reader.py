"""The read side of the audit chain: auditors' queries, verification, export, and the
subscriber's own access history (by keyed pseudonym).

With an archive (adapters/audit/archive.py), events older than the first event still in Redis (the
tier boundary) are read from the archive and the rest from Redis, oldest first, each event from one
tier only (an event archived but not trimmed yet is read from Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime

import redis.asyncio as aioredis

from adapters.audit import checkpoints, queries
from adapters.audit.across import verify_across
from adapters.audit.archive import PgAuditArchive
from adapters.audit.keys import OUTAGE, ChainKeys, entries
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable


class ChainAuditReader:
    """AuditReader and AccessLog ports over one chain, and its archive when there is one."""

    def __init__(self, client: aioredis.Redis, chain: str, keys: Mapping[str, bytes],
                 archive: PgAuditArchive | None = None, kid: str = "") -> None:
        self.r = client
        self.chain = chain
        self.keys = keys
        self.archive = archive
        self.kid = kid or max(keys)  # signs verified positions (adapters/audit/checkpoints.py)

    def query(self, where: ac.AuditFilter, limit: int | None = None) -> AsyncIterator[dict[str, str]]:
        if self.archive is None:
            return queries.query(self.r, self.chain, where, limit=limit)
        return self._across(self.archive, where, limit)

    async def _boundary(self) -> str | None:
        """The stream id of the oldest event in Redis (None: Redis holds none)."""
        try:
            first = entries(await self.r.xrange(ChainKeys.of(self.chain).stream, count=1))
        except OUTAGE as e:
            raise DependencyUnavailable("audit") from e
        return first[0][0] if first else None

    async def _across(self, archive: PgAuditArchive, where: ac.AuditFilter,
                      limit: int | None) -> AsyncIterator[dict[str, str]]:
        """The archive's part (stream ids below the Redis boundary), then Redis's. A move that trims
        Redis while the archive's part is read has archived those events first: they are read from
        the archive between the old and the new boundary."""
        n = 0
        boundary = await self._boundary()
        start = ac.parse_stream_id(ac.stream_id_at(where.start)) if where.start is not None else (0, 0)
        if boundary is None or start < ac.parse_stream_id(boundary):
            # (a range that starts at or after the boundary never asks the archive)
            async for rec in archive.query(self.chain, where, None if limit is None else limit - n, before=boundary):
                yield rec
                n += 1
                if limit is not None and n >= limit:
                    return
            moved = await self._boundary()
            if boundary is not None and (moved is None or ac.parse_stream_id(moved) > ac.parse_stream_id(boundary)):
                async for rec in archive.query(self.chain, where, None if limit is None else limit - n,
                                               after=boundary, before=moved):
                    yield rec
                    n += 1
                    if limit is not None and n >= limit:
                        return
        async for rec in queries.query(self.r, self.chain, where, limit=None if limit is None else limit - n):
            yield rec

    async def verify(self, start_seq: int | None, end_seq: int | None) -> ac.VerifyResult:
        """The range; from the first seq with no end and an archive: the whole chain across both
        tiers (the archive from its anchor, then Redis)."""
        if self.archive is not None and start_seq == 1 and end_seq is None:
            return await verify_across(self.r, self.archive, self.chain, self.keys)
        return await queries.verify(self.r, self.chain, self.keys, start_seq, end_seq)

    async def verify_incremental(self) -> ac.IncrementalResult:
        """The events after the last signed verified position (archived events were verified
        before they moved, and the position is past them)."""
        return await checkpoints.verify_incremental(self.r, self.chain, self.keys, self.kid)

    async def accesses(self, subscriber_ref: str, since: datetime) -> AsyncIterator[Mapping[str, str]]:
        where = ac.AuditFilter(start=since, subscriber_ref=subscriber_ref)
        async for record in self.query(where):
            yield record
