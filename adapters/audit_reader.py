"""The read side of the audit chain: auditors' queries, verification, export, and the
subscriber's own access history (by keyed pseudonym)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime

import redis.asyncio as aioredis

from adapters.audit import queries
from gateway.domain import audit_chain as ac


class ChainAuditReader:
    """AuditReader and AccessLog ports over one chain."""

    def __init__(self, client: aioredis.Redis, chain: str, keys: Mapping[str, bytes]) -> None:
        self.r = client
        self.chain = chain
        self.keys = keys

    def query(self, where: ac.AuditFilter, limit: int | None = None) -> AsyncIterator[dict[str, str]]:
        return queries.query(self.r, self.chain, where, limit=limit)

    async def verify(self, start_seq: int | None, end_seq: int | None) -> ac.VerifyResult:
        return await queries.verify(self.r, self.chain, self.keys, start_seq, end_seq)

    async def accesses(self, subscriber_ref: str, since: datetime) -> AsyncIterator[Mapping[str, str]]:
        where = ac.AuditFilter(start=since, subscriber_ref=subscriber_ref)
        async for record in queries.query(self.r, self.chain, where):
            yield record
