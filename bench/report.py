"""Figures from the driver's raw results, the one table printed at the end, and the targets."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.measure import percentile


@dataclass
class Figure:
    """One path under one load: several driver runs (rounds) of it merged."""

    scenario: str
    clients: int
    path: str
    unit: str = "req/s"
    ok: int = 0
    records: int = 0
    elapsed: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)  # expected denials on the deny path
    latencies: list[float] = field(default_factory=list)
    cpu: Counter[str] = field(default_factory=Counter)  # CPU seconds each of our processes used meanwhile
    parts: Counter[str] = field(default_factory=Counter)  # CPU seconds of each worker of a `--workers` gateway
    machine: float = 0.0  # CPU seconds the whole machine was busy meanwhile, other people's work included
    server: str = ""  # the process the driver talks to: gateway, proxy or billing
    note: str = ""

    def add(self, result: dict[str, Any]) -> Figure:
        self.ok += result["ok"]
        self.records += result["records"]
        self.elapsed += result["elapsed"]
        self.errors.update(result["errors"])
        self.cpu.update(result.get("cpu", {}))
        self.parts.update(result.get("parts", {}))
        self.machine += result.get("machine", 0.0)
        for label, values in result["latencies"].items():
            self.latencies += values
            if label != "OK":
                self.refusals[label] += len(values)
        return self

    @property
    def rate(self) -> float:
        """Answered calls per second (refusals included on the deny path), or records per second."""
        done = self.records if self.unit == "records/s" else self.answered
        return done / self.elapsed if self.elapsed else 0.0

    @property
    def answered(self) -> int:
        return self.ok + sum(self.refusals.values())

    @property
    def server_cpu_ms(self) -> float:
        """CPU milliseconds the serving process spent per answered call (per stream for months)."""
        return 1000 * self.cpu[self.server] / self.answered if self.answered and self.server else 0.0

    @property
    def path_cpu_ms(self) -> float:
        """CPU milliseconds all of the bench's processes (driver included) spent per answered call."""
        return 1000 * sum(self.cpu.values()) / self.answered if self.answered else 0.0

    def _share(self, seconds: float) -> float:
        return seconds / (self.elapsed * (os.cpu_count() or 1)) if self.elapsed else 0.0

    @property
    def busy(self) -> float:
        """Share of the machine's cores the bench's own processes kept busy."""
        return self._share(sum(self.cpu.values()))

    @property
    def outside(self) -> float:
        """Share of the machine's cores busy with work that is not the bench's: noise."""
        return max(0.0, self._share(self.machine - sum(self.cpu.values())))

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99) * 1000


def ratio(a: Figure | None, b: Figure | None) -> float:
    return a.rate / b.rate if a and b and b.rate else 0.0


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def table(figures: list[Figure]) -> str:
    rows = ["| scenario | clients | path | rate | p50 ms | p99 ms | errors | server CPU ms/call | all CPU ms/call "
            "| busy: bench+other | notes |",
            "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    for f in figures:
        errors = sum(f.errors.values())
        shown = f"**{errors}**" if errors else "0"
        rows.append(f"| {f.scenario} | {f.clients} | {f.path} | {_num(f.rate)} {f.unit} | {f.p50:.2f} | "
                    f"{f.p99:.2f} | {shown} | {f.server_cpu_ms:.2f} {f.server} | {f.path_cpu_ms:.2f} | "
                    f"{f.busy:.0%}+{f.outside:.0%} | {f.note} |")
    return "\n".join(rows)


def error_lines(figures: list[Figure]) -> list[str]:
    return [f"errors in {f.scenario} / {f.clients} clients / {f.path}: "
            + ", ".join(f"{k}x{n}" for k, n in f.errors.most_common()) for f in figures if f.errors]


def targets_table(targets: list[Any]) -> str:
    rows = ["| target | wanted | measured | |", "|---|---|---|---|"]
    rows += [f"| {t.name} | {t.wanted} | {t.measured} | {t.verdict} |" for t in targets]
    return "\n".join(rows)
