"""The link to billing over TLS, end to end: a real gateway, the billing simulator serving TLS on
a real port (its own CA, mutual unless a test says otherwise), real Redis. Call lists flow only
over a link whose certificate checks out, and every other link fails closed: UNAVAILABLE, no
data, no code sent (gateway/runtime/billing_link.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from adapters.billing_sim.server import start_billing_sim
from gateway.runtime.billing_link import billing_client
from gateway.runtime.settings import Settings
from hallgate_pb.billing.v1 import billing_pb2
from hallgate_pb.v1 import kiosk_pb2
from tests.support.billing_tls import BILLING_NAME, BillingPki, make_billing_pki
from tests.support.dates import month
from tests.support.subscribers import ORDINARY

pytestmark = pytest.mark.asyncio
Sim = Callable[..., Awaitable[str]]


@pytest.fixture
def billing_pki(tmp_path: Path) -> BillingPki:
    return make_billing_pki(tmp_path / "billing-pki")


@pytest.fixture
async def tls_sim(billing_data: Any, billing_pki: BillingPki) -> AsyncIterator[Sim]:
    """Factory: a billing simulator serving TLS; returns its loopback target."""
    servers: list[Any] = []

    async def start(name: str = "billing", mutual: bool = True) -> str:
        server, port = await start_billing_sim(billing_data, credentials=billing_pki.server(name, mutual))
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(0)


async def the_month(gw: Any, token: str) -> list[bytes]:
    request = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month())
    return [r.SerializeToString() async for chunk in gw.stub.ListCallDetails(request) for r in chunk.records]


def expected_month(gw: Any) -> list[bytes]:
    count = gw.billing.record_count(ORDINARY, month())
    return [r.SerializeToString() for r in gw.billing.records(ORDINARY, month(), 0, count)]


async def refused_unavailable(gw: Any) -> None:
    """The kiosk's first step needs billing: UNAVAILABLE, and no code reaches the phone."""
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await gw.messages(ORDINARY) == []


async def test_a_call_list_flows_over_mutual_tls_to_billing(make_gateway, tls_sim, billing_pki):
    gw = await make_gateway(billing_target=await tls_sim(), **billing_pki.gateway_settings())
    token = await gw.sign_in(ORDINARY)
    records = await the_month(gw, token)
    assert records == expected_month(gw) and len(records) >= 100


async def test_billing_certified_by_another_ca_gets_nothing(make_gateway, tls_sim, billing_pki):
    gw = await make_gateway(billing_target=await tls_sim(), **billing_pki.gateway_settings(ca="stranger-ca.crt"))
    await refused_unavailable(gw)


async def test_without_the_client_certificate_billing_refuses_the_gateway(make_gateway, tls_sim, billing_pki):
    gw = await make_gateway(billing_target=await tls_sim(), **billing_pki.gateway_settings(client=False))
    await refused_unavailable(gw)


async def test_a_client_certificate_billing_does_not_trust_is_refused(make_gateway, tls_sim, billing_pki):
    gw = await make_gateway(billing_target=await tls_sim(), **billing_pki.gateway_settings(
        billing_tls_cert=billing_pki.path("stranger-gateway.crt"),
        billing_tls_key=billing_pki.path("stranger-gateway.key")))
    await refused_unavailable(gw)


async def test_billing_is_checked_by_name_and_the_name_can_be_given(make_gateway, tls_sim, billing_pki):
    """Billing's certificate names billing.operator.test only; the gateway dials an address. Without
    billing_tls_server_name the name does not match and nothing flows; with it, the call list does."""
    target = await tls_sim("billing-named")
    unnamed = await make_gateway(billing_target=target, **billing_pki.gateway_settings())
    await refused_unavailable(unnamed)
    named = await make_gateway(billing_target=target,
                               **billing_pki.gateway_settings(billing_tls_server_name=BILLING_NAME))
    token = await named.sign_in(ORDINARY)
    assert await the_month(named, token) == expected_month(named)


async def test_a_plaintext_gateway_gets_nothing_from_billing_serving_tls(make_gateway, tls_sim):
    gw = await make_gateway(billing_target=await tls_sim(mutual=False))
    await refused_unavailable(gw)


async def test_readiness_follows_the_tls_link(tls_sim, billing_pki):
    """The readiness probe asks billing through the very channel the calls use, TLS included."""
    target = await tls_sim()
    good = billing_client(Settings(**billing_pki.gateway_settings()), target)
    bad = billing_client(Settings(**billing_pki.gateway_settings(ca="stranger-ca.crt")), target)
    try:
        assert await good.probe(2.0) is True
        assert await bad.probe(2.0) is False
    finally:
        await good.close()
        await bad.close()


def put(directory: Path, name: str, data: bytes) -> None:
    """A file replaced as a Kubernetes secret volume or cert-manager replaces it: whole, by rename."""
    (directory / f".{name}.tmp").write_bytes(data)
    (directory / f".{name}.tmp").replace(directory / name)


async def test_a_renewed_client_certificate_is_used_without_a_restart(make_gateway, tls_sim, billing_pki, tmp_path):
    """The gateway starts with a client certificate billing does not trust (nothing flows); the files
    are replaced by a trusted one and the next calls flow, same gateway. A half-written renewal
    after that keeps the working certificate: calls still flow."""
    live = tmp_path / "live"
    live.mkdir()
    put(live, "client.crt", (billing_pki.directory / "stranger-gateway.crt").read_bytes())
    put(live, "client.key", (billing_pki.directory / "stranger-gateway.key").read_bytes())
    gw = await make_gateway(billing_target=await tls_sim(), tls_reload=0.1, **billing_pki.gateway_settings(
        billing_tls_cert=str(live / "client.crt"), billing_tls_key=str(live / "client.key")))
    await refused_unavailable(gw)

    put(live, "client.key", (billing_pki.directory / "gateway.key").read_bytes())
    put(live, "client.crt", (billing_pki.directory / "gateway.crt").read_bytes())
    await asyncio.sleep(0.2)
    token = await gw.sign_in(ORDINARY)
    assert await the_month(gw, token) == expected_month(gw)

    put(live, "client.crt", b"-----BEGIN CERTIFICATE-----\nhalf")  # the key no longer matches it either
    await asyncio.sleep(0.2)
    assert await the_month(gw, token) == expected_month(gw)
    put(live, "client.crt", (billing_pki.directory / "stranger-gateway.crt").read_bytes())
    await asyncio.sleep(0.2)  # a certificate whose key is not the one beside it: refused, kept
    assert await the_month(gw, token) == expected_month(gw)


async def test_a_new_billing_ca_bundle_is_used_without_a_restart(make_gateway, tls_sim, billing_pki, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    put(live, "billing-ca.crt", (billing_pki.directory / "stranger-ca.crt").read_bytes())
    gw = await make_gateway(billing_target=await tls_sim(), tls_reload=0.1,
                            **billing_pki.gateway_settings(billing_tls_ca=str(live / "billing-ca.crt")))
    await refused_unavailable(gw)
    put(live, "billing-ca.crt", (billing_pki.directory / "stranger-ca.crt").read_bytes()
        + (billing_pki.directory / "ca.crt").read_bytes())  # a bundle during a CA rollover: old and new
    await asyncio.sleep(0.2)
    token = await gw.sign_in(ORDINARY)
    assert await the_month(gw, token) == expected_month(gw)


async def test_calls_under_way_across_a_renewal_all_finish(tls_sim, billing_pki, billing_data, tmp_path):
    """The old channel closes only after its calls: eight months read page by page (10 records a
    page: many billing calls each) while the client certificate is renewed under them all arrive
    whole, some pages over each channel."""
    live = tmp_path / "live"
    live.mkdir()
    for name in ("gateway.crt", "gateway.key"):
        put(live, name, (billing_pki.directory / name).read_bytes())
    settings = Settings(tls_reload=0.001, billing_page_size=10, **billing_pki.gateway_settings(
        billing_tls_cert=str(live / "gateway.crt"), billing_tls_key=str(live / "gateway.key")))
    billing = billing_client(settings, await tls_sim())
    channels: set[int] = set()

    async def records() -> int:
        count = 0
        async for page in billing.call_detail_pages(ORDINARY, month()):
            channels.add(id(billing._channel))
            count += len(billing_pb2.ListCallDetailsResponse.FromString(page).records)
            await asyncio.sleep(0.002)
        return count

    try:
        reads = [asyncio.create_task(records()) for _ in range(8)]
        await asyncio.sleep(0.02)
        renewed = billing_pki.renewed_client()
        put(live, "gateway.key", renewed.key_pem)
        put(live, "gateway.crt", renewed.cert_pem)
        counts = await asyncio.gather(*reads)
        expected = billing_data.record_count(ORDINARY, month())
        assert counts == [expected] * 8 and expected > 50
        assert len(channels) == 2  # the renewal was taken up while the months were being read
    finally:
        await billing.close()
    assert not billing._retiring  # the old channel closed
