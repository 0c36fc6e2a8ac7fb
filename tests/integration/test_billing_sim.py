"""The billing simulator over real gRPC on 127.0.0.1, spoken to through the gateway's GrpcBilling."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from adapters.billing_client import GrpcBilling
from adapters.billing_sim.data import SeededBilling
from adapters.billing_sim.server import BillingSimServicer, serve_billing_sim, start_billing_sim
from gateway.domain.errors import DependencyUnavailable, Unauthenticated
from hallgate_pb.billing.v1 import billing_pb2, billing_pb2_grpc

NOW = datetime(2025, 6, 15, 4, 0, tzinfo=UTC)
ORDINARY, HEAVY, SWAPPED, PORTED = "13800000001", "13800000500", "13800000007", "13800000008"
MONTH = "2025-05"


@pytest.fixture
def data() -> SeededBilling:
    return SeededBilling(seed="integration", hash_n=2**10, now=NOW)


@pytest.fixture
async def sim(data: SeededBilling) -> AsyncIterator[int]:
    server, port = await start_billing_sim(data)
    try:
        yield port
    finally:
        await server.stop(None)


@pytest.fixture
async def client(sim: int) -> AsyncIterator[GrpcBilling]:
    billing = GrpcBilling(f"127.0.0.1:{sim}", timeout=2.0)
    try:
        yield billing
    finally:
        await billing.close()


@pytest.fixture
async def stub(sim: int) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sim}") as channel:
        yield billing_pb2_grpc.BillingServiceStub(channel)


async def collect(billing: GrpcBilling, msisdn: str, month: str) -> list[billing_pb2.ListCallDetailsResponse]:
    pages = []
    async for raw in billing.call_detail_pages(msisdn, month):
        assert isinstance(raw, bytes)
        pages.append(billing_pb2.ListCallDetailsResponse.FromString(raw))
    return pages


def wire(records: Any) -> list[bytes]:
    return [r.SerializeToString(deterministic=True) for r in records]


@pytest.mark.parametrize(("msisdn", "page_size"), [(ORDINARY, 7), (ORDINARY, 1000), (HEAVY, 1000), (HEAVY, 5000)])
async def test_pages_concatenate_to_the_whole_month(
    data: SeededBilling, sim: int, msisdn: str, page_size: int
) -> None:
    billing = GrpcBilling(f"127.0.0.1:{sim}", timeout=5.0, page_size=page_size)
    try:
        pages = await collect(billing, msisdn, MONTH)
    finally:
        await billing.close()
    got = [r for p in pages for r in p.records]
    count = data.record_count(msisdn, MONTH)
    assert wire(got) == wire(data.records(msisdn, MONTH, 0, count))
    times = [r.start_time.seconds for r in got]
    assert times == sorted(times)
    assert len(set(wire(got))) == len(got) == count
    per_page = min(page_size, 2000)
    assert [len(p.records) for p in pages[:-1]] == [per_page] * (len(pages) - 1)
    assert 0 < len(pages[-1].records) <= per_page and pages[-1].next_page_token == ""
    assert all(p.next_page_token for p in pages[:-1])
    if msisdn == HEAVY:
        assert count >= 20_000


async def test_page_size_default_and_cap(stub: billing_pb2_grpc.BillingServiceStub) -> None:
    first = await stub.ListCallDetails(billing_pb2.ListCallDetailsRequest(msisdn=HEAVY, month=MONTH))
    assert len(first.records) == 500 and first.next_page_token
    capped = await stub.ListCallDetails(
        billing_pb2.ListCallDetailsRequest(msisdn=HEAVY, month=MONTH, page_size=100_000)
    )
    assert len(capped.records) == 2000


async def test_pages_are_fetched_only_when_consumed(data: SeededBilling) -> None:
    calls: list[str] = []

    class Counting(BillingSimServicer):
        async def ListCallDetails(self, request: Any, context: Any) -> Any:
            calls.append(request.page_token)
            return await super().ListCallDetails(request, context)

    server = grpc.aio.server()
    billing_pb2_grpc.add_BillingServiceServicer_to_server(Counting(data), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    billing = GrpcBilling(f"127.0.0.1:{port}", page_size=50)
    try:
        pages = billing.call_detail_pages(ORDINARY, MONTH)
        await pages.__anext__()
        await asyncio.sleep(0.2)
        assert len(calls) == 1
        await pages.__anext__()
        await asyncio.sleep(0.2)
        assert len(calls) == 2 and calls[0] == "" and calls[1] != ""
        await pages.aclose()  # type: ignore[attr-defined]
    finally:
        await billing.close()
        await server.stop(None)


async def test_unknown_number_has_no_records(client: GrpcBilling) -> None:
    pages = await collect(client, "13900000001", MONTH)
    assert len(pages) == 1 and not pages[0].records and not pages[0].next_page_token


async def test_verify_service_password(data: SeededBilling, client: GrpcBilling) -> None:
    pw = data.password_for(ORDINARY)
    wrong = f"{(int(pw) + 1) % 1_000_000:06d}"
    assert await client.verify_service_password(ORDINARY, pw) is True
    assert await client.verify_service_password(ORDINARY, wrong) is False
    assert await client.verify_service_password("13800003001", pw) is False
    assert await client.verify_service_password("13900000001", "000000") is False
    results = await asyncio.gather(*(client.verify_service_password(m, p) for m, p, _ in data.demo_subscribers()))
    assert results == [True] * 4


async def test_get_subscriber_reports_sim_swap_and_porting(client: GrpcBilling) -> None:
    swapped = await client.get_subscriber(SWAPPED)
    assert swapped.exists and swapped.sim_changed_at == NOW - timedelta(days=1) and swapped.ported_at is None
    assert swapped.sim_changed_at.tzinfo is not None
    ported = await client.get_subscriber(PORTED)
    assert ported.exists and ported.ported_at == NOW - timedelta(days=2) and ported.sim_changed_at is None
    ordinary = await client.get_subscriber(ORDINARY)
    assert ordinary.exists and ordinary.ported_at is None and ordinary.sim_changed_at is not None
    assert NOW - ordinary.sim_changed_at >= timedelta(days=200)
    unknown = await client.get_subscriber("13800003001")
    assert not unknown.exists and unknown.sim_changed_at is None and unknown.ported_at is None


@pytest.mark.parametrize(
    "request_fields",
    [
        {"msisdn": ORDINARY, "month": MONTH, "page_token": "not-a-token"},
        {"msisdn": ORDINARY, "month": MONTH, "page_token": "A" * 22},
        {"msisdn": ORDINARY, "month": "2025-13"},
        {"msisdn": ORDINARY, "month": "May 2025"},
        {"msisdn": "12345", "month": MONTH},
        {"msisdn": ORDINARY, "month": MONTH, "page_size": -1},
    ],
)
async def test_bad_requests_are_invalid_argument(
    stub: billing_pb2_grpc.BillingServiceStub, request_fields: dict[str, Any]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListCallDetails(billing_pb2.ListCallDetailsRequest(**request_fields))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_page_token_is_bound_to_its_query(stub: billing_pb2_grpc.BillingServiceStub) -> None:
    req = billing_pb2.ListCallDetailsRequest(msisdn=HEAVY, month=MONTH, page_size=10)
    token = (await stub.ListCallDetails(req)).next_page_token
    second = await stub.ListCallDetails(
        billing_pb2.ListCallDetailsRequest(msisdn=HEAVY, month=MONTH, page_size=10, page_token=token)
    )
    assert len(second.records) == 10
    for msisdn, month in (("13800001000", MONTH), (HEAVY, "2025-04")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListCallDetails(
                billing_pb2.ListCallDetailsRequest(msisdn=msisdn, month=month, page_token=token)
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.VerifyServicePassword(billing_pb2.VerifyServicePasswordRequest(msisdn="x", service_password="1"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_client_turns_server_errors_into_dependency_unavailable(client: GrpcBilling) -> None:
    with pytest.raises(DependencyUnavailable) as err:
        await collect(client, ORDINARY, "2025-13")
    assert err.value.dependency == "billing"
    assert isinstance(err.value.__cause__, grpc.aio.AioRpcError)


async def test_stopped_server_is_dependency_unavailable_within_the_timeout(data: SeededBilling) -> None:
    server, port = await start_billing_sim(data)
    billing = GrpcBilling(f"127.0.0.1:{port}", timeout=1.0, page_size=50)
    try:
        pages = billing.call_detail_pages(ORDINARY, MONTH)
        await pages.__anext__()
        await server.stop(None)
        for attempt in (pages.__anext__(), billing.get_subscriber(ORDINARY),
                        billing.verify_service_password(ORDINARY, "123456"),
                        billing.verify_owner_document(ORDINARY, "resident_id_card", "11010519491231002X", "王伟"),
                        billing.get_customer_profile(ORDINARY),
                        billing.set_service_password(ORDINARY, "123456")):
            t0 = time.monotonic()
            with pytest.raises(DependencyUnavailable) as err:
                await attempt
            assert time.monotonic() - t0 < 1.5
            assert isinstance(err.value.__cause__, grpc.RpcError)
    finally:
        await billing.close()
        await server.stop(None)


async def test_silent_server_hits_the_deadline() -> None:
    """A peer that accepts TCP but never speaks HTTP/2: only the deadline ends the call."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    billing = GrpcBilling(f"127.0.0.1:{port}", timeout=0.5)
    try:
        t0 = time.monotonic()
        with pytest.raises(DependencyUnavailable) as err:
            await billing.get_subscriber(ORDINARY)
        assert time.monotonic() - t0 < 1.5
        cause = err.value.__cause__
        assert isinstance(cause, grpc.aio.AioRpcError)
        assert cause.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await billing.close()
        for w in held:
            w.close()
        silent.close()
        await silent.wait_closed()


async def test_serve_billing_sim_serves_until_cancelled(data: SeededBilling) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    task = asyncio.create_task(serve_billing_sim(f"127.0.0.1:{port}", data, grace=0.5))
    billing = GrpcBilling(f"127.0.0.1:{port}", timeout=1.0)
    try:
        for _ in range(50):
            with contextlib.suppress(DependencyUnavailable):
                assert (await billing.get_subscriber(ORDINARY)).exists
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("billing simulator never answered")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(DependencyUnavailable):
            await billing.get_subscriber(ORDINARY)
    finally:
        task.cancel()
        await billing.close()


# --- owner documents, profiles and password resets -----------------------------------------------


async def test_customer_profile_over_the_real_client(data: SeededBilling, client: GrpcBilling) -> None:
    for msisdn in (ORDINARY, HEAVY, SWAPPED, PORTED):
        profile = await client.get_customer_profile(msisdn)
        assert profile == data.owner_of(msisdn)
    profile = await client.get_customer_profile(ORDINARY)
    assert profile is not None
    # Billing is internal: the SIM data travels to the gateway, which must never pass it on (R7).
    assert profile.iccid.startswith("8986") and 19 <= len(profile.iccid) <= 20
    assert profile.imsi.startswith("46000") and len(profile.imsi) == 15
    assert profile.document_type == "resident_id_card" and profile.sex in ("female", "male")
    assert profile.account_status == "active"
    assert await client.get_customer_profile("13800003001") is None
    assert await client.get_customer_profile("13900000001") is None


async def test_customer_profile_on_the_wire(data: SeededBilling, stub: billing_pb2_grpc.BillingServiceStub) -> None:
    resp = await stub.GetCustomerProfile(billing_pb2.GetCustomerProfileRequest(msisdn=PORTED))
    owner = data.owner_of(PORTED)
    assert resp.exists and resp.document_type == billing_pb2.DOCUMENT_TYPE_RESIDENT_ID_CARD
    assert resp.sex == (billing_pb2.SEX_MALE if owner.sex == "male" else billing_pb2.SEX_FEMALE)
    assert resp.address.district == owner.district and resp.address.street == owner.street
    assert resp.opened_at.ToDatetime(tzinfo=UTC) == data.opened_at(PORTED) == NOW - timedelta(days=2)
    unknown = await stub.GetCustomerProfile(billing_pb2.GetCustomerProfileRequest(msisdn="13800003001"))
    assert unknown == billing_pb2.GetCustomerProfileResponse(exists=False)


async def test_verify_owner_document_over_the_real_client(data: SeededBilling, client: GrpcBilling) -> None:
    o = data.owner_of(ORDINARY)
    n = o.document_number
    assert await client.verify_owner_document(ORDINARY, "resident_id_card", n, o.name) is True
    assert await client.verify_owner_document(ORDINARY, "resident_id_card", n.lower(), o.name) is True
    wrong_number = n[:17] + ("0" if n[17] != "0" else "1")
    other = data.owner_of("13800000002")
    for msisdn, kind, number, name in [
        (ORDINARY, "resident_id_card", n, "王伟" if o.name != "王伟" else "李娜"),  # wrong name
        (ORDINARY, "resident_id_card", wrong_number, o.name),  # wrong number
        (ORDINARY, "passport", n, o.name),  # wrong type
        (ORDINARY, "driving_licence", n, o.name),  # a type billing has no word for
        (ORDINARY, "resident_id_card", other.document_number, other.name),
        ("13800003001", "resident_id_card", n, o.name),  # unknown numbers
        ("13900000001", "resident_id_card", n, o.name),
    ]:
        assert await client.verify_owner_document(msisdn, kind, number, name) is False, (msisdn, kind, name)


async def test_unspecified_document_type_never_matches(
    data: SeededBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    o = data.owner_of(ORDINARY)
    resp = await stub.VerifyOwnerDocument(
        billing_pb2.VerifyOwnerDocumentRequest(msisdn=ORDINARY, document_number=o.document_number, name=o.name)
    )
    assert resp.match is False


async def test_set_service_password_then_verify(data: SeededBilling, client: GrpcBilling) -> None:
    old = data.password_for(ORDINARY)
    new = "000000" if old != "000000" else "111111"
    assert await client.verify_service_password(ORDINARY, old) is True
    assert await client.set_service_password(ORDINARY, new) is None
    assert await client.verify_service_password(ORDINARY, new) is True
    assert await client.verify_service_password(ORDINARY, old) is False
    assert data.verify(ORDINARY, new) is True
    # Others are untouched.
    assert await client.verify_service_password("13800000002", data.password_for("13800000002")) is True


async def test_set_service_password_of_an_unknown_number(client: GrpcBilling) -> None:
    for msisdn in ("13800003001", "13900000001"):
        with pytest.raises(Unauthenticated) as err:
            await client.set_service_password(msisdn, "123456")
        assert err.value.reason == "unknown_number"
        assert isinstance(err.value.__cause__, grpc.aio.AioRpcError)
        assert err.value.__cause__.code() == grpc.StatusCode.NOT_FOUND


async def test_client_turns_bad_reset_into_dependency_unavailable(data: SeededBilling, client: GrpcBilling) -> None:
    with pytest.raises(DependencyUnavailable) as err:
        await client.set_service_password(ORDINARY, "12345")
    assert isinstance(err.value.__cause__, grpc.aio.AioRpcError)
    assert err.value.__cause__.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(DependencyUnavailable):
        await client.get_customer_profile("12345")
    with pytest.raises(DependencyUnavailable):
        await client.verify_owner_document("12345", "resident_id_card", "11010519491231002X", "王伟")
    assert await client.verify_service_password(ORDINARY, data.password_for(ORDINARY)) is True


@pytest.mark.parametrize("msisdn", ["", "12345", "1380000000x", "23800000001", "138000000011", "\uff11" * 11])
async def test_new_rpcs_reject_a_malformed_msisdn(stub: billing_pb2_grpc.BillingServiceStub, msisdn: str) -> None:
    calls = [
        stub.VerifyOwnerDocument(billing_pb2.VerifyOwnerDocumentRequest(
            msisdn=msisdn, document_type=billing_pb2.DOCUMENT_TYPE_RESIDENT_ID_CARD,
            document_number="11010519491231002X", name="王伟")),
        stub.GetCustomerProfile(billing_pb2.GetCustomerProfileRequest(msisdn=msisdn)),
        stub.SetServicePassword(billing_pb2.SetServicePasswordRequest(msisdn=msisdn, new_service_password="123456")),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("password", ["", "12345", "1234567", "abcdef", "12 456", "\uff11" * 6])
async def test_set_service_password_rejects_a_malformed_password(
    data: SeededBilling, stub: billing_pb2_grpc.BillingServiceStub, password: str
) -> None:
    for msisdn in (ORDINARY, "13800003001"):  # checked before the number is looked up
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SetServicePassword(billing_pb2.SetServicePasswordRequest(
                msisdn=msisdn, new_service_password=password))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert data.verify(ORDINARY, data.password_for(ORDINARY)) is True
