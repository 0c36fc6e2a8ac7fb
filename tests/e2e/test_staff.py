"""Staff sign-in (R6) end to end over mutual TLS: credentials, TOTP, lockout, expiry, sessions
bound to their terminal, roles bound to their channel and hall, and no secret in logs or audit."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import grpc
import pyotp
import pytest
import structlog

from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc, staff_pb2, staff_pb2_grpc
from tests.support.staff import STAFF_PASSWORD, next_totp, sign_in
from tests.support.status import details, refused, shape, violations

Code = grpc.StatusCode
T07, T08, H002 = "clerk-H001-T07", "clerk-H001-T08", "clerk-H002-T01"
LEGAL, AUDIT, KIOSK = "legal-B01-L01", "audit-B01-A01", "kiosk-H001-K01"
NEW_PASSWORD = "Counter2027x"


def stale_code(secret: str) -> str:
    """A well-formed code that is wrong now (ten minutes old)."""
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(datetime.now(UTC)) - 20)


def staff_stub(gw, cert: str) -> staff_pb2_grpc.StaffServiceStub:
    return staff_pb2_grpc.StaffServiceStub(gw.channel_for(cert))


def clerk_stub(gw, cert: str) -> clerk_pb2_grpc.ClerkServiceStub:
    return clerk_pb2_grpc.ClerkServiceStub(gw.channel_for(cert))


async def counter_call(gw, cert: str, md) -> Code:
    """A staff-only call on a clerk terminal: OK if the staff session is accepted (the call then
    stops at the next check, the customer session, which this probe never has)."""
    try:
        await clerk_stub(gw, cert).GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(
            customer_session="A" * 43), metadata=md)
    except grpc.aio.AioRpcError as e:
        if e.code() == Code.PERMISSION_DENIED and details(e)["ErrorInfo"].reason == "CUSTOMER_SESSION_REQUIRED":
            return Code.OK
        return e.code()
    raise AssertionError("a made-up customer session was accepted")


# --- credentials --------------------------------------------------------------------------------

async def test_right_credentials_sign_in_with_role_and_idle_timeout(gw):
    secret = await gw.add_staff("C1001", "clerk")
    reply = await sign_in(gw, T07, "C1001", STAFF_PASSWORD, next_totp(secret))
    assert reply.role == "clerk" and len(reply.staff_token) == 43
    assert reply.idle_timeout.seconds == int(gw.settings.staff_idle)
    md = (("authorization", f"Bearer {reply.staff_token}"),)
    assert await counter_call(gw, T07, md) == Code.OK
    ev = (await gw.audit_events())[0]
    assert (ev["method"].rsplit("/", 1)[1], ev["decision"], ev["staff_id"], ev["role"], ev["terminal"]) == (
        "SignIn", "allowed", "C1001", "clerk", "H001/clerk/T07")


async def test_wrong_password_wrong_totp_unknown_and_disabled_staff_get_one_answer(gw):
    secret = await gw.add_staff("C1001", "clerk")
    disabled = await gw.add_staff("C1002", "clerk", disabled=True)
    answers = {
        "wrong password": await refused(sign_in(gw, T07, "C1001", "counter2025", next_totp(secret))),
        "wrong totp": await refused(sign_in(gw, T07, "C1001", STAFF_PASSWORD, stale_code(secret))),
        "unknown staff": await refused(sign_in(gw, T07, "C9999", STAFF_PASSWORD, next_totp(secret))),
        "disabled staff": await refused(sign_in(gw, T07, "C1002", STAFF_PASSWORD, next_totp(disabled))),
    }
    first = shape(answers["wrong password"])
    assert first[0] == Code.UNAUTHENTICATED
    for what, e in answers.items():
        assert shape(e) == first, what
    events = await gw.audit_events()
    assert [(e["decision"], e["reason"]) for e in events] == [("denied", "bad_staff_credentials")] * 4


async def test_a_totp_code_is_accepted_once(gw):
    secret = await gw.add_staff("C1001", "clerk")
    code = next_totp(secret)
    assert (await sign_in(gw, T07, "C1001", STAFF_PASSWORD, code)).staff_token
    e = await refused(sign_in(gw, T07, "C1001", STAFF_PASSWORD, code))
    assert e.code() == Code.UNAUTHENTICATED
    # ... even on another terminal, and an earlier step is no good either once a later one was used.
    e = await refused(sign_in(gw, T08, "C1001", STAFF_PASSWORD, code))
    assert e.code() == Code.UNAUTHENTICATED
    assert (await sign_in(gw, T08, "C1001", STAFF_PASSWORD, next_totp(secret))).staff_token


async def test_five_failures_lock_the_account_even_for_the_right_credentials(make_gateway):
    gw = await make_gateway(lock_duration=1.5)
    secret = await gw.add_staff("C1001", "clerk")
    other = await gw.add_staff("C1002", "clerk")
    codes = []
    for _ in range(4):
        e = await refused(sign_in(gw, T07, "C1001", "wrong-pass1", "000000"))
        codes.append(e.code())
    assert codes == [Code.UNAUTHENTICATED] * 4
    e = await refused(sign_in(gw, T07, "C1001", "wrong-pass1", "000000"))
    assert e.code() == Code.RESOURCE_EXHAUSTED
    assert details(e)["RetryInfo"].retry_delay.seconds >= 1
    e = await refused(sign_in(gw, T07, "C1001", STAFF_PASSWORD, next_totp(secret)))
    assert e.code() == Code.RESOURCE_EXHAUSTED
    assert details(e)["RetryInfo"].retry_delay.seconds >= 1
    assert (await gw.audit_events())[-1]["reason"] == "staff_locked"
    # Another account is not affected, and the lock expires.
    assert (await sign_in(gw, T07, "C1002", STAFF_PASSWORD, next_totp(other))).staff_token
    await asyncio.sleep(1.6)
    assert (await sign_in(gw, T07, "C1001", STAFF_PASSWORD, next_totp(secret))).staff_token


async def test_the_default_staff_lock_lasts_thirty_minutes(gw):
    await gw.add_staff("C1001", "clerk")
    for _ in range(4):
        await refused(sign_in(gw, T07, "C1001", "wrong-pass1", "000000"))
    e = await refused(sign_in(gw, T07, "C1001", "wrong-pass1", "000000"))
    assert e.code() == Code.RESOURCE_EXHAUSTED
    assert 1700 <= details(e)["RetryInfo"].retry_delay.seconds <= 1800


async def test_an_unknown_staff_id_locks_like_a_known_one(gw):
    """Failures on an unknown id are counted too, so the lock does not reveal which ids exist."""
    answers = {}
    await gw.add_staff("C1001", "clerk")
    for staff_id in ("C1001", "C9999"):
        answers[staff_id] = [(await refused(sign_in(gw, T07, staff_id, "wrong-pass1", "000000"))).code()
                             for _ in range(6)]
    assert answers["C1001"] == answers["C9999"] == [Code.UNAUTHENTICATED] * 4 + [Code.RESOURCE_EXHAUSTED] * 2


# --- password expiry and change -------------------------------------------------------------------

async def test_an_expired_password_must_be_changed_first(gw):
    secret = await gw.add_staff("C1001", "clerk", changed_days_ago=91)
    e = await refused(sign_in(gw, T07, "C1001", STAFF_PASSWORD, next_totp(secret)))
    assert e.code() == Code.FAILED_PRECONDITION
    assert details(e)["ErrorInfo"].reason == "PASSWORD_EXPIRED"
    stub = staff_stub(gw, T07)
    for weak in ("short1", "onlyletters", "1234567890", STAFF_PASSWORD):
        e = await refused(stub.ChangePassword(staff_pb2.ChangePasswordRequest(
            staff_id="C1001", current_password=STAFF_PASSWORD, new_password=weak, totp_code=stale_code(secret))))
        assert e.code() == Code.INVALID_ARGUMENT, weak
        assert set(violations(e)) == {"new_password"}, weak
    # The wrong current password does not change it.
    e = await refused(stub.ChangePassword(staff_pb2.ChangePasswordRequest(
        staff_id="C1001", current_password="counter2025", new_password=NEW_PASSWORD, totp_code=stale_code(secret))))
    assert e.code() == Code.UNAUTHENTICATED
    await stub.ChangePassword(staff_pb2.ChangePasswordRequest(
        staff_id="C1001", current_password=STAFF_PASSWORD, new_password=NEW_PASSWORD, totp_code=next_totp(secret)))
    reply = await sign_in(gw, T07, "C1001", NEW_PASSWORD, next_totp(secret))
    assert reply.role == "clerk"
    e = await refused(sign_in(gw, T07, "C1001", STAFF_PASSWORD, stale_code(secret)))
    assert e.code() == Code.UNAUTHENTICATED


async def test_a_password_89_days_old_still_works(gw):
    secret = await gw.add_staff("C1001", "clerk", changed_days_ago=89)
    assert (await sign_in(gw, T07, "C1001", STAFF_PASSWORD, next_totp(secret))).staff_token


# --- sessions ------------------------------------------------------------------------------------

async def test_a_staff_token_only_works_on_the_terminal_it_was_issued_to(gw):
    secret = await gw.add_staff("C1001", "clerk")
    md = await gw.staff_sign_in(T07, "C1001", secret)
    assert await counter_call(gw, T07, md) == Code.OK
    assert await counter_call(gw, T08, md) == Code.UNAUTHENTICATED
    assert await counter_call(gw, H002, md) == Code.UNAUTHENTICATED
    ev = (await gw.audit_events())[-1]
    assert (ev["terminal"], ev["decision"], ev["reason"]) == ("H002/clerk/T01", "denied", "staff_sign_in_required")
    # The stolen use did not end the session on its own terminal.
    assert await counter_call(gw, T07, md) == Code.OK


@pytest.mark.parametrize("bearer", ["", "Bearer ", "Bearer " + "A" * 43, "Basic " + "A" * 43, "Bearer short",
                                    "A" * 43])
async def test_a_missing_or_bogus_staff_token_is_unauthenticated(gw, bearer):
    md = (("authorization", bearer),) if bearer else None
    assert await counter_call(gw, T07, md) == Code.UNAUTHENTICATED
    assert (await gw.audit_events())[-1]["reason"] == "staff_sign_in_required"


async def test_an_idle_staff_session_dies_and_use_keeps_it_alive(make_gateway):
    gw = await make_gateway(staff_idle=1.5)
    secret = await gw.add_staff("C1001", "clerk")
    md = await gw.staff_sign_in(T07, "C1001", secret)
    for _ in range(6):  # use every 0.35 s keeps it alive well past its 1.5 s idle timeout
        await asyncio.sleep(0.35)
        assert await counter_call(gw, T07, md) == Code.OK
    await asyncio.sleep(2.0)
    assert await counter_call(gw, T07, md) == Code.UNAUTHENTICATED


async def test_sign_out_kills_the_token(gw):
    secret = await gw.add_staff("C1001", "clerk")
    md = await gw.staff_sign_in(T07, "C1001", secret)
    await staff_stub(gw, T07).SignOut(staff_pb2.SignOutRequest(), metadata=md)
    assert await counter_call(gw, T07, md) == Code.UNAUTHENTICATED
    e = await refused(staff_stub(gw, T07).SignOut(staff_pb2.SignOutRequest(), metadata=md))
    assert e.code() == Code.UNAUTHENTICATED


async def test_sign_out_needs_a_live_session(gw):
    e = await refused(staff_stub(gw, T07).SignOut(staff_pb2.SignOutRequest()))
    assert e.code() == Code.UNAUTHENTICATED


async def test_signing_out_from_another_terminal_is_refused_and_leaves_the_session(gw):
    secret = await gw.add_staff("C1001", "clerk")
    md = await gw.staff_sign_in(T07, "C1001", secret)
    e = await refused(staff_stub(gw, T08).SignOut(staff_pb2.SignOutRequest(), metadata=md))
    assert e.code() == Code.UNAUTHENTICATED
    assert await counter_call(gw, T07, md) == Code.OK


async def test_disabling_a_staff_member_ends_their_live_session(gw):
    secret = await gw.add_staff("C1001", "clerk")
    md = await gw.staff_sign_in(T07, "C1001", secret)
    assert await counter_call(gw, T07, md) == Code.OK
    record = await gw.deps.staff.get("C1001")
    await gw.deps.staff.put(dataclasses.replace(record, disabled=True))
    assert await counter_call(gw, T07, md) == Code.UNAUTHENTICATED


# --- roles bound to channels and halls --------------------------------------------------------------

@pytest.mark.parametrize(("role", "hall", "cert"), [
    ("clerk", "H001", H002),  # a clerk of H001 at a counter of H002
    ("hall_manager", "H001", H002),
    ("legal_officer", "B01", T07),  # a legal officer on a clerk terminal
    ("legal_approver", "B01", T07),
    ("auditor", "B01", T07),
    ("admin", "B01", T07),
    ("clerk", "H001", LEGAL),
    ("clerk", "H001", AUDIT),
    ("legal_officer", "B01", AUDIT),
])
async def test_staff_sign_in_only_on_a_terminal_of_their_role_and_hall(gw, role, hall, cert):
    secret = await gw.add_staff("S1", role, hall=hall)
    e = await refused(sign_in(gw, cert, "S1", STAFF_PASSWORD, next_totp(secret)))
    assert e.code() == Code.PERMISSION_DENIED
    assert details(e)["ErrorInfo"].reason == "WRONG_TERMINAL_FOR_ROLE"
    ev = (await gw.audit_events())[-1]
    assert (ev["decision"], ev["reason"], ev["staff_id"]) == ("denied", "wrong_terminal_for_role", "S1")


@pytest.mark.parametrize(("role", "hall", "cert"), [
    ("clerk", "H001", T07),
    ("hall_manager", "H001", T08),
    ("clerk", "H002", H002),
    ("legal_officer", "B01", LEGAL),
    ("legal_approver", "B01", LEGAL),
    ("auditor", "B01", AUDIT),
    ("auditor", "B01", LEGAL),
    ("admin", "B01", AUDIT),
])
async def test_staff_sign_in_on_their_own_kind_of_terminal(gw, role, hall, cert):
    secret = await gw.add_staff("S1", role, hall=hall)
    assert (await sign_in(gw, cert, "S1", STAFF_PASSWORD, next_totp(secret))).role == role


async def test_a_kiosk_cannot_sign_staff_in(gw):
    secret = await gw.add_staff("C1001", "clerk")
    e = await refused(sign_in(gw, KIOSK, "C1001", STAFF_PASSWORD, next_totp(secret)))
    assert e.code() == Code.PERMISSION_DENIED


async def test_a_wrong_role_sign_in_does_not_reveal_the_password_was_right_before_the_totp(gw):
    """Role/terminal is checked only after the credentials: a wrong password on the wrong terminal
    gets the generic UNAUTHENTICATED, not PERMISSION_DENIED."""
    await gw.add_staff("L1", "legal_officer", hall="B01")
    e = await refused(sign_in(gw, T07, "L1", "wrong-pass1", "000000"))
    assert e.code() == Code.UNAUTHENTICATED


# --- input validation ----------------------------------------------------------------------------

async def test_bad_sign_in_fields_are_invalid_argument_naming_each(gw):
    e = await refused(sign_in(gw, T07, "", "", ""))
    assert e.code() == Code.INVALID_ARGUMENT
    assert violations(e) == ["staff_id", "password", "totp_code"]
    e = await refused(sign_in(gw, T07, "C 1001", "x" * 129, "12345a"))
    assert violations(e) == ["staff_id", "password", "totp_code"]


# --- secrets ------------------------------------------------------------------------------------

async def test_no_password_totp_code_or_token_reaches_logs_or_audit(gw):
    secret = await gw.add_staff("C1001", "clerk", changed_days_ago=91)
    codes = []
    with structlog.testing.capture_logs() as logs:
        code = next_totp(secret)
        codes.append(code)
        await refused(sign_in(gw, T07, "C1001", STAFF_PASSWORD, code))  # expired
        await refused(sign_in(gw, T07, "C1001", "Wr0ngPassw0rd", stale_code(secret)))
        await refused(staff_stub(gw, T07).ChangePassword(staff_pb2.ChangePasswordRequest(
            staff_id="C1001", current_password=STAFF_PASSWORD, new_password="weak", totp_code="000000")))
        code = next_totp(secret)
        codes.append(code)
        await staff_stub(gw, T07).ChangePassword(staff_pb2.ChangePasswordRequest(
            staff_id="C1001", current_password=STAFF_PASSWORD, new_password=NEW_PASSWORD, totp_code=code))
        code = next_totp(secret)
        codes.append(code)
        reply = await sign_in(gw, T07, "C1001", NEW_PASSWORD, code)
        md = (("authorization", f"Bearer {reply.staff_token}"),)
        assert await counter_call(gw, T07, md) == Code.OK
        await staff_stub(gw, T07).SignOut(staff_pb2.SignOutRequest(), metadata=md)
        assert await counter_call(gw, T07, md) == Code.UNAUTHENTICATED
    assert len(logs) >= 7
    logged = [str(line) for line in logs] + [str(e) for e in await gw.audit_events()]
    for s in (STAFF_PASSWORD, NEW_PASSWORD, "Wr0ngPassw0rd", reply.staff_token, secret, *codes):
        leaks = [line for line in logged if s in line]
        assert not leaks, f"{s!r} found in {leaks[:2]}"
    keys = [k.decode() for k in await gw.redis.keys("*")]
    assert not [k for k in keys if reply.staff_token in k]
