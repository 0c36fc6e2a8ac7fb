"""The archive lending register (R3) end to end over mutual TLS with real Redis: every RPC by
channel by role as the policy table says (allowed where it says, refused elsewhere); the whole
flow custodian → clerk → hall manager → custodian with "where is archive X" and "what does clerk
Y hold"; a loan approved by its borrower refused PERMISSION_DENIED and audited (their own account,
or another account of the same person); halls kept apart; an overdue loan listed for the manager
and alerted once a day however many gateways check (audit event, metric)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pyotp
import pytest
import redis

from adapters.redis_staff import STAFF_INDEX
from gateway.domain import passwords
from gateway.domain.identity import Channel
from gateway.domain.policy import POLICY, SIGN_IN_CHANNELS, Role
from gateway.runtime.bootstrap import overdue_sweep
from gateway.runtime.lending import OverdueSweep
from gateway.runtime.lending_metrics import LOAN_OVERDUE_ALERTS, LOANS_OVERDUE
from hallgate_pb.v1 import lending_pb2, lending_pb2_grpc
from tests.support.dates import ts
from tests.support.staff import STAFF_PASSWORD
from tests.support.status import outcome, reason, refused, violations
from tests.support.tls import AUDIT_CERT, CLERK_CERT, KIOSK_CERT, LEGAL_CERT

Code = grpc.StatusCode
L = lending_pb2
SERVICE = "/hallgate.v1.LendingService/"
METHODS = [m.name for m in L.DESCRIPTOR.services_by_name["LendingService"].methods]
CERT_OF = {Channel.KIOSK: KIOSK_CERT, Channel.CLERK: CLERK_CERT, Channel.LEGAL: LEGAL_CERT, Channel.AUDIT: AUDIT_CERT}
H002_CERT = "clerk-H002-T01"

# The table as the issue states it, to pin POLICY: who may call what (on the clerk channel only).
EXPECTED = {
    "RegisterDocument": {"custodian"}, "RequestLoan": {"clerk", "hall_manager"},
    "ApproveLoan": {"hall_manager"}, "RejectLoan": {"hall_manager"}, "CancelLoan": {"clerk", "hall_manager"},
    "HandOut": {"custodian"}, "RecordReturn": {"custodian"},
    "GetDocument": {"clerk", "hall_manager", "custodian"}, "ListLoans": {"clerk", "hall_manager", "custodian"},
}


class Desk:
    """A staff member signed in on a terminal, with the LendingService stub."""

    def __init__(self, gw: Any, staff_id: str, md: Any, cert: str) -> None:
        self.staff_id, self.md = staff_id, md
        self.stub = lending_pb2_grpc.LendingServiceStub(gw.channel_for(cert))

    def call(self, method: str, request: Any) -> Any:
        return getattr(self.stub, method)(request, metadata=self.md, timeout=10)

    async def register(self, archive_id: str, kind: int = L.DOCUMENT_KIND_CONTRACT, description: str = "contract",
                       hall: str = "") -> L.Document:
        return (await self.call("RegisterDocument", L.RegisterDocumentRequest(
            archive_id=archive_id, kind=kind, hall=hall, description=description))).document

    async def request(self, archive_id: str, why: str = "customer disputes the contract date",
                      due: datetime | None = None) -> L.Loan:
        m = L.RequestLoanRequest(archive_id=archive_id, reason=why)
        if due is not None:
            m.due_at.CopyFrom(ts(due))
        return (await self.call("RequestLoan", m)).loan

    async def approve(self, loan_id: str, why: str = "needed for the dispute") -> L.Loan:
        return (await self.call("ApproveLoan", L.ApproveLoanRequest(loan_id=loan_id, reason=why))).loan

    async def reject(self, loan_id: str, why: str = "not needed") -> L.Loan:
        return (await self.call("RejectLoan", L.RejectLoanRequest(loan_id=loan_id, reason=why))).loan

    async def hand_out(self, loan_id: str) -> L.Loan:
        return (await self.call("HandOut", L.HandOutRequest(loan_id=loan_id))).loan

    async def record_return(self, loan_id: str) -> L.Loan:
        return (await self.call("RecordReturn", L.RecordReturnRequest(loan_id=loan_id))).loan

    async def where(self, archive_id: str) -> L.GetDocumentResponse:
        return await self.call("GetDocument", L.GetDocumentRequest(archive_id=archive_id))

    async def loans(self, **kw: Any) -> list[L.Loan]:
        return list((await self.call("ListLoans", L.ListLoansRequest(**kw))).loans)


async def desk(gw: Any, staff_id: str, role: str, cert: str = CLERK_CERT, hall: str = "H001") -> Desk:
    secret = await gw.add_staff(staff_id, role, hall=hall)
    return Desk(gw, staff_id, await gw.staff_sign_in(cert, staff_id, secret), cert)


async def hall_staff(gw: Any) -> tuple[Desk, Desk, Desk]:
    """Custodian K1, clerk C1, hall manager M1 of hall H001, at terminal T07."""
    return (await desk(gw, "K1", "custodian"), await desk(gw, "C1", "clerk"), await desk(gw, "M1", "hall_manager"))


async def events(gw: Any) -> list[dict[str, str]]:
    return [e for e in await gw.audit_events() if e["method"].startswith(SERVICE)]


# --- the matrix: every RPC by channel by role ------------------------------------------------------

def test_the_policy_rows_are_the_issues_table():
    for name in METHODS:
        rule = POLICY[SERVICE + name]
        assert rule.channels == {Channel.CLERK}, name
        assert {r.value for r in rule.roles} == EXPECTED[name], name
    assert set(METHODS) == set(EXPECTED)


def combos() -> list[tuple[Channel, str]]:
    """Every channel with nobody signed in, and with each role that signs in on it."""
    out: list[tuple[Channel, str]] = []
    for channel in CERT_OF:  # the website has no certificate: tests/e2e/test_transport_parity.py
        out.append((channel, ""))
        out += [(channel, r.value) for r in Role if channel in SIGN_IN_CHANNELS[r]]
    return out


@pytest.mark.parametrize(("channel", "role"), combos(), ids=[f"{c.value}-{r or 'nobody'}" for c, r in combos()])
async def test_every_rpc_on_every_channel_for_every_role(gw, channel, role):
    cert = CERT_OF[channel]
    md: Any = ()
    if role:
        hall = "H001" if channel in (Channel.KIOSK, Channel.CLERK) else "B01"
        secret = await gw.add_staff("S1", role, hall=hall)
        md = await gw.staff_sign_in(cert, "S1", secret)
    stub = lending_pb2_grpc.LendingServiceStub(gw.channel_for(cert))
    expected: list[tuple[str, bool]] = []
    for name in METHODS:
        request = getattr(L, f"{name}Request")()  # empty: past authorization it fails validation (or lists)
        rule = POLICY[SERVICE + name]
        allowed = channel in rule.channels and bool(role) and Role(role) in rule.roles
        expected.append((SERVICE + name, allowed))
        try:
            await getattr(stub, name)(request, metadata=md, timeout=10)
            code, why = Code.OK, ""
        except grpc.aio.AioRpcError as e:
            code, why = e.code(), reason(e)
        if allowed:
            assert code in (Code.OK, Code.INVALID_ARGUMENT), (name, code, why)
        elif channel not in rule.channels:
            assert (code, why) == (Code.PERMISSION_DENIED, "WRONG_CHANNEL"), name
        elif not role:
            assert (code, why) == (Code.UNAUTHENTICATED, "STAFF_SIGN_IN_REQUIRED"), name
        else:
            assert (code, why) == (Code.PERMISSION_DENIED, "ROLE"), name
    trail = await events(gw)  # every call on record, refused or not, with the reason of the refusal
    assert [e["method"] for e in trail] == [m for m, _ in expected]
    refusals = {"wrong_channel", "role", "staff_sign_in_required"}
    for e, (method, allowed) in zip(trail, expected, strict=True):
        assert e["channel"] == channel.value and e["role"] in ("", role), method  # no role before the channel passes
        if allowed:
            assert e["reason"] not in refusals and e["code"] in ("OK", "INVALID_ARGUMENT"), method
        else:
            assert e["decision"] == "denied" and e["reason"] in refusals, method


# --- the flow ------------------------------------------------------------------------------------

async def test_custodian_clerk_manager_custodian_and_where_is_it(gw):
    custodian, clerk, manager = await hall_staff(gw)
    doc = await custodian.register("H001-CT-2024-0001", L.DOCUMENT_KIND_CONTRACT, "service contract, 2024-03")
    assert (doc.archive_id, doc.hall, doc.registered_by) == ("H001-CT-2024-0001", "H001", "K1")
    where = await clerk.where(doc.archive_id)
    assert where.on_shelf and not where.HasField("current_loan")

    due = datetime.now(UTC) + timedelta(days=2)
    loan = await clerk.request(doc.archive_id, due=due)
    assert loan.state == L.LOAN_STATE_REQUESTED and loan.borrower == "C1" and loan.loan_id.startswith("LN-")
    assert abs(loan.due_at.ToDatetime(tzinfo=UTC) - due) < timedelta(seconds=1)
    ok = await manager.approve(loan.loan_id)
    assert ok.state == L.LOAN_STATE_APPROVED and ok.decided_by == "M1"
    out = await custodian.hand_out(loan.loan_id)
    assert out.state == L.LOAN_STATE_OUT and out.handed_out_by == "K1" and not out.overdue

    where = await manager.where(doc.archive_id)
    assert not where.on_shelf and where.current_loan.borrower == "C1"
    assert where.current_loan.handed_out_at == out.handed_out_at and where.current_loan.due_at == out.due_at
    assert [(h.to_state, h.actor_staff_id) for h in where.current_loan.history] == [
        (L.LOAN_STATE_REQUESTED, "C1"), (L.LOAN_STATE_APPROVED, "M1"), (L.LOAN_STATE_OUT, "K1")]
    held = await custodian.loans(holder_staff_id="C1", state=L.LOAN_STATE_OUT)
    assert [x.archive_id for x in held] == [doc.archive_id]
    assert [x.loan_id for x in await clerk.loans()] == [loan.loan_id]  # a clerk: their own

    back = await custodian.record_return(loan.loan_id)
    assert back.state == L.LOAN_STATE_RETURNED and back.returned_to == "K1"
    assert (await clerk.where(doc.archive_id)).on_shelf
    assert await custodian.loans(holder_staff_id="C1", state=L.LOAN_STATE_OUT) == []

    trail = await events(gw)
    assert [(e["method"].removeprefix(SERVICE), e["staff_id"], e["decision"], e["reason"]) for e in trail] == [
        ("RegisterDocument", "K1", "allowed", "loan_register"),
        ("GetDocument", "C1", "allowed", "loan_where"),
        ("RequestLoan", "C1", "allowed", "loan_request"),
        ("ApproveLoan", "M1", "allowed", "loan_approve"),
        ("HandOut", "K1", "allowed", "loan_hand_out"),
        ("GetDocument", "M1", "allowed", "loan_where"),
        ("ListLoans", "K1", "allowed", "loan_list"),
        ("ListLoans", "C1", "allowed", "loan_list"),
        ("RecordReturn", "K1", "allowed", "loan_return"),
        ("GetDocument", "C1", "allowed", "loan_where"),
        ("ListLoans", "K1", "allowed", "loan_list"),
    ]
    assert json.loads(trail[2]["detail"])["why"] == "customer disputes the contract date"
    assert all(json.loads(e["detail"]).get("loan_id", loan.loan_id) == loan.loan_id for e in trail)
    assert all((e["hall"], e["terminal"]) == ("H001", "H001/clerk/T07") for e in trail)


async def test_refusals_name_the_fields_and_the_states(gw):
    custodian, clerk, manager = await hall_staff(gw)
    e = await refused(custodian.register("x", 0, ""))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["archive_id", "kind", "description"]
    await custodian.register("H001-ID-0001", L.DOCUMENT_KIND_ID_COPY, "ID copy")
    e = await refused(custodian.register("H001-ID-0001", L.DOCUMENT_KIND_ID_COPY, "again"))
    assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, "DOCUMENT_EXISTS")
    e = await refused(clerk.request("H001-ID-0001", "", datetime.now(UTC) + timedelta(days=3, hours=1)))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["reason", "due_at"]
    e = await refused(clerk.request("H001-ID-9999"))
    assert e.code() == Code.NOT_FOUND
    loan = await clerk.request("H001-ID-0001")
    e = await refused(custodian.hand_out(loan.loan_id))  # not approved yet
    assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, "LOAN_REQUESTED")
    await manager.reject(loan.loan_id)
    e = await refused(manager.approve(loan.loan_id))
    assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, "LOAN_REJECTED")
    e = await refused(manager.where("bad id"))
    assert violations(e) == ["archive_id"]
    e = await refused(clerk.loans(holder_staff_id="C2"))
    assert (e.code(), reason(e)) == (Code.PERMISSION_DENIED, "OWN_LOANS_ONLY")


# --- four eyes -----------------------------------------------------------------------------------

async def test_a_loan_approved_by_its_borrower_is_refused_and_audited(gw):
    custodian, _, manager = await hall_staff(gw)
    await custodian.register("H001-AP-0001", L.DOCUMENT_KIND_APPLICATION, "SIM replacement application")
    own = await manager.request("H001-AP-0001", "checking a signature")
    e = await refused(manager.approve(own.loan_id, "I need it"))
    assert (e.code(), reason(e)) == (Code.PERMISSION_DENIED, "BORROWER_APPROVES")
    denied = [x for x in await events(gw) if x["method"] == SERVICE + "ApproveLoan"]
    assert [(x["staff_id"], x["role"], x["decision"], x["reason"], x["code"]) for x in denied] == [
        ("M1", "hall_manager", "denied", "borrower_approves", "PERMISSION_DENIED")]
    assert json.loads(denied[0]["detail"]) == {"action": "approve", "loan_id": own.loan_id, "why": "I need it"}
    assert (await manager.where("H001-AP-0001")).current_loan.state == L.LOAN_STATE_REQUESTED
    other = await desk(gw, "M2", "hall_manager")
    assert (await other.approve(own.loan_id)).decided_by == "M2"


async def test_another_account_of_the_borrower_cannot_approve_either(gw, clean_redis):
    custodian, _, _ = await hall_staff(gw)
    # One person, two accounts (as restored data could have it; `staff add` refuses it): E7 clerk and manager.
    secrets_ = {}
    with redis.Redis.from_url(clean_redis) as r:
        for staff_id, role in (("C7", "clerk"), ("M7", "hall_manager")):
            secrets_[staff_id] = pyotp.random_base32()
            r.hset(f"hg:staff:{{{staff_id}}}", mapping={
                "staff_id": staff_id, "name": "Zhao Wei", "role": role, "hall": "H001",
                "password_hash": passwords.hash_password(STAFF_PASSWORD, 2**10),
                "password_changed_at": str(time.time()), "totp_secret": secrets_[staff_id], "disabled": "0",
                "employee_no": "E7"})
            r.sadd(STAFF_INDEX, staff_id)
    clerk7 = Desk(gw, "C7", await gw.staff_sign_in(CLERK_CERT, "C7", secrets_["C7"]), CLERK_CERT)
    manager7 = Desk(gw, "M7", await gw.staff_sign_in(CLERK_CERT, "M7", secrets_["M7"]), CLERK_CERT)
    await custodian.register("H001-CT-0077", L.DOCUMENT_KIND_CONTRACT, "contract")
    loan = await clerk7.request("H001-CT-0077")
    e = await refused(manager7.approve(loan.loan_id))
    assert (e.code(), reason(e)) == (Code.PERMISSION_DENIED, "BORROWER_APPROVES")


# --- halls ---------------------------------------------------------------------------------------

async def test_a_halls_archive_is_handled_in_that_hall(gw):
    custodian, _, _ = await hall_staff(gw)
    await custodian.register("H001-CT-0100", L.DOCUMENT_KIND_CONTRACT, "contract")
    e = await refused(custodian.register("H002-CT-0100", L.DOCUMENT_KIND_CONTRACT, "contract", hall="H002"))
    assert (e.code(), reason(e)) == (Code.PERMISSION_DENIED, "OTHER_HALL")
    # A custodian of H002 signs in at H002's terminals only.
    secret = await gw.add_staff("K2", "custodian", hall="H002")
    e = await refused(gw.staff_sign_in(CLERK_CERT, "K2", secret))
    assert (e.code(), reason(e)) == (Code.PERMISSION_DENIED, "WRONG_TERMINAL_FOR_ROLE")
    clerk2 = await desk(gw, "C2", "clerk", cert=H002_CERT, hall="H002")
    assert (await refused(clerk2.where("H001-CT-0100"))).code() == Code.NOT_FOUND
    assert (await refused(clerk2.request("H001-CT-0100"))).code() == Code.NOT_FOUND
    assert await clerk2.loans() == []


# --- overdue -------------------------------------------------------------------------------------

async def test_an_overdue_loan_is_listed_and_alerted_once_a_day(gw):
    custodian, clerk, manager = await hall_staff(gw)
    await custodian.register("H001-CT-0200", L.DOCUMENT_KIND_CONTRACT, "contract")
    await custodian.register("H001-CT-0201", L.DOCUMENT_KIND_CONTRACT, "contract")
    loan = await clerk.request("H001-CT-0200", "short look", due=datetime.now(UTC) + timedelta(seconds=2))
    later = await clerk.request("H001-CT-0201", "longer")
    for x in (loan, later):
        await manager.approve(x.loan_id)
        await custodian.hand_out(x.loan_id)
    assert await manager.loans(overdue_only=True) == []
    await asyncio.sleep(max(0.0, loan.due_at.ToDatetime(tzinfo=UTC).timestamp() - time.time()) + 0.1)

    overdue = await manager.loans(overdue_only=True)
    assert [(x.loan_id, x.borrower, x.overdue) for x in overdue] == [(loan.loan_id, "C1", True)]
    assert (await manager.where("H001-CT-0200")).current_loan.overdue

    before = LOAN_OVERDUE_ALERTS._value.get()
    # Two gateway processes' checks at once, then again: one alert for the day.
    sweeps = [overdue_sweep(gw.settings, gw.deps) for _ in range(2)]
    first = await asyncio.gather(*(s.sweep_once() for s in sweeps))
    again = await asyncio.gather(*(s.sweep_once() for s in sweeps))
    assert sorted(x for a in first for x in a) == [loan.loan_id] and not any(again)
    alerts = [e for e in await gw.audit_events() if e.get("reason") == "loan_overdue"]
    assert len(alerts) == 1
    a = alerts[0]
    assert (a["method"], a["staff_id"], a["role"], a["hall"], a["loan_id"], a["holder"], a["archive_id"]) == (
        "maintenance/lending", "gateway", "system", "H001", loan.loan_id, "C1", "H001-CT-0200")
    assert LOAN_OVERDUE_ALERTS._value.get() - before == 1 and LOANS_OVERDUE._value.get() == 1
    # The next day (the clock injected): once more.
    tomorrow = OverdueSweep(gw.deps.lending, gw.deps.audit, sweeps[0].config,
                            clock=lambda: datetime.now(UTC) + timedelta(days=1))
    assert await tomorrow.sweep_once() == [loan.loan_id]
    assert await tomorrow.sweep_once() == []
    assert len([e for e in await gw.audit_events() if e.get("reason") == "loan_overdue"]) == 2
    # Returned, it is no longer overdue.
    await custodian.record_return(loan.loan_id)
    assert await manager.loans(overdue_only=True) == []
    assert await outcome(manager.call("ListLoans", L.ListLoansRequest(overdue_only=True))) == Code.OK
