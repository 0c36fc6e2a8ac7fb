"""`hallgate serve --workers N` as real processes: the workers share the port and one Redis, each of
them serves, their metrics add up at the supervisor's endpoint, SIGTERM stops all of them cleanly,
and no worker outlives its supervisor, whether it was stopped, lost a worker or was killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import grpc
import pytest

from adapters.redis_server import free_port
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.support.connect_client import browser_client, browser_headers
from tests.support.dates import month
from tests.support.metrics import assert_no_subscriber_numbers, samples, scrape
from tests.support.outbox import code_in
from tests.support.processes import BillingProc, Proc
from tests.support.subscribers import ORDINARY, SIM, password
from tests.support.tls import KIOSK_CERT, client_credentials, tls_env
from tests.support.waiting import wait_port, wait_until


def worker_pids(proc: Proc, n: int, timeout: float = 10.0) -> dict[int, int]:
    """{worker index: pid} from the supervisor's `worker_started` log lines."""
    def logged() -> dict[int, int] | None:
        found: dict[int, int] = {}
        for line in proc.log.read_text().splitlines():
            if line.startswith("{") and '"worker_started"' in line:
                event = json.loads(line)
                found[int(event["worker"])] = int(event["pid"])
        return found if len(found) == n else None

    try:
        return wait_until(f"{n} worker pids logged", logged, timeout, every=0.1, retry_on=())
    except TimeoutError:
        raise AssertionError(f"worker pids not logged: {proc.log.read_text()[-2000:]}") from None


def multiproc_dir(pid: int) -> str:
    """The PROMETHEUS_MULTIPROC_DIR a worker was started with."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR="))


def alive(pid: int) -> bool:
    """Running (a zombie not yet reaped by its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: list[int], timeout: float) -> None:
    try:
        wait_until("every process gone", lambda: not any(alive(p) for p in pids), timeout, retry_on=())
    except TimeoutError:
        raise AssertionError(f"processes left behind: {[p for p in pids if alive(p)]}") from None


def own_connection(proc: Proc, pki: Path) -> grpc.Channel:
    """A channel with a TCP connection of its own (channels to one target otherwise share one), so
    the kernel may hand it to any worker."""
    return grpc.secure_channel(proc.address, client_credentials(pki, KIOSK_CERT),
                               options=[("grpc.use_local_subchannel_pool", 1)])


def worker_calls(mport: int) -> dict[str, float]:
    return {dict(labels)["worker"]: v for (name, labels), v in samples(scrape(mport)).items()
            if name == "hallgate_worker_calls_total"}


def test_two_workers_share_the_port_and_one_redis_and_stop_cleanly(tmp_path: Path) -> None:
    """Everything embedded: the supervisor starts redis-server, the billing simulator and the PKI
    once; both workers use them."""
    data, mport = tmp_path / "d", free_port()
    gw = Proc(["serve", "--dev", "--workers", "2", "--listen", "{address}", "--data-dir", str(data),
               "--metrics-listen", f"127.0.0.1:{mport}", *SIM], {}, tmp_path / "gw.log")
    try:
        gw.wait_serving(data / "pki")
        pids = worker_pids(gw, 2)
        assert len(set(pids.values())) == 2 and gw.p.pid not in pids.values()
        multiproc = multiproc_dir(pids[0])
        assert multiproc == multiproc_dir(pids[1])  # one directory, summed by the supervisor
        # Connections are spread by the kernel: open fresh ones until both workers have served.
        for i in range(40):
            with own_connection(gw, data / "pki") as channel:
                kiosk_pb2_grpc.KioskServiceStub(channel).RequestOneTimeCode(
                    kiosk_pb2.RequestOneTimeCodeRequest(msisdn=f"139{i:08d}"), timeout=10)
            served = worker_calls(mport)
            if len(served) == 2 and all(v > 0 for v in served.values()):
                break
        assert sorted(served) == ["0", "1"] and all(v > 0 for v in served.values()), served
        # One Redis for both: a code asked through one connection signs in through another.
        with own_connection(gw, data / "pki") as a, own_connection(gw, data / "pki") as b:
            kiosk_pb2_grpc.KioskServiceStub(a).RequestOneTimeCode(
                kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=10)
            reply = kiosk_pb2_grpc.KioskServiceStub(b).Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=ORDINARY, service_password=password(ORDINARY), one_time_code=code_in(data, ORDINARY)),
                timeout=10)
            assert list(kiosk_pb2_grpc.KioskServiceStub(a).ListCallDetails(
                kiosk_pb2.ListCallDetailsRequest(access_token=reply.access_token, month=month()), timeout=30))
        text = scrape(mport)
        s = samples(text)
        # Summed over both workers by the supervisor's multiprocess collector: every unknown number
        # above was refused by one worker or the other, and one code went to ORDINARY.
        assert s[("hallgate_code_requests_refused_total", frozenset({("reason", "unknown_number")}))] == i + 1
        assert s[("hallgate_codes_sent_total", frozenset({("channel", "kiosk")}))] == 1
        assert sum(worker_calls(mport).values()) >= i + 4
        assert_no_subscriber_numbers(text)
        log = gw.log.read_text()
        assert "13800000001  " in log and "2 worker processes" in log  # one banner, from the supervisor
        sock = data / "redis" / "redis.sock"
        assert sock.exists()
    finally:  # SIGTERM whatever happened, so the supervisor stops its embedded Redis too
        started = time.monotonic()
        code = gw.stop(timeout=20)
        took = time.monotonic() - started
    assert code == 0, gw.log.read_text()[-3000:]
    assert took < 10, took
    wait_gone(list(pids.values()), 2)
    assert "Traceback" not in gw.log.read_text()
    with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as sk:  # the embedded Redis is gone too
        sk.connect(str(sock))
    assert not Path(multiproc).exists()  # the workers' metric files went with them


@pytest.fixture
def shared(tmp_path: Path, redis_url: str, clean_redis: str, pki: Path):
    """External Redis and a billing-sim process, so only the gateway's own processes are at stake."""
    sim = BillingProc(tmp_path / "sim.log").start()
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_BILLING_TARGET": sim.address, "HALLGATE_SECRET_KEY": "k",
           "HALLGATE_DATA_DIR": str(tmp_path / "d"), "HALLGATE_GRACE_PERIOD": "2", **tls_env(pki)}
    try:
        yield env, pki
    finally:
        sim.stop()


def test_a_worker_that_dies_takes_the_whole_group_down(tmp_path: Path, shared) -> None:
    env, pki = shared
    gw = Proc(["serve", "--workers", "2", "--listen", "{address}"], env, tmp_path / "gw.log")
    try:
        gw.wait_serving(pki)
        pids = worker_pids(gw, 2)
        os.kill(pids[0], signal.SIGKILL)
        code = gw.p.wait(timeout=15)
    finally:
        gw.kill()
    assert code == 1, gw.log.read_text()[-3000:]
    assert '"worker_died"' in gw.log.read_text()
    wait_gone(list(pids.values()), 2)


def test_workers_stop_themselves_when_the_supervisor_is_killed(tmp_path: Path, shared) -> None:
    env, pki = shared
    gw = Proc(["serve", "--workers", "2", "--listen", "{address}"], env, tmp_path / "gw.log")
    left_over = ""
    try:
        gw.wait_serving(pki)
        pids = worker_pids(gw, 2)
        left_over = multiproc_dir(pids[0])
        gw.kill()  # SIGKILL: no chance to forward anything, nor to clean up
        wait_gone(list(pids.values()), 15)
    finally:
        gw.kill()
        if left_over:
            shutil.rmtree(left_over, ignore_errors=True)
    assert '"supervisor_gone"' in gw.log.read_text()


def test_workers_need_a_fixed_port(tmp_path: Path, shared) -> None:
    env, _ = shared
    gw = Proc(["serve", "--workers", "2", "--listen", "127.0.0.1:0"], env, tmp_path / "gw.log")
    try:
        code = gw.p.wait(timeout=20)
    finally:
        gw.kill()
    assert code == 1
    assert "fixed listen port" in gw.log.read_text()


def test_both_workers_serve_the_browser_listener(tmp_path: Path, shared) -> None:
    """--workers with --browser-listen: each worker listens on the browser port too (SO_REUSEPORT),
    the kernel spreads connections over them, and every call is counted by the worker that served it."""
    env, pki = shared
    bport, mport = free_port(), free_port()
    gw = Proc(["serve", "--workers", "2", "--listen", "{address}", "--browser-listen", f"127.0.0.1:{bport}",
               "--metrics-listen", f"127.0.0.1:{mport}"], env, tmp_path / "gw.log")
    try:
        gw.wait_serving(pki)
        wait_port(bport)
        served: dict[str, float] = {}
        for i in range(40):  # a fresh connection each: until both workers have served
            answer = browser_client(bport, pki, KIOSK_CERT).unary(
                "/hallgate.v1.KioskService/RequestOneTimeCode", kiosk_pb2.RequestOneTimeCodeRequest(
                    msisdn=f"139{i:08d}"), headers=browser_headers())
            assert answer.code == "ok", answer.error
            served = worker_calls(mport)
            if len(served) == 2 and all(v > 0 for v in served.values()):
                break
        assert sorted(served) == ["0", "1"] and all(v > 0 for v in served.values()), served
    finally:
        code = gw.stop(timeout=20)
    assert code == 0, gw.log.read_text()[-3000:]


def test_workers_need_a_fixed_browser_port(tmp_path: Path, shared) -> None:
    env, _ = shared
    gw = Proc(["serve", "--workers", "2", "--listen", "{address}", "--browser-listen", "127.0.0.1:0"], env,
              tmp_path / "gw.log")
    try:
        code = gw.p.wait(timeout=20)
    finally:
        gw.kill()
    assert code == 1
    assert "fixed browser_listen port" in gw.log.read_text()
