"""ClerkService over gRPC: the counter, inside customer sessions only (R2, R4, R9)."""

from __future__ import annotations

import re

import grpc
from google.protobuf import timestamp_pb2

from gateway.api.common import duration
from gateway.domain import request_context, rules
from gateway.domain.clerk import ClerkDesk, IdDocument
from gateway.domain.ports import CustomerSession
from gateway.domain.purposes import SessionPurpose, reason_problem
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc

NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ID_NUMBER_RE = re.compile(r"[0-9]{17}[0-9Xx]")
SEXES = {clerk_pb2.DOCUMENT_SEX_FEMALE: "female", clerk_pb2.DOCUMENT_SEX_MALE: "male"}
# The SMS queue's states (gateway/domain/ports.py SmsDelivery); one it does not name is UNSPECIFIED.
DELIVERY_STATES = {
    "queued": clerk_pb2.CODE_DELIVERY_STATE_QUEUED, "submitted": clerk_pb2.CODE_DELIVERY_STATE_SUBMITTED,
    "delivered": clerk_pb2.CODE_DELIVERY_STATE_DELIVERED, "undeliverable": clerk_pb2.CODE_DELIVERY_STATE_UNDELIVERABLE,
    "expired": clerk_pb2.CODE_DELIVERY_STATE_EXPIRED, "failed": clerk_pb2.CODE_DELIVERY_STATE_FAILED,
    "no_receipt": clerk_pb2.CODE_DELIVERY_STATE_NO_RECEIPT,
}
# The wire's SessionPurpose values and the domain's purposes, one to one (tests/unit/test_purposes.py).
PURPOSES = {getattr(clerk_pb2, f"SESSION_PURPOSE_{p.name}"): p for p in SessionPurpose}
PURPOSE_VALUES = {p: value for value, p in PURPOSES.items()}


def _purpose(v: rules.Violations, request: clerk_pb2.OpenCustomerSessionRequest) -> tuple[SessionPurpose, str]:
    """The stated purpose and reason (R2), each wrong one a field violation."""
    purpose = PURPOSES.get(request.purpose)
    if purpose is None:
        v.items.append(("purpose", "is required: why the customer came (" + ", ".join(
            f"SESSION_PURPOSE_{p.name}" for p in SessionPurpose) + ")"))
        return SessionPurpose.OTHER, ""
    problem = reason_problem(purpose, request.reason)
    if problem:
        v.items.append(("reason", problem))
    return purpose, request.reason


def purpose_value(purpose: str) -> clerk_pb2.SessionPurpose:
    """The wire value of a stored purpose; UNSPECIFIED for a session stored before purposes existed."""
    try:
        return PURPOSE_VALUES[SessionPurpose(purpose)]
    except ValueError:
        return clerk_pb2.SESSION_PURPOSE_UNSPECIFIED


def _document(v: rules.Violations, doc: clerk_pb2.IdDocumentProof) -> IdDocument:
    if doc.document_type != clerk_pb2.ID_DOCUMENT_TYPE_RESIDENT_ID_CARD:
        v.items.append(("id_document.document_type", "must be RESIDENT_ID_CARD"))
    v.check("id_document.document_number", doc.document_number, ID_NUMBER_RE,
            "18 characters: 17 digits and a digit or X")
    v.check("id_document.name", doc.name, NAME_RE, "the holder's name as printed")
    v.check("id_document.birth_date", doc.birth_date, DATE_RE, 'the birth date as printed, "YYYY-MM-DD"')
    if doc.sex not in SEXES:
        v.items.append(("id_document.sex", "must be FEMALE or MALE, as printed"))
    return IdDocument("resident_id_card", doc.document_number.upper(), doc.name, doc.birth_date,
                      SEXES.get(doc.sex, ""))


def _epoch(seconds: float) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromNanoseconds(int(seconds * 1e9))
    return t


def _session() -> CustomerSession:
    session = request_context.current().customer
    assert isinstance(session, CustomerSession), "the policy table guarantees a customer session here"
    return session


class ClerkServicer(clerk_pb2_grpc.ClerkServiceServicer):
    def __init__(self, desk: ClerkDesk) -> None:
        self.desk = desk
        self._code_answer = clerk_pb2.RequestCustomerCodeResponse(code_valid_for=duration(desk.proof.s.code_ttl))

    async def RequestCustomerCode(self, request: clerk_pb2.RequestCustomerCodeRequest,
                                  context: grpc.aio.ServicerContext) -> clerk_pb2.RequestCustomerCodeResponse:
        v = rules.Violations()
        msisdn = rules.check_msisdn(v, request.msisdn)
        v.raise_if_any()
        call = request_context.current()
        call.msisdn = msisdn
        call.reason = await self.desk.request_code(msisdn)
        return self._code_answer

    async def OpenCustomerSession(self, request: clerk_pb2.OpenCustomerSessionRequest,
                                  context: grpc.aio.ServicerContext) -> clerk_pb2.OpenCustomerSessionResponse:
        v = rules.Violations()
        msisdn = rules.check_msisdn(v, request.msisdn)
        kind = request.WhichOneof("proof")
        call = request_context.current()
        if kind == "id_document":
            doc = _document(v, request.id_document)
        elif kind == "password_and_code":
            rules.check_service_password(v, request.password_and_code.service_password,
                                         "password_and_code.service_password")
            rules.check_code(v, request.password_and_code.one_time_code, "password_and_code.one_time_code")
        else:
            v.items.append(("proof", "is required: id_document or password_and_code"))
        purpose, why = _purpose(v, request)
        v.raise_if_any()
        call.msisdn = msisdn
        call.proof = kind or ""
        call.purpose, call.purpose_reason = purpose.value, why
        if kind == "id_document":
            token = await self.desk.open_by_document(call.staff_id, call.terminal, call.hall, msisdn, doc,
                                                     purpose, why, call.staff_session)
        else:
            pc = request.password_and_code
            token = await self.desk.open_by_password(call.staff_id, call.terminal, call.hall, msisdn,
                                                     pc.service_password, pc.one_time_code, purpose, why,
                                                     call.staff_session)
        return clerk_pb2.OpenCustomerSessionResponse(customer_session=token,
                                                     idle_timeout=duration(self.desk.s.customer_session_idle),
                                                     purpose=request.purpose)

    async def GetCustomerProfile(self, request: clerk_pb2.GetCustomerProfileRequest,
                                 context: grpc.aio.ServicerContext) -> clerk_pb2.GetCustomerProfileResponse:
        p = await self.desk.profile(_session())
        return clerk_pb2.GetCustomerProfileResponse(
            msisdn_masked=p.msisdn_masked, name_masked=p.name_masked, document_number_masked=p.document_number_masked,
            address_district=p.address_district, plan_name=p.plan_name, account_status=p.account_status,
            proved_by=p.proved_by, purpose=purpose_value(p.purpose))

    async def ResetServicePassword(self, request: clerk_pb2.ResetServicePasswordRequest,
                                   context: grpc.aio.ServicerContext) -> clerk_pb2.ResetServicePasswordResponse:
        v = rules.Violations()
        new = rules.check_service_password(v, request.new_service_password, "new_service_password")
        v.raise_if_any()
        return clerk_pb2.ResetServicePasswordResponse(next_step=await self.desk.reset_password(_session(), new))

    async def CloseCustomerSession(self, request: clerk_pb2.CloseCustomerSessionRequest,
                                   context: grpc.aio.ServicerContext) -> clerk_pb2.CloseCustomerSessionResponse:
        await self.desk.close(request.customer_session)
        return clerk_pb2.CloseCustomerSessionResponse()

    async def GetCodeDelivery(self, request: clerk_pb2.GetCodeDeliveryRequest,
                              context: grpc.aio.ServicerContext) -> clerk_pb2.GetCodeDeliveryResponse:
        """The session's number only (the customer_session is checked by the pipeline, as for every
        session call): the state and times of its newest code SMS, never its text or code."""
        found = await self.desk.code_delivery(_session())
        if found is None:
            return clerk_pb2.GetCodeDeliveryResponse(state=clerk_pb2.CODE_DELIVERY_STATE_NONE)
        return clerk_pb2.GetCodeDeliveryResponse(
            state=DELIVERY_STATES.get(found.state, clerk_pb2.CODE_DELIVERY_STATE_UNSPECIFIED),
            queued_at=_epoch(found.queued_at), updated_at=_epoch(found.updated_at))
