"""Helpers for the hostile rings on real processes: `hallgate serve` on a free loopback port, the
`hallgate` CLI as an operator runs it, staff sign-in over mutual TLS, and reading what a gateway
wrote (SMS codes, the banner). Every process is started here and stopped by pid."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc

from adapters.billing_sim.data import SeededBilling
from adapters.sms_outbox import OUTBOX_NAME
from hallgate_pb.v1 import staff_pb2, staff_pb2_grpc
from tests.conftest import CODE_RE, fresh_totp
from tests.e2e.processes import Proc
from tests.e2e.test_processes import SIM, tls_env

HALLGATE = [sys.executable, "-m", "gateway.cli"]
BILLING = SeededBilling(seed="hallgate-test", subscribers=1200, hash_n=1024)  # the SIM flags' data
URI_SECRET = re.compile(r"[?&]secret=([A-Z2-7]+)")
BANNER_STAFF = re.compile(r"^\s+([A-Z]\d{4})\s+(\w+)\s+(\w+)\s+([A-Z2-7]{16,})\s*$", re.MULTILINE)

__all__ = ["BILLING", "SIM", "Proc", "add_staff", "banner_staff", "code_for", "fresh_totp", "hallgate",
           "production_env", "serve", "sign_in"]


def production_env(pki: Path) -> dict[str, str]:
    """What `hallgate serve` needs without --dev: the hall's TLS material and a legal signing key."""
    return tls_env(pki)


def serve(tmp: Path, data: Path, *flags: str, env: dict[str, str] | None = None, name: str = "gw") -> Proc:
    """A `hallgate serve` process on its own port with the test billing seed; not waited for."""
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


def sign_in(proc: Proc, pki: Path, cert: str, staff_id: str, password: str, secret: str) -> str:
    """A staff token from StaffService.SignIn on the terminal `cert`."""
    with proc.channel(pki, cert) as channel:
        reply = staff_pb2_grpc.StaffServiceStub(channel).SignIn(staff_pb2.SignInRequest(
            staff_id=staff_id, password=password, totp_code=fresh_totp(secret)), timeout=10)
    return str(reply.staff_token)


def code_for(outbox: Path, msisdn: str, timeout: float = 5.0) -> str:
    """The newest one-time code the development SMS outbox holds for a number."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [x for x in outbox.read_text().splitlines() if msisdn in x] if outbox.exists() else []
        found = [m.group(1) for x in lines if (m := CODE_RE.search(x))]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no code for {msisdn} in {outbox}"
        time.sleep(0.05)


def outbox_of(data: Path) -> Path:
    return data / OUTBOX_NAME


def banner_staff(log: Path, timeout: float = 10.0) -> dict[str, str]:
    """{staff id: TOTP secret} of the demo staff a development banner printed."""
    deadline = time.monotonic() + timeout
    while True:
        found = {m.group(1): m.group(4) for m in BANNER_STAFF.finditer(log.read_text())}
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def rpc_error(call: object) -> grpc.RpcError:
    """The RpcError a call raised (AssertionError if it did not)."""
    try:
        if callable(call):
            call()
    except grpc.RpcError as e:
        return e
    raise AssertionError("the call succeeded")
