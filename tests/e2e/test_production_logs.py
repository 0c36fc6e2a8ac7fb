"""`hallgate serve` in production mode as a real process, started while Redis is down: it stays up
NotReady (liveness SERVING, every Redis-dependent service and `hallgate.ready` NOT_SERVING) and says
why in one JSON line, refuses calls UNAVAILABLE (the deny-list fails closed), turns ready within
about a second once Redis comes, serves calls, and every line it writes, up to its SIGTERM exit, is
a JSON object: no banner, no traceback, no grpc C-core lines (GRPC_VERBOSITY)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapters.redis_server import RedisServerProcess, free_port
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.support.outbox import code_for
from tests.support.processes import Proc, hallgate
from tests.support.subscribers import ORDINARY, SIM
from tests.support.tls import tls_env
from tests.support.waiting import wait_until

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
KIOSK = "hallgate.v1.KioskService"
READY = "hallgate.ready"
NEED_REDIS = [KIOSK, "hallgate.v1.StaffService", "hallgate.v1.ClerkService", "hallgate.v1.LegalService",
              "hallgate.v1.AuditService", READY]


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line parsed as a JSON object (an AssertionError naming the first that is not)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(value, dict) and "event" in value, f"line {number}: {line!r}"
        found.append(value)
    return found


def statuses(health: str) -> dict[str, int]:
    with grpc.insecure_channel(health) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {s: stub.Check(health_pb2.HealthCheckRequest(service=s), timeout=1).status for s in ["", *NEED_REDIS]}


@pytest.fixture
def no_grpc_verbosity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)  # the default must be quiet on its own


def test_started_with_redis_down_it_serves_not_ready_then_ready_and_logs_only_json(
        tmp_path: Path, pki: Path, no_grpc_verbosity: None) -> None:
    redis_port, health_port = free_port(), free_port()
    outbox = tmp_path / "outbox.jsonl"
    env = {**tls_env(pki), "HALLGATE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "HALLGATE_SECRET_KEY": "k",
           "HALLGATE_SMS_OUTBOX": str(outbox), "HALLGATE_HEALTH_LISTEN": f"127.0.0.1:{health_port}",
           "HALLGATE_REVOCATION_REFRESH": "1"}  # no SMS URL: the embedded SMSC simulator, which logs JSON too
    health = f"127.0.0.1:{health_port}"
    gw = Proc(["serve", "--listen", "{address}", "--data-dir", str(tmp_path / "d"), *SIM], env, tmp_path / "gw.log")
    redis: RedisServerProcess | None = None
    try:
        # Up and answering health with Redis down: liveness SERVING, readiness NOT_SERVING.
        seen = wait_until("the health port", lambda: statuses(health), 20, every=0.1, retry_on=(grpc.RpcError,))
        assert seen == {"": SERVING, **dict.fromkeys(NEED_REDIS, NOT_SERVING)}, seen
        done = hallgate("health", "--plaintext", "--target", health, "--service", READY)
        assert (done.returncode, done.stdout.strip()) == (1, "NOT_SERVING")

        def said_why() -> dict[str, object] | None:
            return next((e for e in json_lines(gw.log.read_text())
                         if e["event"] == "readiness" and "redis" in e["down"]), None)  # type: ignore[operator]

        why = wait_until("the readiness line", said_why, 5, every=0.1, retry_on=())
        assert f"127.0.0.1:{redis_port}" in json.dumps(why["why"]) and READY in why["not_serving"]  # type: ignore[operator]

        with gw.channel(pki) as channel:  # a call with an identity: the deny-list is not loaded, fail closed
            stub = kiosk_pb2_grpc.KioskServiceStub(channel)
            with pytest.raises(grpc.RpcError) as e:
                stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(gw.address) as plain:  # a failed TLS handshake: C-core would log it
            with pytest.raises(grpc.FutureTimeoutError):
                grpc.channel_ready_future(plain).result(timeout=0.5)
        assert gw.p.poll() is None

        redis = RedisServerProcess(tmp_path / "redis", port=redis_port, appendfsync="always").start()
        started = time.monotonic()
        wait_until("ready", lambda: all(v == SERVING for v in statuses(health).values()), 10, every=0.05,
                   retry_on=())
        assert time.monotonic() - started < 2.0  # redis every 0.25 s, the deny-list retried every 0.2 s
        done = hallgate("health", "--plaintext", "--target", health, "--service", READY)
        assert (done.returncode, done.stdout.strip()) == (0, "SERVING")

        gw.request_code(pki, ORDINARY)
        assert code_for(outbox, ORDINARY)
    finally:
        code = gw.stop()
        if redis is not None:
            redis.stop()
    text = gw.log.read_text()
    assert code == 0, text[-2000:]
    events = [e["event"] for e in json_lines(text)]
    assert events[-1] == "stopped" and "serving" in events and "stopping" in events
    serving = next(e for e in json_lines(text) if e["event"] == "serving")
    assert serving["mode"] == "production" and serving["ready_service"] == READY  # the banner's facts
    assert "hallgate is serving" not in text and "Traceback" not in text
    assert any(e.get("logger") == "smsc_sim" for e in json_lines(text))  # the simulator's lines, as JSON


def test_a_refusal_at_start_is_one_json_line(tmp_path: Path, pki: Path) -> None:
    env = {**tls_env(pki), "HALLGATE_TLS_CERT": str(tmp_path / "missing.crt"), "HALLGATE_SECRET_KEY": "k",
           "HALLGATE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "HALLGATE_SMS_URL": f"outbox:{tmp_path}/o"}
    done = hallgate("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), *SIM, env=env)
    assert done.returncode != 0
    lines = json_lines(done.stdout + done.stderr)
    assert lines and lines[-1]["level"] in ("error", "critical"), lines
    assert "missing.crt" in json.dumps(lines)


def test_stdlib_logging_warnings_and_uncaught_exceptions_are_json_lines() -> None:
    code = ("from gateway.runtime import logs; logs.configure('json'); logs.install_excepthook()\n"
            "import logging, warnings, threading\n"
            "warnings.warn('deprecated thing')\n"
            "logging.getLogger('asyncio').error('Task exception was never retrieved %s', 1)\n"
            "t = threading.Thread(target=lambda: 1 / 0); t.start(); t.join()\n"
            "raise ValueError('nobody caught me')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    lines = json_lines(done.stderr)
    assert [(e.get("logger"), e["level"]) for e in lines] == [
        ("py.warnings", "warning"), ("asyncio", "error"), (None, "critical"), (None, "critical")]
    assert "ZeroDivisionError" in str(lines[2]["exception"]) and "nobody caught me" in str(lines[3]["exception"])
