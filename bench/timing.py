"""(t) No timing oracle: a code request and a failed sign-in take the same time whatever the number.

Groups, each sampled at least 500 times, interleaved in a new random order every round and spread
over concurrent callers (so all groups see the same load):
  RequestOneTimeCode: known, unknown, locked, SIM-swapped and throttled numbers;
  Authenticate failures: wrong password, wrong code, unknown number, locked number.
Each number's state is set up in Redis before a sample (untimed), so every sample meets the state
its group names. What is printed: each group's median and p90, and the largest gap between any two
groups of one RPC, against the target (<= 0.3 ms).

    .venv/bin/python -m bench.run --only t
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import redis.asyncio as aioredis

from adapters.audit.keys import stream_key
from adapters.billing_sim.data import SeededBilling
from bench.targets import Target
from gateway.domain import rules
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc

CODE = "RequestOneTimeCode"
AUTH = "Authenticate (failures)"
GAP_MS = 0.3
SAMPLE_CODE = "123456"
WRONG_CODE = "654321"


def numbers(start: int, count: int, keep: Callable[[int], bool]) -> list[str]:
    found: list[str] = []
    i = start
    while len(found) < count:
        if keep(i):
            found.append(f"138{i:08d}")
        i += 1
    return found


def ordinary(i: int) -> bool:
    return i % 100 not in (7, 8) and i % 500 != 0


class Numbers:
    """The numbers of caller `n`: its own, so callers never disturb each other's state."""

    def __init__(self, n: int) -> None:
        known = numbers(16_000 + 20 * n, 5, ordinary)  # apart from the numbers other scenarios use
        self.known, self.throttled, self.locked, self.wrong_pw, self.wrong_code = known
        self.swapped = f"138{100 * n + 7:08d}"  # the simulator changes every hundredth SIM: index % 100 == 7
        self.unknown = f"13901{n:06d}"

    def by_group(self) -> dict[tuple[str, str], str]:
        return {(CODE, "known"): self.known, (CODE, "unknown"): self.unknown, (CODE, "locked"): self.locked,
                (CODE, "SIM-swapped"): self.swapped, (CODE, "throttled"): self.throttled,
                (AUTH, "wrong password"): self.wrong_pw, (AUTH, "wrong code"): self.wrong_code,
                (AUTH, "unknown number"): self.unknown, (AUTH, "locked"): self.locked}


class Caller(Numbers):
    """One concurrent caller."""

    def __init__(self, n: int, stub: kiosk_pb2_grpc.KioskServiceStub, r: aioredis.Redis, sim: SeededBilling,
                 key: bytes, metadata: Any) -> None:
        super().__init__(n)
        self.stub, self.r, self.sim, self.key, self.md = stub, r, sim, key, metadata

    def k(self, msisdn: str, what: str) -> str:
        return f"hg:{{{msisdn}}}:{what}"

    async def setup(self) -> None:
        await self.r.set(self.k(self.locked, "lock"), "1", px=3_600_000)
        await self.r.set(self.k(self.throttled, "send:last"), "1", px=3_600_000)

    async def free_slot(self, msisdn: str) -> None:
        await self.r.delete(self.k(msisdn, "send:last"))

    async def with_code(self, msisdn: str) -> None:
        key = self.k(msisdn, f"code:{rules.Purpose.CALL_LIST.value}")
        digest = rules.code_digest(self.key, msisdn, rules.Purpose.CALL_LIST, SAMPLE_CODE)
        await self.r.delete(key, self.k(msisdn, "fails"))
        await self.r.hset(key, mapping={"d": digest, "tries": 0})
        await self.r.pexpire(key, 300_000)

    def groups(self) -> dict[tuple[str, str], tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]]:
        """(rpc, group) -> (untimed set-up, the timed call)."""
        def code(msisdn: str) -> Callable[[], Awaitable[Any]]:
            return lambda: self.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn),
                                                        metadata=self.md, timeout=10)

        def auth(msisdn: str, password: str, one_time_code: str) -> Callable[[], Awaitable[Any]]:
            return lambda: self.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=msisdn, service_password=password, one_time_code=one_time_code), metadata=self.md, timeout=10)

        async def nothing() -> None:
            return None

        return {
            (CODE, "known"): (lambda: self.free_slot(self.known), code(self.known)),
            (CODE, "unknown"): (lambda: self.free_slot(self.unknown), code(self.unknown)),
            (CODE, "locked"): (lambda: self.free_slot(self.locked), code(self.locked)),
            (CODE, "SIM-swapped"): (lambda: self.free_slot(self.swapped), code(self.swapped)),
            (CODE, "throttled"): (nothing, code(self.throttled)),
            (AUTH, "wrong password"): (lambda: self.with_code(self.wrong_pw),
                                       auth(self.wrong_pw, "000000", SAMPLE_CODE)),
            (AUTH, "wrong code"): (lambda: self.with_code(self.wrong_code),
                                   auth(self.wrong_code, self.sim.password_for(self.wrong_code), WRONG_CODE)),
            (AUTH, "unknown number"): (lambda: self.r.delete(self.k(self.unknown, "fails")),
                                       auth(self.unknown, "000000", SAMPLE_CODE)),
            (AUTH, "locked"): (nothing, auth(self.locked, "000000", SAMPLE_CODE)),
        }


async def _sample(address: str, identity: str, redis_url: str, sim: SeededBilling, key: bytes, samples: int,
                  width: int, seconds: float) -> tuple[dict[tuple[str, str], list[float]], dict[str, int]]:
    times: dict[tuple[str, str], list[float]] = {}
    outcomes: dict[str, int] = {}
    metadata = (("x-hallgate-dev-identity", identity),) if identity else None
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        r = aioredis.Redis.from_url(redis_url)
        try:
            stub = kiosk_pb2_grpc.KioskServiceStub(channel)
            callers = [Caller(n, stub, r, sim, key, metadata) for n in range(width)]
            for c in callers:
                await c.setup()
            rounds = -(-samples // width)

            async def run(c: Caller) -> None:
                groups = list(c.groups().items())
                for _ in range(rounds):
                    if time.monotonic() > deadline:
                        return
                    random.shuffle(groups)
                    for name, (setup, call) in groups:
                        await setup()
                        started = time.perf_counter()
                        try:
                            await call()
                            code = "OK"
                        except grpc.aio.AioRpcError as e:
                            code = e.code().name
                        times.setdefault(name, []).append(time.perf_counter() - started)
                        outcomes[f"{name[1]}: {code}"] = outcomes.get(f"{name[1]}: {code}", 0) + 1

            await asyncio.gather(*(run(c) for c in callers))
        finally:
            await r.aclose()
    return times, outcomes


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10)[-1]


async def _recorded(redis_url: str, key: bytes, width: int, count: int) -> dict[tuple[str, str], list[float]]:
    """The gateway's own work for the same calls, as its audit events record it (duration_ms: from
    the call's start to its event, before the answer is held to the floor), grouped like the
    client's samples: it differs by branch (a locked number asks nobody), which is what the floor is
    there to hide, and shows how much room the floor leaves."""
    by_ref: dict[tuple[str, str], tuple[str, str]] = {}
    for n in range(width):
        for (rpc, group), msisdn in Numbers(n).by_group().items():
            method = "RequestOneTimeCode" if rpc == CODE else "Authenticate"
            by_ref[(method, rules.subscriber_ref(key, msisdn))] = (rpc, group)
    found: dict[tuple[str, str], list[float]] = {}
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries: Any = await r.xrevrange(stream_key("main"), count=count)
    finally:
        await r.aclose()
    for _, f in entries:
        name = by_ref.get((f.get("method", "").rsplit("/", 1)[-1], f.get("subscriber_ref", "")))
        if name is not None and (name[0] == CODE or f.get("decision") != "allowed"):
            found.setdefault(name, []).append(float(f["duration_ms"]) / 1000)
    return found


def measure(address: str, identity: str, redis_url: str, sim: SeededBilling, key: bytes, samples: int = 500,
            width: int = 32, seconds: float = 150.0) -> tuple[str, list[Target]]:
    """Run the groups; returns the printed table and the targets (largest gap per RPC)."""
    times, outcomes = asyncio.run(_sample(address, identity, redis_url, sim, key, samples, width, seconds))
    recorded = asyncio.run(_recorded(redis_url, key, width, sum(len(xs) for xs in times.values()) + 1000))
    lines = [f"{'(t) timing by group':48} {'n':>5} {'median ms':>10} {'p90 ms':>9}   "
             f"{'own work median':>23} {'p90 ms':>7}",
             "  (own work: the gateway's time to its audit event, which differs by branch and is what the "
             "answer floor hides)"]
    targets: list[Target] = []
    for rpc in (CODE, AUTH):
        groups = {g: xs for (r, g), xs in times.items() if r == rpc}
        stats = {g: (statistics.median(xs) * 1000, p90(xs) * 1000) for g, xs in groups.items() if len(xs) > 10}
        inside = {g: (statistics.median(xs) * 1000, p90(xs) * 1000) for (r, g), xs in recorded.items()
                  if r == rpc and len(xs) > 10}
        for g, (med, q90) in sorted(stats.items()):
            own = inside.get(g)
            lines.append(f"  {rpc + ', ' + g:46} {len(groups[g]):>5} {med:>10.3f} {q90:>9.3f}   "
                         + (f"{own[0]:>23.3f} {own[1]:>7.3f}" if own else f"{'-':>23} {'-':>7}"))
        n = min((len(xs) for xs in groups.values()), default=0)
        if len(stats) < 2:
            targets.append(Target(f"{rpc}: largest gap between groups", f"<= {GAP_MS} ms", "not run", None))
            continue
        targets.append(_gap(f"{rpc}: largest gap between groups, as the caller sees it (median, p90)", stats, n))
    lines.append("  answers: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    return "\n".join(lines), targets


def _gap(name: str, stats: dict[str, tuple[float, float]], n: int) -> Target:
    gap_med = max(m for m, _ in stats.values()) - min(m for m, _ in stats.values())
    gap_p90 = max(q for _, q in stats.values()) - min(q for _, q in stats.values())
    return Target(name, f"<= {GAP_MS} ms", f"{gap_med:.3f} / {gap_p90:.3f} ms over >= {n} samples each",
                  max(gap_med, gap_p90) <= GAP_MS and n >= 500)
