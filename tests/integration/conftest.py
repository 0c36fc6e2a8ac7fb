"""Fixtures of the integration ring: an asyncio Redis client on the session's redis-server, flushed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from adapters.redis_client import connect


@pytest.fixture
async def client(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    c = connect(clean_redis, 1.0)
    try:
        yield c
    finally:
        await c.aclose()
