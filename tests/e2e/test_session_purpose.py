"""Purpose limitation at the counter (R2, R10; issue 15 part 1) end to end over mutual TLS with
real Redis: a customer session states why it is opened, may do only what that purpose allows (the
policy table's `purposes`), and the purpose is on record in the audit trail and in the
subscriber's access history."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gateway.cli.main import main as cli_main
from gateway.domain import passwords
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc, kiosk_pb2
from tests.support.clerk import id_card
from tests.support.status import reason, refused, violations

Code = grpc.StatusCode
T07 = "clerk-H001-T07"
RESET_METHOD = "/hallgate.v1.ClerkService/ResetServicePassword"
P = clerk_pb2.SessionPurpose

# This file's own numbers: resets here never touch numbers other tests use, and are undone at teardown.
CUSTOMER = "13800000161"
OTHER_CUSTOMER = "13800000162"


@pytest.fixture(autouse=True)
def restore_service_passwords(billing_data):
    yield
    for msisdn in (CUSTOMER, OTHER_CUSTOMER):
        billing_data.set_password(msisdn, billing_data.password_for(msisdn))


class Counter:
    """A clerk signed in on T07."""

    def __init__(self, gw, md) -> None:
        self.gw, self.md = gw, md
        self.stub = clerk_pb2_grpc.ClerkServiceStub(gw.channel_for(T07))

    def open(self, msisdn: str, purpose: int, reason: str = ""):
        return self.stub.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
            msisdn=msisdn, id_document=id_card(self.gw.billing.owner_of(msisdn)), purpose=purpose, reason=reason),
            metadata=self.md)

    async def session(self, msisdn: str, purpose: int, reason: str = "") -> str:
        return str((await self.open(msisdn, purpose, reason)).customer_session)

    def reset(self, session: str, new: str):
        return self.stub.ResetServicePassword(clerk_pb2.ResetServicePasswordRequest(
            customer_session=session, new_service_password=new), metadata=self.md)

    def profile(self, session: str):
        return self.stub.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(customer_session=session),
                                            metadata=self.md)

    def code_delivery(self, session: str):
        return self.stub.GetCodeDelivery(clerk_pb2.GetCodeDeliveryRequest(customer_session=session),
                                         metadata=self.md)

    def close(self, session: str):
        return self.stub.CloseCustomerSession(clerk_pb2.CloseCustomerSessionRequest(customer_session=session),
                                              metadata=self.md)


async def counter(gw, staff_id: str = "C1001") -> Counter:
    secret = await gw.add_staff(staff_id, "clerk")
    return Counter(gw, await gw.staff_sign_in(T07, staff_id, secret))


def new_password(gw, msisdn: str) -> str:
    owner = gw.billing.owner_of(msisdn)
    for candidate in ("480273", "593817", "706294", "815360"):
        if candidate != gw.billing.password_for(msisdn) and passwords.trivial_service_password(
                candidate, birth_date=owner.birth_date, document_number=owner.document_number, msisdn=msisdn) is None:
            return candidate
    raise AssertionError("no candidate password")


async def events_of(gw, method: str) -> list[dict[str, str]]:
    return [e for e in await gw.audit_events() if e["method"] == method]


# --- the acceptance: a reset in a plan-change session is refused --------------------------------------

async def test_a_reset_in_a_plan_change_session_is_refused_and_audited_denied_with_the_purpose(gw):
    clerk = await counter(gw)
    session = await clerk.session(CUSTOMER, P.SESSION_PURPOSE_PLAN_CHANGE)
    e = await refused(clerk.reset(session, new_password(gw, CUSTOMER)))
    assert e.code() == Code.PERMISSION_DENIED and reason(e) == "PURPOSE_MISMATCH"
    # Nothing happened to the customer: the old password still works, no reset notice.
    assert gw.billing.verify(CUSTOMER, gw.billing.password_for(CUSTOMER))
    assert await gw.messages(CUSTOMER) == []
    [ev] = await events_of(gw, RESET_METHOD)
    assert (ev["decision"], ev["reason"], ev["purpose"], ev["proof"], ev["staff_id"], ev["subscriber"]) == (
        "denied", "purpose_mismatch", "plan_change", "id_document", "C1001", "138****0161")
    # The session itself is fine for what a plan change needs.
    profile = await clerk.profile(session)
    assert profile.purpose == P.SESSION_PURPOSE_PLAN_CHANGE


@pytest.mark.parametrize("purpose", [p for p in P.values() if p not in (
    P.SESSION_PURPOSE_UNSPECIFIED, P.SESSION_PURPOSE_PASSWORD_RESET)])
async def test_no_other_purpose_allows_a_reset(gw, purpose):
    """SIM replacement included (the policy table says why)."""
    clerk = await counter(gw)
    why = "the customer disputes a charge" if purpose in (P.SESSION_PURPOSE_COMPLAINT, P.SESSION_PURPOSE_OTHER) else ""
    session = await clerk.session(CUSTOMER, purpose, why)
    e = await refused(clerk.reset(session, new_password(gw, CUSTOMER)))
    assert e.code() == Code.PERMISSION_DENIED and reason(e) == "PURPOSE_MISMATCH"
    assert gw.billing.verify(CUSTOMER, gw.billing.password_for(CUSTOMER))


async def test_a_reset_in_a_password_reset_session_works_and_its_event_carries_the_purpose(gw):
    clerk = await counter(gw)
    opened = await clerk.open(CUSTOMER, P.SESSION_PURPOSE_PASSWORD_RESET)
    assert opened.purpose == P.SESSION_PURPOSE_PASSWORD_RESET
    new = new_password(gw, CUSTOMER)
    assert "kiosk" in (await clerk.reset(opened.customer_session, new)).next_step
    assert gw.billing.verify(CUSTOMER, new)
    [ev] = await events_of(gw, RESET_METHOD)
    assert (ev["decision"], ev["purpose"], ev["purpose_reason"]) == ("allowed", "password_reset", "")
    [opening] = await events_of(gw, "/hallgate.v1.ClerkService/OpenCustomerSession")
    assert (opening["decision"], opening["purpose"]) == ("allowed", "password_reset")


@pytest.mark.parametrize("purpose", [p for p in P.values() if p != P.SESSION_PURPOSE_UNSPECIFIED])
async def test_every_purpose_may_view_check_and_close(gw, purpose):
    """The rows open to ANY_PURPOSE, in a session of each purpose; each call's event names it."""
    clerk = await counter(gw)
    why = "the customer asks about a letter" if purpose in (P.SESSION_PURPOSE_COMPLAINT,
                                                           P.SESSION_PURPOSE_OTHER) else ""
    session = await clerk.session(CUSTOMER, purpose, why)
    assert (await clerk.profile(session)).purpose == purpose
    await clerk.code_delivery(session)
    await clerk.close(session)
    stored = clerk_pb2.SessionPurpose.Name(purpose).removeprefix("SESSION_PURPOSE_").lower()
    events = [e for e in await gw.audit_events() if e["method"].startswith("/hallgate.v1.ClerkService/")]
    assert [(e["method"].rsplit("/", 1)[1], e["decision"], e["purpose"]) for e in events] == [
        (m, "allowed", stored) for m in ("OpenCustomerSession", "GetCustomerProfile", "GetCodeDelivery",
                                         "CloseCustomerSession")]
    # The reason is on the opening event only.
    assert [e["purpose_reason"] for e in events] == [why, "", "", ""]


# --- the purpose and the reason at the boundary -----------------------------------------------------

async def test_a_session_without_a_purpose_is_invalid_argument_naming_the_field(gw):
    clerk = await counter(gw)
    e = await refused(clerk.open(CUSTOMER, P.SESSION_PURPOSE_UNSPECIFIED))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["purpose"]
    e = await refused(clerk.open(CUSTOMER, 99))  # a value this version does not know
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["purpose"]
    [ev, _] = await events_of(gw, "/hallgate.v1.ClerkService/OpenCustomerSession")
    assert (ev["decision"], ev["purpose"]) == ("invalid", "")


@pytest.mark.parametrize("purpose", [P.SESSION_PURPOSE_COMPLAINT, P.SESSION_PURPOSE_OTHER])
async def test_a_complaint_needs_a_reason_in_words(gw, purpose):
    clerk = await counter(gw)
    for bad in ("", "x" * 121, "calls to 13800000001 are missing", "two\nlines"):
        e = await refused(clerk.open(CUSTOMER, purpose, bad))
        assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["reason"], bad
    session = await clerk.session(CUSTOMER, purpose, "roaming charged twice last month")
    assert (await clerk.profile(session)).purpose == purpose
    opening = (await events_of(gw, "/hallgate.v1.ClerkService/OpenCustomerSession"))[-1]
    assert (opening["decision"], opening["purpose_reason"]) == ("allowed", "roaming charged twice last month")


async def test_a_missing_proof_and_purpose_are_named_together(gw):
    clerk = await counter(gw)
    e = await refused(clerk.stub.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
        msisdn=CUSTOMER, purpose=P.SESSION_PURPOSE_OTHER), metadata=clerk.md))
    assert sorted(violations(e)) == ["proof", "reason"]


async def test_a_session_stored_without_a_purpose_may_do_nothing_narrowed(gw):
    """A session opened by an older version (no purpose in its record) still closes and shows the
    profile (ANY_PURPOSE), but is refused every call limited to a purpose."""
    clerk = await counter(gw)
    session = await clerk.session(CUSTOMER, P.SESSION_PURPOSE_PASSWORD_RESET)
    keys = [k async for k in gw.redis.scan_iter(match="hg:customer-session:*")]
    assert len(keys) == 1
    await gw.redis.hdel(keys[0], "purpose", "reason")
    assert (await clerk.profile(session)).purpose == P.SESSION_PURPOSE_UNSPECIFIED
    e = await refused(clerk.reset(session, new_password(gw, CUSTOMER)))
    assert reason(e) == "PURPOSE_MISMATCH"


async def test_the_session_record_holds_the_purpose_and_reason_and_no_secret(gw):
    clerk = await counter(gw)
    await clerk.session(CUSTOMER, P.SESSION_PURPOSE_COMPLAINT, "rude staff at the counter")
    [key] = [k async for k in gw.redis.scan_iter(match="hg:customer-session:*")]
    record = {k.decode(): v.decode() for k, v in (await gw.redis.hgetall(key)).items()}
    assert (record["purpose"], record["reason"], record["proof"]) == (
        "complaint", "rude staff at the counter", "id_document")


# --- the subscriber's access history (R10) ------------------------------------------------------------

async def test_the_access_history_shows_the_purpose_of_counter_accesses_never_the_reason(make_gateway):
    gw = await make_gateway(send_min_interval=0.01)
    clerk = await counter(gw)
    plan = await clerk.session(CUSTOMER, P.SESSION_PURPOSE_PLAN_CHANGE)
    await clerk.profile(plan)
    await refused(clerk.reset(plan, new_password(gw, CUSTOMER)))
    complaint = await clerk.session(CUSTOMER, P.SESSION_PURPOSE_COMPLAINT, "dropped calls near home")
    await clerk.profile(complaint)
    token = await gw.sign_in(CUSTOMER)
    history = [m.record async for m in gw.stub.ListAccessHistory(kiosk_pb2.ListAccessHistoryRequest(
        access_token=token))]
    counter_rows = sorted((r.what, r.outcome, r.purpose) for r in history if r.channel == "clerk")
    assert counter_rows == sorted([
        ("identified at a service hall counter", "allowed", "plan change"),
        ("profile viewed at a service hall counter", "allowed", "plan change"),
        ("service password reset at a service hall counter", "refused", "plan change"),
        ("identified at a service hall counter", "allowed", "complaint"),
        ("profile viewed at a service hall counter", "allowed", "complaint"),
    ])
    assert {r.purpose for r in history if r.channel == "kiosk"} == {""}
    assert not [r for r in history if "dropped" in str(r) or "C1001" in str(r)]


# --- the CLI ------------------------------------------------------------------------------------------

def test_the_cli_help_lists_the_purposes(capsys):
    with pytest.raises(SystemExit):
        cli_main(["clerk", "open", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in ("password-reset", "plan-change", "bill-enquiry", "sim-replacement", "complaint", "other"):
        assert name in out, name


async def test_the_cli_opens_a_session_for_a_purpose(gw, capsys):
    clerk = await counter(gw)
    owner = gw.billing.owner_of(OTHER_CUSTOMER)
    base = ["clerk", "--target", f"127.0.0.1:{gw.port}", "--data-dir", str(gw.pki.parent), "--cert", T07,
            "--staff-token", clerk.md[0][1].removeprefix("Bearer ")]
    argv = [*base, "open", OTHER_CUSTOMER, "--id-number", owner.document_number, "--name", owner.name,
            "--birth-date", owner.birth_date, "--sex", owner.sex, "--purpose", "complaint",
            "--reason", "wrong plan on the bill"]
    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, argv) == 0
    session = [line for line in capsys.readouterr().out.splitlines() if len(line.strip()) == 43][-1].strip()
    assert (await clerk.profile(session)).purpose == P.SESSION_PURPOSE_COMPLAINT
    assert await asyncio.to_thread(cli_main, [*base, "profile", "--session", session]) == 0
    assert ["purpose", "complaint"] in [line.split() for line in capsys.readouterr().out.splitlines()]
    e = await refused(clerk.reset(session, new_password(gw, OTHER_CUSTOMER)))
    assert reason(e) == "PURPOSE_MISMATCH"
