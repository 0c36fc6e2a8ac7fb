"""With audit_replicas set, an audit event is acknowledged only once a replica has it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis

from adapters.audit.sink import ChainedAuditSink
from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess, free_port
from gateway.domain.errors import DependencyUnavailable

KEYS = {"k1": b"k" * 32}


def _wait_linked(replica: RedisServerProcess, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(replica.url) as r:
        while time.monotonic() < deadline:
            if r.info("replication").get("master_link_status") == "up":
                return
            time.sleep(0.05)
    raise AssertionError("the replica never linked to its master")


async def test_an_event_waits_for_a_replica_and_fails_closed_without_one(tmp_path: Path) -> None:
    master = RedisServerProcess(tmp_path / "m", port=free_port(), appendfsync="always").start()
    replica = RedisServerProcess(tmp_path / "r", port=free_port(), appendfsync="always").start()
    client = connect(master.url, 1.0)
    try:
        with redis.Redis.from_url(replica.url) as r:
            r.replicaof("127.0.0.1", master.port)
        _wait_linked(replica)
        sink = ChainedAuditSink(client, KEYS, "k1", "replicated", replicas=1, waitaof_timeout_ms=300)
        await sink.append({"method": "/x/Y", "n": "1"})
        with redis.Redis.from_url(replica.url) as r:
            assert r.xlen("hg:audit:{replicated}:stream") == 1  # the replica had it before the ack
        replica.stop()
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await sink.append({"method": "/x/Y", "n": "2"})
        assert time.monotonic() - started < 3
    finally:
        await client.aclose()
        await asyncio.to_thread(replica.stop)
        master.stop()
