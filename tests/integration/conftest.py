"""Fixtures of the integration ring: asyncio Redis clients on the session's redis-server (flushed),
and the audit archive on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from adapters.audit.archive import PgAuditArchive
from adapters.redis_client import connect


@pytest.fixture
async def client(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    c = connect(clean_redis, 1.0)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
async def r(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    """A client with a longer timeout, for tests that move or scan whole chains."""
    client = connect(clean_redis, 5.0)
    yield client
    await client.aclose()


@pytest.fixture
async def archive(archive_url: str) -> AsyncIterator[PgAuditArchive]:
    a = PgAuditArchive(archive_url, batch=64)
    yield a
    await a.close()
