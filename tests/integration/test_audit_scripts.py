"""The audit's script runner (adapters/audit/scripts.py) on a real redis-server: a script Redis
forgot (restart, failover, SCRIPT FLUSH) is loaded again, with and without a wait after it."""

from __future__ import annotations

import pytest

from adapters.audit.scripts import Scripts
from adapters.redis_client import connect

SOURCE = "redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1]) .. ARGV[1]"


@pytest.mark.parametrize("replicas", [None, (0, 100)], ids=["direct", "with WAIT"])
async def test_a_forgotten_script_is_loaded_again(clean_redis: str, replicas: tuple[int, int] | None) -> None:
    r = connect(clean_redis, timeout=2.0)
    try:
        scripts = Scripts(r)
        first = await scripts.run(SOURCE, ["n"], ["!"], replicas=replicas)
        assert first[0] == b"1!" and first[1] == (0 if replicas else None)
        await r.script_flush()
        again = await scripts.run(SOURCE, ["n"], ["?"], replicas=replicas)
        assert again[0] == b"2?"  # run once more, not twice
        assert await r.get("n") == b"2"
    finally:
        await r.aclose()
