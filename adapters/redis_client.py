"""Build the redis-py asyncio client from settings, failing fast rather than retrying for long."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def connect(url: str, timeout: float) -> aioredis.Redis:
    """A client whose every call either answers or raises within about `timeout` seconds: a hung
    Redis must turn into UNAVAILABLE for the caller, never into a hang."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
        max_connections=256,
    )
