"""Where the gateway's time goes, from a py-spy raw (collapsed stacks) profile.

    .venv/bin/python -m bench.profile bench/results/profile.raw
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
# The first rule matching a stack's leaf frame (its innermost Python frame) names the bucket.
AREAS = [
    # Handle._run's own time is C it calls: cygrpc's coroutines and gRPC core (sendmsg, wake-ups).
    ("gRPC: cygrpc + core, run by the loop", ("grpc/_cython", "grpc/aio", "/grpc/", "asyncio/events.py")),
    ("redis-py client", ("redis/",)),
    # The browser listener's stack (scenario x): JSON by json_format is pure Python, apart from protobuf.
    ("protobuf JSON (json_format, Timestamp.ToJsonString)", ("protobuf/json_format.py", "well_known_types.py")),
    ("protobuf", ("google/protobuf", "_pb2")),
    ("HTTP: hypercorn, h11, h2", ("hypercorn/", "h11/", "h2/", "hpack/", "wsgiref/", "http/cookies.py")),
    ("connectrpc (Connect protocol)", ("connectrpc/",)),
    ("TLS: asyncio's SSL protocol", ("asyncio/sslproto.py", "ssl.py")),
    ("structlog", ("structlog/",)),
    ("asyncio event loop", ("asyncio/", "selectors.py")),
    ("stdlib: thread pool, json, hmac", ("concurrent/futures", "threading.py", "json/", "hmac.py", "hashlib")),
    ("gateway call pipeline and gRPC transport", ("gateway/pipeline/", "gateway/transport/")),
    ("gateway servicer and rules", ("gateway/",)),
    ("adapters", ("adapters/",)),
]
OWN = ("gateway/", "adapters/")


def parse(line: str) -> tuple[list[tuple[str, str]], int]:
    stack, _, count = line.rstrip().rpartition(" ")
    frames = []
    for raw in stack.split(";"):
        m = FRAME_RE.match(raw)
        frames.append((m.group("func"), m.group("file")) if m else (raw, ""))
    return frames, int(count)


def area(file: str) -> str:
    return next((name for name, marks in AREAS if any(mark in file for mark in marks)), "other")


def short(func: str, file: str) -> str:
    parts = Path(file).parts
    return f"{func} ({'/'.join(parts[-2:]) if parts else '?'})"


def summarize(path: Path, top: int = 16) -> str:
    total, areas, leaves, own = 0, Counter[str](), Counter[str](), Counter[str]()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        frames, n = parse(line)
        total += n
        func, file = next(((f, p) for f, p in reversed(frames) if p), frames[-1])
        areas[area(file)] += n
        leaves[short(func, file)] += n
        for name in {short(f, p) for f, p in frames if any(o in p for o in OWN)}:
            own[name] += n
    if not total:
        return "no samples"

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    lines = [f"{total} samples of the thread holding the GIL (idle time excluded)",
             "by area of the innermost Python frame:"]
    lines += [f"  {pct(n)}  {name}" for name, n in areas.most_common()]
    lines.append("top functions by own time:")
    lines += [f"  {pct(n)}  {name}" for name, n in leaves.most_common(top)]
    lines.append("gateway and adapter functions, time including callees:")
    lines += [f"  {pct(n)}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
