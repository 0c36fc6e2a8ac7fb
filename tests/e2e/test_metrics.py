"""The metrics endpoint over real HTTP: the kiosk flow moves the gRPC and domain counters as it
should, no subscriber number appears anywhere in a scrape, and readiness follows Redis and billing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from adapters.redis_server import free_port
from gateway.runtime import metrics
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.support.dates import month
from tests.support.metrics import assert_no_subscriber_numbers, delta, samples, scrape
from tests.support.outbox import code_in
from tests.support.processes import BillingProc, Proc
from tests.support.staff import sign_in
from tests.support.status import refused
from tests.support.subscribers import ORDINARY, SIM_SWAPPED, password
from tests.support.tls import CLERK_CERT, tls_env

KIOSK = "hallgate.v1.KioskService"


def grpc_labels(method: str, kind: str = "unary", **extra: str) -> dict[str, str]:
    return {"grpc_type": kind, "grpc_service": KIOSK, "grpc_method": method, **extra}


async def test_a_scrape_after_the_kiosk_flow_shows_the_counters_moved_and_no_number(gw) -> None:
    endpoint = metrics.start_metrics_server("127.0.0.1:0")
    try:
        before_text = await asyncio.to_thread(scrape, endpoint.port)
        code = await gw.request_code(ORDINARY)
        reply = await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=ORDINARY, service_password=gw.billing.password_for(ORDINARY), one_time_code=code))
        chunks = [c async for c in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(
            access_token=reply.access_token, month=month()))]
        assert chunks
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=ORDINARY, service_password="000000", one_time_code="000000"))
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=SIM_SWAPPED))
        after_text = await asyncio.to_thread(scrape, endpoint.port)
    finally:
        endpoint.close()

    d = delta(samples(before_text), samples(after_text))
    assert d("grpc_server_started_total", **grpc_labels("RequestOneTimeCode")) == 2
    assert d("grpc_server_handled_total", **grpc_labels("RequestOneTimeCode", grpc_code="OK")) == 2
    assert d("grpc_server_handled_total", **grpc_labels("Authenticate", grpc_code="OK")) == 1
    assert d("grpc_server_handled_total", **grpc_labels("Authenticate", grpc_code="UNAUTHENTICATED")) == 1
    assert d("grpc_server_handled_total", **grpc_labels("ListCallDetails", "server_stream", grpc_code="OK")) == 1
    assert d("grpc_server_handling_seconds_count", **grpc_labels("Authenticate")) == 2
    assert d("hallgate_codes_sent_total", channel="kiosk") == 1
    assert d("hallgate_sim_swap_refusals_total") == 1
    assert d("hallgate_code_requests_refused_total", reason="sim_swap_hold") == 1
    assert d("hallgate_denials_total", channel="kiosk", reason="bad_credentials") == 1
    assert d("hallgate_lockouts_total", subject="number") == 0
    assert d("hallgate_audit_append_seconds_count") >= 5  # one event per audited call
    assert_no_subscriber_numbers(after_text)


def test_serve_exposes_metrics_and_readiness_follows_billing(tmp_path: Path, redis_url: str, clean_redis: str,
                                                            pki: Path) -> None:
    sim = BillingProc(tmp_path / "sim.log").start()
    mport = free_port()
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_BILLING_TARGET": sim.address, "HALLGATE_SECRET_KEY": "k",
           "HALLGATE_DATA_DIR": str(tmp_path / "d"), "HALLGATE_METRICS_LISTEN": f"127.0.0.1:{mport}", **tls_env(pki)}
    gw = Proc(["serve", "--listen", "{address}"], env, tmp_path / "gw.log")
    try:
        gw.wait_serving(pki)
        with gw.channel(pki) as channel:
            stub = kiosk_pb2_grpc.KioskServiceStub(channel)
            stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=10)
            stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=ORDINARY, service_password=password(ORDINARY),
                one_time_code=code_in(tmp_path / "d", ORDINARY)), timeout=10)
        text = scrape(mport)
        s = samples(text)
        assert s[("hallgate_codes_sent_total", frozenset({("channel", "kiosk")}))] == 1
        assert s[("grpc_server_handled_total",
                  frozenset(grpc_labels("Authenticate", grpc_code="OK").items()))] == 1
        assert s[("hallgate_dependency_up", frozenset({("dependency", "billing")}))] == 1
        assert s[("hallgate_dependency_up", frozenset({("dependency", "redis")}))] == 1
        assert ("process_resident_memory_bytes", frozenset()) in s  # single process: the default registry
        assert_no_subscriber_numbers(text)

        assert sim.stop() == 0  # billing goes away: readiness must turn NOT_SERVING
        gw.wait_health(pki, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert samples(scrape(mport))[("hallgate_dependency_up", frozenset({("dependency", "billing")}))] == 0
        sim.launch()  # the same billing again, on the same port
        gw.wait_health(pki, health_pb2.HealthCheckResponse.SERVING)  # and back once billing is
    finally:
        code = gw.stop()
        sim.stop()
    assert code == 0, gw.log.read_text()[-2000:]
    assert "Traceback" not in gw.log.read_text()


def lockouts(subject: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("hallgate_lockouts_total", {"subject": subject}) or 0.0


async def test_a_locked_number_counts_one_lockout(make_gateway) -> None:
    gw = await make_gateway(lock_threshold=3)
    before = lockouts("number")
    bad = kiosk_pb2.AuthenticateRequest(msisdn=ORDINARY, service_password="000000", one_time_code="000000")
    codes = []
    for _ in range(4):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await gw.stub.Authenticate(bad)
        codes.append(e.value.code())
    assert codes[2:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2  # the 3rd locked it, the 4th found it locked
    assert lockouts("number") == before + 1


async def test_a_locked_staff_account_counts_one_lockout(make_gateway) -> None:
    gw = await make_gateway(lock_threshold=3)
    await gw.add_staff("C1001", "clerk")
    before = lockouts("staff")
    for _ in range(4):
        await refused(sign_in(gw, CLERK_CERT, "C1001", "wrong-pass1", "000000"))
    assert lockouts("staff") == before + 1
