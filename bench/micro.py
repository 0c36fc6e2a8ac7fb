"""Micro-measurements behind docs/performance.md, each alone in this process (seconds, no gateway).

    .venv/bin/python -m bench.micro

- redis-py: CPU and latency of one session touch (EVALSHA) plus one XADD, as the gateway's client is
  configured (`adapters.redis_client.connect`); with hiredis when it is importable.
- Redis durability: XADD latency with appendfsync everysec and always.
- protobuf: parsing a ~200-record billing page twice, discarding unknown fields, serializing again.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from adapters.billing_sim.data import SeededBilling
from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess
from adapters.redis_state import TOUCH_SESSION
from hallgate_pb.billing.v1 import billing_pb2
from hallgate_pb.v1 import kiosk_pb2

EVENT = {"at": "2026-11-23T17:00:00.000+00:00", "channel": "kiosk", "terminal": "H001/kiosk/K01",
         "method": "/hallgate.v1.KioskService/ListCallDetails", "subscriber": "138****0001",
         "decision": "allowed", "reason": "ok", "code": "OK", "records": "226", "duration_ms": "1.234"}


def redis_server(directory: Path, appendfsync: str) -> RedisServerProcess:
    return RedisServerProcess(directory, unix_socket=directory / "redis.sock", appendfsync=appendfsync).start()


async def touch_and_append(url: str, calls: int = 3000) -> tuple[float, float]:
    """(CPU µs, wall µs) per touch + XADD, one after the other on one client."""
    r = connect(url, 1.0)
    touch = r.register_script(TOUCH_SESSION)
    await r.hset("hg:tok:x", mapping={"msisdn": "13800000001", "scope": "call_list", "terminal": "t",
                                      "deadline": 10**15})
    for _ in range(100):
        await touch(keys=["hg:tok:x"], args=[int(time.time() * 1000), 300_000])
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await touch(keys=["hg:tok:x"], args=[int(time.time() * 1000), 300_000])
        await r.xadd("hg:bench", EVENT)  # type: ignore[arg-type]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await r.aclose()
    return cpu / calls * 1e6, wall / calls * 1e6


async def xadd_latency(url: str, calls: int = 1000) -> tuple[float, float]:
    """(p50 ms, p99 ms) of one XADD."""
    r = connect(url, 1.0)
    seen = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await r.xadd("hg:bench", EVENT)  # type: ignore[arg-type]
        seen.append(time.perf_counter() - t0)
    await r.aclose()
    seen.sort()
    return seen[calls // 2] * 1e3, seen[int(calls * 0.99)] * 1e3


def per_call(fn: Callable[[], object], calls: int = 2000) -> float:
    t0 = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - t0) / calls * 1e6


def protobuf() -> str:
    sim = SeededBilling(seed="bench", subscribers=20_000, hash_n=2)
    records = sim.records("13800000001", "2026-01", 0, 1000)
    page = billing_pb2.ListCallDetailsResponse(records=records, next_page_token="x" * 22).SerializeToString()

    def servicer() -> kiosk_pb2.ListCallDetailsResponse:
        chunk = kiosk_pb2.ListCallDetailsResponse.FromString(page)
        chunk.DiscardUnknownFields()
        return chunk

    chunk = servicer()
    token = per_call(lambda: billing_pb2.ListCallDetailsResponse.FromString(page).next_page_token)
    return (f"protobuf, a {len(records)}-record page ({len(page):,} bytes): billing client parse {token:.0f} µs, "
            f"servicer parse + DiscardUnknownFields {per_call(servicer):.0f} µs, "
            f"serialize {per_call(chunk.SerializeToString):.0f} µs")


async def main() -> None:
    try:
        import hiredis  # noqa: F401
        parser = "hiredis"
    except ImportError:
        parser = "pure-Python parser (hiredis not installed)"
    with tempfile.TemporaryDirectory(prefix="hallgate-micro-") as tmp:
        for fsync in ("everysec", "always"):
            server = redis_server(Path(tmp) / fsync, fsync)
            try:
                cpu, wall = await touch_and_append(server.url)
                p50, p99 = await xadd_latency(server.url)
            finally:
                server.stop()
            print(f"redis-py ({parser}), appendfsync {fsync}: touch + XADD {cpu:.0f} µs CPU, {wall:.0f} µs wall; "
                  f"XADD alone p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(protobuf())


if __name__ == "__main__":
    asyncio.run(main())
