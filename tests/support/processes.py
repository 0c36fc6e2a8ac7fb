"""`hallgate` as real processes for the tests: `serve` and `billing-sim` on free loopback ports, the
CLI run to completion as an operator runs it, staff sign-in over mutual TLS, and what a process
printed. Every process is started here and stopped by its pid."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapters.redis_server import free_port
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc, staff_pb2, staff_pb2_grpc
from tests.support.staff import fresh_totp
from tests.support.subscribers import SIM
from tests.support.tls import KIOSK_CERT, client_credentials
from tests.support.waiting import wait_until

HALLGATE = [sys.executable, "-m", "gateway.cli"]
KIOSK_SERVICE = "hallgate.v1.KioskService"
URI_SECRET = re.compile(r"[?&]secret=([A-Z2-7]+)")
BANNER_STAFF = re.compile(r"^\s+([A-Z]\d{4})\s+(\w+)\s+(\w+)\s+([A-Z2-7]{16,})\s*$", re.MULTILINE)


class Proc:
    """A hallgate process on a free loopback port (`{address}` in `args` is replaced by it), started
    at once unless `start=False`. `stop()` sends SIGTERM and returns the exit code; `kill()` is a
    crash; `signal(SIGSTOP)` freezes it; `launch()` again runs it anew on the same port and log."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, start: bool = True,
                 own_group: bool = False) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = log
        self.args = [a.replace("{address}", self.address) for a in args]
        self.env = env
        self.own_group = own_group  # a process group of its own, as a shell gives a command (killpg)
        self._p: subprocess.Popen[bytes] | None = None
        self._launches = 0
        if start:
            self.launch()

    @property
    def p(self) -> subprocess.Popen[bytes]:
        assert self._p is not None, "the process was never started"
        return self._p

    def launch(self) -> Proc:
        """Start the process (again); the log of a first start is new, later starts append to it."""
        with self.log.open("ab" if self._launches else "wb") as out:
            self._p = subprocess.Popen([*HALLGATE, *self.args], env={**os.environ, **self.env}, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       process_group=0 if self.own_group else None)
        self._launches += 1
        return self

    def channel(self, pki: Path | None, cert: str = KIOSK_CERT) -> grpc.Channel:
        """A channel to this process: mutual TLS with `cert` from `pki`, else plaintext."""
        if pki is None:
            return grpc.insecure_channel(self.address)
        return grpc.secure_channel(self.address, client_credentials(pki, cert))

    def request_code(self, pki: Path | None, msisdn: str) -> None:
        """A kiosk's RequestOneTimeCode for `msisdn` (a call that asks billing first); raises its error."""
        with self.channel(pki) as channel:
            kiosk_pb2_grpc.KioskServiceStub(channel).RequestOneTimeCode(
                kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), timeout=10)

    def _running(self) -> None:
        assert self.p.poll() is None, f"process exited: {self.log.read_text()[-2000:]}"

    def wait_health(self, pki: Path | None, want: int = health_pb2.HealthCheckResponse.SERVING,
                    timeout: float = 20.0) -> Proc:
        """Until health checking reports `want` for the kiosk service (over mutual TLS when `pki`)."""
        seen: object = None
        with self.channel(pki) as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            def reached() -> bool:
                nonlocal seen
                self._running()
                try:
                    seen = stub.Check(health_pb2.HealthCheckRequest(service=KIOSK_SERVICE), timeout=1).status
                except grpc.RpcError as e:
                    seen = e.code()
                return seen == want

            try:
                wait_until(f"health {want}", reached, timeout, every=0.1, retry_on=())
            except TimeoutError:
                raise AssertionError(f"health {seen}, wanted {want} after {timeout}s: "
                                     f"{self.log.read_text()[-2000:]}") from None
        return self

    def wait_serving(self, pki: Path | None = None, timeout: float = 20.0) -> Proc:
        """Until the process serves (killed if it does not within `timeout`); a --dev gateway makes
        the CA under `pki` first."""
        try:
            if pki is not None:
                wait_until(f"{pki}/ca.crt", (pki / "ca.crt").exists, timeout, retry_on=())
            return self.wait_health(pki, timeout=timeout)
        except (TimeoutError, AssertionError):
            self.kill()
            raise

    def wait_port(self, timeout: float = 20.0, credentials: grpc.ChannelCredentials | None = None) -> Proc:
        """Until a gRPC channel to the port connects (a billing-sim, a plaintext listener; with
        `credentials`, a TLS one)."""
        def connects() -> bool:
            self._running()
            with (grpc.insecure_channel(self.address) if credentials is None
                  else grpc.secure_channel(self.address, credentials)) as channel:
                grpc.channel_ready_future(channel).result(timeout=0.3)
            return True

        try:
            wait_until(f"{self.address} open", connects, timeout, every=0, retry_on=(grpc.FutureTimeoutError,))
        except TimeoutError:
            self.kill()
            raise AssertionError(f"port not open after {timeout}s: {self.log.read_text()[-2000:]}") from None
        return self

    def signal(self, sig: signal.Signals) -> None:
        self.p.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash would (a no-op when it is not running)."""
        if self._p is not None and self._p.poll() is None:
            self._p.kill()
            self._p.wait()


class BillingProc(Proc):
    """`hallgate billing-sim` with the test data (subscribers.SIM) as its own process on a fixed
    loopback port, so a gateway's channel reconnects to it: `start`, `kill`, `signal(SIGSTOP)`,
    `start` again."""

    def __init__(self, log: Path, flags: tuple[str, ...] = (), credentials: grpc.ChannelCredentials | None = None
                 ) -> None:
        """`flags`: more billing-sim flags (--tls-*), with the `credentials` that connect to it then."""
        super().__init__(["billing-sim", "--listen", "{address}", *SIM, *flags], {}, log, start=False)
        self.credentials = credentials

    def start(self, timeout: float = 20.0) -> BillingProc:
        self.launch().wait_port(timeout, self.credentials)
        return self

    async def start_async(self) -> BillingProc:
        return await asyncio.to_thread(self.start)


def serve(tmp: Path, data: Path, *flags: str, env: dict[str, str] | None = None, name: str = "gw") -> Proc:
    """A `hallgate serve` process on its own port with the test billing data; not waited for."""
    return Proc(["serve", "--listen", "{address}", "--data-dir", str(data), *SIM, *flags], env or {},
                tmp / f"{name}.log")


def hallgate(*args: str, env: dict[str, str] | None = None, stdin: str = "",
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (stdout, stderr and exit code captured)."""
    return subprocess.run([*HALLGATE, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def add_staff(data: Path, staff_id: str, role: str, hall: str, employee_no: str, password: str,
              env: dict[str, str] | None = None, name: str = "") -> str:
    """`hallgate staff add` on the host, as an operator would; returns the TOTP secret it enrolled."""
    done = hallgate("staff", "add", staff_id, "--name", name or f"Staff {staff_id}", "--role", role,
                    "--hall", hall, "--employee-no", employee_no, "--password-stdin", "--no-qr",
                    "--data-dir", str(data), env=env, stdin=password + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    found = URI_SECRET.search(done.stdout)
    assert found, done.stdout
    return found.group(1)


def staff_token(proc: Proc, pki: Path, cert: str, staff_id: str, password: str, secret: str) -> str:
    """A staff token from StaffService.SignIn on the terminal `cert`."""
    with proc.channel(pki, cert) as channel:
        reply = staff_pb2_grpc.StaffServiceStub(channel).SignIn(staff_pb2.SignInRequest(
            staff_id=staff_id, password=password, totp_code=fresh_totp(secret)), timeout=10)
    return str(reply.staff_token)


def banner_staff(log: Path, timeout: float = 10.0) -> dict[str, str]:
    """{staff id: TOTP secret} of the demo staff a development banner printed ({} if none in time)."""
    def found() -> dict[str, str]:
        return {m.group(1): m.group(4) for m in BANNER_STAFF.finditer(log.read_text())}

    try:
        return wait_until("demo staff in the banner", found, timeout, every=0.1, retry_on=())
    except TimeoutError:
        return {}


def socket_closes(sock: Path, timeout: float = 10.0) -> bool:
    """Whether the unix socket stops accepting connections within `timeout` (an embedded
    redis-server gone with its gateway)."""
    def refused() -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
        except OSError:
            return True
        return False

    try:
        return wait_until(f"{sock} closed", refused, timeout, every=0.1, retry_on=())
    except TimeoutError:
        return False
