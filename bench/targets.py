"""The issue's targets, read off the figures: printed as pass/fail, never asserted.

Throughput ratios come three ways, because the machine is small and shared: as measured (same run,
interleaved), as the CPU-bound estimate for this box (CPU per call of every process on the path,
driver included), and per hop alone (the gateway's own CPU per call against the proxy's). The
scale-out ratio (`--workers N` against one worker) also shows how many cores each side used and
how busy the machine was, since on two cores shared with everything else that is what bounds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.report import Figure, ratio

LIST = "(b) ListCallDetails, one month (~200 rec)"
AUTH = "Authenticate"
MONTH_BIG = "(d) 20,000-record month"
SPREAD = "(b) ListCallDetails, clients spread over connections"
CONNECT_LIST = "(x) ListCallDetails, one month (~200 rec), gateway on TLS"  # gRPC and Connect, one gateway
CONNECT_AUTH = "(x) Authenticate, gateway on TLS"
SCALE_OUT_CPU = 1.1  # --workers 2: gateway CPU per call at most this times one worker's (issue 18)
GATEWAY_CPU_MS = 0.9  # gateway CPU per authorised ListCallDetails at 16 clients (issue 18)
NOISY = 0.15  # outside load (share of all cores) above which a comparison is flagged
SMS_RATIO = 1.10  # (s): the current gateway's known-number p50 against a candidate's
SMS_GAP_MS = 0.3  # (s): known - unknown median at answer floor 0
SMS_SAMPLES = 300  # (s): samples each group needs for either verdict


@dataclass
class Target:
    name: str
    wanted: str
    measured: str
    passed: bool | None  # None: not measurable yet

    @property
    def verdict(self) -> str:
        return "-" if self.measured == "not run" else "n/a" if self.passed is None else \
            "PASS" if self.passed else "FAIL"


def find(figures: list[Figure], scenario: str, clients: int, server: str) -> Figure | None:
    return next((f for f in figures if (f.scenario, f.clients, f.server) == (scenario, clients, server)), None)


def _cpu_view(a: Figure | None, b: Figure | None) -> str:
    """The measured ratio's two CPU-based companions, and a warning when others loaded the machine."""
    if not (a and b and a.path_cpu_ms and a.server_cpu_ms):
        return ""
    text = (f" (CPU-bound estimate {b.path_cpu_ms / a.path_cpu_ms:.0%}; hop alone "
            f"{b.server_cpu_ms / a.server_cpu_ms:.0%}: {a.server_cpu_ms:.2f} vs {b.server_cpu_ms:.2f} ms/call)")
    noise = max(a.outside, b.outside)
    return text + (f"; noisy, other load {noise:.0%} of the cores" if noise > NOISY else "")


def _throughput(figures: list[Figure], name: str, scenario: str, server: str, baseline: str,
                wanted: float, what: str) -> Target:
    a, b = find(figures, scenario, 16, server), find(figures, scenario, 16, baseline)
    if a is None or b is None:
        return Target(name, f">= {wanted:.0%} of {what}", "not run", None)
    r = ratio(a, b)
    return Target(name, f">= {wanted:.0%} of {what}", f"{r:.0%}{_cpu_view(a, b)}", r >= wanted)


def _names(counts: dict[str, float]) -> str:
    return ", ".join(f"{k.upper()} {v:.2f}" for k, v in sorted(counts.items()))


def _redis(clients: int, c: dict[str, Any]) -> Target:
    sent = sum(c["sent"].values())
    text = f"{sent:.2f}: {_names(c['sent'])}; {c['all']:.2f} counting what scripts ran ({_names(c['lua'])})"
    if c["rare"]:
        text += f"; not per request: {_names(c['rare'])}"
    return Target(f"Redis commands per authorised ListCallDetails, {clients} client{'s' * (clients > 1)}",
                  "<= 2 (EVALSHA counts once)", text, 0 < sent <= 2)


def _scale_out(figures: list[Figure], clients: int, scaled: str) -> Target:
    """Issue 18: the workers must not cost more CPU per call than one process does (within 10 %);
    their throughput on this 2-core box, shared with the driver, billing and Redis, cannot show
    scale-out, so the text projects it: calls per second per core where the gateway has its cores
    to itself (1000 / gateway CPU ms per call)."""
    workers = scaled.removeprefix("gateway-w") or "2"
    name = f"--workers {workers} vs one worker, ListCallDetails, {clients} clients: gateway CPU per call"
    wanted = f"<= {SCALE_OUT_CPU}x one worker's"
    one, many = find(figures, SPREAD, clients, "gateway"), find(figures, SPREAD, clients, scaled)
    if one is None or many is None or not one.elapsed or not many.elapsed or not one.server_cpu_ms:
        return Target(name, wanted, "not run", None)
    cpu = many.server_cpu_ms / one.server_cpu_ms
    text = (f"{cpu:.2f}x ({one.server_cpu_ms:.2f} -> {many.server_cpu_ms:.2f} ms); projected per core with the "
            f"gateway's cores to itself: {1000 / one.server_cpu_ms:,.0f} -> {1000 / many.server_cpu_ms:,.0f} req/s, "
            f"i.e. {int(workers) * 1000 / many.server_cpu_ms:,.0f} req/s on {workers} cores; measured here "
            f"{ratio(many, one):.2f}x ({one.rate:,.0f} -> {many.rate:,.0f} req/s), machine busy "
            f"{one.busy + one.outside:.0%} / {many.busy + many.outside:.0%} (other load {one.outside:.0%} / "
            f"{many.outside:.0%}), gateway cores used {one.cpu['gateway'] / one.elapsed:.2f} / "
            f"{many.cpu[scaled] / many.elapsed:.2f}, all CPU per call {one.path_cpu_ms:.2f} -> "
            f"{many.path_cpu_ms:.2f} ms")
    return Target(name, wanted, text, cpu <= SCALE_OUT_CPU)


def _gateway_cpu(figures: list[Figure], server: str = "gateway") -> Target:
    name = "Gateway CPU per authorised ListCallDetails, 16 clients"
    if server != "gateway":
        name = f"candidate {server[-1]}: {name}"
    gw, px = find(figures, LIST, 16, server), find(figures, LIST, 16, "proxy")
    if gw is None or not gw.server_cpu_ms:
        return Target(name, f"<= {GATEWAY_CPU_MS} ms", "not run", None)
    beside = f" (bare proxy {px.server_cpu_ms:.2f} ms)" if px and px.server_cpu_ms else ""
    return Target(name, f"<= {GATEWAY_CPU_MS} ms", f"{gw.server_cpu_ms:.2f} ms{beside}",
                  gw.server_cpu_ms <= GATEWAY_CPU_MS)


def _sms(facts: dict[str, Any]) -> list[Target]:
    """(s), bench/sms_path.py: the code request against each candidate's, and the gap between a
    known and an unknown number on the current gateway with no answer floor."""
    slower = "RequestOneTimeCode no slower than the candidate (known number, p50, answer floor 0)"
    wanted = f"<= {SMS_RATIO:.2f}x candidate"
    gap_name = "RequestOneTimeCode known/unknown gap, answer floor 0 (raw path; the floor hides it)"
    s = facts.get("sms")
    if s is None:
        return [Target(slower, wanted, "not run", None), Target(gap_name, f"<= {SMS_GAP_MS} ms", "not run", None)]
    cur = s["gateways"][s["current"]]
    found = [] if s["candidates"] else [Target(slower, wanted, "not run", None)]
    for n, name in enumerate(s["candidates"], 1):
        k, c = cur["known"], s["gateways"][name]["known"]
        r = k["p50_ms"] / c["p50_ms"] if c["p50_ms"] else float("inf")
        found.append(Target(f"candidate {n}: {slower}", wanted,
                            f"{r:.2f}x ({k['p50_ms']:.3f} vs {c['p50_ms']:.3f} ms; n {k['n']} / {c['n']})",
                            r <= SMS_RATIO and min(k["n"], c["n"]) >= SMS_SAMPLES))
    k, u = cur["known"], cur["unknown"]
    gap, n = k["median_ms"] - u["median_ms"], min(k["n"], u["n"])
    found.append(Target(gap_name, f"<= {SMS_GAP_MS} ms",
                        f"{gap:+.3f} ms (median {k['median_ms']:.3f} known, {u['median_ms']:.3f} unknown; p90 "
                        f"{k['p90_ms']:.3f} / {u['p90_ms']:.3f}) over >= {n} samples each",
                        abs(gap) <= SMS_GAP_MS and n >= SMS_SAMPLES))
    return found


def targets(figures: list[Figure], facts: dict[str, Any], candidates: int = 0, scaled: str = "") -> list[Target]:
    t = [_throughput(figures, "ListCallDetails throughput, 16 clients", LIST, "gateway", "proxy", 0.8,
                     "bare proxy")]
    t += [_throughput(figures, f"candidate {n}: ListCallDetails throughput, 16 clients", LIST, f"gateway-c{n}",
                      "proxy", 0.8, "bare proxy") for n in range(1, candidates + 1)]
    t.append(_throughput(figures, "Authenticate throughput, 16 clients", AUTH, "gateway", "proxy", 0.75,
                         "bare proxy making the same billing call"))
    t += [_gateway_cpu(figures, server) for server in ["gateway"] + [f"gateway-c{n}" for n in range(1, candidates + 1)]]
    for server in ["gateway"] + [f"gateway-c{n}" for n in range(1, candidates + 1)]:
        gw, px = find(figures, LIST, 1, server), find(figures, LIST, 1, "proxy")
        if gw and px:
            d50, d99 = gw.p50 - px.p50, gw.p99 - px.p99
            who = "" if server == "gateway" else f"candidate {server[-1]}: "
            t.append(Target(f"{who}added latency p50, 1 client", "<= 1 ms over bare proxy", f"{d50:+.2f} ms",
                            d50 <= 1))
            t.append(Target(f"{who}added latency p99, 1 client", "<= 2 ms over bare proxy", f"{d99:+.2f} ms",
                            d99 <= 2))
    for clients in (1, 16):
        if f"redis_{clients}" in facts:
            t.append(_redis(clients, facts[f"redis_{clients}"]))
    for key, what in (("rss_fast_mb", "fast reader"), ("rss_slow_mb", "slow reader")):
        mb = facts.get(key)
        t.append(Target(f"20,000-record month, gateway RSS, {what}", "< +20 MB",
                        "not run" if mb is None else f"+{mb:.1f} MB", None if mb is None else mb < 20))
    t += [_scale_out(figures, clients, scaled or "gateway-w2") for clients in (16, 64)]
    return t + _sms(facts)
