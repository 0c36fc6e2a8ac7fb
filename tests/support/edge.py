"""What the edge's end-to-end tests share (tests/e2e/test_proxy_protocol.py for gRPC,
tests/e2e/test_browser_edge.py for the browser listener): the addresses a test proxy names, reading
the trail, a front's refusal timed from outside, and `serve --workers 2` behind a front."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from adapters.proxy_protocol import v2_header
from adapters.redis_server import free_port
from tests.support.metrics import samples, scrape
from tests.support.processes import BillingProc, Proc
from tests.support.proxy_hop import ProxyHop
from tests.support.tls import tls_env

TERMINAL = ("203.0.113.7", 40001)
TERMINAL6 = ("2001:db8::7", 40002)


def last_event(events: list[dict[str, str]], method: str) -> dict[str, str]:
    return [e for e in events if e["method"].endswith(method)][-1]


async def closed_after(port: int, send: bytes = b"", drip: float = 0.0, limit: float = 15.0) -> float:
    """Connect to the front, send `send` (one byte every `drip` seconds if drip), and return the
    seconds until the front closed the connection (bounded by `limit`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        async def talk() -> None:
            if drip:
                for byte in send:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(drip)
            elif send:
                writer.write(send)
                await writer.drain()

        sender = asyncio.create_task(talk())
        try:
            data = await asyncio.wait_for(reader.read(1024), limit)
        except ConnectionError:
            data = b""
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        assert data == b"", "the front answered instead of closing"
        return time.monotonic() - started
    finally:
        writer.close()


async def served_by_both_workers(tmp_path: Path, redis_url: str, pki: Path, settings: dict[str, str],
                                 front_port: int, call: Callable[[int, int], Awaitable[None]], front: str) -> int:
    """Run `serve --workers 2` with `settings` (the front named `front` on `front_port`) and make calls through a
    proxy naming TERMINAL, `call(hop_port, i)`, a connection each, until both workers have served
    one (the kernel picks a worker per connection); returns how many were made. Every one was
    relayed, and the gateway stops cleanly."""
    sim = BillingProc(tmp_path / "sim.log").start()
    metrics_port = free_port()
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_BILLING_TARGET": sim.address, "HALLGATE_SECRET_KEY": "k",
           "HALLGATE_DATA_DIR": str(tmp_path / "d"), "HALLGATE_GRACE_PERIOD": "2", **tls_env(pki),
           "HALLGATE_PROXY_TRUSTED": "127.0.0.1", "HALLGATE_METRICS_LISTEN": f"127.0.0.1:{metrics_port}", **settings}
    gw = Proc(["serve", "--workers", "2", "--listen", "{address}"], env, tmp_path / "gw.log")
    try:
        await asyncio.to_thread(gw.wait_serving, pki)
        async with ProxyHop(("127.0.0.1", front_port), v2_header(TERMINAL)) as hop:
            for i in range(30):
                await call(hop.port, i)
                served = {dict(labels)["worker"] for (name, labels), v in
                          samples(await asyncio.to_thread(scrape, metrics_port)).items()
                          if name == "hallgate_worker_calls_total" and v > 0}
                if i >= 9 and served == {"0", "1"}:
                    break
            assert served == {"0", "1"}, "the kernel gave every connection to one worker: nothing shown"
        relayed = samples(await asyncio.to_thread(scrape, metrics_port))[
            ("hallgate_edge_connections_total", frozenset({("front", front), ("outcome", "relayed")}))]
        assert relayed == i + 1
    finally:
        code = await asyncio.to_thread(gw.stop, 20)
        sim.stop()
    assert code == 0, gw.log.read_text()[-3000:]
    assert "Traceback" not in gw.log.read_text()
    return i + 1
