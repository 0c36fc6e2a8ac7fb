"""What a verification costs: a full one, and an incremental one of the last 100,000 events.

    .venv/bin/python -m bench.audit_verify [--size 500000] [--tail 100000] [--repeat 3] [--budget 180]

On a redis-server of its own (bench/audit_index.py's OwnRedis: loopback, a free port, persistence
off), the chain is bulk-loaded with bench/audit_index.py's `seed` (the real sealing code, pipelined,
with index entries), then through adapters/audit/checkpoints.py (the code VerifyChain runs):

  full         verify_incremental(full=True): the whole chain from genesis, with a progress line
               every 100,000 events; records a verified position at the head
  incremental  a verified position set at seq size - tail, then verify_incremental(): reads and
               checks only the `tail` events after it (repeated; the position is reset each time)

Prints events/s for each. Not part of `make bench-audit`; the figures are in docs/audit.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from adapters.audit import checkpoints as cps
from adapters.audit.keys import ChainKeys, entries
from adapters.audit.queries import _first_id_with_seq
from adapters.redis_client import connect
from bench.audit_index import CHAIN, KEY, KID, OwnRedis, seed

KEYS = {KID: KEY}


async def bench(size: int, tail: int, repeat: int, budget: float) -> None:
    server = OwnRedis()
    try:
        await server.ready()
        client = connect(server.url, 30.0)
        n, seconds = await seed(client, size, budget)
        print(f"seeded {n:,} events in {seconds:.0f} s ({n / seconds:,.0f} events/s)", flush=True)

        def progress(checked: int, seq: int, s: float) -> None:
            print(f"  verified {checked:,} events (seq {seq}) in {s:.1f} s: {checked / s:,.0f} events/s", flush=True)

        t0 = time.perf_counter()
        full = await cps.verify_incremental(client, CHAIN, KEYS, KID, full=True, progress=progress, every=100_000)
        full_s = time.perf_counter() - t0
        assert full.result.ok and full.result.checked == n, full
        print(f"full: {n:,} events in {full_s:.2f} s = {n / full_s:,.0f} events/s", flush=True)

        stream = ChainKeys.of(CHAIN).stream
        at = await _first_id_with_seq(client, stream, n - tail)
        assert at is not None
        [(entry_id, ev)] = entries(await client.xrange(stream, min=at, max=at))
        times = []
        for _ in range(repeat):
            *_, sig = await cps.read(client, CHAIN, KEYS)
            back = cps.Position(n - tail, entry_id, ev["mac"], "bench", 0, 0, KID)
            assert await cps.record(client, CHAIN, KEYS, back, sig) == 1
            t0 = time.perf_counter()
            run = await cps.verify_incremental(client, CHAIN, KEYS, KID)
            times.append(time.perf_counter() - t0)
            assert run.result.ok and run.result.checked == tail and run.result.anchor == "verified", run
        best, worst = min(times), max(times)
        print(f"incremental: the last {tail:,} of {n:,} events in {best:.2f}-{worst:.2f} s = "
              f"{tail / worst:,.0f}-{tail / best:,.0f} events/s ({repeat} runs)", flush=True)
        await client.aclose()
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=500_000)
    p.add_argument("--tail", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--budget", type=float, default=180.0, help="seconds allowed for seeding")
    a = p.parse_args()
    asyncio.run(bench(a.size, a.tail, a.repeat, a.budget))


if __name__ == "__main__":
    main()
