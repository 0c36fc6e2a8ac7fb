"""The edge's way in, end to end: a real gateway with its PROXY-protocol front (proxy_listen), a test
proxy (tests/support/proxy_hop.py) passing the terminal's mutual TLS through after a PROXY header,
and the audit trail recording the terminal's address the header named, not the relay's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from adapters.proxy_protocol import v1_header, v2_header
from adapters.redis_server import free_port
from gateway.transport.proxy_front import HEADER_TIMEOUT
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.conftest import Harness
from tests.support.dates import month
from tests.support.edge import TERMINAL, TERMINAL6, closed_after, last_event, served_by_both_workers
from tests.support.proxy_hop import ProxyHop
from tests.support.subscribers import HEAVY, ORDINARY
from tests.support.tls import KIOSK_CERT, client_credentials
from tests.support.trail import trail_sync
from tests.support.waiting import wait_for

pytestmark = pytest.mark.asyncio

EDGE = {"proxy_listen": "127.0.0.1:0", "proxy_trusted": "127.0.0.1"}


async def edge_gateway(make_gateway: Callable[..., Awaitable[Harness]], **overrides: str) -> Harness:
    gw = await make_gateway(**(EDGE | overrides))
    assert gw.edge is not None and gw.edge.front is not None
    return gw


def kiosk_via(gw: Harness, hop: ProxyHop) -> tuple[grpc.aio.Channel, kiosk_pb2_grpc.KioskServiceStub]:
    channel = grpc.aio.secure_channel(f"127.0.0.1:{hop.port}", client_credentials(gw.pki, KIOSK_CERT))
    gw.closers.insert(0, channel.close)
    return channel, kiosk_pb2_grpc.KioskServiceStub(channel)


async def request_code(stub: kiosk_pb2_grpc.KioskServiceStub, msisdn: str = ORDINARY) -> None:
    await stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), timeout=10)


# ---------------------------------------------------------------------------------------------------
# Through a trusted proxy: the terminal's address on record


@pytest.mark.parametrize("version", [1, 2])
async def test_a_call_through_the_edge_records_the_terminals_address(make_gateway, version: int) -> None:
    gw = await edge_gateway(make_gateway)
    assert gw.edge is not None
    header = v1_header(TERMINAL, ("10.0.0.5", 50053)) if version == 1 else v2_header(TERMINAL, ("10.0.0.5", 50053))
    async with ProxyHop(("127.0.0.1", gw.edge.port), header) as hop:
        channel, stub = kiosk_via(gw, hop)
        await request_code(stub)
        event = last_event(await gw.audit_events(), "RequestOneTimeCode")
        assert event["peer"] == "ipv4:203.0.113.7:40001"
        assert event["decision"] == "allowed" and event["terminal"]  # the kiosk's certificate, verified end to end
        assert len(gw.edge.peers) == 1
        # The same gateway's main port: the peer is the connection's, as before.
        await request_code(gw.stub, "13800000002")
        assert last_event(await gw.audit_events(), "RequestOneTimeCode")["peer"].startswith("ipv4:127.0.0.1:")
        await channel.close()
        edge = gw.edge

        async def forgotten() -> bool:
            return len(edge.peers) == 0

        await wait_for(forgotten, 5, what="the relay's entry is removed when the connection closes")


async def test_an_ipv6_terminal_and_a_local_header(make_gateway) -> None:
    gw = await edge_gateway(make_gateway)
    assert gw.edge is not None
    async with ProxyHop(("127.0.0.1", gw.edge.port), v2_header(TERMINAL6, ("2001:db8::1", 443))) as hop:
        _, stub = kiosk_via(gw, hop)
        await request_code(stub)
        assert last_event(await gw.audit_events(), "RequestOneTimeCode")["peer"] == "ipv6:[2001:db8::7]:40002"
    # LOCAL: the proxy speaks for itself (a health check); its own address is the peer.
    async with ProxyHop(("127.0.0.1", gw.edge.port), v2_header(None)) as hop:
        _, stub = kiosk_via(gw, hop)
        await request_code(stub, "13800000002")
        peer = last_event(await gw.audit_events(), "RequestOneTimeCode")["peer"]
        assert peer == f"ipv4:{hop.relayed[-1][0]}:{hop.relayed[-1][1]}"


async def test_a_heavy_stream_flows_whole_through_the_relay(make_gateway) -> None:
    """20,000+ records through the relay's flow control (read slowly at first), and the stream's
    audit events name the terminal."""
    gw = await edge_gateway(make_gateway)
    assert gw.edge is not None
    token = await gw.sign_in(HEAVY)  # on the main port: the token is the kiosk's, not the connection's
    expected = gw.billing.record_count(HEAVY, month())
    async with ProxyHop(("127.0.0.1", gw.edge.port), v2_header(TERMINAL)) as hop:
        _, stub = kiosk_via(gw, hop)
        total = 0
        chunks = 0
        async for chunk in stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month()),
                                                timeout=60):
            total += len(chunk.records)
            chunks += 1
            if chunks <= 5:
                await asyncio.sleep(0.2)  # buffers fill: the front pauses reading from gRPC
        assert total == expected >= 20_000
    events = [e for e in await gw.audit_events() if e["method"].endswith("ListCallDetails")]
    assert events and all(e["peer"] == "ipv4:203.0.113.7:40001" for e in events)


# ---------------------------------------------------------------------------------------------------
# Everything else is closed, and nothing of it reaches gRPC or the trail


async def test_a_connection_from_an_untrusted_source_is_closed(make_gateway) -> None:
    gw = await edge_gateway(make_gateway, proxy_trusted="192.0.2.10, 10.244.0.0/16")
    assert gw.edge is not None
    before = len(await gw.audit_events())
    assert await closed_after(gw.edge.port, v2_header(TERMINAL)) < 1.0
    async with ProxyHop(("127.0.0.1", gw.edge.port), v2_header(TERMINAL)) as hop:
        _, stub = kiosk_via(gw, hop)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await request_code(stub)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(await gw.audit_events()) == before
    assert len(gw.edge.peers) == 0


@pytest.mark.parametrize("header", [
    b"",                                                       # TLS straight away: no header at all
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                      # garbage
    b"PROXY TCP4 203.0.113.7 10.0.0.5 40001\r\n",              # a malformed v1 header
    v2_header(TERMINAL)[:12] + b"\x21\x12\x00\x0c" + bytes(12),  # v2 over UDP
], ids=["none", "garbage", "bad-v1", "v2-udp"])
async def test_a_connection_without_a_valid_header_is_closed_and_nothing_is_audited(make_gateway, header) -> None:
    gw = await edge_gateway(make_gateway)
    assert gw.edge is not None
    before = len(await gw.audit_events())
    async with ProxyHop(("127.0.0.1", gw.edge.port), header) as hop:
        _, stub = kiosk_via(gw, hop)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await request_code(stub)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < HEADER_TIMEOUT + 5
    if header:
        assert await closed_after(gw.edge.port, header) < 1.0  # at once, not at the deadline
    assert len(await gw.audit_events()) == before
    assert len(gw.edge.peers) == 0 and not gw.edge.front.connections  # type: ignore[union-attr]


@pytest.mark.parametrize("drip", [0.0, 0.4], ids=["stalled", "dripping"])
async def test_a_header_that_never_completes_is_closed_by_the_deadline(make_gateway, drip: float) -> None:
    """Slowloris: the beginning of a valid header, then nothing (or a byte now and then, never
    enough): closed once the header deadline passes, never relayed."""
    gw = await edge_gateway(make_gateway)
    assert gw.edge is not None
    before = len(await gw.audit_events())
    beginning = v1_header(TERMINAL, ("10.0.0.5", 50053))[:-2]  # all but the CRLF
    took = await closed_after(gw.edge.port, beginning, drip=drip)
    assert HEADER_TIMEOUT - 0.2 <= took < HEADER_TIMEOUT + 3
    assert len(await gw.audit_events()) == before
    assert not gw.edge.front.connections  # type: ignore[union-attr]


async def test_settings_without_trusted_proxies_are_refused(make_gateway) -> None:
    with pytest.raises(ValueError, match="proxy_trusted"):
        await make_gateway(proxy_listen="127.0.0.1:0", proxy_trusted="")


# ---------------------------------------------------------------------------------------------------
# `hallgate serve --workers 2`: each worker's front relays to its own gRPC server


async def test_served_by_workers_every_relayed_call_names_the_terminal(tmp_path: Path, redis_url: str,
                                                                       clean_redis: str, pki: Path) -> None:
    """The workers share proxy_listen (SO_REUSEPORT) as they share the gRPC port; a front relays to
    its own worker's loopback port, so the PeerMap that knows the connection is the one asked,
    whichever worker the kernel handed it to."""
    front_port = free_port()

    async def call(port: int, i: int) -> None:
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", client_credentials(pki, KIOSK_CERT),
                                           options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            await request_code(kiosk_pb2_grpc.KioskServiceStub(channel), f"139{i:08d}")

    made = await served_by_both_workers(tmp_path, redis_url, pki, {"HALLGATE_PROXY_LISTEN": f"127.0.0.1:{front_port}"},
                                        front_port, call, "grpc")
    events = [e for e in trail_sync(clean_redis) if e["method"].endswith("RequestOneTimeCode")]
    assert len(events) == made
    assert {e["peer"] for e in events} == {"ipv4:203.0.113.7:40001"}
