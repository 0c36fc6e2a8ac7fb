"""Dependencies the hostile ring kills, stops and brings back: a billing-sim process on a fixed
loopback port (so the gateway's own channel reconnects to it), and the audit trail as stored."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import redis.asyncio as aioredis

from adapters.audit.keys import stream_key
from adapters.redis_server import free_port

SIM = ["--sim-hash-n", "1024", "--sim-subscribers", "1200", "--sim-seed", "hallgate-test"]


class BillingProc:
    """`hallgate billing-sim` as its own process; `kill`, `stop` (SIGSTOP), `cont`, `start` again."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = log
        self.p: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> BillingProc:
        with self.log.open("ab") as out:
            self.p = subprocess.Popen([sys.executable, "-m", "gateway.cli", "billing-sim", "--listen", self.address,
                                       *SIM], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=os.environ.copy())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.p.poll() is None, self.log.read_text()[-2000:]
            with grpc.insecure_channel(self.address) as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.3)
                    return self
                except grpc.FutureTimeoutError:
                    pass
        raise AssertionError(f"billing-sim not up: {self.log.read_text()[-2000:]}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.p is not None
        self.p.send_signal(sig)

    def kill(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.kill()
            self.p.wait()

    async def start_async(self) -> BillingProc:
        return await asyncio.to_thread(self.start)


async def trail(r: aioredis.Redis, chain: str = "main") -> list[dict[str, str]]:
    """Every stored audit event, oldest first."""
    entries = await r.xrange(stream_key(chain))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def wait_for(predicate, limit: float = 10.0, every: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    """Poll an async predicate until it holds (bounded by `limit` seconds)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(every)
    raise AssertionError("condition not met in time")
