"""hallgate as real processes: `serve` with everything embedded, and two gateways on one Redis."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from adapters.sms_outbox import OUTBOX_NAME
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.support.billing_tls import make_billing_pki
from tests.support.dates import month
from tests.support.outbox import code_in
from tests.support.processes import BillingProc, Proc, serve, socket_closes
from tests.support.subscribers import HEAVY, ORDINARY, SIM, password
from tests.support.tls import tls_env


def test_serve_with_embedded_redis_and_billing_serves_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "d"
    gw = Proc(["serve", "--dev", "--listen", "{address}", "--data-dir", str(data), *SIM], {}, tmp_path / "gw.log")
    try:
        gw.wait_serving(data / "pki")  # a development CA and terminal certificates were made
        sock = data / "redis" / "redis.sock"
        assert sock.exists()
        with gw.channel(data / "pki") as channel:
            stub = kiosk_pb2_grpc.KioskServiceStub(channel)
            stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=10)
            reply = stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=ORDINARY, service_password=password(ORDINARY), one_time_code=code_in(data, ORDINARY)),
                timeout=10)
            chunks = list(stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(
                access_token=reply.access_token, month=month()), timeout=30))
            assert sum(len(c.records) for c in chunks) > 100
        assert "13800000001  " in gw.log.read_text()  # the banner lists demo subscribers
    finally:
        code = gw.stop()
    assert code == 0, gw.log.read_text()[-2000:]
    assert "Traceback" not in gw.log.read_text()
    with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as s:  # the embedded Redis is gone too
        s.connect(str(sock))
    assert (data / "redis" / "appendonlydir").is_dir()  # AOF persistence was on


@pytest.fixture
def two_gateways(tmp_path: Path, redis_url: str, clean_redis: str, pki: Path
                 ) -> Iterator[tuple[Proc, Proc, Path]]:
    sim = BillingProc(tmp_path / "sim.log").start()
    data = tmp_path / "shared"  # one data directory each, one SMS outbox for both (as one SMSC)
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_BILLING_TARGET": sim.address, "HALLGATE_SECRET_KEY": "k",
           "HALLGATE_SMS_OUTBOX": str(data / OUTBOX_NAME), "HALLGATE_LOCK_THRESHOLD": "3", **tls_env(pki)}
    gws = [Proc(["serve", "--listen", "{address}"], {**env, "HALLGATE_DATA_DIR": str(tmp_path / f"gw{i}")},
                tmp_path / f"gw{i}.log") for i in (1, 2)]
    try:
        for g in gws:
            g.wait_serving(pki)
        yield gws[0], gws[1], pki
    finally:
        codes = [g.stop() for g in gws]
        sim.stop()
    assert codes == [0, 0]


def test_a_code_requested_through_one_gateway_authenticates_through_the_other(two_gateways, tmp_path) -> None:
    a, b, pki = two_gateways
    data = tmp_path / "shared"
    with a.channel(pki) as ca, b.channel(pki) as cb:
        kiosk_pb2_grpc.KioskServiceStub(ca).RequestOneTimeCode(
            kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=10)
        stub_b = kiosk_pb2_grpc.KioskServiceStub(cb)
        reply = stub_b.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=ORDINARY, service_password=password(ORDINARY), one_time_code=code_in(data, ORDINARY)), timeout=10)
        # and the token works on the first one
        chunks = list(kiosk_pb2_grpc.KioskServiceStub(ca).ListCallDetails(
            kiosk_pb2.ListCallDetailsRequest(access_token=reply.access_token, month=month()), timeout=30))
        assert chunks


def test_failed_sign_ins_add_up_across_gateways(two_gateways) -> None:
    a, b, pki = two_gateways
    bad = kiosk_pb2.AuthenticateRequest(msisdn=ORDINARY, service_password="000000", one_time_code="000000")
    seen = []
    with a.channel(pki) as ca, b.channel(pki) as cb:
        for channel in (ca, cb, ca, cb):
            with pytest.raises(grpc.RpcError) as e:
                kiosk_pb2_grpc.KioskServiceStub(channel).Authenticate(bad, timeout=10)
            seen.append(e.value.code())
    assert seen == [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.RESOURCE_EXHAUSTED]


def test_sigterm_lets_an_in_flight_stream_end_cleanly(tmp_path: Path, redis_url: str, clean_redis: str,
                                                      pki: Path) -> None:
    data = tmp_path / "d"
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_GRACE_PERIOD": "2", **tls_env(pki)}
    gw = Proc(["serve", "--listen", "{address}", "--data-dir", str(data), *SIM], env, tmp_path / "gw.log")
    gw.wait_serving(pki)
    try:
        with gw.channel(pki) as channel:
            stub = kiosk_pb2_grpc.KioskServiceStub(channel)
            stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=HEAVY), timeout=10)
            reply = stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=HEAVY, service_password=password(HEAVY),
                one_time_code=code_in(data, HEAVY)), timeout=10)
            stream = stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(
                access_token=reply.access_token, month=month()), timeout=30)
            next(stream)
            os.kill(gw.p.pid, 15)
            started = time.monotonic()
            try:
                for _ in stream:
                    time.sleep(0.05)  # a slow reader
                outcome = grpc.StatusCode.OK
            except grpc.RpcError as e:
                outcome = e.code()
            assert outcome in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
            assert time.monotonic() - started < 10
    finally:
        code = gw.stop()
    assert code == 0, gw.log.read_text()[-2000:]


def test_ctrl_c_in_a_terminal_lets_an_in_flight_stream_end_before_the_embedded_redis_stops(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the whole process group. The embedded redis-server and SMS centre
    have groups of their own, so only the gateway hears it and stops them after its last calls:
    the stream in flight ends OK with its trail there, and nothing fails on the way out."""
    data = tmp_path / "d"
    gw = Proc(["serve", "--dev", "--listen", "{address}", "--data-dir", str(data), *SIM],
              {"HALLGATE_GRACE_PERIOD": "10"}, tmp_path / "gw.log", own_group=True)
    try:
        gw.wait_serving(data / "pki")
        with gw.channel(data / "pki") as channel:
            stub = kiosk_pb2_grpc.KioskServiceStub(channel)
            stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=HEAVY), timeout=10)
            reply = stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=HEAVY, service_password=password(HEAVY), one_time_code=code_in(data, HEAVY)), timeout=10)
            stream = stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(
                access_token=reply.access_token, month=month()), timeout=30)
            got = len(next(stream).records)
            os.killpg(gw.p.pid, signal.SIGINT)  # what Ctrl-C does
            for chunk in stream:
                got += len(chunk.records)
                time.sleep(0.02)  # a slow reader, still inside the grace period
        assert got > 20_000  # the whole heavy month, ended OK (an error would have raised)
        assert gw.p.wait(timeout=30) == 0
    finally:
        if gw.p.poll() is None:
            gw.stop()
    log = gw.log.read_text()
    assert '"level": "error"' not in log and "Traceback" not in log, log[-3000:]
    assert socket_closes(data / "redis" / "redis.sock", timeout=10)


def test_a_killed_gateway_does_not_leave_its_embedded_redis_behind(tmp_path: Path) -> None:
    data = tmp_path / "d"
    gw = Proc(["serve", "--dev", "--listen", "{address}", "--data-dir", str(data), *SIM], {}, tmp_path / "gw.log")
    gw.wait_serving(data / "pki")
    sock = data / "redis" / "redis.sock"
    gw.kill()  # SIGKILL: no shutdown code runs
    assert socket_closes(sock, timeout=10), "the embedded redis-server outlived its gateway"


def test_serve_and_the_billing_sim_as_processes_speak_mutual_tls(tmp_path: Path, redis_url: str, clean_redis: str,
                                                                   pki: Path) -> None:
    """The CLI end of the billing link: `billing-sim --tls-*` and `serve` with HALLGATE_BILLING_TLS_*.
    The kiosk service is SERVING only while billing answers through the channel the calls use, and
    a code request, which asks billing first, goes through."""
    billing = make_billing_pki(tmp_path / "billing-pki")
    sim = BillingProc(tmp_path / "sim.log", billing.sim_flags(), billing.client()).start()
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_BILLING_TARGET": sim.address, **billing.env(), **tls_env(pki)}
    gw = serve(tmp_path, tmp_path / "gw", env=env)
    try:
        gw.wait_serving(pki)
        gw.request_code(pki, ORDINARY)
    finally:
        code = gw.stop()
        sim.stop()
    assert code == 0 and "Traceback" not in gw.log.read_text()
    assert "TLS" in sim.log.read_text()

