"""The clients `connect` makes pack commands with hiredis and send them in the caller's task
(adapters/redis_client.py, HiredisPacking and DirectSend): the same bytes as redis-py's own packing,
the same refusals, no task per command, and a write that cannot finish bounded by the socket timeout
as before, on a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.redis_client import DirectSend, HiredisPacking, connect, lean_connection

COMMANDS = [
    ("PING",),
    ("CONFIG GET", "appendfsync"),
    (b"CLIENT SETNAME", "hallgate"),
    ("EVALSHA", "a" * 40, 2, "hg:tok:x", "hg:{audit}:main", 1.5, 10**20, -7, b"\x00\xff", "号码 13800000001",
     memoryview(b"view"), ""),
    ("XADD", "s", "*", *[x for i in range(40) for x in (f"field{i}", "v" * (i * 50))]),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_hiredis_packs_the_bytes_redis_py_packs(args: tuple) -> None:
    python, fast = Connection(), lean_connection(Connection)()
    assert b"".join(fast.pack_command(*args)) == b"".join(python.pack_command(*args))
    assert b"".join(fast.pack_commands([args, ("PING",)])) == b"".join(python.pack_commands([args, ("PING",)]))


@pytest.mark.parametrize("bad", [None, True, False, object()])
def test_what_redis_py_refuses_is_refused(bad: object) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        lean_connection(Connection)().pack_command("SET", "k", bad)


async def test_clients_connect_makes_use_it_against_a_real_server(clean_redis: str) -> None:
    r = connect(clean_redis, timeout=2.0)
    try:
        assert issubclass(r.connection_pool.connection_class, HiredisPacking)
        assert issubclass(r.connection_pool.connection_class, DirectSend)
        value = "号码 " + "x" * 100_000  # past redis-py's buffer cut-off
        await r.set("k", value)
        assert (await r.get("k")).decode() == value
        assert await r.eval("return ARGV[1] .. ARGV[2]", 0, "a", 12) == b"a12"
        async with r.pipeline(transaction=True) as p:
            await p.incr("n").incrby("n", 2).get("n").execute()
        assert await r.get("n") == b"3"
        with pytest.raises(DataError):
            await r.set("k", None)  # type: ignore[arg-type]
        assert (await r.get("k")).decode() == value  # nothing half-written
    finally:
        await r.aclose()


async def tasks_made_by(commands: Any) -> int:
    loop = asyncio.get_running_loop()
    made = 0
    default = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal made
        made += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        await commands()
    finally:
        loop.set_task_factory(default)
    return made


async def test_a_command_is_sent_without_a_task_of_its_own(clean_redis: str) -> None:
    lean, plain = connect(clean_redis, timeout=2.0), aioredis.Redis.from_url(clean_redis, socket_timeout=2.0)
    try:
        for r in (lean, plain):
            await r.ping()  # connected

        async def hundred(r: aioredis.Redis) -> None:
            for i in range(100):
                await r.set(f"k{i}", i)
                assert await r.get(f"k{i}") == str(i).encode()

        assert await tasks_made_by(lambda: hundred(lean)) == 0
        assert await tasks_made_by(lambda: hundred(plain)) >= 200  # redis-py's wait_for: one per command
    finally:
        await lean.aclose()
        await plain.aclose()


async def test_a_write_the_socket_takes_at_once_arms_no_timer(clean_redis: str, monkeypatch: Any) -> None:
    armed: list[float | None] = []
    real = asyncio.timeout

    def counted(delay: float | None) -> asyncio.Timeout:
        armed.append(delay)
        return real(delay)

    monkeypatch.setattr(asyncio, "timeout", counted)  # redis-py's reads hold their own reference
    r = connect(clean_redis, timeout=2.0)
    try:
        for i in range(100):
            await r.set(f"k{i}", "v" * 4096)
        assert armed == []
        # A write past the transport's buffer limits waits for room, and only that wait is timed.
        await r.set("big", b"x" * (64 << 20))  # far past what the kernel's buffers hold
        assert armed == [2.0]
        assert await r.strlen("big") == 64 << 20
    finally:
        await r.aclose()


async def test_a_write_a_stopped_server_cannot_take_times_out_and_the_client_recovers(own_redis: Any) -> None:
    r = connect(own_redis.url, timeout=0.5)
    try:
        await r.ping()
        os.kill(own_redis.proc.pid, signal.SIGSTOP)  # hung: the kernel's buffers fill, nothing is read
        started = time.monotonic()
        try:
            with pytest.raises((RedisTimeoutError, RedisConnectionError)):
                await r.set("big", b"x" * (64 << 20))  # far past what the socket buffers hold
            assert time.monotonic() - started < 3.0  # bounded by the socket timeout, never a hang
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        await r.set("k", "after")  # the broken connection was dropped; a new one serves
        assert await r.get("k") == b"after" and await r.exists("big") == 0
    finally:
        await r.aclose()
