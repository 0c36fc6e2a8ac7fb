"""The browser listener behind the edge (browser_proxy_listen), end to end: a test proxy
(tests/support/proxy_hop.py) passes a browser-based kiosk's TLS through after a PROXY header, the
gateway's second front relays it to the browser listener, and the audit trail records the address
the header named, as for gRPC (tests/e2e/test_proxy_protocol.py). What is not from a trusted proxy
with a valid header never reaches the listener."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from adapters.proxy_protocol import v2_header
from adapters.redis_server import free_port
from gateway.runtime import startup
from gateway.runtime.settings import Settings
from hallgate_pb.v1 import kiosk_pb2
from tests.conftest import Harness
from tests.support.connect_client import ConnectClient, browser_client, browser_headers
from tests.support.edge import TERMINAL, TERMINAL6, closed_after, last_event, served_by_both_workers
from tests.support.proxy_hop import ProxyHop
from tests.support.subscribers import ORDINARY
from tests.support.tls import KIOSK_CERT
from tests.support.trail import trail_sync
from tests.support.waiting import wait_for

pytestmark = pytest.mark.asyncio

KIOSK = "/hallgate.v1.KioskService/"
EDGE = {"browser_listen": "127.0.0.1:0", "browser_proxy_listen": "127.0.0.1:0", "proxy_trusted": "127.0.0.1"}


async def browser_edge_gateway(make_gateway: Callable[..., Awaitable[Harness]], **overrides: str) -> Harness:
    gw = await make_gateway(**(EDGE | overrides))
    assert gw.browser_edge is not None and gw.browser_edge.front is not None
    assert gw.edge is None  # the gRPC front is a setting of its own (proxy_listen)
    return gw


async def request_code(port: int, gw: Harness, msisdn: str = ORDINARY, client: ConnectClient | None = None) -> str:
    """RequestOneTimeCode over Connect from the demo kiosk's certificate (on `client`'s kept-alive
    connection if given); the answer's code."""
    client = client or browser_client(port, gw.pki, KIOSK_CERT)
    answer = await asyncio.to_thread(client.unary, KIOSK + "RequestOneTimeCode",
                                     kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), headers=browser_headers())
    return str(answer.code)


async def test_a_browser_call_through_the_edge_records_the_browsers_address(make_gateway) -> None:
    gw = await browser_edge_gateway(make_gateway)
    assert gw.browser is not None and gw.browser_edge is not None
    async with ProxyHop(("127.0.0.1", gw.browser_edge.port), v2_header(TERMINAL, ("10.0.0.5", 443))) as hop:
        client = browser_client(hop.port, gw.pki, KIOSK_CERT)
        assert await request_code(hop.port, gw, client=client) == "ok"
        event = last_event(await gw.audit_events(), "RequestOneTimeCode")
        assert event["peer"] == "ipv4:203.0.113.7:40001"
        assert event["decision"] == "allowed" and event["terminal"]  # the kiosk's certificate, end to end
        assert len(gw.browser_edge.peers) == 1  # while the client's connection lives
        client.close()
    # The listener's own address: the connection's peer, as before.
    assert await request_code(gw.browser.port, gw, "13800000002") == "ok"
    assert last_event(await gw.audit_events(), "RequestOneTimeCode")["peer"].startswith("ipv4:127.0.0.1:")
    peers = gw.browser_edge.peers

    async def forgotten() -> bool:
        return len(peers) == 0

    await wait_for(forgotten, 5, what="the relay's entry is removed when the connection closes")


async def test_a_connection_keeps_its_browsers_address_and_a_stranger_on_the_relay_port_is_closed(
        make_gateway) -> None:
    """The browser's address is taken once per relayed connection: a request read after the front
    forgot the relay (it forgets as soon as it closes) still names the browser. A connection to the
    listener's relay port that is not the front's is closed before any request."""
    gw = await browser_edge_gateway(make_gateway)
    assert gw.browser is not None and gw.browser_edge is not None
    async with ProxyHop(("127.0.0.1", gw.browser_edge.port), v2_header(TERMINAL)) as hop:
        client = browser_client(hop.port, gw.pki, KIOSK_CERT)
        assert await request_code(hop.port, gw, client=client) == "ok"
        (relay,) = gw.browser_edge.peers.relays()
        gw.browser_edge.peers.remove(relay)  # as the front does once the relay closes
        assert await request_code(hop.port, gw, "13800000002", client=client) == "ok"
        client.close()
    assert last_event(await gw.audit_events(), "RequestOneTimeCode")["peer"] == "ipv4:203.0.113.7:40001"
    before = len(await gw.audit_events())
    with pytest.raises(OSError):  # closed after the handshake: no answer
        await request_code(gw.browser.relay_bound, gw)
    assert len(await gw.audit_events()) == before


async def test_an_ipv6_browser_keeps_its_address(make_gateway) -> None:
    gw = await browser_edge_gateway(make_gateway)
    assert gw.browser_edge is not None
    async with ProxyHop(("127.0.0.1", gw.browser_edge.port), v2_header(TERMINAL6, ("2001:db8::1", 443))) as hop:
        assert await request_code(hop.port, gw) == "ok"
    assert last_event(await gw.audit_events(), "RequestOneTimeCode")["peer"] == "ipv6:[2001:db8::7]:40002"


@pytest.mark.parametrize("trusted", ["127.0.0.1", "192.0.2.10"], ids=["no-header", "untrusted"])
async def test_what_is_not_a_trusted_proxys_connection_never_reaches_the_listener(make_gateway, trusted) -> None:
    gw = await browser_edge_gateway(make_gateway, proxy_trusted=trusted)
    assert gw.browser_edge is not None and gw.browser is not None
    before = len(await gw.audit_events())
    header = b"" if trusted == "127.0.0.1" else v2_header(TERMINAL)
    outcome = "bad_header" if not header else "untrusted"  # without a header the TLS hello is the bad header
    counted = REGISTRY.get_sample_value("hallgate_edge_connections_total", {"front": "browser", "outcome": outcome})
    async with ProxyHop(("127.0.0.1", gw.browser_edge.port), header) as hop:
        with pytest.raises(OSError):  # the TLS handshake meets a closed connection
            await request_code(hop.port, gw)
    if header:
        assert await closed_after(gw.browser_edge.port, header) < 1.0
    assert len(await gw.audit_events()) == before
    assert not gw.browser.connections and len(gw.browser_edge.peers) == 0
    now = REGISTRY.get_sample_value("hallgate_edge_connections_total", {"front": "browser", "outcome": outcome})
    assert (now or 0) > (counted or 0)  # counted under the browser's front


async def test_browser_proxy_listen_needs_the_listener_and_trusted_proxies() -> None:
    """Refused before anything starts, in one line naming the setting."""
    base = Settings(dev=True, browser_proxy_listen="0.0.0.0:50054")
    with pytest.raises(startup.StartupRefused, match="browser_listen is not"):
        startup.check(base.with_(proxy_trusted="10.0.0.0/8"))
    with pytest.raises(startup.StartupRefused, match="proxy_trusted names no proxy"):
        startup.check(base.with_(browser_listen="127.0.0.1:8443"))
    with pytest.raises(startup.StartupRefused, match="not host:port"):
        startup.check(base.with_(browser_listen="127.0.0.1:8443", proxy_trusted="10.0.0.0/8",
                                 browser_proxy_listen="nowhere"))
    startup.check(base.with_(browser_listen="127.0.0.1:8443", proxy_trusted="10.0.0.0/8"))


async def test_served_by_workers_every_relayed_browser_call_names_the_browser(tmp_path: Path, redis_url: str,
                                                                             clean_redis: str, pki: Path) -> None:
    """With --workers 2 the workers share browser_proxy_listen (SO_REUSEPORT); each worker's front
    relays to its own listener's loopback port, so the map asked is the one that knows the relay."""
    front_port = free_port()

    async def call(port: int, i: int) -> None:
        client = browser_client(port, pki, KIOSK_CERT)  # a connection of its own
        answer = await asyncio.to_thread(client.unary, KIOSK + "RequestOneTimeCode",
                                         kiosk_pb2.RequestOneTimeCodeRequest(msisdn=f"139{i:08d}"),
                                         headers=browser_headers())
        assert answer.code == "ok", answer.error

    made = await served_by_both_workers(tmp_path, redis_url, pki, {
        "HALLGATE_BROWSER_LISTEN": f"127.0.0.1:{free_port()}",
        "HALLGATE_BROWSER_PROXY_LISTEN": f"127.0.0.1:{front_port}"}, front_port, call, "browser")
    events = [e for e in trail_sync(clean_redis) if e["method"].endswith("RequestOneTimeCode")]
    assert len(events) == made
    assert {e["peer"] for e in events} == {"ipv4:203.0.113.7:40001"}
