"""The clients `connect` makes pack commands with hiredis (adapters/redis_client.py, HiredisPacking):
the same bytes as redis-py's own packing, the same refusals, on a real redis-server."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from adapters.redis_client import HiredisPacking, connect, hiredis_packing

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
    python, fast = Connection(), hiredis_packing(Connection)()
    assert b"".join(fast.pack_command(*args)) == b"".join(python.pack_command(*args))
    assert b"".join(fast.pack_commands([args, ("PING",)])) == b"".join(python.pack_commands([args, ("PING",)]))


@pytest.mark.parametrize("bad", [None, True, False, object()])
def test_what_redis_py_refuses_is_refused(bad: object) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        hiredis_packing(Connection)().pack_command("SET", "k", bad)


async def test_clients_connect_makes_use_it_against_a_real_server(clean_redis: str) -> None:
    r = connect(clean_redis, timeout=2.0)
    try:
        assert issubclass(r.connection_pool.connection_class, HiredisPacking)
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
