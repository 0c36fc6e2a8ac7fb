"""Scripts from concurrent calls share one connection (adapters/redis_mux.py), on a real
redis-server: each caller gets its own reply, in order, through errors, cancellations, a killed,
a hung and a demoted server, and the server reads them in a few reads instead of one each."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.redis_client import connect
from adapters.redis_mux import Client
from adapters.redis_server import free_port

ECHO_COUNT = "return {ARGV[1], redis.call('INCR', KEYS[1])}"
ECHO_OR_FAIL = "if tonumber(ARGV[1]) % 2 == 1 then return redis.error_reply('odd ' .. ARGV[1]) end return ARGV[1]"
BUSY = "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') until " \
       "(t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > tonumber(ARGV[1]) return ARGV[2]"


async def reads_processed(r: aioredis.Redis) -> int:
    return int((await r.info("stats"))["total_reads_processed"])


async def test_concurrent_scripts_each_get_their_own_reply_in_a_few_reads(clean_redis: str) -> None:
    r = connect(clean_redis, timeout=2.0)
    plain = aioredis.Redis.from_url(clean_redis, max_connections=600)
    try:
        assert isinstance(r, Client)
        echo = r.register_script(ECHO_COUNT)
        await echo(keys=["n"], args=["warm"])
        before = await reads_processed(plain)
        replies = await asyncio.gather(*(echo(keys=["n"], args=[str(i)]) for i in range(500)))
        shared_reads = await reads_processed(plain) - before - 1  # the INFO itself is one read
        assert [a for a, _ in replies] == [str(i).encode() for i in range(500)]
        assert sorted(n for _, n in replies) == list(range(2, 502))  # each ran once
        assert await plain.get("n") == b"501"

        plain_echo = plain.register_script(ECHO_COUNT)
        await plain_echo(keys=["n"], args=["warm"])
        before = await reads_processed(plain)
        await asyncio.gather(*(plain_echo(keys=["n"], args=[str(i)]) for i in range(500)))
        pooled_reads = await reads_processed(plain) - before - 1
        # one write from the gateway carries them all; Redis reads it in 16 kB pieces
        assert shared_reads <= 20 < 250 <= pooled_reads, (shared_reads, pooled_reads)
    finally:
        await r.aclose()
        await plain.aclose()


async def test_an_error_reply_reaches_its_own_caller_and_a_forgotten_script_is_reloaded(clean_redis: str) -> None:
    r = connect(clean_redis, timeout=2.0)
    try:
        script = r.register_script(ECHO_OR_FAIL)
        outcomes = await asyncio.gather(*(script(args=[i]) for i in range(100)), return_exceptions=True)
        for i, outcome in enumerate(outcomes):
            if i % 2:
                assert isinstance(outcome, ResponseError) and str(outcome) == f"odd {i}"
            else:
                assert outcome == str(i).encode()
        await r.script_flush()  # a restarted or failed-over Redis forgets its scripts: NOSCRIPT
        assert await asyncio.gather(*(script(args=[i]) for i in (0, 2, 4))) == [b"0", b"2", b"4"]
    finally:
        await r.aclose()


async def test_cancelled_callers_leave_the_order_intact(clean_redis: str) -> None:
    r = connect(clean_redis, timeout=2.0)
    try:
        busy = r.register_script(BUSY)
        await busy(args=[0, "warm"])
        tasks = [asyncio.create_task(busy(args=[2000, str(i)])) for i in range(60)]
        await asyncio.sleep(0.01)  # written, not yet answered (each takes 2 ms of the server)
        for t in tasks[::3]:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, result in enumerate(results):
            if i % 3 == 0:
                assert isinstance(result, asyncio.CancelledError)
            else:
                assert result == str(i).encode()
        assert await busy(args=[0, "after"]) == b"after"
    finally:
        await r.aclose()


async def test_a_killed_server_fails_every_script_in_flight_and_the_next_one_reconnects(own_redis: Any) -> None:
    r = connect(own_redis.url, timeout=1.0)
    try:
        busy = r.register_script(BUSY)
        await busy(args=[0, "warm"])
        tasks = [asyncio.create_task(busy(args=[20_000, str(i)])) for i in range(20)]

        async def pipeline() -> list[Any]:
            async with r.pipeline(transaction=False) as p:
                return await p.evalsha(busy.sha, 0, 20_000, "p").set("k", "v").execute()
        tasks.append(asyncio.create_task(pipeline()))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        own_redis.kill()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert time.monotonic() - started < 0.5  # a lost connection fails them at once
        assert all(isinstance(x, RedisConnectionError) for x in results), results
        with pytest.raises(RedisError):
            await busy(args=[0, "down"])
        own_redis.start()
        assert await busy(args=[0, "back"]) == b"back"
    finally:
        await r.aclose()


async def test_a_hung_server_fails_scripts_within_the_timeout_and_no_late_reply_is_misdelivered(
        own_redis: Any) -> None:
    r = connect(own_redis.url, timeout=0.5)
    try:
        echo = r.register_script(ECHO_COUNT)
        await echo(keys=["n"], args=["warm"])
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            results = await asyncio.gather(*(echo(keys=["n"], args=[str(i)]) for i in range(10)),
                                           return_exceptions=True)
            assert time.monotonic() - started < 1.5
            assert all(isinstance(x, RedisTimeoutError) for x in results), results
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        # the stopped server ran those ten once it resumed; their replies went to the dropped
        # connection, never to the callers that come next
        replies = await asyncio.gather(*(echo(keys=["n"], args=[f"after{i}"]) for i in range(5)))
        assert [a for a, _ in replies] == [f"after{i}".encode() for i in range(5)]
    finally:
        await r.aclose()


async def test_a_master_demoted_to_replica_drops_the_shared_connection(own_redis: Any) -> None:
    r = connect(own_redis.url, timeout=1.0)
    admin = aioredis.Redis.from_url(own_redis.url)
    try:
        echo = r.register_script(ECHO_COUNT)
        await echo(keys=["n"], args=["warm"])
        first = r._shared.wire  # type: ignore[attr-defined]
        await admin.execute_command("REPLICAOF", "127.0.0.1", free_port())  # a master that is not there
        with pytest.raises(RedisConnectionError, match="READONLY"):
            await echo(keys=["n"], args=["demoted"])
        assert first.failed is not None
        await admin.execute_command("REPLICAOF", "NO", "ONE")
        assert (await echo(keys=["n"], args=["promoted"]))[0] == b"promoted"
        assert r._shared.wire is not first  # type: ignore[attr-defined]
    finally:
        await admin.execute_command("REPLICAOF", "NO", "ONE")
        await admin.aclose()
        await r.aclose()


async def test_a_closed_client_refuses_scripts_at_once(clean_redis: str) -> None:
    r = connect(clean_redis, timeout=2.0)
    echo = r.register_script(ECHO_COUNT)
    await echo(keys=["n"], args=["warm"])
    await r.aclose()
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(echo(keys=["n"], args=["closed"]), 1.0)


def queue_every_shareable_command(p: Any, sha: str) -> None:
    p.evalsha(sha, 1, "s", "a")
    p.set("s", "v").get("s").set("s", "w", nx=True).incr("n").incrby("n", 5).decr("n").exists("s", "none")
    p.pexpire("s", 60_000).pttl("s").expire("s", 60).ttl("s").persist("s").ttl("s")
    p.hset("h", mapping={"a": "1", "b": "2"}).hget("h", "a").hmget("h", ["a", "zz"]).hgetall("h")
    p.hincrby("h", "a", 3).hdel("h", "b").hgetall("h")
    p.sadd("set", "x", "y").sismember("set", "x").smembers("set").scard("set").srem("set", "x")
    p.zadd("z", {"m": 1.5}).zscore("z", "m").zcard("z").zrem("z", "m")
    p.xadd("x", {"f": "v"}, id="1-1").xlen("x").delete("s").unlink("h").get("s").hget("h", "a")
    p.hset("s2", "f", "v").incr("s2")  # WRONGTYPE, in its place


async def test_a_plain_pipeline_answers_as_redis_py_does_and_goes_over_the_shared_connection(
        clean_redis: str) -> None:
    from adapters.redis_mux import SHAREABLE
    r = connect(clean_redis, timeout=2.0)
    plain = aioredis.Redis.from_url(clean_redis)
    try:
        answers = []
        for client in (plain, r):
            await plain.flushall()
            sha = await plain.script_load("return {KEYS[1], ARGV[1]}")
            async with client.pipeline(transaction=False) as p:
                queue_every_shareable_command(p, sha)
                assert {str(args[0]).upper() for args, _ in p.command_stack} == SHAREABLE
                answers.append(await p.execute(raise_on_error=False))
            with pytest.raises(ResponseError, match=r"Command # 2 .*WRONGTYPE"):
                async with client.pipeline(transaction=False) as p:
                    await p.set("w", "1").hget("w", "f").execute()
        expected, shared = answers
        assert [type(x) for x in shared] == [type(x) for x in expected]
        assert [str(x) if isinstance(x, Exception) else x for x in shared] == \
               [str(x) if isinstance(x, Exception) else x for x in expected]
        assert r._shared is not None and r._shared.wire is not None  # type: ignore[attr-defined]
        pooled_before = len(r.connection_pool._available_connections)  # type: ignore[attr-defined]
        async with r.pipeline(transaction=False) as p:
            await p.set("k", "v").get("k").execute()
        assert len(r.connection_pool._available_connections) == pooled_before  # type: ignore[attr-defined]
    finally:
        await r.aclose()
        await plain.aclose()


async def test_other_pipelines_run_on_the_pool_as_before(clean_redis: str) -> None:
    r = connect(clean_redis, timeout=2.0)
    try:
        async with r.pipeline(transaction=True) as p:  # MULTI/EXEC: its own connection
            assert await p.incr("n").incr("n").execute() == [1, 2]
        async with r.pipeline(transaction=False) as p:  # WAIT must follow its writes on one connection
            assert await p.incr("n").execute_command("WAIT", 0, 10).execute() == [3, 0]
        assert r._shared is None or r._shared.wire is None  # type: ignore[attr-defined]
        assert len(r.connection_pool._available_connections) >= 1  # type: ignore[attr-defined]
    finally:
        await r.aclose()
