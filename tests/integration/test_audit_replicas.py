"""With audit_replicas set, an audit event is acknowledged only once a replica has it."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import redis

from adapters.audit.sink import ChainedAuditSink
from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess, free_port
from gateway.domain.errors import DependencyUnavailable

KEYS = {"k1": b"k" * 32}


def _link(master: RedisServerProcess, replica: RedisServerProcess, timeout: float = 10.0) -> None:
    """Make `replica` replicate `master` and wait until the link is up (the master syncs at once,
    not after the default 5 s wait for more replicas)."""
    with redis.Redis.from_url(master.url) as m:
        m.config_set("repl-diskless-sync-delay", 0)
    with redis.Redis.from_url(replica.url) as r:
        r.replicaof("127.0.0.1", master.port)
    _wait_linked(replica, timeout)
    _wait_acknowledging(master, replica, timeout)


def _wait_acknowledging(master: RedisServerProcess, replica: RedisServerProcess, timeout: float) -> None:
    """Until the replica acknowledges writes promptly: right after the sync it loads the data and
    rewrites its AOF, and a loaded machine can keep a first WAIT waiting past the sink's timeout."""
    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(master.url) as m, redis.Redis.from_url(replica.url) as r:
        while time.monotonic() < deadline:
            busy = r.info("persistence")
            m.set("hg:test:probe", "1")
            if not busy.get("loading") and not busy.get("aof_rewrite_in_progress") and m.wait(1, 200) >= 1:
                return
            time.sleep(0.05)
    raise AssertionError("the replica never acknowledged a write")


def _crash(server: RedisServerProcess) -> None:
    """SIGKILL by pid: a replica lost. (A SIGTERM right after the sync waits out its initial AOF
    rewrite: 10 s.)"""
    if server.proc is not None:
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
    server.stop()


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
        _link(master, replica)
        sink = ChainedAuditSink(client, KEYS, "k1", "replicated", replicas=1, waitaof_timeout_ms=300)
        await sink.append({"method": "/x/Y", "n": "1"})
        with redis.Redis.from_url(replica.url) as r:
            assert r.xlen("hg:audit:{replicated}:stream") == 1  # the replica had it before the ack
        _crash(replica)
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await sink.append({"method": "/x/Y", "n": "2"})
        assert time.monotonic() - started < 3
    finally:
        await client.aclose()
        await asyncio.to_thread(replica.stop)
        master.stop()


def _xlen(server: RedisServerProcess, key: str) -> int:
    with redis.Redis.from_url(server.url) as r:
        return int(r.xlen(key))


async def _refused_fast(sink: ChainedAuditSink, n: int, bound: float = 0.3) -> list[float]:
    """n appends, each refused (DependencyUnavailable) within `bound` s; their durations."""
    took = []
    for i in range(n):
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await sink.append({"method": "/x/Y", "n": f"refused-{i}"})
        took.append(time.monotonic() - started)
        await asyncio.sleep(0.05)
    assert max(took) < bound, took  # the WAIT timeout is 1 s: a refusal that waited for it is slow
    return took


async def test_without_the_replicas_it_needs_an_append_is_refused_at_once_and_writes_nothing(tmp_path: Path) -> None:
    """replicas=1 on a master with no replica: every append is refused before anything is written,
    well within the WAIT timeout (1 s); once a replica links, appends succeed again within about a
    second and an acknowledged event is on the replica. A replica lost later costs one refusal
    that waits out the WAIT, then the refusals are fast again."""
    stream = "hg:audit:{alone}:stream"
    master = RedisServerProcess(tmp_path / "m", port=free_port(), appendfsync="always").start()
    replica = RedisServerProcess(tmp_path / "r", port=free_port(), appendfsync="always").start()
    client = connect(master.url, 1.0)
    try:
        sink = ChainedAuditSink(client, KEYS, "k1", "alone", replicas=1, waitaof_timeout_ms=1000)
        await _refused_fast(sink, 10)  # the first one too: the startup probe found no replica
        assert _xlen(master, stream) == 0  # nothing written, so nothing sealed that was refused
        assert sink.stats["fast_refusals"] == 10 and sink.stats["appends"] == 0

        _link(master, replica)
        linked = time.monotonic()
        receipt = None
        while receipt is None:
            assert time.monotonic() - linked < 2.0, "no append succeeded within 2 s of the replica linking"
            try:
                receipt = await sink.record({"method": "/x/Y", "n": "back"})
            except DependencyUnavailable:
                await asyncio.sleep(0.05)
        with redis.Redis.from_url(replica.url) as r:  # acknowledged, hence already on the replica
            assert [i.decode() for i, _ in r.xrange(stream)] == [receipt.id]

        _crash(replica)  # the master sees it go; the sink learns it from a WAIT that comes back short
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await sink.append({"method": "/x/Y", "n": "lost"})
        assert time.monotonic() - started < 2.0
        written = _xlen(master, stream)  # that one was written, then refused: WAIT came back 0
        await _refused_fast(sink, 10)
        assert _xlen(master, stream) == written
    finally:
        await client.aclose()
        await asyncio.to_thread(replica.stop)
        master.stop()
