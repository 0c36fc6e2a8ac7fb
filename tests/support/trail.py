"""The audit trail as stored: every event of a chain's Redis stream, oldest first, as str fields."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from adapters.audit.keys import stream_key


def _decoded(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def trail(r: aioredis.Redis, chain: str = "main") -> list[dict[str, str]]:
    """Every stored audit event of `chain`, oldest first."""
    return _decoded(await r.xrange(stream_key(chain)))


def trail_sync(redis_url: str, chain: str = "main") -> list[dict[str, str]]:
    """The same through a short-lived blocking client (from a test that holds no async client)."""
    with redis.Redis.from_url(redis_url) as r:
        return _decoded(r.xrange(stream_key(chain)))
