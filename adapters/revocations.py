"""The terminal deny-list: revoked terminal ids and certificate serials, in a Redis set.

Every gateway process keeps a copy in memory and reloads it every few seconds, so a revocation
takes effect everywhere without a restart and costs no Redis command per call.

It fails closed: until the first load succeeds (Redis down when the gateway starts) `revoked`
raises DependencyUnavailable("deny_list") instead of answering from an empty list, so a call with
an identity is refused UNAVAILABLE, never let through. After that a failed reload keeps the last
list (Redis going away mid-life takes the calls down anyway).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
import structlog

from adapters.redis_state import guarded
from gateway.domain.errors import DependencyUnavailable

REVOKED_KEY = "hg:revoked-terminals"
RETRY = 0.2  # seconds between attempts while loading fails
log = structlog.get_logger("hallgate.revocations")


class RevocationList:
    """`revoked(terminal, serial)` answers from memory; `run()` keeps it fresh."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self.entries: frozenset[str] = frozenset()
        self.loaded = False  # until the first successful load, `revoked` refuses to answer
        self._loading: asyncio.Task[None] | None = None

    def revoked(self, terminal: str, serial: str) -> bool:
        if not self.loaded:
            raise DependencyUnavailable("deny_list")
        return terminal in self.entries or (bool(serial) and f"serial:{serial}" in self.entries)

    async def refresh(self) -> None:
        """Load the list now. Concurrent callers (the first calls while it is not loaded yet) share
        one Redis command."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loading)

    @guarded
    async def _load(self) -> None:
        members: set[Any] = set(await self.r.smembers(REVOKED_KEY))  # type: ignore[misc]
        self.entries = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        self.loaded = True

    async def run(self, every: float) -> None:
        """Reload every `every` seconds until cancelled; a failure is logged once, not every time,
        and so is the recovery."""
        failing = False
        while True:
            try:
                await self.refresh()
            except Exception as err:
                if not failing:
                    log.warning("revocation_refresh_failed", error=type(err).__name__, loaded=self.loaded,
                                hint="" if self.loaded else "calls with an identity are refused until it loads")
                failing = True
            else:
                if failing:
                    log.info("revocation_refresh_recovered", entries=len(self.entries))
                failing = False
            # While failing, try again soon: the list must be back as soon as Redis is.
            await asyncio.sleep(min(every, RETRY) if failing else every)

    @guarded
    async def add(self, entry: str) -> None:
        await self.r.sadd(REVOKED_KEY, entry)  # type: ignore[misc]

    @guarded
    async def remove(self, entry: str) -> None:
        await self.r.srem(REVOKED_KEY, entry)  # type: ignore[misc]
