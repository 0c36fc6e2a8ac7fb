"""Run hallgate commands as real processes for the tests, and stop them by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapters.redis_server import free_port

HALLGATE = [sys.executable, "-m", "gateway.cli"]


class Proc:
    """A hallgate process on a free loopback port; `stop()` sends SIGTERM and returns the exit code."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = log
        self.args = [a.replace("{address}", self.address) for a in args]
        with log.open("wb") as out:
            self.p = subprocess.Popen([*HALLGATE, *self.args], env={**os.environ, **env}, stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def channel(self, pki: Path | None, cert: str = "kiosk-H001-K01") -> grpc.Channel:
        """A channel to this process: mutual TLS with `cert` from `pki`, else plaintext."""
        if pki is None:
            return grpc.insecure_channel(self.address)
        creds = grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes(), (pki / f"{cert}.key").read_bytes(),
                                             (pki / f"{cert}.crt").read_bytes())
        return grpc.secure_channel(self.address, creds)

    def wait_serving(self, pki: Path | None = None, timeout: float = 20.0) -> Proc:
        deadline = time.monotonic() + timeout
        while pki is not None and not (pki / "ca.crt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.channel(pki) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.p.poll() is None, f"process exited: {self.log.read_text()[-2000:]}"
                try:
                    ready = health_pb2.HealthCheckRequest(service="hallgate.v1.KioskService")
                    if stub.Check(ready, timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                        return self
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        self.kill()
        raise AssertionError(f"not serving after {timeout}s: {self.log.read_text()[-2000:]}")

    def wait_port(self, timeout: float = 20.0) -> Proc:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.p.poll() is None, f"process exited: {self.log.read_text()[-2000:]}"
            with grpc.insecure_channel(self.address) as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    return self
                except grpc.FutureTimeoutError:
                    pass
        self.kill()
        raise AssertionError(f"port not open after {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self, timeout: float = 15.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
