"""`make bench`: the gateway's throughput, latency and memory, side by side with its limits.

Starts redis-server, the billing simulator, the gateway (plaintext, a second one on mTLS where the
gateway has it, and a third with `serve --workers 2` where it has that) and two bare pass-through
proxies, each its own process on 127.0.0.1, drives load at them from one separate Python driver
process, prints one table and the targets, and stops every process it started (by pid) however it
ends. Figures also go to bench/results/latest.json.

    .venv/bin/python -m bench.run                      # everything, about three minutes
    .venv/bin/python -m bench.run --only b,redis       # some scenarios: d, redis, b, x, w, auth, a, c, s, t
    .venv/bin/python -m bench.run --only b,x,auth      # gRPC beside Connect (binary, JSON) on the browser listener
    .venv/bin/python -m bench.run --only w             # --workers 2 against one worker
    .venv/bin/python -m bench.run --profile 10         # py-spy on the gateway under scenario (b)
    .venv/bin/python -m bench.run --profile 10 --profile-workers   # ... on the workers of --workers 2
    .venv/bin/python -m bench.run --profile 10 --profile-connect json   # ... on the mTLS gateway under Connect JSON
    .venv/bin/python -m bench.run --only b --candidate ../copy-with-a-change   # A/B a gateway change
    .venv/bin/python -m bench.run --only s,t --candidate /tmp/hallgate-base   # the SMS path against a base

Where the gateway sends codes over SMPP (`serve --sms-url`), the stack runs one SMSC simulator
(`hallgate smsc-sim`) that every such gateway submits to (they share one Redis, hence one SMS
queue), writing what phones receive to the "gateway" data directory's sms-outbox.jsonl; an older
candidate without the flag writes its own outbox, where the driver reads that candidate's codes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from bench import driver as driver_module
from bench.connect_path import describe as connect_client
from bench.procs import KIOSK_CERT, REPO, Stack
from bench.profile import summarize
from bench.report import Figure, error_lines, table, targets_table
from bench.scenarios import Scenarios
from bench.targets import Target

RESULTS = REPO / "bench" / "results"


class DriverProcess:
    """The load driver in a spawned process; each task must answer within its own bound."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_end = ctx.Pipe()
        self.proc = ctx.Process(target=driver_module.serve, args=(child_end, cfg), name="bench-driver", daemon=True)

    def start(self) -> DriverProcess:
        self.proc.start()
        return self

    def run(self, task: dict[str, Any], limit: float) -> dict[str, Any]:
        self.conn.send(task)
        if not self.conn.poll(limit):
            raise TimeoutError(f"driver task {task['kind']} did not finish within {limit:.0f}s")
        result: dict[str, Any] = self.conn.recv()
        if "failure" in result:
            raise RuntimeError(f"driver task {task['kind']} failed: {result['failure']}")
        return result

    def stop(self) -> None:
        if self.proc.pid is None:
            return
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def profile(stack: Stack, bench: Scenarios, seconds: float, out: Path, clients: int = 16,
            target: str = "gateway", load: str = "", auth: int = 0) -> str:
    """py-spy on the gateway (on each worker of a `--workers` one) while scenario (b) runs against
    it (or against `load`: "connect-proto"/"connect-json", its browser listener, scenario x; or
    Authenticate with `auth` fresh codes, issued before sampling starts); returns where the time
    went, the workers' samples merged."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return "py-spy not installed (.venv/bin/pip install py-spy)"
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(".raw")
    child = stack.child(target)
    pids = child.workers or [child.pid]
    # --gil: only the thread holding the GIL, i.e. where the event loop's time goes.
    # Codes are issued before py-spy attaches: a code request waits out the answer floor, and
    # its time is not Authenticate's.
    start_auth = bench.auth_load(clients, seconds + 1.5, auth) if auth else None
    procs = [subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(int(seconds)), "--gil", "-f", "raw",
                               "-o", str(raw.with_suffix(f".{pid}.raw"))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for pid in pids]
    errors = b""
    try:
        time.sleep(0.5)  # let py-spy attach before the load starts
        fig = start_auth() if start_auth else bench.list_once(clients, seconds + 1.5, load or target, server=target)
        for proc in procs:
            errors += proc.communicate(timeout=seconds + 30)[1]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    parts = [raw.with_suffix(f".{pid}.raw") for pid in pids]
    if not all(part.exists() for part in parts):
        return f"py-spy wrote nothing: {errors.decode(errors='replace')[-400:]}"
    raw.write_text("".join(part.read_text() for part in parts))
    for part in parts:
        part.unlink()
    who = f"each of the {len(pids)} workers of {target}" if child.workers else "the gateway"
    scenario = "Authenticate" if auth else f"scenario (x) over {load}" if load else "scenario (b)"
    summary = (f"py-spy --gil on {who}, {scenario} at {clients} clients: {fig.rate:,.0f} req/s, "
               f"{fig.server_cpu_ms:.2f} ms gateway CPU per call, "
               f"{sum(fig.errors.values())} errors while sampled\n" + summarize(raw))
    out.write_text(summary + "\n")
    return summary


def revision() -> str:
    """The commit the gateway was measured at, and whether the working tree differed from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gateway", "adapters"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return f"{rev or '?'}{' + uncommitted changes in gateway/ or adapters/' if dirty else ''}"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def environment(connections: int = 8, load_before: str = "?") -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return (f"commit {revision()}; nproc {os.cpu_count()} ({cpu}), load average (1, 5, 15 min) {load_before} "
            f"before, {loadavg()} after; "
            f"Python {platform.python_version()}, grpcio {grpc.__version__}; "
            "load driver: Python grpc.aio, one process, N concurrent calls on one channel per target "
            f"({connections} channels, i.e. TCP connections, per gateway in the --workers comparison), "
            f"sharing the {os.cpu_count()} cores with the gateways, billing simulator, proxies and redis-server")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="half the durations (a smoke run)")
    p.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                   help="instead of the scenarios, sample the gateway with py-spy under scenario (b)")
    p.add_argument("--profile-clients", type=int, default=16, metavar="N", help="clients while profiling [16]")
    p.add_argument("--profile-auth", type=int, default=0, metavar="CODES",
                   help="with --profile: sample the gateway under Authenticate instead, with this many fresh codes "
                        "(issued before sampling; about 600 are used a second at 16 clients)")
    p.add_argument("--profile-workers", action="store_true",
                   help="profile the workers of the `--workers` gateway instead (load over --connections channels)")
    p.add_argument("--json", type=Path, default=RESULTS / "latest.json", help="where to write the figures")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds the whole run may take [270, and 60 more when scenario x runs]")
    p.add_argument("--only", metavar="LIST",
                   help="comma-separated subset of d,redis,b,x,w,auth,a,c,s,t (default: all); s: the SMS path "
                        "(code request known/unknown at answer floor 0, against each --candidate; code on the phone); "
                        "x: ListCallDetails and Authenticate on the mTLS gateway over gRPC and over its browser "
                        "listener with Connect, binary and JSON (bench/connect_path.py)")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="worker processes of the scaled gateway in scenario w [2]")
    p.add_argument("--connections", type=int, default=8, metavar="N",
                   help="channels (TCP connections) per gateway in scenario w, clients spread over them [8]")
    p.add_argument("--profile-connect", choices=("grpc", "proto", "json"),
                   help="with --profile: sample the mTLS gateway instead, under ListCallDetails over gRPC or over "
                        "its browser listener with Connect (binary or JSON)")
    p.add_argument("--connect-http2", action="store_true",
                   help="scenario x: one HTTP/2 connection per client instead of HTTP/1.1")
    p.add_argument("--connect-client", choices=("thin", "connectrpc"), default="thin",
                   help="scenario x's load client: the thin one of bench/connect_path.py [thin], or connectrpc's "
                        "generated client (slower: the driver becomes the bottleneck on JSON)")
    p.add_argument("--candidate", type=Path, metavar="DIR", action="append", default=[],
                   help="also run the gateway of this checkout (a copy with a proposed change) in scenarios (b) "
                        "and (s); repeatable")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops the children

    t0, load_before = time.monotonic(), loadavg()
    only = set(args.only.split(",")) if args.only else None
    if args.budget is None:
        args.budget = 270 + (60 if only is None or "x" in only else 0)
    workers = args.workers if (args.profile_workers if args.profile else only is None or "w" in only) else 0
    workdir = Path(tempfile.mkdtemp(prefix="hallgate-bench-"))
    stack = Stack(workdir, candidates=[c.resolve() for c in args.candidate], workers=workers)
    driver: DriverProcess | None = None
    try:
        print(f"starting redis-server, billing simulator, gateway and proxy under {workdir}", file=sys.stderr)
        stack.start()
        assert stack.redis is not None
        names = [c.name for c in stack.children if c.name not in ("billing", "smsc-sim", stack.scaled)]
        addresses = {name: stack.address(name) for name in names if name != "gateway-tls" or stack.pki}
        spread = {name: stack.address(name) for name in ("gateway", stack.scaled)} if stack.scaled else {}
        cfg = {"targets": addresses | {"direct": stack.address("billing")}, "outbox": str(stack.outbox),
               "outboxes": {name: str(stack.outbox_of(name)) for name in addresses if name.startswith("gateway")},
               "identity": stack.identity, "pki": str(stack.pki or ""), "kiosk_cert": KIOSK_CERT,
               "spread": spread, "connections": args.connections,
               "browser": f"127.0.0.1:{browser}" if (browser := stack.browser_port("gateway-tls")) else "",
               "browser_http2": args.connect_http2, "connect_client": args.connect_client}
        driver = DriverProcess(cfg).start()
        assert driver.proc.pid is not None
        bench = Scenarios(stack, driver.run, driver.proc.pid, scale=0.5 if args.quick else 1.0,
                          deadline=t0 + args.budget, connections=args.connections)
        bench.facts["connect_client"] = connect_client(args.connect_client, args.connect_http2)
        if args.profile:
            bench.prepare()
            target = stack.scaled if args.profile_workers else "gateway"
            if not target:
                raise RuntimeError("--profile-workers: this gateway has no `serve --workers`")
            name = f"profile-{'workers-' * args.profile_workers}{args.profile_clients}.txt"
            load = ""
            if args.profile_connect:
                if not stack.browser_port("gateway-tls"):
                    raise RuntimeError("--profile-connect: no mTLS gateway with a browser listener")
                target = "gateway-tls"
                load = "gateway-tls" if args.profile_connect == "grpc" else f"connect-{args.profile_connect}"
                bench.connect_ready()  # the clients' connections open before sampling
                name = f"profile-connect-{args.profile_connect}-{args.profile_clients}.txt"
            if args.profile_auth:
                name = f"profile-auth-{args.profile_clients}.txt"
            print(profile(stack, bench, args.profile, RESULTS / name, args.profile_clients, target, load,
                          args.profile_auth))
            return 0
        figures, targets = bench.all(only)
    except BaseException:
        for c in stack.children:
            if c.proc.poll() is not None:
                print(f"--- {c.name} exited with {c.proc.returncode}:\n{c.tail()}", file=sys.stderr)
        raise
    finally:
        if driver is not None:
            driver.stop()
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nhallgate bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {time.monotonic() - t0:.0f} s; "
          f"{environment(args.connections, load_before)}\n")
    print(table(figures))
    for line in error_lines(figures):
        print(line)
    for key in ("connect_table", "sms_table", "timing_table"):
        if bench.facts.get(key):
            print("\n" + bench.facts[key])
    print()
    print(targets_table(targets))
    write_json(args.json, figures, targets, environment(args.connections, load_before), bench.facts.get("sms"),
               {"client": bench.facts["connect_client"], "ratios": bench.facts["connect"]}
               if bench.facts.get("connect") else None)
    return 1 if any(f.errors for f in figures) else 0


def write_json(path: Path, figures: list[Figure], targets: list[Target], env: str,
               sms: dict[str, Any] | None = None, connect: dict[str, Any] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "environment": env,
        "figures": [{"scenario": f.scenario, "clients": f.clients, "path": f.path, "rate": round(f.rate, 1),
                     "unit": f.unit, "p50_ms": round(f.p50, 3), "p99_ms": round(f.p99, 3), "ok": f.ok,
                     "errors": dict(f.errors), "refusals": dict(f.refusals), "note": f.note,
                     "outside_load": round(f.outside, 3),
                     "cpu_ms_per_call": {k: round(1000 * v / max(f.answered, 1), 3) for k, v in f.cpu.items()},
                     "machine_busy": round(f.busy + f.outside, 3),
                     "worker_cpu_ms_per_call": {k: round(1000 * v / max(f.answered, 1), 3) for k, v in f.parts.items()
                                                if k.startswith(f"{f.server} worker")}}
                    for f in figures],
        "targets": [{"name": t.name, "wanted": t.wanted, "measured": t.measured, "verdict": t.verdict}
                    for t in targets],
        "sms_path": sms,
        "connect_path": connect,
    }, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
