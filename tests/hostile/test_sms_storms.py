"""SMS queue storms across two OS processes on one real Redis: the per-number daily cap of a notice
kind and the taking of release folds hold when two gateway processes race on the same number or the
same kiosk sessions at the same moment (each step is one Lua script; a read-then-write would let
both processes through).

Each process is tests/hostile/sms_storm_worker.py, started with the same start time; both report
when they fired, and the test checks that their storms overlapped before judging the outcome."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.redis_client import connect
from adapters.sms.queue import FOLDS_DUE, STREAM, TAG, RedisSmsQueue
from gateway.domain.secretbox import SecretBox

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
KEY = "sms-storm-key"
NUMBERS = [f"1380000{i:04d}" for i in range(8)]
CAP = 5
PER_NUMBER = 25  # per process: 8 x 25 = 200 calls at once in each
NOON = 1_750_075_200.0  # 2025-06-16 12:00 UTC: no storm straddles a day
START_IN = 2.5  # seconds for both processes to start, connect and load scripts before they fire
LIMIT = 20.0  # the longest a storm may take in one process


def s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture
async def client(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    c = connect(clean_redis, 2.0)
    try:
        yield c
    finally:
        await c.aclose()


async def race(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one worker process per spec, all firing at the same moment; their reports. Every process
    is waited for within a bound and killed by its pid if it overruns."""
    start_at = time.time() + START_IN
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.hostile.sms_storm_worker",
        json.dumps({**spec, "start_at": start_at, "limit": LIMIT}),
        cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE) for spec in specs]
    reports = []
    try:
        for p in procs:
            out, err = await asyncio.wait_for(p.communicate(), START_IN + LIMIT + 10)
            assert p.returncode == 0, err.decode(errors="replace")[-2000:]
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    for r in reports:
        assert not r["late"], "a worker was not ready by the start time: the race was not simultaneous"
    first_end = min(r["finished"] for r in reports)
    last_start = max(r["started"] for r in reports)
    assert last_start < first_end, f"the two storms did not overlap: {reports}"
    return reports


async def test_the_daily_cap_holds_when_two_processes_storm_the_same_numbers(client, clean_redis):
    """Each process fires 25 lock notices at each of 8 numbers, 200 at once in its own order (200
    is within the client's connection limit): each number gets exactly the cap, whichever process
    sent them. Several numbers give the race several chances to show in one run."""
    spec = {"mode": "send", "url": clean_redis, "key": KEY, "now": NOON, "n": PER_NUMBER, "kind": "lock",
            "numbers": NUMBERS, "cap": CAP}
    reports = await race([{**spec, "seed": 1}, {**spec, "seed": 2}])

    queue = RedisSmsQueue(client, SecretBox(KEY), KEY.encode())
    await queue.ensure_group()
    opened = await queue.read("check", 1000, 100)  # what was queued opens under the key both hold
    assert Counter(q.to for q in opened) == Counter({n: CAP for n in NUMBERS})  # exactly the cap, each
    assert {(q.kind, q.text) for q in opened} == {("lock", f"storm notice to {n}") for n in NUMBERS}
    assert await client.xlen(STREAM) == CAP * len(NUMBERS)
    assert len(await client.keys(f"{TAG}:msg:*")) == CAP * len(NUMBERS)  # a capped one leaves nothing
    assert sum(r["capped"] for r in reports) == 2 * PER_NUMBER * len(NUMBERS) - CAP * len(NUMBERS)
    cap_keys = await client.keys(f"{TAG}:cap:lock:*")
    assert len(cap_keys) == len(NUMBERS)
    for key in cap_keys:
        assert int(await client.get(key)) == 2 * PER_NUMBER  # every attempt counted
        assert 0 < await client.pttl(key) <= 2 * 86400 * 1000
    stored = " ".join(s(k) for k in await client.keys("*"))
    assert not any(n in stored for n in NUMBERS)  # keys name numbers by their keyed pseudonym only


async def test_each_release_fold_is_taken_exactly_once_across_two_processes(client, clean_redis):
    queue = RedisSmsQueue(client, SecretBox(KEY), KEY.encode())
    now = time.time()
    sessions = [f"kiosk-session-{i:02d}" for i in range(50)]
    for i, s in enumerate(sessions):
        for month in ("2025-01", "2025-02", "2025-03", f"2024-{1 + i % 12:02d}"):
            await queue.fold_release(s, f"139{i:08d}", f"T{i:02d}", month, now - 1, 900)
    assert await client.zcard(FOLDS_DUE) == 50

    spec = {"mode": "take", "url": clean_redis, "key": KEY, "now": now, "sessions": sessions, "takers": 10,
            "due_by": now}
    reports = await race([{**spec, "seed": 1}, {**spec, "seed": 2}])

    taken = [tuple(f) for r in reports for f in r["folds"]]
    assert Counter(terminal for _, terminal, _ in taken) == Counter({f"T{i:02d}": 1 for i in range(50)})
    for to, terminal, months in taken:
        i = int(terminal[1:])
        assert to == f"139{i:08d}"
        assert months == sorted({"2025-02", "2025-03", f"2024-{1 + i % 12:02d}"})
    assert await client.zcard(FOLDS_DUE) == 0
    assert await client.keys(f"{TAG}:fold:*") == [] and await client.keys(f"{TAG}:fold-months:*") == []
