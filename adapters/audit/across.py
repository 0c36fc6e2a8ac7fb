"""The whole audit chain verified across both tiers (the PostgreSQL archive, then Redis): what
VerifyChain from the first seq reads when an archive is configured, and what the mover's tests use.
Its own module so the read side (adapters/audit_reader.py) needs nothing of the mover."""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from adapters.audit.archive import PgAuditArchive
from adapters.audit.keys import OUTAGE, ChainKeys, head_and_checkpoint, seq_of
from adapters.audit.queries import _scan
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable


async def verify_across(client: aioredis.Redis, archive: PgAuditArchive, chain: str, keys: Mapping[str, bytes],
                        batch: int = 1000) -> ac.VerifyResult:
    """The whole chain verified across both tiers: the archive from its anchor (genesis or the Redis
    checkpoint it started after), then Redis from the first seq the archive does not hold, against
    the Redis head. For tests and operators; VerifyChain's own cross-tier reading is not wired yet."""
    k = ChainKeys.of(chain)
    try:
        rhead, cp_fields = await head_and_checkpoint(client, k)
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e
    head = await archive.head(chain)
    if head is None:
        found = ac.anchor_from_checkpoint(chain, keys, cp_fields)
        if isinstance(found, ac.VerifyResult):
            return found
        v = ac.Verifier(chain, keys, found, rhead)
        after = 0
    else:
        found = ac.anchor_from_checkpoint(chain, keys, head.anchor)
        if isinstance(found, ac.VerifyResult):
            return found
        v = ac.Verifier(chain, keys, found, rhead)
        async for entry_id, fields in archive.iter_from(chain, head.first_seq, batch=batch):
            v.feed(entry_id, fields)
            if not v.wants_more:
                return v.result()
        after = head.last_seq
    try:
        async for entry_id, fields in _scan(client, k.stream, "-", "+", batch):
            seq = seq_of(fields.get("seq"))
            if seq is not None and seq <= after:
                continue  # archived, not trimmed yet (a move between its commit and its trim)
            v.feed(entry_id, fields)
            if not v.wants_more:
                break
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e
    return v.result()
