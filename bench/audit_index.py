"""The audit trail's indexed queries at two chain sizes: does a query cost O(matches), not O(chain)?

    .venv/bin/python -m bench.audit_index [--sizes 100000,500000] [--samples 200] [--budget 180]

For each size N, on a redis-server of its own (127.0.0.1, a free port, AOF and RDB off: persistence
is not what is measured, and the AOF of 500,000 events would only cost disk), a bulk loader seals N
events with the real sealing code (audit_chain.seal_batch, one chain) and writes them pipelined with
their index entries (the same keys the append script writes), with stream ids spread evenly over
the last 365 days, over 3,000 subscribers (keyed pseudonyms) and 200 staff; 40 % are counter events
with a staff id, 60 % kiosk events without. One extra subscriber, the "needle", has exactly 50
events at every size. Then, through adapters/audit (the code QueryEvents and ListAccessHistory use):

  sub 365d      QueryEvents by subscriber (pseudonym), last 365 days: ~N/3000 matches, grows with N
  history 365d  ListAccessHistory's read (ChainAuditReader.accesses) for a subscriber, 365 days
  staff 30d     QueryEvents by staff id, last 30 days: ~0.4·N/200·30/365 matches, grows with N
  needle 365d   the needle subscriber, 365 days: 50 matches at every size

p50/p99 over `--samples` queries each (random subscriber/staff). The table gives matches per query,
the ratio of p99 between the sizes (O(matches) means: the needle's ratio stays near 1, the others
follow the ratio of their match counts, not of anything else), and Redis memory per event (all of
it, and the index part). Seeding is bounded by `--budget` seconds per size: a size that does not fit
is reported as such and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from adapters.audit.keys import ChainKeys, index_keys_of, index_prefix, index_state_key
from adapters.audit.queries import query
from adapters.audit_reader import ChainAuditReader
from adapters.redis_client import connect
from adapters.redis_server import free_port
from gateway.domain import audit_chain as ac
from gateway.domain import rules

CHAIN = "main"
KEY = b"bench-audit-key-0123456789abcdef"
KID = ac.key_id(KEY)
PSEUDONYM_KEY = b"bench-subscriber-pseudonym-key!!"
SUBSCRIBERS = 3000
STAFF = 200
NEEDLE_EVENTS = 50
DAY_MS = 86_400_000


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


class OwnRedis:
    """redis-server on a free loopback port in a temporary directory, without persistence."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
        self.dir = tempfile.mkdtemp(prefix="bench-audit-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir, "--appendonly", "no",
             "--save", "", "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning",
             "--logfile", str(Path(self.dir) / "redis.log")], stdin=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    async def ready(self) -> None:
        for _ in range(200):
            try:
                client = connect(self.url, 2.0)
                await client.ping()
                await client.aclose()
                return
            except Exception:  # not up yet
                await asyncio.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def subscriber_refs() -> list[str]:
    return [rules.subscriber_ref(PSEUDONYM_KEY, f"138{i:08d}") for i in range(SUBSCRIBERS)]


NEEDLE = rules.subscriber_ref(PSEUDONYM_KEY, "13999999999")


def make_event(i: int, rnd: random.Random, refs: list[str], at: datetime, needle: bool) -> dict[str, str]:
    counter = rnd.random() < 0.4
    hall = f"H{rnd.randrange(40):03d}"
    staff = f"s{rnd.randrange(STAFF):03d}" if counter else ""
    ref = NEEDLE if needle else rnd.choice(refs)
    event = ac.normalise({
        "at": at.isoformat(timespec="milliseconds"), "channel": "clerk" if counter else "kiosk", "hall": hall,
        "terminal": f"{hall}/{'clerk/T' if counter else 'kiosk/K'}{rnd.randrange(8):02d}", "staff_id": staff,
        "role": "clerk" if counter else "", "proof": "mtls" if counter else "sms", "peer": "ipv4:10.1.2.3:51234",
        "method": rnd.choice(("/hallgate.v1.KioskService/ListCallDetails", "/hallgate.v1.KioskService/GetBalance",
                              "/hallgate.v1.ClerkService/GetCustomerProfile")),
        "call": secrets.token_hex(8), "phase": "", "subscriber": "138****" + f"{i % 10000:04d}",
        "subscriber_ref": ref, "decision": "allowed", "reason": "ok", "detail": "", "code": "OK",
        "records": rnd.randrange(50), "duration_ms": round(rnd.uniform(2, 40), 3)})
    event[ac.EVENT_ID] = secrets.token_hex(8)  # as the sink adds it
    return event


async def seed(client: aioredis.Redis, n: int, budget: float) -> tuple[int, float]:
    """N sealed events over the last 365 days, written pipelined with their index entries; returns
    (events written, seconds). Stops at the budget (the chain is then shorter than asked)."""
    rnd = random.Random(n)
    refs = subscriber_refs()
    k = ChainKeys.of(CHAIN)
    now_ms = int(time.time() * 1000)
    first_ms = now_ms - 365 * DAY_MS
    step = (now_ms - first_ms) / n  # ≥ 1 ms for up to 31 M events: one entry per millisecond
    needles = set(rnd.sample(range(n), NEEDLE_EVENTS))
    seq, mac = 0, ""
    started = time.perf_counter()
    chunk = 2000
    last_id = ""
    for base in range(0, n, chunk):
        if time.perf_counter() - started > budget:
            return base, time.perf_counter() - started
        batch = []
        for i in range(base, min(n, base + chunk)):
            ms = first_ms + int(i * step)
            batch.append((f"{ms}-0", make_event(i, rnd, refs, datetime.fromtimestamp(ms / 1000, UTC), i in needles)))
        sealed = ac.seal_batch(CHAIN, [e for _, e in batch], seq, mac, KID, KEY)
        seq, mac = int(sealed[-1]["seq"]), sealed[-1]["mac"]
        pipe = client.pipeline(transaction=False)
        for (entry_id, _), s in zip(batch, sealed, strict=True):
            pipe.xadd(k.stream, s, id=entry_id)  # type: ignore[arg-type]
            score = ac.parse_stream_id(entry_id)[0]
            for ix in index_keys_of(CHAIN, s):
                pipe.zadd(ix, {entry_id: score})
            last_id = entry_id
        pipe.hset(k.head, mapping={"seq": str(seq), "mac": mac, "id": last_id})
        await pipe.execute()
    await client.hset(index_state_key(CHAIN), "complete", "1")
    return n, time.perf_counter() - started


async def timed(samples: int, make: Callable[[int], Awaitable[int]]) -> tuple[list[float], float]:
    """Latencies in ms and the mean number of matches."""
    lat: list[float] = []
    found = 0
    for i in range(samples):
        t = time.perf_counter()
        found += await make(i)
        lat.append((time.perf_counter() - t) * 1000)
    return lat, found / samples


async def count(it: Any) -> int:
    return len([x async for x in it])


async def measure(client: aioredis.Redis, samples: int) -> dict[str, tuple[float, float, float]]:
    rnd = random.Random(42)
    refs = subscriber_refs()
    reader = ChainAuditReader(client, CHAIN, {KID: KEY})
    now = datetime.now(UTC)
    year, month = now - timedelta(days=365), now - timedelta(days=30)
    out: dict[str, tuple[float, float, float]] = {}
    cases: dict[str, Callable[[int], Awaitable[int]]] = {
        "sub 365d": lambda _: count(query(client, CHAIN, ac.AuditFilter(subscriber_ref=rnd.choice(refs), start=year))),
        "history 365d": lambda _: count(reader.accesses(rnd.choice(refs), year)),
        "staff 30d": lambda _: count(query(client, CHAIN, ac.AuditFilter(staff_id=f"s{rnd.randrange(STAFF):03d}",
                                                                         start=month))),
        "needle 365d": lambda _: count(query(client, CHAIN, ac.AuditFilter(subscriber_ref=NEEDLE, start=year))),
    }
    for name, make in cases.items():
        await make(0)  # warm-up
        lat, matches = await timed(samples, make)
        out[name] = (percentile(lat, 50), percentile(lat, 99), matches)
    return out


async def memory(client: aioredis.Redis, n: int) -> tuple[float, dict[str, float]]:
    """(bytes per event in all, index bytes per event by kind) from INFO and MEMORY USAGE."""
    info = await client.info("memory")
    used = int(info["used_memory"]) - int(info.get("used_memory_startup", 0))
    by_kind: dict[str, float] = {}
    prefix = index_prefix(CHAIN) + ":"
    names: list[str] = []

    async def flush() -> None:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.memory_usage(name, samples=0)
        for name, size in zip(names, await pipe.execute(), strict=True):
            kind = name[len(prefix):].split(":", 1)[0]
            by_kind[kind] = by_kind.get(kind, 0) + int(size or 0) / n
        names.clear()

    async for key in client.scan_iter(match=prefix + "*", count=5000):
        names.append(key.decode() if isinstance(key, bytes) else str(key))
        if len(names) >= 5000:
            await flush()
    await flush()
    return used / n, by_kind


async def run_size(n: int, samples: int, budget: float) -> dict[str, Any]:
    server = OwnRedis()
    try:
        await server.ready()
        client = connect(server.url, 30.0)
        try:
            written, seconds = await seed(client, n, budget)
            if written < n:
                return {"n": n, "written": written, "seed_s": seconds, "skipped": True}
            per_event, ix_per_event = await memory(client, n)
            results = await measure(client, samples)
            return {"n": n, "written": written, "seed_s": seconds, "results": results, "mem": per_event,
                    "ix_mem": ix_per_event, "skipped": False}
        finally:
            await client.aclose()
    finally:
        server.stop()


def table(runs: list[dict[str, Any]]) -> str:
    lines = []
    done = [r for r in runs if not r["skipped"]]
    for r in runs:
        if r["skipped"]:
            lines.append(f"N = {r['n']:,}: seeding stopped at the budget after {r['written']:,} events "
                         f"({r['seed_s']:.0f} s); not measured")
        else:
            kinds = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["ix_mem"].items()) if k != "state")
            lines.append(f"N = {r['n']:,}: seeded in {r['seed_s']:.0f} s ({r['n'] / r['seed_s']:,.0f} events/s); "
                         f"Redis memory {r['mem']:.0f} B/event, of which indexes "
                         f"{sum(r['ix_mem'].values()):.0f} B/event ({kinds})")
    if not done:
        return "\n".join(lines)
    sizes = " | ".join(f"N={r['n']:,}: matches, p50, p99 (ms)" for r in done)
    head = f"| query | {sizes} |"
    if len(done) == 2:
        head += " p99 ratio | matches ratio |"
    lines += ["", head, "|" + "---|" * (head.count("|") - 1)]
    for name in done[0]["results"]:
        cells = []
        for r in done:
            p50, p99, m = r["results"][name]
            cells.append(f"{m:,.1f}, {p50:.2f}, {p99:.2f}")
        row = f"| {name} | {' | '.join(cells)} |"
        if len(done) == 2:
            a, b = done[0]["results"][name], done[1]["results"][name]
            row += f" {b[1] / a[1]:.2f}x | {b[2] / a[2]:.2f}x |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--sizes", default="100000,500000")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--budget", type=float, default=180.0, help="seconds of seeding per size, at most")
    args = p.parse_args()
    runs = []
    for n in (int(x) for x in args.sizes.split(",")):
        started = time.perf_counter()
        runs.append(asyncio.run(run_size(n, args.samples, args.budget)))
        print(f"# N={n:,} done in {time.perf_counter() - started:.0f} s", flush=True)
    print(table(runs))
    print(f"\n(one chain; {SUBSCRIBERS:,} subscribers, {STAFF} staff, a needle subscriber with {NEEDLE_EVENTS} "
          f"events; {args.samples} samples per query, one at a time; redis-py on 127.0.0.1)")


if __name__ == "__main__":
    main()
