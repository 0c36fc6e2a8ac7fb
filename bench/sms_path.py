"""(s) The SMS path: what a code request costs now that the code goes through a queue, and how
long the code takes to reach the phone.

A code request no longer writes the SMS itself: once the call is on record the gateway enqueues
the message, sealed, to a Redis stream, and a dispatcher (in any gateway process sharing that
Redis) submits it over SMPP to the SMS centre. Two questions, on gateways of their own started
with `--answer-floor 0` so the raw cost shows (in production the floor hides it):

  RequestOneTimeCode latency for a KNOWN number (a code is stored and an SMS enqueued) and an
  UNKNOWN one (139xxxxxxxx: neither), on the current gateway and, with `--candidate`, on each
  candidate's, sampled interleaved: in every round each of the concurrent callers takes every
  (gateway, group) pair once, in its own random order; each sample uses a fresh number, so no
  send throttle or lock is ever met. Printed: p50 and p90 per group, the known-unknown gap of
  the medians, and current/candidate of the known p50.

  Code on the phone: from sending RequestOneTimeCode to the code's line appearing in the outbox
  the SMSC simulator writes (looked at every millisecond), sequential requests: the effect's
  enqueue, a dispatcher's read, the SMPP submit and the simulator's write. An older candidate
  writes its outbox itself, off the request path; measured too, for comparison.

    .venv/bin/python -m bench.run --only s --candidate /tmp/hallgate-base
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.driver import BenchError, OutboxTail
from bench.measure import cpu_seconds, percentile
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc

GROUPS = ("known", "unknown")
IDLE = 3.0  # seconds the other dispatching processes' idle CPU is measured for
KNOWN_FIRST, KNOWN_LAST = 4_000, 11_000  # seeded subscribers no other scenario uses
UNKNOWN_PREFIX = "1392"  # 1392xxxxxxx: not a subscriber of the billing simulator (it has 138 only)


@dataclass
class Gateway:
    """One gateway under test: where it listens, which process it is, where its codes land."""

    name: str
    label: str
    address: str
    pid: int
    outbox: Path
    others: list[int] = field(default_factory=list)  # processes doing part of its calls' work (dispatchers)


@dataclass
class Fresh:
    """Numbers never asked for before in this run: known ordinary subscribers (no SIM swap, no
    port-in, not the heavy user) and unknown numbers."""

    known: Iterator[str] = field(default_factory=lambda: _known())
    unknown: Iterator[str] = field(default_factory=lambda: (f"{UNKNOWN_PREFIX}{k:07d}" for k in range(10**7)))

    def take(self, group: str) -> str:
        return next(self.known if group == "known" else self.unknown)


def _known() -> Iterator[str]:
    for i in range(KNOWN_FIRST, KNOWN_LAST):
        if i % 100 not in (7, 8) and i % 500:
            yield f"138{i:08d}"
    raise RuntimeError(f"(s) ran out of fresh known numbers ({KNOWN_FIRST}..{KNOWN_LAST})")


@dataclass
class Result:
    """What (s) measured; `facts` holds it for the targets (bench/targets.py) and the JSON."""

    times: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (gateway, group) -> seconds
    answers: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)  # gateway -> CPU seconds while sampled
    cpu_all: dict[str, float] = field(default_factory=dict)  # the same, its `others` included
    phone: dict[str, list[float]] = field(default_factory=dict)  # gateway -> seconds to the outbox line
    phone_rpc: dict[str, list[float]] = field(default_factory=dict)  # the same requests' answers
    phone_missing: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0


def _request(stub: Any, msisdn: str, metadata: Any) -> Any:
    return stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), metadata=metadata, timeout=10)


async def _latency(gateways: list[Gateway], identity: str, samples: int, width: int, seconds: float,
                   fresh: Fresh, out: Result) -> None:
    metadata = (("x-hallgate-dev-identity", identity),) if identity else None
    channels = {g.name: grpc.aio.insecure_channel(g.address) for g in gateways}
    try:
        stubs = {name: kiosk_pb2_grpc.KioskServiceStub(c) for name, c in channels.items()}
        for c in channels.values():
            await asyncio.wait_for(c.channel_ready(), 20)
        pairs = [(g.name, group) for g in gateways for group in GROUPS]
        for name, group in pairs * 10:  # warm-up (not counted): connections, scripts, caches
            try:
                await _request(stubs[name], fresh.take(group), metadata)
            except grpc.aio.AioRpcError:
                pass
        rounds = -(-samples // width)
        # The other dispatching processes' idle CPU (their loops), to take off what they use meanwhile.
        others = {pid for g in gateways for pid in g.others}
        idle_from, idle_cpu = time.perf_counter(), {pid: cpu_seconds(pid) for pid in others}
        await asyncio.sleep(IDLE if others else 0)
        idle_rate = {pid: (cpu_seconds(pid) - idle_cpu[pid]) / (time.perf_counter() - idle_from) for pid in others}
        deadline = time.monotonic() + seconds
        before = {g.name: cpu_seconds(g.pid) for g in gateways}
        before_others = {pid: cpu_seconds(pid) for pid in others}
        started = time.perf_counter()

        async def caller() -> None:
            order = list(pairs)
            for _ in range(rounds):
                if time.monotonic() > deadline:
                    return
                random.shuffle(order)
                for name, group in order:
                    msisdn = fresh.take(group)
                    t0 = time.perf_counter()
                    try:
                        await _request(stubs[name], msisdn, metadata)
                    except grpc.aio.AioRpcError as e:
                        out.answers[f"{name} {group}: {e.code().name}"] += 1
                        continue
                    out.times.setdefault((name, group), []).append(time.perf_counter() - t0)
                    out.answers[f"{name} {group}: OK"] += 1

        await asyncio.gather(*(caller() for _ in range(width)))
        out.elapsed = time.perf_counter() - started
        out.cpu = {g.name: cpu_seconds(g.pid) - before[g.name] for g in gateways}
        out.cpu_all = {g.name: out.cpu[g.name] + sum(max(0.0, cpu_seconds(pid) - before_others[pid]
                                                         - idle_rate[pid] * out.elapsed) for pid in g.others)
                       for g in gateways}
    finally:
        for c in channels.values():
            await c.close()


async def _answered(call: Any, t0: float) -> float:
    await call
    return time.perf_counter() - t0


async def _phone(gateways: list[Gateway], identity: str, count: int, seconds: float, fresh: Fresh,
                 out: Result, wait: float = 5.0) -> None:
    """`count` sequential requests per gateway, the gateways alternating; each timed to its answer
    and to its code's line in that gateway's outbox."""
    metadata = (("x-hallgate-dev-identity", identity),) if identity else None
    tails = {path: OutboxTail(path) for path in {g.outbox for g in gateways}}
    for tail in tails.values():
        tail.skip()
    channels = {g.name: grpc.aio.insecure_channel(g.address) for g in gateways}
    deadline = time.monotonic() + seconds
    try:
        stubs = {name: kiosk_pb2_grpc.KioskServiceStub(c) for name, c in channels.items()}
        for k in range(count):
            if time.monotonic() > deadline:
                return
            for g in gateways if k % 2 == 0 else gateways[::-1]:
                msisdn = fresh.take("known")
                tail = tails[g.outbox]
                t0 = time.perf_counter()
                call = asyncio.ensure_future(_answered(_request(stubs[g.name], msisdn, metadata), t0))
                try:
                    await tail.take(msisdn, wait=wait, every=0.001)
                    out.phone.setdefault(g.name, []).append(time.perf_counter() - t0)
                except BenchError:  # not in the outbox in time
                    out.phone_missing[g.name] += 1
                try:
                    out.phone_rpc.setdefault(g.name, []).append(await call)
                except grpc.aio.AioRpcError as e:
                    out.answers[f"{g.name} phone: {e.code().name}"] += 1
    finally:
        for c in channels.values():
            await c.close()


def measure(gateways: list[Gateway], identity: str, samples: int = 500, width: int = 4, seconds: float = 60.0,
            phone: int = 100) -> tuple[str, dict[str, Any]]:
    """Both parts; returns the printed table and the facts the targets are read from. The first
    gateway is the current one, the others candidates."""
    fresh, out = Fresh(), Result()
    t0 = time.monotonic()
    asyncio.run(_latency(gateways, identity, samples, width, seconds * 0.75, fresh, out))
    asyncio.run(_phone(gateways, identity, phone, max(5.0, seconds - (time.monotonic() - t0)), fresh, out))
    return table(gateways, out), facts(gateways, out)


def _ms(xs: list[float], q: float) -> float:
    return percentile(xs, q) * 1000


def facts(gateways: list[Gateway], out: Result) -> dict[str, Any]:
    found: dict[str, Any] = {"current": gateways[0].name, "candidates": [g.name for g in gateways[1:]],
                             "gateways": {}}
    for g in gateways:
        entry: dict[str, Any] = {"label": g.label}
        for group in GROUPS:
            xs = out.times.get((g.name, group), [])
            entry[group] = {"n": len(xs), "p50_ms": _ms(xs, 50), "p90_ms": _ms(xs, 90),
                            "median_ms": statistics.median(xs) * 1000 if xs else 0.0}
        calls = sum(entry[group]["n"] for group in GROUPS)
        entry["cpu_ms_per_call"] = 1000 * out.cpu.get(g.name, 0.0) / calls if calls else 0.0
        entry["cpu_all_ms_per_call"] = 1000 * out.cpu_all.get(g.name, 0.0) / calls if calls else 0.0
        entry["cpu_others"] = len(g.others)
        ph = out.phone.get(g.name, [])
        entry["phone"] = {"n": len(ph), "p50_ms": _ms(ph, 50), "p90_ms": _ms(ph, 90),
                          "missing": out.phone_missing[g.name],
                          "answer_p50_ms": _ms(out.phone_rpc.get(g.name, []), 50)}
        found["gateways"][g.name] = entry
    found["errors"] = {k: v for k, v in out.answers.items() if not k.endswith(": OK")}
    return found


def table(gateways: list[Gateway], out: Result) -> str:
    f = facts(gateways, out)
    lines = [f"{'(s) SMS path, answer floor 0':44} {'known n':>7} {'p50 ms':>7} {'p90 ms':>7}   "
             f"{'unknown n':>9} {'p50 ms':>7} {'p90 ms':>7}   {'gap ms':>7}   {'CPU ms/call':>11} {'all':>6}",
             "  (RequestOneTimeCode, 4 concurrent callers, all groups interleaved; gap: known - unknown median; "
             "CPU per call of the gateway; all: plus what the other processes dispatching the shared SMS queue "
             "used meanwhile above their idle)"]
    for g in gateways:
        e = f["gateways"][g.name]
        k, u = e["known"], e["unknown"]
        lines.append(f"  {g.label:42} {k['n']:>7} {k['p50_ms']:>7.3f} {k['p90_ms']:>7.3f}   {u['n']:>9} "
                     f"{u['p50_ms']:>7.3f} {u['p90_ms']:>7.3f}   {k['median_ms'] - u['median_ms']:>+7.3f}   "
                     f"{e['cpu_ms_per_call']:>11.3f} {e['cpu_all_ms_per_call']:>6.3f}")
    cur = f["gateways"][gateways[0].name]
    for g in gateways[1:]:
        cand = f["gateways"][g.name]
        if cand["known"]["p50_ms"] and cand["unknown"]["p50_ms"]:
            lines.append(f"  p50, current / {g.label}: known {cur['known']['p50_ms'] / cand['known']['p50_ms']:.2f}x, "
                         f"unknown {cur['unknown']['p50_ms'] / cand['unknown']['p50_ms']:.2f}x")
    lines.append(f"  {'code on the phone (request sent -> code line in the outbox)':62} {'n':>4} {'p50 ms':>7} "
                 f"{'p90 ms':>7}   {'answer p50 ms':>13}")
    for g in gateways:
        p = f["gateways"][g.name]["phone"]
        missing = f", {p['missing']} never arrived" if p["missing"] else ""
        lines.append(f"  {g.label + missing:62} {p['n']:>4} {p['p50_ms']:>7.2f} {p['p90_ms']:>7.2f}   "
                     f"{p['answer_p50_ms']:>13.2f}")
    if f["errors"]:
        lines.append("  errors: " + ", ".join(f"{k} {v}" for k, v in sorted(f["errors"].items())))
    return "\n".join(lines)
