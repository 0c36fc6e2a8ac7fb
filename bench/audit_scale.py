"""The audit trail at operator scale (issue 13): a year of events across Redis and the PostgreSQL archive.

    .venv/bin/python -m bench.audit_scale [--sizes 1000000,5000000] [--samples 200] [--quick]

For each size N, on servers of its own, stopped by pid at the end (a redis-server on a free loopback
port with AOF and RDB off, and a private PostgreSQL from Debian's binaries, adapters/postgres_server.py,
unix socket only, fsync off): persistence is not what is measured, and both only cost seeding time.

Seeding. One chain of N events sealed with the real sealing code (audit_chain.seal_batch), stream ids
spread evenly over the last 395 days (13 months). Events older than the hot window (45 days) go to the
archive, the rest to Redis:

  archive  rows built exactly as PgAuditArchive.store builds them (archive._row: the same columns,
           the fields as JSONB, the names in order), COPYed into the partitioned table from a writer
           thread in transactions of 250,000 rows, while the main thread seals; the monthly partitions
           are created by PgAuditArchive itself; the archive's head row as a move leaves it; then
           VACUUM (ANALYZE), as autovacuum would eventually
  Redis    the hot window pipelined with its index entries (the keys the append script writes, as
           bench/audit_index.py), the head, the index-complete flag, and a signed retention checkpoint
           at the last archived event (the trim of a real move would also append its trim event)

That the bulk path writes what the real one writes is checked: at the smallest size the whole chain
is verified across both tiers with verify_across (the full-verification figure), at the others five
windows of 2,000 archived rows and the tier boundary.

The hot window is 45 days, not 30, so that the 1 M chain holds more than 100,000 events in Redis: an
incremental verification reads Redis only (archived events were verified before they moved).

Population. 300,000 subscribers, Zipf-like (weight 1/(rank + 100)): most have a handful of events, a
few thousand; 220 staff, uniform, on the 40 % of events that are counter events. Probes whose answers
do not depend on N: 20 probe subscribers with exactly 20 events each in the last 365 days, 5 probe
staff with exactly 300 events each in the last 30 days.

Measured through ChainAuditReader (archive + Redis, what the gateway serves), interleaved, p50/p99:

  history probe 365d   ListAccessHistory (reader.accesses) of a probe subscriber, last 365 days
  sub probe            QueryEvents by subscriber_ref (reader.query), a probe subscriber, no range
  staff probe 30d      QueryEvents by staff_id, a probe staff member, last 30 days
  sub random 365d      (no target) a subscriber drawn uniformly from the 300,000: grows with N
  history probe 365d, as shipped
                       the first row on the archive's default connections, 20 runs after 12: psycopg
                       prepares a statement at its 5th run and PostgreSQL may then choose a generic
                       plan (the rows above connect with options=-c plan_cache_mode=force_custom_plan)
  verify last 100k     VerifyChain incremental: verify_incremental with a signed verified position
                       100,000 events before the head (fewer samples)

Targets: p99 < 50 ms for each probe query at the largest size, p99(largest) <= 1.5 x p99(smallest);
Redis bytes per hot event (INFO used_memory before/after the hot window) and archive bytes per event
(pg_total_relation_size of the partitions, indexes and TOAST included) printed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import queue
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import redis

from adapters.audit import checkpoints as cps
from adapters.audit.across import verify_across
from adapters.audit.archive import PgAuditArchive, month_of
from adapters.audit.keys import ChainKeys, entries, index_keys_of, index_state_key
from adapters.audit.queries import _first_id_with_seq
from adapters.audit_reader import ChainAuditReader
from adapters.postgres_server import PostgresServerProcess
from adapters.redis_client import connect
from bench.audit_index import OwnRedis, percentile
from gateway.domain import audit_chain as ac
from gateway.domain import rules

CHAIN = "main"
KEY = b"bench-audit-scale-key-0123456789"
KID = ac.key_id(KEY)
KEYS = {KID: KEY}
PSEUDONYM_KEY = b"bench-subscriber-pseudonym-key!!"
DAY_MS = 86_400_000
SPAN_DAYS = 395
HOT_DAYS = 45
SUBSCRIBERS = 300_000
ZIPF_OFFSET = 100
STAFF = 220
COUNTER_SHARE = 0.4
PROBE_SUBS, PROBE_SUB_EVENTS = 20, 20
PROBE_STAFF, PROBE_STAFF_EVENTS = 5, 300
CHUNK = 5000
ROWS_PER_TX = 250_000
P99_MS = 50.0
RATIO = 1.5
COPY_SQL = ("COPY audit_events (chain, seq, stream_id, stream_time, fields, names, subscriber_refs, staff_id, "
            "terminal, hall, call) FROM STDIN")
METHODS = ("/hallgate.v1.KioskService/ListCallDetails", "/hallgate.v1.KioskService/GetBalance",
           "/hallgate.v1.ClerkService/GetCustomerProfile", "/hallgate.v1.ClerkService/ListCallDetails")


def sub_ref(i: int) -> str:
    return rules.subscriber_ref(PSEUDONYM_KEY, f"138{i:08d}")


PROBE_SUB_REFS = [rules.subscriber_ref(PSEUDONYM_KEY, f"1399999{i:04d}") for i in range(PROBE_SUBS)]
PROBE_STAFF_IDS = [f"probe{i:02d}" for i in range(PROBE_STAFF)]


class Population:
    """300,000 subscribers with Zipf-like weights; refs computed once."""

    def __init__(self) -> None:
        self.refs = [sub_ref(i) for i in range(SUBSCRIBERS)]
        self.cum = list(itertools.accumulate(1.0 / (r + ZIPF_OFFSET) for r in range(SUBSCRIBERS)))

    def pick(self, rnd: random.Random) -> int:
        return bisect.bisect_left(self.cum, rnd.random() * self.cum[-1])


def _esc(v: str) -> str:
    """A value in COPY's text format."""
    return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _array(values: list[str]) -> str:
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def copy_line(entry_id: str, sealed: dict[str, str]) -> str:
    """One row as archive._row builds it, in COPY text format (JSONB holds the same map whichever
    way it is sent)."""
    seq = sealed["seq"]
    moment = ac.time_of(entry_id).isoformat()
    refs = [r for r in dict.fromkeys(sealed.get("subscriber_ref", "").split(",")) if r]
    cols = [CHAIN, seq, entry_id, moment, _esc(json.dumps(sealed, separators=(",", ":"))), _esc(_array(list(sealed))),
            _esc(_array(refs))]
    for name in ("staff_id", "terminal", "hall", "call"):
        v = sealed.get(name) or ""
        cols.append(_esc(v) if v else "\\N")
    return "\t".join(cols) + "\n"


@dataclass
class Plan:
    """Where the probes' events go and which index starts the hot window."""

    n: int
    now_ms: int
    first_ms: int
    step: float
    hot_from: int
    special: dict[int, tuple[str, str]] = field(default_factory=dict)  # index → ("sub", ref) | ("staff", id)

    @classmethod
    def of(cls, n: int, now_ms: int) -> Plan:
        first_ms = now_ms - SPAN_DAYS * DAY_MS
        step = (now_ms - first_ms) / n
        p = cls(n, now_ms, first_ms, step, cls._first_at(first_ms, step, n, now_ms - HOT_DAYS * DAY_MS))
        rnd = random.Random(7)
        year = cls._first_at(first_ms, step, n, now_ms - 364 * DAY_MS)  # a day's margin for the query's "now"
        month = cls._first_at(first_ms, step, n, now_ms - 29 * DAY_MS)  # a day's margin for the query's "now"
        for kind, who, low, count in [*(("sub", ref, year, PROBE_SUB_EVENTS) for ref in PROBE_SUB_REFS),
                                      *(("staff", sid, month, PROBE_STAFF_EVENTS) for sid in PROBE_STAFF_IDS)]:
            placed = 0
            for i in rnd.sample(range(low, n), min(n - low, count * 2)):
                if i not in p.special and placed < count:
                    p.special[i] = (kind, who)
                    placed += 1
        return p

    @staticmethod
    def _first_at(first_ms: int, step: float, n: int, ms: int) -> int:
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            if first_ms + int(mid * step) < ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def ms(self, i: int) -> int:
        return self.first_ms + int(i * self.step)


def make_event(i: int, rnd: random.Random, pop: Population, plan: Plan, counts: Counter[int]) -> dict[str, str]:
    kind, who = plan.special.get(i, ("", ""))
    counter = kind == "staff" or rnd.random() < COUNTER_SHARE
    hall = f"H{rnd.randrange(40):03d}"
    staff = (who if kind == "staff" else f"s{rnd.randrange(STAFF):03d}") if counter else ""
    if kind == "sub":
        ref = who
    else:
        r = pop.pick(rnd)
        counts[r] += 1
        ref = pop.refs[r]
    at = datetime.fromtimestamp(plan.ms(i) / 1000, UTC)
    event = ac.normalise({
        "at": at.isoformat(timespec="milliseconds"), "channel": "clerk" if counter else "kiosk", "hall": hall,
        "terminal": f"{hall}/{'clerk/T' if counter else 'kiosk/K'}{rnd.randrange(8):02d}", "staff_id": staff,
        "role": "clerk" if counter else "", "proof": "mtls" if counter else "sms", "peer": "ipv4:10.1.2.3:51234",
        "method": METHODS[rnd.randrange(len(METHODS))], "call": f"{rnd.getrandbits(64):016x}", "phase": "",
        "subscriber": "138****" + f"{i % 10000:04d}", "subscriber_ref": ref, "decision": "allowed",
        "reason": "ok", "detail": "", "code": "OK", "records": rnd.randrange(50),
        "duration_ms": round(rnd.uniform(2, 40), 3)})
    event[ac.EVENT_ID] = f"{rnd.getrandbits(64):016x}"  # as the sink adds it
    return event


class ArchiveWriter(threading.Thread):
    """COPYs chunks of rows into the archive, ROWS_PER_TX rows per transaction."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.q: queue.Queue[tuple[bytes, int] | None] = queue.Queue(maxsize=12)
        self.error: BaseException | None = None
        self.rows = 0

    def run(self) -> None:
        try:
            with psycopg.connect(self.url) as conn:
                conn.execute("SET synchronous_commit = off")
                conn.execute("SET maintenance_work_mem = '256MB'")
                conn.commit()
                done = False
                while not done:
                    in_tx = 0
                    with conn.cursor() as cur, cur.copy(COPY_SQL) as cp:
                        while in_tx < ROWS_PER_TX:
                            item = self.q.get()
                            if item is None:
                                done = True
                                break
                            cp.write(item[0])
                            in_tx += item[1]
                    conn.commit()
                    self.rows += in_tx
        except BaseException as e:  # reported by put()/finish()
            self.error = e

    def put(self, data: bytes, rows: int) -> None:
        while True:
            if self.error is not None or not self.is_alive():
                raise RuntimeError(f"archive writer failed: {self.error!r}")
            try:
                self.q.put((data, rows), timeout=1.0)
                return
            except queue.Full:
                continue

    def finish(self, timeout: float) -> None:
        self.q.put(None, timeout=timeout)
        self.join(timeout)
        if self.is_alive() or self.error is not None:
            raise RuntimeError(f"archive writer failed or did not finish: {self.error!r}")


@dataclass
class Seeded:
    n: int
    archived: int
    hot: int
    plan: Plan
    seal_s: float = 0.0  # generation + sealing + COPY/Redis writes (the main loop)
    drain_s: float = 0.0  # waiting for the archive writer after the loop
    vacuum_s: float = 0.0
    redis_bytes: int = 0
    archive_bytes: int = 0
    counts: Counter[int] = field(default_factory=Counter)


async def prepare_archive(url: str, plan: Plan) -> None:
    archive = PgAuditArchive(url)
    try:
        await archive.ensure_schema()
        months = sorted({month_of(datetime.fromtimestamp(ms / 1000, UTC))
                         for ms in range(plan.first_ms, plan.now_ms + DAY_MS, DAY_MS)})
        async with archive.connection() as conn:
            async with conn.transaction():
                for m in months:
                    await archive._ensure_month(conn, m)  # the archive's own partition DDL
    finally:
        await archive.close()


def seed(n: int, pg: PostgresServerProcess, r: redis.Redis, budget: float) -> Seeded:
    plan = Plan.of(n, int(time.time() * 1000))
    asyncio.run(prepare_archive(pg.url, plan))
    with psycopg.connect(pg.url, autocommit=True) as conn:  # reloadable settings: fewer checkpoints while loading
        conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
        conn.execute("ALTER SYSTEM SET checkpoint_timeout = '30min'")
        conn.execute("SELECT pg_reload_conf()")
    pop = Population()
    rnd = random.Random(n)
    s = Seeded(n, plan.hot_from, n - plan.hot_from, plan)
    k = ChainKeys.of(CHAIN)
    writer = ArchiveWriter(pg.url)
    writer.start()
    seq, mac, last_id = 0, "", ""
    archived_last: tuple[str, dict[str, str]] | None = None
    mem_before = 0
    started = time.perf_counter()
    for base in range(0, n, CHUNK):
        if time.perf_counter() - started > budget:
            writer.finish(60)
            raise TimeoutError(f"seeding {n:,} passed its budget of {budget:.0f} s at event {base:,}")
        batch = [make_event(i, rnd, pop, plan, s.counts) for i in range(base, min(n, base + CHUNK))]
        sealed = ac.seal_batch(CHAIN, batch, seq, mac, KID, KEY)
        seq, mac = int(sealed[-1]["seq"]), sealed[-1]["mac"]
        lines: list[str] = []
        pipe = None
        for j, ev in enumerate(sealed):
            i = base + j
            entry_id = f"{plan.ms(i)}-0"
            if i < plan.hot_from:
                lines.append(copy_line(entry_id, ev))
                archived_last = (entry_id, ev)
            else:
                if pipe is None:
                    if i == plan.hot_from:
                        mem_before = int(r.info("memory")["used_memory"])
                    pipe = r.pipeline(transaction=False)
                pipe.xadd(k.stream, ev, id=entry_id)  # type: ignore[arg-type]
                for ix in index_keys_of(CHAIN, ev):
                    pipe.zadd(ix, {entry_id: plan.ms(i)})
            last_id = entry_id
        if lines:
            writer.put("".join(lines).encode(), len(lines))
        if pipe is not None:
            pipe.hset(k.head, mapping={"seq": str(seq), "mac": mac, "id": last_id})  # type: ignore[arg-type]
            pipe.execute()
    s.seal_s = time.perf_counter() - started
    t = time.perf_counter()
    writer.finish(max(60.0, budget - s.seal_s))
    s.drain_s = time.perf_counter() - t
    assert writer.rows == plan.hot_from and archived_last is not None, (writer.rows, plan.hot_from)
    a_id, a_ev = archived_last
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_archive_chains (chain, first_seq, last_seq, last_mac, last_id, anchor) "
                     "VALUES (%s, 1, %s, %s, %s, NULL)", (CHAIN, int(a_ev["seq"]), a_ev["mac"], a_id))
        t = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) audit_events")
        s.vacuum_s = time.perf_counter() - t
        row = conn.execute("SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i "
                           "WHERE i.inhparent = 'audit_events'::regclass").fetchone()
        s.archive_bytes = int(row[0]) if row else 0
    r.hset(index_state_key(CHAIN), "complete", "1")
    s.redis_bytes = int(r.info("memory")["used_memory"]) - mem_before
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    cp = ac.Checkpoint(int(a_ev["seq"]), a_ev["mac"], a_id, at, KID).signed(CHAIN, KEY)
    r.hset(k.checkpoint, mapping=cp.as_fields())  # type: ignore[arg-type]
    return s


# -- checks that the bulk path wrote what the real one writes ------------------------------------


async def check_sample(client: Any, archive: PgAuditArchive, s: Seeded, full: bool) -> str:
    """verify_across over the whole chain (full), or five archived windows and the tier boundary."""
    if full:
        t = time.perf_counter()
        res = await verify_across(client, archive, CHAIN, KEYS, batch=2000)
        secs = time.perf_counter() - t
        if not res.ok or res.checked != s.n:
            raise SystemExit(f"verify_across failed on the seeded chain: {res}")
        return f"verify_across: all {s.n:,} events verify across both tiers in {secs:.1f} s " \
               f"({s.n / secs:,.0f} events/s)"
    rnd = random.Random(3)
    windows = [rnd.randrange(1, max(2, s.archived - 2000)) for _ in range(5)]
    for start in windows:
        v = ac.Verifier(CHAIN, KEYS, None)
        got = 0
        async for entry_id, fields in archive.iter_from(CHAIN, start, batch=2000):
            v.feed(entry_id, fields)
            got += 1
            if got >= 2000 or not v.wants_more:
                break
        res = v.result()
        if not res.ok or res.checked != got:
            raise SystemExit(f"archived window at seq {start} does not verify: {res}")
    v = ac.Verifier(CHAIN, KEYS, None)
    async for entry_id, fields in archive.iter_from(CHAIN, s.archived - 999, batch=1000):
        v.feed(entry_id, fields)
    stream = ChainKeys.of(CHAIN).stream
    for entry_id, fields in entries(await client.xrange(stream, count=1000)):
        v.feed(entry_id, fields)
    res = v.result()
    if not res.ok or res.checked != 2000:
        raise SystemExit(f"the tier boundary does not verify: {res}")
    return "5 windows of 2,000 archived events and 2,000 across the tier boundary verify"


# -- measuring -----------------------------------------------------------------------------------


async def count(it: AsyncIterator[Any]) -> int:
    return len([x async for x in it])


CUSTOM = "-c plan_cache_mode=force_custom_plan"
SHIPPED = ", as shipped"


def query_cases(reader: ChainAuditReader, tag: str, rnd: random.Random) -> dict[str, Callable[[int], Awaitable[int]]]:
    now = datetime.now(UTC)
    year, month = now - timedelta(days=365), now - timedelta(days=30)
    return {
        f"history probe 365d{tag}": lambda i: count(reader.accesses(PROBE_SUB_REFS[i % PROBE_SUBS], year)),
        f"sub probe{tag}": lambda i: count(reader.query(ac.AuditFilter(
            subscriber_ref=PROBE_SUB_REFS[(i + 7) % PROBE_SUBS]))),
        f"staff probe 30d{tag}": lambda i: count(reader.query(ac.AuditFilter(
            staff_id=PROBE_STAFF_IDS[i % PROBE_STAFF], start=month))),
        f"sub random 365d{tag}": lambda i: count(reader.query(ac.AuditFilter(
            subscriber_ref=sub_ref(rnd.randrange(SUBSCRIBERS)), start=year))),
    }


async def measure(client: Any, archive: PgAuditArchive, shipped: PgAuditArchive, s: Seeded, samples: int,
                  shipped_samples: int, verify_samples: int, tail: int) -> dict[str, tuple[float, float, float, int]]:
    """name → (p50 ms, p99 ms, mean matches, samples). `archive` connects with custom plans only,
    `shipped` as PgAuditArchive does by default (psycopg prepares a statement at its 5th run, and
    PostgreSQL may then choose a generic plan)."""
    rnd = random.Random(42)
    cases = query_cases(ChainAuditReader(client, CHAIN, KEYS, archive=archive, kid=KID), "", rnd)
    for i in range(5):  # warm-up: connections
        for make in cases.values():
            await make(i)
    lat: dict[str, list[float]] = {name: [] for name in cases}
    found: dict[str, int] = dict.fromkeys(cases, 0)
    names = list(cases)
    for i in range(samples):
        for name in names[i % len(names):] + names[:i % len(names)]:  # interleaved, rotating order
            t = time.perf_counter()
            found[name] += await cases[name](i)
            lat[name].append((time.perf_counter() - t) * 1000)
    out = {name: (percentile(v, 50), percentile(v, 99), found[name] / samples, samples) for name, v in lat.items()}
    # the same ListAccessHistory with the archive's default connections: after 10 runs a generic plan
    name, make = next(iter(query_cases(ChainAuditReader(client, CHAIN, KEYS, archive=shipped, kid=KID),
                                       SHIPPED, rnd).items()))
    for i in range(12):
        await make(i)
    shipped_lat, n = [], 0
    for i in range(shipped_samples):
        t = time.perf_counter()
        n += await make(i)
        shipped_lat.append((time.perf_counter() - t) * 1000)
    out[name] = (percentile(shipped_lat, 50), percentile(shipped_lat, 99), n / shipped_samples, shipped_samples)
    # incremental VerifyChain of the last `tail` events (Redis only: the archive is not read)
    reader = ChainAuditReader(client, CHAIN, KEYS, archive=archive, kid=KID)
    stream = ChainKeys.of(CHAIN).stream
    pos_seq = s.n - tail
    at = await _first_id_with_seq(client, stream, pos_seq)
    if at is None:
        raise SystemExit(f"seq {pos_seq} is not in Redis: the hot window holds {s.hot:,} events, fewer than {tail:,}")
    [(entry_id, ev)] = entries(await client.xrange(stream, min=at, max=at))
    times = []
    for _ in range(verify_samples):
        *_, sig = await cps.read(client, CHAIN, KEYS)
        back = cps.Position(pos_seq, entry_id, ev["mac"], "bench", 0, 0, KID)
        assert await cps.record(client, CHAIN, KEYS, back, sig) == 1
        t = time.perf_counter()
        run = await reader.verify_incremental()
        times.append((time.perf_counter() - t) * 1000)
        if not (run.result.ok and run.result.checked == tail and run.result.anchor == cps.VERIFIED):
            raise SystemExit(f"incremental verification failed: {run}")
    out[f"verify last {tail // 1000}k"] = (percentile(times, 50), percentile(times, 99), float(tail), verify_samples)
    return out


async def measure_size(pg: PostgresServerProcess, url: str, s: Seeded, samples: int, shipped_samples: int,
                       verify_samples: int, tail: int, full_check: bool
                       ) -> tuple[dict[str, tuple[float, float, float, int]], str]:
    client = connect(url, 30.0)
    shipped = PgAuditArchive(pg.url)
    archive = PgAuditArchive(pg.url + "&options=" + quote(CUSTOM))
    try:
        check = await check_sample(client, shipped, s, full_check)
        return await measure(client, archive, shipped, s, samples, shipped_samples, verify_samples, tail), check
    finally:
        await archive.close()
        await shipped.close()
        await client.aclose()


def run_size(n: int, samples: int, shipped_samples: int, verify_samples: int, tail: int, budget: float,
             full_check: bool) -> dict[str, Any]:
    rs = OwnRedis()
    pg = PostgresServerProcess(Path(tempfile.mkdtemp(prefix="hallgate-bench-pg-")), fsync=False)
    try:
        pg.start()
        asyncio.run(rs.ready())
        r = redis.Redis(host="127.0.0.1", port=rs.port, socket_timeout=60)
        try:
            t = time.perf_counter()
            s = seed(n, pg, r, budget)
            seed_s = time.perf_counter() - t
        finally:
            r.close()
        print(f"# N={n:,}: seeded in {seed_s:.0f} s (main loop {s.seal_s:.0f} s, archive drain {s.drain_s:.0f} s, "
              f"VACUUM ANALYZE {s.vacuum_s:.0f} s): {s.archived:,} archived, {s.hot:,} in Redis", flush=True)
        results, check = asyncio.run(measure_size(pg, rs.url, s, samples, shipped_samples, verify_samples, tail,
                                                            full_check))
        print(f"# N={n:,}: {check}", flush=True)
        return {"n": n, "seeded": s, "seed_s": seed_s, "results": results, "check": check}
    finally:
        pg.remove()  # stops the postmaster by pid, then deletes its directory
        rs.stop()


def distribution(s: Seeded) -> str:
    per = sorted(s.counts.values())
    with_events = len(per)
    q = [per[min(len(per) - 1, int(f * len(per)))] for f in (0.5, 0.9, 0.99)] if per else [0, 0, 0]
    per.reverse()
    return (f"population at N={s.n:,}: {with_events:,} of {SUBSCRIBERS:,} subscribers have events; events per "
            f"subscriber: median {q[0]}, p90 {q[1]}, p99 {q[2]}, max {per[0] if per else 0} (weights 1/(rank+"
            f"{ZIPF_OFFSET})); {STAFF} staff on {COUNTER_SHARE:.0%} of events "
            f"(~{COUNTER_SHARE * s.n / STAFF / SPAN_DAYS * 30:,.0f} each per 30 days); "
            f"probes: {PROBE_SUBS} subscribers x {PROBE_SUB_EVENTS} events in 365 days, "
            f"{PROBE_STAFF} staff x {PROBE_STAFF_EVENTS} events in the last 30 days")


def table(runs: list[dict[str, Any]]) -> str:
    lo, hi = runs[0], runs[-1]
    two = len(runs) > 1
    head = "| measure | " + " | ".join(f"N={r['n']:,}: matches, p50, p99 (ms)" for r in runs) + " |"
    if two:
        head += " p99 ratio | target | result |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    verdicts: list[bool] = []
    shipped: list[bool] = []
    for name in lo["results"]:
        cells = []
        for r in runs:
            p50, p99, m, k = r["results"][name]
            runs_note = f" ({k} runs)" if name.startswith("verify") or SHIPPED in name else ""
            cells.append(f"{m:,.1f}, {p50:.1f}, {p99:.1f}{runs_note}")
        row = f"| {name} | " + " | ".join(cells) + " |"
        if two:
            a, b = lo["results"][name][1], hi["results"][name][1]
            ratio = b / a
            if name.startswith("sub random"):
                target, ok = "none (matches grow with N)", None
            elif name.startswith("verify"):
                target, ok = f"ratio <= {RATIO}", ratio <= RATIO
            else:
                target, ok = f"p99 < {P99_MS:.0f} ms, ratio <= {RATIO}", b < P99_MS and ratio <= RATIO
            if ok is not None:
                (shipped if SHIPPED in name else verdicts).append(ok)
            row += f" {ratio:.2f}x | {target} | {'-' if ok is None else 'PASS' if ok else 'FAIL'} |"
        lines.append(row)
    lines.append("")
    for r in runs:
        s: Seeded = r["seeded"]
        lines.append(f"N={r['n']:,}: Redis {s.redis_bytes / s.hot:,.0f} B per hot event ({s.hot:,} events, "
                     f"{s.redis_bytes / 2**20:,.0f} MiB); archive {s.archive_bytes / s.archived:,.0f} B per event "
                     f"({s.archived:,} rows, {s.archive_bytes / 2**20:,.0f} MiB, indexes and TOAST included); "
                     f"seeded in {r['seed_s']:.0f} s")
    if two:
        lines.append(f"targets, archive connections with {CUSTOM.removeprefix('-c ')}: "
                     f"{'all PASS' if all(verdicts) else 'NOT all met'}; '{SHIPPED.removeprefix(', ')}' (the "
                     f"archive's default connections: psycopg prepares, PostgreSQL may plan generically): "
                     f"{'PASS' if all(shipped) else 'FAIL'}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000000,5000000")
    p.add_argument("--samples", type=int, default=200, help="per query, interleaved")
    p.add_argument("--verify-samples", type=int, default=5)
    p.add_argument("--shipped-samples", type=int, default=20, help="ListAccessHistory on default archive connections")
    p.add_argument("--tail", type=int, default=100_000, help="events after the verified position")
    p.add_argument("--budget", type=float, default=900.0, help="seconds of seeding per size, at most")
    p.add_argument("--quick", action="store_true", help="60,000 and 120,000 events, 50 samples, a 5,000-event tail")
    a = p.parse_args()
    if a.quick:
        a.sizes, a.samples, a.shipped_samples, a.verify_samples, a.tail = "60000,120000", 50, 10, 2, 5000
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (make redis)")
    sizes = [int(x) for x in a.sizes.split(",")]
    started = time.perf_counter()
    runs = []
    for i, n in enumerate(sizes):
        runs.append(run_size(n, a.samples, a.shipped_samples, a.verify_samples, a.tail, a.budget, full_check=i == 0))
    print()
    print(table(runs))
    print()
    print(distribution(runs[-1]["seeded"]))
    print(f"(one chain over {SPAN_DAYS} days, the last {HOT_DAYS} in Redis; {a.samples} samples per query, "
          f"interleaved, one at a time; ChainAuditReader over redis-py on 127.0.0.1 and psycopg on a unix socket; "
          f"whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
