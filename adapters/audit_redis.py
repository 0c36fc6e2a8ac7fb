"""The audit sink on a Redis Stream: one XADD per call, acknowledged only once Redis has it.

A tamper-evident chain over these events is a later step; the port stays the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.errors import DependencyUnavailable

AUDIT_STREAM = "hg:audit"


class RedisStreamAuditSink:
    """AuditSink port: events are flat string maps appended to one stream."""

    def __init__(self, client: aioredis.Redis, stream: str = AUDIT_STREAM) -> None:
        self.r = client
        self.stream = stream

    async def append(self, event: Mapping[str, Any]) -> None:
        fields = {k: "" if v is None else str(v) for k, v in event.items()}
        try:
            await self.r.xadd(self.stream, fields)  # type: ignore[arg-type]
        except RedisError as e:
            raise DependencyUnavailable("audit") from e
