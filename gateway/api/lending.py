"""LendingService over gRPC: the hall's archive lending register (R3). Maps proto to the LendingDesk.

The caller's staff id and role come from the call context (the authorization interceptor sets them
from the signed-in staff session), and the hall from the terminal's certificate; the policy table
admits the clerk (hall) channel only. The desk enforces the per-step roles, the hall and four eyes.
For the audit trail every call sets `reason` (loan_<action>) and `detail` (the archive id, the loan
id, the actor's why); a refusal keeps the detail, so it still names what was tried.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from gateway.domain import lending, request_context, rules
from gateway.domain.errors import InvalidArgument
from gateway.domain.lending import Actor, Document, LendingDesk, Loan, State, Transition
from hallgate_pb.v1 import lending_pb2, lending_pb2_grpc

KINDS: dict[int, str] = {
    lending_pb2.DOCUMENT_KIND_CONTRACT: lending.Kind.CONTRACT,
    lending_pb2.DOCUMENT_KIND_ID_COPY: lending.Kind.ID_COPY,
    lending_pb2.DOCUMENT_KIND_APPLICATION: lending.Kind.APPLICATION,
}
STATES: dict[int, str] = {
    lending_pb2.LOAN_STATE_REQUESTED: State.REQUESTED,
    lending_pb2.LOAN_STATE_APPROVED: State.APPROVED,
    lending_pb2.LOAN_STATE_REJECTED: State.REJECTED,
    lending_pb2.LOAN_STATE_OUT: State.OUT,
    lending_pb2.LOAN_STATE_RETURNED: State.RETURNED,
    lending_pb2.LOAN_STATE_CANCELLED: State.CANCELLED,
}
KIND_NUMBERS: dict[str, Any] = {v: k for k, v in KINDS.items()}
STATE_NUMBERS: dict[str, Any] = {v: k for k, v in STATES.items()}
MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799


def _ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


def _time_in(v: rules.Violations, field: str, present: bool, ts: timestamp_pb2.Timestamp) -> datetime | None:
    if not present:
        return None
    if not (MIN_SECONDS <= ts.seconds <= MAX_SECONDS and 0 <= ts.nanos < 10**9):
        v.items.append((field, "is not a valid timestamp"))
        return None
    return ts.ToDatetime(tzinfo=UTC)


def document_message(d: Document) -> lending_pb2.Document:
    return lending_pb2.Document(archive_id=d.archive_id, kind=KIND_NUMBERS[d.kind], hall=d.hall,
                                description=d.description, registered_by=d.registered_by,
                                registered_at=_ts(d.registered_at))


def transition_message(t: Transition) -> lending_pb2.LoanTransition:
    return lending_pb2.LoanTransition(
        at=_ts(t.at), from_state=STATE_NUMBERS[t.from_state] if t.from_state else "LOAN_STATE_UNSPECIFIED",
        to_state=STATE_NUMBERS[t.to_state], actor_staff_id=t.actor, actor_role=t.role, reason=t.reason)


def loan_message(loan: Loan, now: datetime, history: Iterable[Transition] = ()) -> lending_pb2.Loan:
    out = lending_pb2.Loan(
        loan_id=loan.loan_id, archive_id=loan.archive_id, hall=loan.hall, state=STATE_NUMBERS[loan.state],
        borrower=loan.borrower, reason=loan.reason, requested_at=_ts(loan.requested_at), due_at=_ts(loan.due_at),
        decided_by=loan.decided_by, handed_out_by=loan.handed_out_by, returned_to=loan.returned_to,
        overdue=loan.overdue(now), history=[transition_message(t) for t in history])
    for name in ("decided_at", "handed_out_at", "returned_at"):
        t = getattr(loan, name)
        if t is not None:
            getattr(out, name).CopyFrom(_ts(t))
    return out


def _note(action: str, **facts: str) -> None:
    """What the audit event says about this call (kept on a refusal, whose reason replaces ours)."""
    call = request_context.current()
    call.reason = f"loan_{action}"
    call.detail = json.dumps({"action": action, **{k: v[:500] for k, v in facts.items()}},
                             ensure_ascii=False, separators=(",", ":"))


class LendingServicer(lending_pb2_grpc.LendingServiceServicer):
    """Maps every RPC to one LendingDesk method; the desk validates and decides."""

    def __init__(self, desk: LendingDesk) -> None:
        self.desk = desk

    @staticmethod
    def actor() -> Actor:
        call = request_context.current()
        return Actor(getattr(call, "staff_id", ""), getattr(call, "role", ""), getattr(call, "hall", ""))

    def _loan(self, loan: Loan, history: Iterable[Transition] = ()) -> lending_pb2.Loan:
        return loan_message(loan, self.desk.clock(), history)

    async def _with_history(self, loan: Loan) -> lending_pb2.Loan:
        return self._loan(loan, await self.desk.store.history(loan.loan_id))

    async def RegisterDocument(self, request: lending_pb2.RegisterDocumentRequest,
                               context: grpc.aio.ServicerContext) -> lending_pb2.RegisterDocumentResponse:
        _note("register", archive_id=request.archive_id[:64])
        kind = KINDS.get(request.kind, "") if request.kind == 0 or request.kind in KINDS else f"unknown:{request.kind}"
        doc = await self.desk.register(self.actor(), lending.DocumentDraft(
            archive_id=request.archive_id, kind=kind, hall=request.hall, description=request.description))
        return lending_pb2.RegisterDocumentResponse(document=document_message(doc))

    async def RequestLoan(self, request: lending_pb2.RequestLoanRequest,
                          context: grpc.aio.ServicerContext) -> lending_pb2.RequestLoanResponse:
        v = rules.Violations()
        due = _time_in(v, "due_at", request.HasField("due_at"), request.due_at)
        v.raise_if_any()
        _note("request", archive_id=request.archive_id[:64], why=request.reason)
        loan = await self.desk.request(self.actor(), request.archive_id, request.reason, due)
        _note("request", archive_id=loan.archive_id, loan_id=loan.loan_id, why=loan.reason,
              due_at=loan.due_at.isoformat(timespec="seconds"))
        return lending_pb2.RequestLoanResponse(loan=await self._with_history(loan))

    async def _step(self, action: str, loan_id: str, reason: str = "") -> lending_pb2.Loan:
        _note(action, loan_id=loan_id[:64], why=reason)
        desk = self.desk
        method = {"approve": desk.approve, "reject": desk.reject, "cancel": desk.cancel}.get(action)
        if method is not None:
            after = await method(self.actor(), loan_id, reason)
        elif action == "hand_out":
            after = await desk.hand_out(self.actor(), loan_id)
        else:
            after = await desk.record_return(self.actor(), loan_id)
        _note(action, loan_id=after.loan_id, archive_id=after.archive_id, borrower=after.borrower, why=reason)
        return await self._with_history(after)

    async def ApproveLoan(self, request: lending_pb2.ApproveLoanRequest,
                          context: grpc.aio.ServicerContext) -> lending_pb2.ApproveLoanResponse:
        return lending_pb2.ApproveLoanResponse(loan=await self._step("approve", request.loan_id, request.reason))

    async def RejectLoan(self, request: lending_pb2.RejectLoanRequest,
                         context: grpc.aio.ServicerContext) -> lending_pb2.RejectLoanResponse:
        return lending_pb2.RejectLoanResponse(loan=await self._step("reject", request.loan_id, request.reason))

    async def CancelLoan(self, request: lending_pb2.CancelLoanRequest,
                         context: grpc.aio.ServicerContext) -> lending_pb2.CancelLoanResponse:
        return lending_pb2.CancelLoanResponse(loan=await self._step("cancel", request.loan_id, request.reason))

    async def HandOut(self, request: lending_pb2.HandOutRequest,
                      context: grpc.aio.ServicerContext) -> lending_pb2.HandOutResponse:
        return lending_pb2.HandOutResponse(loan=await self._step("hand_out", request.loan_id))

    async def RecordReturn(self, request: lending_pb2.RecordReturnRequest,
                           context: grpc.aio.ServicerContext) -> lending_pb2.RecordReturnResponse:
        return lending_pb2.RecordReturnResponse(loan=await self._step("return", request.loan_id))

    async def GetDocument(self, request: lending_pb2.GetDocumentRequest,
                          context: grpc.aio.ServicerContext) -> lending_pb2.GetDocumentResponse:
        _note("where", archive_id=request.archive_id[:64])
        found = await self.desk.where(self.actor(), request.archive_id)
        out = lending_pb2.GetDocumentResponse(document=document_message(found.document), on_shelf=found.on_shelf)
        if found.loan is not None:
            out.current_loan.CopyFrom(self._loan(found.loan, found.history))
        return out

    async def ListLoans(self, request: lending_pb2.ListLoansRequest,
                        context: grpc.aio.ServicerContext) -> lending_pb2.ListLoansResponse:
        _note("list", holder=request.holder_staff_id[:64], state=str(request.state),
              overdue_only=str(request.overdue_only).lower())
        if request.state and request.state not in STATES:
            raise InvalidArgument([("state", "must be a LoanState")])
        page = await self.desk.list_loans(self.actor(), lending.LoanFilter(
            holder=request.holder_staff_id, state=State(STATES[request.state]) if request.state else None,
            overdue_only=request.overdue_only, page_size=request.page_size, page_token=request.page_token))
        return lending_pb2.ListLoansResponse(loans=[self._loan(x) for x in page.loans],
                                             next_page_token=page.next_page_token)
