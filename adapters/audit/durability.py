"""What a Redis server can promise about an acknowledged write, asked of the node that holds the chain."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from adapters.audit.keys import text
from gateway.domain import audit_chain as ac


async def probe(client: aioredis.Redis, key: str) -> tuple[str | None, dict[str, Any]]:
    """How an append can know it is on disk ("waitaof" or "always"), or None when nothing vouches
    for it; with what the verdict was drawn from, for the operator's log line. Outages raise."""
    node: dict[str, Any] = {}
    if hasattr(client, "get_node_from_key"):  # Redis Cluster: ask the node that holds the chain
        node["target_nodes"] = client.get_node_from_key(key)
    server = await client.info("server", **node)
    persistence = await client.info("persistence", **node)
    version = text(server.get("redis_version", "0"))
    aof = text(persistence.get("aof_enabled", 0)) == "1"  # anything else: cannot vouch
    fsync: str | None = None
    if ac.durability_mode(version, aof, None) is None:
        try:
            cfg = await client.config_get("appendfsync", **node)
            fsync = text(next(iter(cfg.values()), "")) if cfg else None
        except ResponseError:
            fsync = None  # CONFIG disabled: cannot vouch
    return ac.durability_mode(version, aof, fsync), {"redis_version": version, "aof_enabled": aof,
                                                     "appendfsync": fsync}
