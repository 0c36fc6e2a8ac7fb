"""The metrics endpoint over real HTTP: the kiosk flow moves the gRPC and domain counters as it
should, no subscriber number appears anywhere in a scrape, and readiness follows Redis and billing.

Skipped until the wiring (Settings.metrics_listen, the interceptor and TimedAuditSink in
create_server, the endpoint and readiness watch in serve) is in place."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from adapters.redis_server import free_port
from gateway import metrics
from gateway.settings import Settings
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.e2e.processes import Proc
from tests.e2e.test_processes import SIM, _code, _password, tls_env
from tests.helpers import ORDINARY, SIM_SWAPPED, month

WIRED = "metrics_listen" in Settings.__dataclass_fields__
pytestmark = pytest.mark.skipif(not WIRED, reason="metrics are not wired into settings/bootstrap yet")

# A subscriber number as a token of its own (not digits inside a float such as 0.0213800000001).
MSISDN_RE = re.compile(r"(?<![0-9.])1[3-9][0-9]{9}(?![0-9])")
KIOSK = "hallgate.v1.KioskService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def assert_no_subscriber_numbers(text: str) -> None:
    found = MSISDN_RE.search(text)
    assert found is None, text[max(0, found.start() - 200):found.end() + 20]
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert not any(re.search(r"[0-9]{5}", v) for v in s.labels.values()), s


def delta(before: Samples, after: Samples) -> Callable[..., float]:
    def d(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    return d


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


def wait_health(proc: Proc, pki: Path, want: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    got = None
    with proc.channel(pki) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                got = stub.Check(health_pb2.HealthCheckRequest(service=KIOSK), timeout=2).status
            except grpc.RpcError as e:
                got = e.code()
            if got == want:
                return
            time.sleep(0.2)
    raise AssertionError(f"health {got}, wanted {want}: {proc.log.read_text()[-2000:]}")


def test_serve_exposes_metrics_and_readiness_follows_billing(tmp_path: Path, redis_url: str, clean_redis: str,
                                                            pki: Path) -> None:
    sim = Proc(["billing-sim", "--listen", "{address}", *SIM], {}, tmp_path / "sim.log").wait_port()
    mport = free_port()
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_BILLING_TARGET": sim.address, "HALLGATE_SECRET_KEY": "k",
           "HALLGATE_DATA_DIR": str(tmp_path / "d"), "HALLGATE_METRICS_LISTEN": f"127.0.0.1:{mport}", **tls_env(pki)}
    gw = Proc(["serve", "--listen", "{address}"], env, tmp_path / "gw.log")
    sim2 = None
    try:
        gw.wait_serving(pki)
        with gw.channel(pki) as channel:
            stub = kiosk_pb2_grpc.KioskServiceStub(channel)
            stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=10)
            stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=ORDINARY, service_password=_password(ORDINARY),
                one_time_code=_code(tmp_path / "d", ORDINARY)), timeout=10)
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
        wait_health(gw, pki, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert samples(scrape(mport))[("hallgate_dependency_up", frozenset({("dependency", "billing")}))] == 0
        sim2 = Proc(["billing-sim", "--listen", sim.address, *SIM], {}, tmp_path / "sim2.log")
        wait_health(gw, pki, health_pb2.HealthCheckResponse.SERVING)  # and back once billing is
    finally:
        code = gw.stop()
        sim.stop()
        if sim2 is not None:
            sim2.stop()
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


def _staff_lock_is_told_apart() -> bool:
    from gateway import status

    return "staff_locked_now" in status.REASON_MESSAGES


@pytest.mark.skipif(not _staff_lock_is_told_apart(),
                    reason="gateway/staff.py does not yet raise staff_locked_now for the failure that locks")
async def test_a_locked_staff_account_counts_one_lockout(make_gateway) -> None:
    from tests.e2e.test_staff import T07, refused, sign_in

    gw = await make_gateway(lock_threshold=3)
    await gw.add_staff("C1001", "clerk")
    before = lockouts("staff")
    for _ in range(4):
        await refused(sign_in(gw, T07, "C1001", "wrong-pass1", "000000"))
    assert lockouts("staff") == before + 1
