"""The terminal deny-list: revoked terminal ids and certificate serials, in a Redis set.

Every gateway process keeps a copy in memory and reloads it every few seconds, so a revocation
takes effect everywhere without a restart and costs no Redis command per call.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
import structlog

from adapters.redis_state import guarded

REVOKED_KEY = "hg:revoked-terminals"
log = structlog.get_logger("hallgate.revocations")


class RevocationList:
    """`revoked(terminal, serial)` answers from memory; `run()` keeps it fresh."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self.entries: frozenset[str] = frozenset()

    def revoked(self, terminal: str, serial: str) -> bool:
        return terminal in self.entries or (bool(serial) and f"serial:{serial}" in self.entries)

    @guarded
    async def refresh(self) -> None:
        members: set[Any] = set(await self.r.smembers(REVOKED_KEY))  # type: ignore[misc]
        self.entries = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def run(self, every: float) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as err:
                log.warning("revocation_refresh_failed", error=type(err).__name__)
            await asyncio.sleep(every)

    @guarded
    async def add(self, entry: str) -> None:
        await self.r.sadd(REVOKED_KEY, entry)  # type: ignore[misc]

    @guarded
    async def remove(self, entry: str) -> None:
        await self.r.srem(REVOKED_KEY, entry)  # type: ignore[misc]
