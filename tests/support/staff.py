"""Staff credentials in tests: the password every test account gets, TOTP codes the gateway will
accept (it takes each time step once per account, so codes are handed out from one record of the
steps used in this test run), and StaffService.SignIn on a served gateway."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pyotp

from hallgate_pb.v1 import staff_pb2, staff_pb2_grpc

STAFF_PASSWORD = "counter2026"

_used_steps: dict[str, int] = {}


def fresh_totp(secret: str) -> str:
    """A TOTP code not used before in this test run: the current step, or the next one when the
    current was used (the gateway accepts one step ahead)."""
    totp = pyotp.TOTP(secret)
    step = max(totp.timecode(datetime.now(UTC)), _used_steps.get(secret, -1) + 1)
    _used_steps[secret] = step
    return totp.generate_otp(step)


def next_totp(secret: str) -> str:
    """The next unused TOTP code, starting one step back: the gateway accepts the previous, the
    current and the next step, each once, so a test can use three codes without waiting. A code of
    the previous step is only handed out with at least a second of the current step left."""
    t = pyotp.TOTP(secret)
    current = t.timecode(datetime.now(UTC))
    step = max(current - 1, _used_steps.get(secret, -1) + 1)
    if step == current - 1 and t.interval - time.time() % t.interval < 1:
        time.sleep(t.interval - time.time() % t.interval + 0.05)
        return next_totp(secret)
    _used_steps[secret] = step
    return t.generate_otp(step)



async def sign_in(gw: Any, cert: str, staff_id: str, password: str, code: str) -> staff_pb2.SignInResponse:
    """StaffService.SignIn with exactly these credentials on the terminal `cert` of the conftest
    Harness `gw` (its `staff_sign_in` computes a fresh code and returns the call metadata instead)."""
    return await staff_pb2_grpc.StaffServiceStub(gw.channel_for(cert)).SignIn(staff_pb2.SignInRequest(
        staff_id=staff_id, password=password, totp_code=code))
