"""What the orchestrator measures beside the driver: the gateway's memory and its Redis commands."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

IDLE, LOAD, PAUSE, STOP = "bench-idle", "bench-load", "bench-pause", "bench-stop"
MARKERS = {IDLE, LOAD, PAUSE, STOP}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OURS = {"echo", "monitor"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    """Pids of the live processes whose parent is `pid` (a supervisor's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    except OSError:
        pass
    return inodes


def tcp_sockets(pid: int, port: int, state: str) -> int:
    """How many TCP sockets of process `pid` have local port `port` and the given state
    ("0A" listening, "01" established), from /proc/net/tcp{,6}."""
    want = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == state:
                    want.add(int(cols[9]))
    return len(want & _socket_inodes(pid))


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, anyone's processes), from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS  # minus idle and iowait


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class RssSampler:
    """The peak resident set of a process while a block runs: VmRSS polled every few milliseconds,
    and VmHWM after resetting it on entry (clear_refs 5) where the kernel lets us."""

    def __init__(self, pid: int, every: float = 0.002) -> None:
        self.pid = pid
        self.every = every
        self.before = self.peak = 0
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, KeyError):
                self.peak = max(self.peak, status_kb(self.pid, "VmRSS"))
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.before = self.peak = status_kb(self.pid, "VmRSS")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.hwm_reset:
            self.peak = max(self.peak, status_kb(self.pid, "VmHWM"))

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.before) / 1024


def commandstats(r: redis.Redis) -> Counter[str]:
    info: dict[str, Any] = r.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()})


class RedisCommands:
    """Commands Redis ran for the requests made inside the block, per request.

    INFO commandstats counts every command, those a Lua script runs included; MONITOR marks the
    latter `lua`, so both counts come out: `sent` (one per command a client sent, EVALSHA once)
    and `all` (EVALSHA plus what it ran). What the gateway sends on its own (the readiness PING,
    a deny-list refresh) is counted over an idle interval first and subtracted at its rate."""

    def __init__(self, url: str, idle: float = 2.0, timeout: float = 20.0) -> None:
        self.r = redis.Redis.from_url(url, socket_timeout=timeout)
        self.monitor_client = redis.Redis.from_url(url, socket_timeout=timeout)
        self.idle = idle
        self.counts: dict[str, Counter[tuple[bool, str]]] = {IDLE: Counter(), LOAD: Counter()}
        self.spans: dict[str, list[float]] = {IDLE: [0.0, 0.0], LOAD: [0.0, 0.0]}
        self.stats: Counter[str] = Counter()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._error: BaseException | None = None

    def _watch(self) -> None:
        phase = ""
        try:
            with self.monitor_client.monitor() as m:
                self._ready.set()
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    cmd = m.next_command()
                    words = cmd["command"].split(" ", 1)
                    name = words[0].lower()
                    if name == "echo" and words[1:] and words[1] in MARKERS:
                        if phase:
                            self.spans[phase][1] = cmd["time"]
                        if words[1] == STOP:
                            return
                        phase = words[1] if words[1] != PAUSE else ""
                        if phase:
                            self.spans[phase][0] = cmd["time"]
                    elif phase and name not in OURS:
                        self.counts[phase][(cmd["client_type"] == "lua", name)] += 1
        except BaseException as e:  # reported by __exit__
            self._error = e
            self._ready.set()

    def __enter__(self) -> RedisCommands:
        self._thread.start()
        self._ready.wait(10)
        self.r.echo(IDLE)
        time.sleep(self.idle)
        self.r.echo(PAUSE)  # our own INFO stays out of both counted phases
        self.stats = commandstats(self.r)
        self.r.echo(LOAD)
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: TracebackType | None) -> None:
        self.r.echo(PAUSE)
        delta = commandstats(self.r) - self.stats
        delta["info"] -= 1  # the INFO that took the first snapshot
        self.stats = Counter({k: n for k, n in delta.items() if k not in OURS and n > 0})
        self.r.echo(STOP)
        self._thread.join(30)
        self.r.close()
        self.monitor_client.close()
        if self._error is not None and kind is None:
            raise RuntimeError(f"MONITOR failed: {self._error}") from self._error

    def per_request(self, requests: int, rare: float = 0.05) -> dict[str, Any]:
        """Per request, background subtracted: `sent` and `lua` by command (EVALSHA once in `sent`,
        what the scripts ran in `lua`), `all` from INFO commandstats, and `rare`: commands seen
        less than once per 1/`rare` requests (a periodic refresh that the idle interval missed)."""
        idle_secs = max(self.spans[IDLE][1] - self.spans[IDLE][0], 1e-3)
        load_secs = max(self.spans[LOAD][1] - self.spans[LOAD][0], 0.0)
        background = {key: n * load_secs / idle_secs for key, n in self.counts[IDLE].items()}
        found: dict[str, dict[str, float]] = {"sent": {}, "lua": {}, "rare": {}}
        for key in set(self.counts[LOAD]) | set(background):
            per = max(0.0, self.counts[LOAD][key] - background.get(key, 0.0)) / max(requests, 1)
            if per >= 0.005:
                found["rare" if per < rare else "lua" if key[0] else "sent"][key[1]] = per
        total = max(0.0, self.stats.total() - sum(background.values())) / max(requests, 1)
        return {**found, "all": total}
