"""How the audit chain fails: a Redis outage (stopped, or hung past the timeout) is
DependencyUnavailable("audit") everywhere, so calls end UNAVAILABLE; a bug of ours is not passed off
as an outage but reaches the caller as itself (INTERNAL at the edge); malformed data in Redis is the
verifier's verdict, or, for a head nothing can be sealed after, a closed append."""

from __future__ import annotations

import asyncio
import io
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from adapters.audit.keys import ChainKeys
from adapters.audit.queries import chain_status, export_jsonl, query, verify
from adapters.audit.retention import trim
from adapters.audit.sink import ChainedAuditSink
from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable
from hallgate_pb.v1 import kiosk_pb2

KEYS = {"k1": b"audit-test-key-0123456789abcdef"}
CHAIN = "main"
K = ChainKeys.of(CHAIN)


def ev(i: int) -> dict[str, Any]:
    return {"at": "2025-06-01T00:00:00.000+00:00", "channel": "kiosk", "method": "/x/Y", "records": i}


@pytest.fixture
async def r(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(clean_redis, 2.0)
    yield client
    await client.aclose()


@pytest.fixture
def sink(r: aioredis.Redis) -> ChainedAuditSink:
    return ChainedAuditSink(r, KEYS, "k1", CHAIN, durability="trust")


def operations(client: aioredis.Redis, sink: ChainedAuditSink) -> dict[str, Any]:
    """Every operation on the chain, by name, ready to be awaited."""
    later = datetime.now(UTC) + timedelta(days=1)
    return {
        "append": lambda: sink.append(ev(9)),
        "check": sink.check,
        "query": lambda: _collect(query(client, CHAIN)),
        "export": lambda: export_jsonl(client, CHAIN, io.StringIO()),
        "verify": lambda: verify(client, CHAIN, KEYS),
        "verify_seq": lambda: verify(client, CHAIN, KEYS, 2),
        "status": lambda: chain_status(client, CHAIN),
        "trim": lambda: trim(client, CHAIN, KEYS, "k1", later, sink=sink),
    }


async def raised_by(op: Any) -> BaseException | None:
    try:
        await op()
    except Exception as e:
        return e
    return None


async def _collect(records: AsyncIterator[dict[str, str]]) -> list[dict[str, str]]:
    return [r async for r in records]


# ---------------------------------------------------------------------------------------------
# Outages


async def test_a_stopped_redis_is_dependency_unavailable_everywhere(own_redis: RedisServerProcess) -> None:
    client = connect(own_redis.url, 0.3)
    try:
        sink = ChainedAuditSink(client, KEYS, "k1", CHAIN)  # strict: own_redis runs appendfsync always
        for i in range(3):
            await sink.append(ev(i))
        own_redis.stop()
        started = time.monotonic()
        for name, op in operations(client, sink).items():
            err = await raised_by(op)
            assert isinstance(err, DependencyUnavailable) and err.dependency == "audit", (name, err)
        assert time.monotonic() - started < 20
        assert sink.mode is None  # durability is probed again once Redis is back
    finally:
        await client.aclose()


async def test_a_hung_redis_times_out_into_dependency_unavailable(own_redis: RedisServerProcess) -> None:
    client = connect(own_redis.url, 0.3)
    proc = own_redis.proc
    assert proc is not None
    try:
        sink = ChainedAuditSink(client, KEYS, "k1", CHAIN)
        await sink.append(ev(0))
        proc.send_signal(signal.SIGSTOP)  # the socket stays open and nothing answers
        for op in (lambda: sink.append(ev(1)), lambda: verify(client, CHAIN, KEYS),
                   lambda: _collect(query(client, CHAIN))):
            started = time.monotonic()
            with pytest.raises(DependencyUnavailable):
                await op()
            assert time.monotonic() - started < 5
    finally:
        proc.send_signal(signal.SIGCONT)
        await client.aclose()


# ---------------------------------------------------------------------------------------------
# Bugs are not outages


class Bug(ValueError):
    """A ValueError of our own making, as a broken parser would raise."""


def broken(*args: Any, **kwargs: Any) -> Any:
    raise Bug("a bug, not an outage")


async def test_a_bug_while_appending_reaches_every_waiting_caller_as_itself(
        r: aioredis.Redis, sink: ChainedAuditSink, monkeypatch: pytest.MonkeyPatch) -> None:
    await sink.append(ev(0))
    monkeypatch.setattr(ac, "seal_batch", broken)
    results = await asyncio.gather(*(sink.append(ev(i)) for i in range(1, 6)), return_exceptions=True)
    assert all(isinstance(x, Bug) for x in results), results
    assert sink._head is None  # the cached head is not trusted after a failure
    monkeypatch.undo()
    assert (await sink.record(ev(7))).seq == 2  # the writer goes on once the bug is gone
    assert (await verify(r, CHAIN, KEYS)).ok


@pytest.mark.parametrize(("op", "target", "name", "exc"), [
    ("query", ac, "record", KeyError),
    ("export", ac, "to_json_line", Bug),
    ("verify", ac.Verifier, "feed", IndexError),
    ("verify_seq", ac, "parse_stream_id", Bug),
    ("status", ac, "Head", Bug),
    ("trim", ac.Checkpoint, "signed", Bug),
])
async def test_a_bug_while_reading_or_trimming_is_not_masked(
        r: aioredis.Redis, sink: ChainedAuditSink, monkeypatch: pytest.MonkeyPatch,
        op: str, target: Any, name: str, exc: type[Exception]) -> None:
    for i in range(5):
        await sink.append(ev(i))

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc("a bug, not an outage")

    monkeypatch.setattr(target, name, fail)
    raised = await raised_by(operations(r, sink)[op])
    assert isinstance(raised, exc) and not isinstance(raised, DependencyUnavailable), raised


async def test_a_bug_in_the_trail_ends_a_call_internal_not_unavailable(
        gw: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ac, "seal_batch", broken)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn="13900000001"))
    assert e.value.code() == grpc.StatusCode.INTERNAL
    monkeypatch.undo()
    assert await gw.messages("13900000001") == []  # nothing released for a call not on record


# ---------------------------------------------------------------------------------------------
# Malformed data in Redis


async def test_malformed_data_in_redis_is_a_verdict_not_an_error(r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    for i in range(4):
        await sink.append(ev(i))
    stored = await r.xrange(K.stream)
    await r.delete(K.stream)  # rewritten with the same ids, as someone with Redis access can
    for entry_id, fields in stored:
        await r.xadd(K.stream, {**fields, b"seq": "²"} if fields[b"seq"] == b"3" else fields, id=entry_id)
    result = await verify(r, CHAIN, KEYS)
    assert not result.ok and result.reason == ac.EDITED and result.first_bad_seq == 3
    after = await verify(r, CHAIN, KEYS, 4)  # its successor is checked on its own, as after any corrupt event
    assert after.ok and after.checked == 1, after

    await r.hset(K.checkpoint, mapping={"seq": "x", "mac": "y"})
    assert (await verify(r, CHAIN, KEYS)).reason == ac.CHECKPOINT
    assert (await chain_status(r, CHAIN)).checkpoint is None


@pytest.mark.parametrize("seq", ["garbage", "²"])
async def test_a_head_nothing_can_be_sealed_after_fails_appends_closed(
        r: aioredis.Redis, sink: ChainedAuditSink, seq: str) -> None:
    await sink.append(ev(0))
    await r.hset(K.head, "seq", seq)
    fresh = ChainedAuditSink(r, KEYS, "k1", CHAIN, durability="trust")
    with pytest.raises(DependencyUnavailable):
        await fresh.append(ev(1))
    status = await chain_status(r, CHAIN)
    assert status.head is None and status.length == 1  # unreadable, reported as missing
    assert (await verify(r, CHAIN, KEYS)).checked == 1
