"""The scenarios, in the order they run.

Baselines run in the same process tree and are interleaved with the gateway (alternating order,
several short rounds), so the ratios compare like with like on a small shared machine.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from adapters.billing_sim.data import SeededBilling
from bench.measure import RedisCommands, RssSampler, commandstats, cpu_seconds, machine_busy_seconds, tcp_sockets
from bench.procs import Stack, serve_flags
from bench.report import Figure, ratio
from bench.sms_path import Gateway
from bench.sms_path import measure as measure_sms
from bench.targets import AUTH, CONNECT_AUTH, CONNECT_LIST, LIST, MONTH_BIG, SPREAD, Target, find, targets
from bench.timing import measure as measure_timing
from gateway.domain import rules

SMS_QUEUE, SMS_DEAD = "hg:{hallgate:sms}:out", "hg:{hallgate:sms}:dead"  # adapters/sms/queue.py
CLIENTS = (1, 16, 64)
SCALE_CLIENTS = (16, 64)  # the scale-out comparison
HEAVY = "13800000500"
PAGE = 1000  # billing page size: the gateway's --billing-page-size default, used by the baselines too
SLOW = 0.1  # seconds the slow reader sleeps between chunks
PATHS = {"gateway": "gateway", "proxy": "bare proxy", "direct": "billing direct"}
SERVER = {"direct": "billing"}  # the process a driver target talks to, where the names differ
# Scenario (x): one gateway (the mTLS one, serving browsers too), its two transports, one kiosk certificate.
TRANSPORTS = {"gateway-tls": "gRPC (mTLS)", "connect-proto": "Connect binary (proto)",
              "connect-json": "Connect JSON"}

Runner = Callable[[dict[str, Any], float], dict[str, Any]]


def seeded(start: int, count: int) -> list[str]:
    """`count` seeded numbers from index `start` that get codes: no SIM swap, no port-in, no heavy user."""
    found: list[str] = []
    i = start
    while len(found) < count:
        if i % 100 not in (7, 8) and i % 500:
            found.append(f"138{i:08d}")
        i += 1
    return found


class Scenarios:
    def __init__(self, stack: Stack, run: Runner, driver_pid: int, scale: float = 1.0,
                 deadline: float = float("inf"), connections: int = 0) -> None:
        assert stack.redis is not None and stack.redis.proc is not None
        self.stack = stack
        self._run = run
        # A supervisor's CPU counts with its workers'; each worker's alone goes to Figure.parts.
        self.pids = {c.name: [c.pid, *c.workers] for c in stack.children} | {"redis": [stack.redis.proc.pid],
                                                                               "driver": [driver_pid]}
        self.parts = {f"{c.name} worker {n}": pid for c in stack.children for n, pid in enumerate(c.workers)}
        self.scale = scale
        self.deadline = deadline
        self.sim = SeededBilling(seed=stack.sim_seed, subscribers=stack.sim_subscribers, hash_n=2)
        self.month = rules.month_add(rules.local_today(datetime.now(UTC), "Asia/Shanghai"), -1)
        self.figures: list[Figure] = []
        self.subjects: list[tuple[str, str]] = []  # (number, token) of ordinary subscribers
        self.issued = Figure("RequestOneTimeCode (+ read outbox)", 32, "gateway", server="gateway")
        self.next_auth = 1000
        self.facts: dict[str, Any] = {}
        self.connections_per_target = connections  # the driver's channels per gateway in the scale-out comparison

    # --- plumbing ---------------------------------------------------------------------------------

    def task(self, kind: str, clients: int, duration: float, max_count: int, **kw: Any) -> dict[str, Any]:
        if time.monotonic() + duration > self.deadline:
            raise RuntimeError("the bench would overrun its time budget (--budget)")
        before = {name: sum(map(cpu_seconds, pids)) for name, pids in self.pids.items()}
        parts = {name: cpu_seconds(pid) for name, pid in self.parts.items()}
        machine = machine_busy_seconds()
        result = self._run({"kind": kind, "concurrency": clients, "duration": duration, "max_count": max_count,
                            "month": self.month, "page_size": PAGE, **kw}, duration + 60)
        result["cpu"] = {name: sum(map(cpu_seconds, pids)) - before[name] for name, pids in self.pids.items()}
        result["parts"] = {name: cpu_seconds(pid) - parts[name] for name, pid in self.parts.items()}
        result["machine"] = machine_busy_seconds() - machine
        return result

    def figure(self, *args: Any, **kw: Any) -> Figure:
        f = Figure(*args, **kw)
        self.figures.append(f)
        return f

    def codes(self, numbers: list[str], clients: int = 32) -> dict[str, str]:
        # Each code request waits out the answer floor: about 100 a second at 32 clients.
        result = self.task("issue", clients, max(60.0, len(numbers) / 50), len(numbers), items=numbers)
        self.issued.add(result)
        if result["errors"] or len(result["codes"]) != len(numbers):
            raise RuntimeError(f"issuing codes failed: {result['errors']}")
        codes: dict[str, str] = result["codes"]
        return codes

    def settle(self, name: str = "gateway", idle: float = 0.03, limit: float = 30.0) -> float:
        """Wait until process `name` is quiet (under `idle` of a core over two 0.25 s looks in a row;
        at most `limit` seconds): issued codes leave work behind them (their SMS handed over, the
        receipts coming back), which would count against the next measurement. Returns the wait."""
        pids, started = self.pids[name], time.monotonic()
        quiet, last = 0, sum(map(cpu_seconds, pids))
        while quiet < 2 and time.monotonic() - started < limit:
            time.sleep(0.25)
            now = sum(map(cpu_seconds, pids))
            quiet = quiet + 1 if now - last < idle * 0.25 else 0
            last = now
        return time.monotonic() - started

    def sign_in(self, numbers: list[str]) -> list[tuple[str, str]]:
        codes = self.codes(numbers)
        items = [(m, self.sim.password_for(m), codes[m]) for m in numbers]
        result = self.task("auth", 16, 60, len(items), items=items)
        if result["errors"]:
            raise RuntimeError(f"signing in failed: {result['errors']}")
        return [(m, t) for m, t in result["tokens"]]

    def log(self, what: str) -> None:
        print(f"  {what}", flush=True)

    # --- scenarios --------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Channels up, 64 ordinary subscribers signed in, every path warm (the `--workers` gateway too)."""
        self.log("ready, warming up")
        self._run({"kind": "ready"}, 30)
        self.subjects = self.sign_in(seeded(1, 64))
        for path in PATHS:
            self.task("list", 16, 1.0 * self.scale, 10**6, items=self.subjects, target=path)
        if self.stack.scaled:  # every worker, over the scale-out's connections
            self.task("list", 16, 1.0 * self.scale, 10**6, items=self.subjects, target=self.stack.scaled, spread=True)

    def all(self, only: set[str] | None = None) -> tuple[list[Figure], list[Target]]:
        """Every scenario (or those named in `only`); the heavy month first, while the gateway's heap
        is still small."""
        self.prepare()
        steps = [("d", self.heavy_month), ("redis", self.redis_commands), ("b", self.list_calls),
                 ("x", self.connect_list), ("w", self.scale_out), ("auth", self.authenticate),
                 ("x", self.connect_auth), ("a", self.sessions), ("c", self.wrong_passwords), ("s", self.sms_path),
                 ("t", self.timing)]
        for name, step in steps:
            if only is None or name in only:
                began = time.monotonic()
                step()
                self.log(f"[{name}: {time.monotonic() - began:.0f} s]")
        if self.facts.get("connect"):
            self.facts["connect_table"] = self._connect_table()
        self.figures.append(self.issued)
        return self.figures, self.targets()

    def heavy_month(self) -> None:
        """(d) the heavy user's last month, ~21 pages of 1,000, and the gateway's RSS meanwhile."""
        self.log("(d) 20,000-record month")
        items = self.sign_in([HEAVY])
        for path in ("direct", "proxy"):
            self.figure(MONTH_BIG, 1, PATHS[path], unit="records/s", server=SERVER.get(path, path)).add(
                self.task("list", 1, 30, 3, items=items, target=path))
        gw = self.figure(MONTH_BIG, 1, "gateway", unit="records/s", server="gateway")
        pid = self.stack.child("gateway").pid
        with RssSampler(pid) as fast:
            gw.add(self.task("list", 1, 30, 3, items=items, target="gateway"))
        slow = self.figure(MONTH_BIG, 1, f"gateway, slow reader ({SLOW * 1000:.0f} ms/chunk)", unit="records/s",
                           server="gateway")
        with RssSampler(pid) as lazy:
            slow.add(self.task("list", 1, 60, 1, items=items, target="gateway", slow=SLOW))
        base = fast.before
        self.facts["rss_before_mb"] = base / 1024
        self.facts["rss_fast_mb"] = (fast.peak - base) / 1024
        self.facts["rss_slow_mb"] = (lazy.peak - base) / 1024
        gw.note = (f"{ratio(gw, find(self.figures, MONTH_BIG, 1, 'proxy')):.0%} of proxy; RSS {base / 1024:.0f} MB "
                   f"before, peak +{self.facts['rss_fast_mb']:.1f} MB; {gw.records // max(gw.ok, 1):,} rec")
        slow.note = f"peak RSS +{self.facts['rss_slow_mb']:.1f} MB over the same 'before'"

    def redis_commands(self, n: int = 300) -> None:
        """Redis commands per authorised ListCallDetails, one client (no batching possible) and 16."""
        assert self.stack.redis is not None
        for clients in (1, 16):
            self.log(f"Redis commands per authorised ListCallDetails, {clients} clients")
            with RedisCommands(self.stack.redis.url, idle=1.5) as rc:
                result = self.task("list", clients, 15 * self.scale, n, items=self.subjects, target="gateway")
            self.facts[f"redis_{clients}"] = rc.per_request(result["ok"])

    def list_calls(self, rounds: int = 4) -> None:
        """(b) with its baselines, interleaved in short rounds, alternating the order."""
        for clients in CLIENTS:
            self.log(f"(b) ListCallDetails at {clients} clients")
            paths = dict(PATHS)
            if clients in (1, 16):
                paths["proxy-stream"] = "bare proxy answering as a stream"
            if clients == 16 and self.stack.pki is not None:
                paths["gateway-tls"] = "gateway over mTLS"
            for n, src in enumerate(self.stack.candidates, 1):
                paths[f"gateway-c{n}"] = f"candidate gateway {n} ({src.name})"
            figs = {p: self.figure(LIST, clients, label, server=SERVER.get(p, p)) for p, label in paths.items()}
            for r in range(rounds):
                for path in list(paths) if r % 2 == 0 else list(paths)[::-1]:
                    figs[path].add(self.task("list", clients, 1.0 * self.scale, 10**6, items=self.subjects,
                                             target=path))
            for path, f in figs.items():
                if path != "direct":
                    f.note = f"{ratio(f, figs['direct']):.0%} of direct"
                if path not in ("proxy", "direct"):
                    f.note = f"{ratio(f, figs['proxy']):.0%} of proxy, " + f.note

    # --- (x) the Connect path --------------------------------------------------------------------

    def connect_ready(self) -> bool:
        if not self.stack.browser_port("gateway-tls"):
            self.log("(x) Connect: not measured (no mTLS gateway with `serve --browser-listen`)")
            return False
        if not self.facts.get("connect_warm"):  # one connection per client, opened before any is timed
            for path in ("connect-proto", "connect-json"):
                self.task("list", max(CLIENTS), 5.0, 2 * max(CLIENTS), items=self.subjects, target=path)
            self.facts["connect_warm"] = True
        return True

    def _compare(self, figs: dict[str, Figure]) -> None:
        """Notes: each Connect row against the gRPC row measured beside it; everyone's driver CPU."""
        grpc_fig = figs["gateway-tls"]
        for path, f in figs.items():
            driver = 1000 * f.cpu["driver"] / max(f.answered, 1)
            f.note = f"driver {driver:.2f} ms/call"
            if path == "gateway-tls":
                continue
            rates = ratio(f, grpc_fig)
            p50 = f.p50 / grpc_fig.p50 if grpc_fig.p50 else 0.0
            p99 = f.p99 / grpc_fig.p99 if grpc_fig.p99 else 0.0
            f.note = f"{rates:.2f}x gRPC's rate, p50 {p50:.2f}x, p99 {p99:.2f}x; " + f.note
            self.facts.setdefault("connect", []).append(
                {"scenario": f.scenario, "clients": f.clients, "path": f.path, "rate_ratio": round(rates, 3),
                 "p50_ratio": round(p50, 3), "p99_ratio": round(p99, 3), "rate": round(f.rate, 1),
                 "grpc_rate": round(grpc_fig.rate, 1), "p50_ms": round(f.p50, 3), "grpc_p50_ms": round(grpc_fig.p50, 3),
                 "p99_ms": round(f.p99, 3), "grpc_p99_ms": round(grpc_fig.p99, 3),
                 "gateway_cpu_ms": round(f.server_cpu_ms, 3), "grpc_gateway_cpu_ms": round(grpc_fig.server_cpu_ms, 3),
                 "driver_cpu_ms": round(driver, 3),
                 "grpc_driver_cpu_ms": round(1000 * grpc_fig.cpu["driver"] / max(grpc_fig.answered, 1), 3),
                 "errors": sum(f.errors.values())})

    def connect_list(self, rounds: int = 4) -> None:
        """(x) ListCallDetails on the mTLS gateway over gRPC, and over its browser listener with
        Connect, binary and JSON; interleaved in short rounds, alternating the order."""
        if not self.connect_ready():
            return
        for clients in CLIENTS:
            self.log(f"(x) ListCallDetails at {clients} clients: gRPC, Connect binary, Connect JSON")
            figs = {p: self.figure(CONNECT_LIST, clients, label, server="gateway-tls")
                    for p, label in TRANSPORTS.items()}
            for r in range(rounds):
                for path in list(figs) if r % 2 == 0 else list(figs)[::-1]:
                    figs[path].add(self.task("list", clients, 0.6 * self.scale, 10**6, items=self.subjects,
                                             target=path))
            self._compare(figs)

    def connect_auth(self, rounds: int = 4) -> None:
        """(x) Authenticate on the mTLS gateway over gRPC and over Connect, binary and JSON; every
        sign-in with a fresh code (asked for through the plaintext gateway: the same Redis)."""
        if not self.connect_ready():
            return
        for clients in CLIENTS:
            self.log(f"(x) Authenticate at {clients} clients: gRPC, Connect binary, Connect JSON")
            want = int({1: 320, 16: 700}.get(clients, 800) * self.scale)
            numbers = seeded(self.next_auth, want * len(TRANSPORTS))
            self.next_auth = int(numbers[-1][3:]) + 1
            codes = self.codes(numbers, clients=96)  # the answer floor (300 ms) paces each code request
            left = {p: [(m, self.sim.password_for(m), codes[m]) for m in numbers[k * want:(k + 1) * want]]
                    for k, p in enumerate(TRANSPORTS)}
            figs = {p: self.figure(CONNECT_AUTH, clients, label, server="gateway-tls")
                    for p, label in TRANSPORTS.items()}
            for r in range(rounds):
                for path in list(figs) if r % 2 == 0 else list(figs)[::-1]:
                    result = self.task("auth", clients, 0.35 * self.scale, len(left[path]), items=left[path],
                                       target=path)
                    figs[path].add(result)
                    used = result["ok"] + sum(result["errors"].values()) + \
                        sum(len(v) for k, v in result["latencies"].items() if k != "OK")
                    left[path] = left[path][used:]
            self._compare(figs)
            for path, f in figs.items():
                if not left[path]:
                    f.note += "; ran out of codes before the time bound"

    def _connect_table(self) -> str:
        rows = self.facts["connect"]
        lines = [f"(x) Connect against gRPC on the same gateway (TLS, the kiosk certificate on both); load client: "
                 f"{self.facts.get('connect_client', '?')}",
                 f"  {'':44} {'clients':>7} {'rate':>7} {'p50':>7} {'p99':>7}   {'gateway CPU ms/call':>19}"
                 f"   {'driver CPU ms/call':>18}",
                 f"  {'':44} {'':>7} {'ratio':>7} {'ratio':>7} {'ratio':>7}   {'Connect / gRPC':>19}"
                 f"   {'Connect / gRPC':>18}"]
        for row in rows:
            what = f"{row['scenario'].split(',')[0].removeprefix('(x) ')}, {row['path']}"
            lines.append(f"  {what:44} {row['clients']:>7} {row['rate_ratio']:>6.2f}x {row['p50_ratio']:>6.2f}x "
                         f"{row['p99_ratio']:>6.2f}x   {row['gateway_cpu_ms']:>8.2f} / "
                         f"{row['grpc_gateway_cpu_ms']:<8.2f}   {row['driver_cpu_ms']:>7.2f} / "
                         f"{row['grpc_driver_cpu_ms']:<8.2f}")
        return "\n".join(lines)

    def connections(self, name: str) -> list[int]:
        """Established connections on each worker of a `--workers` gateway (one number for a single one)."""
        child = self.stack.child(name)
        return [tcp_sockets(pid, child.port, "01") for pid in child.workers or [child.pid]]

    def scale_out(self, rounds: int = 6) -> None:
        """(b) against the one-worker gateway and the `--workers N` one, both driven over the same
        `connections` channels per target (clients spread over them), interleaved in short rounds.
        The kernel spreads connections, not calls, over the workers: the note shows how it did."""
        scaled = self.stack.scaled
        if not scaled:
            self.log("--workers: not measured (this gateway has no `serve --workers`)")
            return
        n = self.connections_per_target
        assert self.stack.redis is not None
        r = redis.Redis.from_url(self.stack.redis.url, socket_timeout=20)
        paths = {"gateway": f"gateway, 1 worker ({n} connections)",
                 scaled: f"gateway --workers {len(self.stack.child(scaled).workers)} ({n} connections)"}
        try:
            for clients in SCALE_CLIENTS:
                self.log(f"(b) ListCallDetails at {clients} clients over {n} connections: 1 worker vs --workers")
                figs = {p: self.figure(SPREAD, clients, label, server=p) for p, label in paths.items()}
                commands = {p: Counter[str]() for p in paths}  # Redis commands (scripts' included) meanwhile
                for k in range(rounds):
                    for path in list(paths) if k % 2 == 0 else list(paths)[::-1]:
                        before = commandstats(r)
                        figs[path].add(self.task("list", clients, 1.0 * self.scale, 10**6, items=self.subjects,
                                                 target=path, spread=True))
                        commands[path] += commandstats(r) - before
                        commands[path]["info"] -= 1  # our own
                for path, f in figs.items():
                    calls = max(f.answered, 1)
                    f.note = (f"Redis per call: EVALSHA {commands[path]['evalsha'] / calls:.2f}, "
                              f"all {commands[path].total() / calls:.2f}")
                one, many = figs["gateway"], figs[scaled]
                if single := find(self.figures, LIST, clients, "gateway"):
                    one.note += f"; {ratio(one, single):.0%} of the same on 1 connection"
                worker_cpu = [v for k, v in many.parts.items() if k.startswith(f"{scaled} worker")]
                split = "/".join(f"{v / max(sum(worker_cpu), 1e-9):.0%}" for v in worker_cpu)
                many.note += (f"; {ratio(many, one):.2f}x of 1 worker; connections per worker "
                              f"{'/'.join(map(str, self.connections(scaled)))}, CPU split {split}")
        finally:
            r.close()

    def authenticate(self) -> None:
        """Authenticate through the gateway against the bare proxy making the same billing call."""
        for clients in CLIENTS:
            self.log(f"Authenticate at {clients} clients")
            # Enough codes to last the time bound (about 650 sign-ins a second at 16 clients), so the
            # rate is measured over the whole window, not over a run that ends early.
            want = 500 if clients == 1 else 2000
            numbers = seeded(self.next_auth, int(want * self.scale))
            self.next_auth = int(numbers[-1][3:]) + 1
            codes = self.codes(numbers, clients=96)  # the answer floor (300 ms) paces each code request
            waited = self.settle()
            items = [(m, self.sim.password_for(m), codes[m]) for m in numbers]
            gw = self.figure(AUTH, clients, "gateway", server="gateway")
            gw.add(self.task("auth", clients, 2.0 * self.scale, len(items), items=items))
            proxy = self.figure(AUTH, clients, "bare proxy: billing VerifyServicePassword", server="proxy")
            proxy.add(self.task("verify", clients, 2.0 * self.scale, len(items),
                                items=[i[:2] for i in items], target="proxy"))
            gw.note = f"{ratio(gw, proxy):.0%} of proxy; the gateway settled {waited:.1f} s after the code requests"
            if gw.ok >= len(items):
                gw.note += "; ran out of codes before the time bound"

    def auth_load(self, clients: int, duration: float, count: int) -> Callable[[], Figure]:
        """`count` fresh codes issued now, and the load that spends them: Authenticate for at most
        `duration` seconds (under `--profile-auth`)."""
        numbers = seeded(self.next_auth, count)
        self.next_auth = int(numbers[-1][3:]) + 1
        codes = self.codes(numbers, clients=96)
        self.settle()
        items = [(m, self.sim.password_for(m), codes[m]) for m in numbers]
        return lambda: Figure(AUTH, clients, "gateway", server="gateway").add(
            self.task("auth", clients, duration, len(items), items=items))

    def sessions(self) -> None:
        """(a) RequestOneTimeCode, code from the outbox, Authenticate, ListCallDetails, EndSession."""
        people = [(m, self.sim.password_for(m)) for m in seeded(11_000, max(CLIENTS))]
        for clients in CLIENTS:
            self.log(f"(a) kiosk sessions at {clients} clients")
            f = self.figure("(a) kiosk session, 4 calls", clients, "gateway", unit="sessions/s", server="gateway")
            f.add(self.task("session", clients, 2.5 * self.scale, 10**6, items=people))
            f.note = f"{4 * f.rate:,.0f} calls/s"

    def wrong_passwords(self) -> None:
        """(c) wrong passwords, six tries per number in a row: four refusals, the lock, then locked."""
        start, unknown = 12_000, 0
        for clients in CLIENTS:
            self.log(f"(c) wrong passwords at {clients} clients")
            known = seeded(start, 500)
            start = int(known[-1][3:]) + 1
            others = [f"139{unknown + k:08d}" for k in range(500)]
            unknown += 500
            items = []
            for k, o in zip(known, others, strict=True):
                bad = f"{(int(self.sim.password_for(k)) + 1) % 1_000_000:06d}"
                items += [(k, bad)] * 6 + [(o, "123456")] * 6
            f = self.figure("(c) wrong password, half unknown numbers", clients, "gateway", server="gateway")
            f.add(self.task("wrong", clients, 2.5 * self.scale, len(items), items=items))
            f.note = ", ".join(f"{k} {n}" for k, n in f.refusals.most_common())

    def list_once(self, clients: int, duration: float, target: str = "gateway", server: str = "") -> Figure:
        """(b) once against `target` (served by process `server`, if not the same name); a `--workers`
        gateway over the scale-out's several connections."""
        spread = target == self.stack.scaled
        return Figure(SPREAD if spread else LIST, clients, target, server=server or target).add(
            self.task("list", clients, duration, 10**7, items=self.subjects, target=target, spread=spread))

    def sms_path(self) -> None:
        """(s) RequestOneTimeCode for known and unknown numbers, current gateway against each
        candidate, and the time a code takes to reach the phone (bench/sms_path.py).

        On gateways of their own with `--answer-floor 0`, so the raw cost of the call shows (the
        floor is what hides the known/unknown difference from callers), the same Redis, billing
        and SMSC simulator as the rest of the stack. Before (t), which takes what budget is left."""
        self.log("(s) SMS path: RequestOneTimeCode known/unknown at answer floor 0, code on the phone")
        billing = self.stack.child("billing").port
        plain = ["--insecure-dev", "--trust-domain", "hallgate.example"]
        started: list[tuple[str, str, Path | None]] = [("gateway-sms", "current gateway", None)]
        started += [(f"gateway-sms-c{n}", f"candidate {n} ({src.name})", src)
                    for n, src in enumerate(self.stack.candidates, 1)]
        children = []
        try:
            for name, _, src in started:
                floor = ["--answer-floor", "0"] if "--answer-floor" in serve_flags(src) else []
                children.append(self.stack._gateway(name, self.stack.workdir / name, billing, [*plain, *floor], src))
            for child in children:
                child.wait_listening()
            # Every process that submits to the shared SMSC simulator: whichever dispatcher took a
            # message did its SMPP work, so a gateway's "all" CPU counts them all (idle loops too).
            shared = [pid for c in self.stack.children if c.proc.poll() is None and c.name.startswith("gateway")
                      and self.stack.outbox_of(c.name) == self.stack.outbox and self.stack.smsc is not None
                      for pid in (c.pid, *c.workers)]
            gateways = [Gateway(name, label if "--answer-floor" in serve_flags(src) else f"{label}, no floor flag",
                                self.stack.address(name), self.stack.child(name).pid, self.stack.outbox_of(name),
                                [pid for pid in shared if pid != self.stack.child(name).pid]
                                if self.stack.outbox_of(name) == self.stack.outbox and self.stack.smsc else [])
                        for name, label, src in started]
            before = self._smsc_stats()
            seconds = max(10.0, min(90.0, self.deadline - time.monotonic() - 5))
            text, found = measure_sms(gateways, self.stack.identity, samples=int(500 * max(self.scale, 0.6)),
                                      width=4, seconds=seconds, phone=100)
            text += "\n" + self._sms_queue_line(before)
        finally:
            for child in children:
                child.stop()
        self.facts["sms_table"] = text
        self.facts["sms"] = found

    def _smsc_stats(self) -> dict[str, Any]:
        if self.stack.smsc is None:
            return {}
        try:
            stats: dict[str, Any] = json.loads(self.stack.smsc_command("stats"))
        except (OSError, ValueError):
            return {}
        return stats

    def _sms_queue_line(self, before: dict[str, Any], wait: float = 5.0) -> str:
        """The shared SMSC simulator's counters over (s), and what is left in the SMS queue once it
        had `wait` seconds to drain: nothing should be (messages waiting or dead-lettered)."""
        if self.stack.smsc is None or self.stack.redis is None:
            return "  SMS: no shared SMSC simulator (this gateway writes its own outbox)"
        r = redis.Redis.from_url(self.stack.redis.url, socket_timeout=5)
        try:
            deadline = time.monotonic() + wait
            while (depth := r.xlen(SMS_QUEUE)) and time.monotonic() < deadline:
                time.sleep(0.1)
            dead = r.xlen(SMS_DEAD)
        finally:
            r.close()
        after = self._smsc_stats()
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("submits", "accepted", "throttled", "binds")}
        return (f"  SMSC simulator during (s): {delta['submits']} submit_sm, {delta['accepted']} accepted, "
                f"{delta['throttled']} throttled, {delta['binds']} binds; {after.get('connections', '?')} SMPP "
                f"connections now; SMS queue afterwards: {depth} waiting, {dead} dead-lettered (whole run)")

    def timing(self) -> None:
        """(t) the same time for every number's state and every kind of wrong answer (bench/timing.py).

        On a gateway of its own with a 30 ms answer floor instead of the default 300 ms, so that
        9,000 samples at four concurrent callers fit in about 90 s: what the floor hides does
        not depend on its length as long as it exceeds the gateway's and billing's work."""
        assert self.stack.redis is not None
        self.log("(t) timing by group: code requests and failed sign-ins, 500+ interleaved samples each")
        child = self.stack._gateway("gateway-timing", self.stack.workdir / "gateway-timing",
                                    self.stack.child("billing").port,
                                    ["--insecure-dev", "--trust-domain", "hallgate.example", "--answer-floor", "0.03"])
        try:
            child.wait_listening()
            text, found = measure_timing(self.stack.address("gateway-timing"), self.stack.identity,
                                         self.stack.redis.url, self.sim, b"bench", samples=1000, width=4,
                                         seconds=max(30.0, min(150.0, self.deadline - time.monotonic())))
        finally:
            child.stop()
        self.facts["timing_table"] = text
        self.facts["timing_targets"] = found

    def targets(self) -> list[Target]:
        return targets(self.figures, self.facts, len(self.stack.candidates), self.stack.scaled) + \
            self.facts.get("timing_targets", [])
