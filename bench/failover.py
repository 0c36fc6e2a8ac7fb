"""`make soak-failover`: the Redis failover window as a caller sees it, with audit replicas = 1.

For each configuration (Sentinel with 1 replica per master, then with 2), on loopback: Debian's
redis-server and redis-sentinel (tests/support/topologies.py: quorum 2 of 3, down-after 1000 ms,
failover-timeout 3000 ms, appendonly yes, appendfsync always), two `hallgate serve` processes and a
billing simulator (the Deployment of tests/e2e/test_topologies.py) with HALLGATE_AUDIT_REPLICAS=1.
A client calls RequestOneTimeCode (audited, a fresh number each time) at a fixed rate through both
gateways in turn, from outside over mutual TLS. After a baseline the master is SIGKILLed; if the
gateways have not recovered RESTART_AFTER s later, the old master is started again (the sentinels
make it a replica of the new master). Measured from the kill:

  window      until the first OK answer of a call sent after the kill
  promoted    until a replica answers as master
  rejoined    until the old master, restarted, is a replica of the new one with its link up
  refusals    the UNAVAILABLE answers of the calls sent in the window: count, p50, p99, max seconds,
              and those sent after the promotion apart (where audit replicas decide)

Every call sent after the recovery must answer OK, no answer may be other than OK or UNAVAILABLE, and
every acknowledged call's audit event must be in the chain, which verifies. Everything is bounded
(HARD_LIMIT s after the kill; about 1.5 minutes in all) and every process is stopped by its pid.

    .venv/bin/python -m bench.failover                 # both configurations, side by side
    .venv/bin/python -m bench.failover --replicas 2    # one of them
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc

from adapters.dev_pki import ensure_dev_pki
from hallgate_pb.v1 import kiosk_pb2
from tests.e2e.test_topologies import Deployment, acknowledged_missing, audit, deployment, numbers
from tests.support.tls import TRUST_DOMAIN
from tests.support.topologies import RedisSentinelTopology, ServerProcess, running_sentinel

Code = grpc.StatusCode
RATE = 10.0  # calls per second, both gateways in turn
BASELINE = 2.0  # seconds of calls before the kill
RESTART_AFTER = 20.0  # seconds after the kill: the old master comes back, unless recovered already
AFTER_RECOVERY = 3.0  # seconds of calls after the first success
HARD_LIMIT = 45.0  # seconds after the kill at most
CALL_TIMEOUT = 10.0


@dataclass
class Call:
    msisdn: str
    gateway: str
    sent: float
    done: float = 0.0
    code: grpc.StatusCode | None = None

    @property
    def took(self) -> float:
        return self.done - self.sent


@dataclass
class Run:
    replicas: int
    calls: list[Call] = field(default_factory=list)
    killed_at: float = 0.0
    promoted_at: float | None = None
    restarted_at: float | None = None
    rejoined_at: float | None = None
    recovered_at: float | None = None
    lost: list[str] = field(default_factory=list)


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _role(node: ServerProcess) -> dict[str, Any]:
    try:
        with node.client(0.5) as c:
            return dict(c.info("replication"))
    except Exception:
        return {}


def _watch(topology: RedisSentinelTopology, old: ServerProcess, run: Run, stop: threading.Event) -> None:
    """Note when a replica answers as master (promoted), and when the old master, once restarted,
    is a replica with its link up (rejoined); polled every 0.1 s."""
    while not stop.is_set():
        now = time.monotonic()
        if run.promoted_at is None and any(_role(n).get("role") == "master"
                                           for n in topology.data if n is not old and n.running):
            run.promoted_at = now
        if run.restarted_at is not None and run.rejoined_at is None and old.running:
            state = _role(old)
            if state.get("role") == "slave" and state.get("master_link_status") == "up":
                run.rejoined_at = now
        stop.wait(0.1)


def soak(d: Deployment, topology: RedisSentinelTopology, run: Run) -> None:
    pool = iter(numbers(100, 1100))
    stubs = [(gw.address, d.kiosk(gw)) for gw in (d.a, d.b)]
    lock = threading.Lock()
    pending: list[grpc.Future] = []

    def send(i: int) -> None:
        address, stub = stubs[i % 2]
        call = Call(next(pool), address, time.monotonic())
        future = stub.RequestOneTimeCode.future(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=call.msisdn),
                                                timeout=CALL_TIMEOUT)

        def done(f: grpc.Future) -> None:
            call.done = time.monotonic()
            call.code = f.code()
            if call.code == Code.OK and run.killed_at and call.sent > run.killed_at and run.recovered_at is None:
                run.recovered_at = call.done

        with lock:
            run.calls.append(call)
            pending.append(future)
        future.add_done_callback(done)

    stop = threading.Event()
    watcher: threading.Thread | None = None
    old: ServerProcess | None = None
    started = next_at = time.monotonic()
    i = 0
    try:
        while True:
            now = time.monotonic()
            if not run.killed_at and now - started >= BASELINE:
                old = topology.master()
                run.killed_at = time.monotonic()
                old.kill()
                watcher = threading.Thread(target=_watch, args=(topology, old, run, stop), daemon=True)
                watcher.start()
            if run.killed_at:
                since = now - run.killed_at
                if run.recovered_at is not None and now - run.recovered_at >= AFTER_RECOVERY:
                    break
                if since >= HARD_LIMIT:
                    break
                if old is not None and run.restarted_at is None and run.recovered_at is None and since >= RESTART_AFTER:
                    run.restarted_at = time.monotonic()
                    old.start()  # same port, directory and configuration: the sentinels demote it
            if now >= next_at:
                send(i)
                i += 1
                next_at += 1 / RATE
            time.sleep(max(0.0, min(0.01, next_at - time.monotonic())))
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=5)
        for f in list(pending):  # every call has its own deadline: bounded
            with contextlib.suppress(Exception):
                f.exception(timeout=CALL_TIMEOUT + 5)
    events = audit(d)  # every chain verifies (asserted there)
    run.lost = acknowledged_missing(events, [(c.msisdn, c.gateway, c.code) for c in run.calls])


def measure(replicas: int, base: Path, pki: Path) -> Run:
    run = Run(replicas)
    (base / f"gw-{replicas}").mkdir()
    with running_sentinel(base / f"redis-{replicas}", replicas=replicas) as topology, \
            deployment(topology.url, pki, base / f"gw-{replicas}", HALLGATE_AUDIT_REPLICAS="1") as d:
        # warm up: both gateways answer OK (connections, scripts, the audit chain's head)
        pool = iter(numbers(1300, 50))
        for gw in (d.a, d.b, d.a, d.b):
            d.kiosk(gw).RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=next(pool)), timeout=10)
        soak(d, topology, run)
    return run


def summary(run: Run) -> dict[str, Any]:
    k = run.killed_at
    window_end = run.recovered_at if run.recovered_at is not None else math.inf
    after = [c for c in run.calls if c.sent > k]
    in_window = [c for c in after if c.sent < window_end]
    refused = [c for c in in_window if c.code == Code.UNAVAILABLE]
    promoted = run.promoted_at
    refused_promoted = [c for c in refused if promoted is not None and c.sent >= promoted]
    took = [c.took for c in refused]
    took_promoted = [c.took for c in refused_promoted]
    ok = [c.took for c in run.calls if c.code == Code.OK]

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - k, 2)

    return {
        "replicas per master": run.replicas,
        "calls": len(run.calls),
        "window s (kill → first OK)": rel(run.recovered_at),
        "promoted s (kill → a replica is master)": rel(promoted),
        "old master restarted s": rel(run.restarted_at),
        "old master linked as a replica s": rel(run.rejoined_at),
        "recovered before the old master returned": (run.recovered_at is not None
                                                     and (run.restarted_at is None
                                                          or run.recovered_at < run.restarted_at)),
        "recovered s after it linked": (None if run.rejoined_at is None or run.recovered_at is None
                                        else round(run.recovered_at - run.rejoined_at, 2)),
        "UNAVAILABLE in the window": len(refused),
        "refusal p50 s": _r(pct(took, 50)),
        "refusal p99 s": _r(pct(took, 99)),
        "refusal max s": _r(max(took, default=None)),
        "UNAVAILABLE after promotion": len(refused_promoted),
        "… p50 s": _r(pct(took_promoted, 50)),
        "… p99 s": _r(pct(took_promoted, 99)),
        "other statuses": sorted({c.code.name if c.code is not None else "none" for c in run.calls
                                  if c.code not in (Code.OK, Code.UNAVAILABLE)}),
        "UNAVAILABLE after recovery": sum(1 for c in after if c.code == Code.UNAVAILABLE and c.sent > window_end),
        "OK p50 s (0.3 s answer floor)": _r(pct(ok, 50)),
        "acknowledged events lost": len(run.lost),
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def table(rows: list[dict[str, Any]]) -> str:
    names = [f"{r['replicas per master']} replica{'s' if r['replicas per master'] > 1 else ''} per master"
             for r in rows]
    keys = [k for k in rows[0] if k != "replicas per master"]
    width = max(len(k) for k in keys)
    out = [f"| {'audit replicas = 1':<{width}} | " + " | ".join(names) + " |",
           f"|{'-' * (width + 2)}|" + "|".join("-" * (len(n) + 2) for n in names) + "|"]
    for k in keys:
        cells = ["—" if r[k] is None or r[k] == [] else str(r[k]) for r in rows]
        padded = [f"{c:<{len(n)}}" for c, n in zip(cells, names, strict=True)]
        out.append(f"| {k:<{width}} | " + " | ".join(padded) + " |")
    return "\n".join(out)


@contextlib.contextmanager
def _terminated_cleanly() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every process started is stopped by its pid."""
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--replicas", type=int, action="append", choices=(1, 2),
                        help="replicas per master (repeatable); default: 1 and 2")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    rows = []
    started = time.monotonic()
    with _terminated_cleanly(), tempfile.TemporaryDirectory(prefix="hallgate-failover-") as tmp:
        base = Path(tmp)
        pki = ensure_dev_pki(base / "pki", TRUST_DOMAIN)
        for replicas in args.replicas or [1, 2]:
            print(f"sentinel, {replicas} replica(s) per master, audit replicas 1: SIGKILL the master ...",
                  file=sys.stderr, flush=True)
            rows.append(summary(measure(replicas, base, pki)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    print(f"\n(rate {RATE:g} calls/s through two gateways, RequestOneTimeCode; old master restarted "
          f"{RESTART_AFTER:g} s after the kill unless recovered; {time.monotonic() - started:.0f} s in all)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    bad = [r for r in rows if r["window s (kill → first OK)"] is None or r["other statuses"]
           or r["UNAVAILABLE after recovery"] or r["acknowledged events lost"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
