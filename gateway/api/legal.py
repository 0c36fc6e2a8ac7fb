"""LegalService over gRPC: the branch office's legal department (R5). Maps proto to the LegalDesk.

The caller's staff id and role come from the call context (set by the authorization interceptor
from the signed-in staff session); the policy table admits only the legal channel. The desk
enforces the per-transition roles and the four-eyes rule. For the audit trail every call sets
`reason` (legal_<action>), `detail` (the request id, and the actor's why) and the targets (`msisdn`
for one, a masked list in `subscriber` for several). Nothing here reaches a subscriber or a hall.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from gateway.domain import legal, request_context, rules
from gateway.domain.errors import InvalidArgument
from gateway.domain.legal import Actor, Category, LegalDesk, LegalRequest, State, Transition
from hallgate_pb.v1 import legal_pb2, legal_pb2_grpc

AGENCY_KINDS: dict[int, str] = {
    legal_pb2.AGENCY_KIND_PUBLIC_SECURITY: legal.AgencyKind.PUBLIC_SECURITY,
    legal_pb2.AGENCY_KIND_PROCURATORATE: legal.AgencyKind.PROCURATORATE,
    legal_pb2.AGENCY_KIND_STATE_SECURITY: legal.AgencyKind.STATE_SECURITY,
}
AGENCY_LEVELS: dict[int, str] = {
    legal_pb2.AGENCY_LEVEL_NATIONAL: legal.AgencyLevel.NATIONAL,
    legal_pb2.AGENCY_LEVEL_PROVINCIAL: legal.AgencyLevel.PROVINCIAL,
    legal_pb2.AGENCY_LEVEL_PREFECTURE: legal.AgencyLevel.PREFECTURE,
    legal_pb2.AGENCY_LEVEL_COUNTY: legal.AgencyLevel.COUNTY,
    legal_pb2.AGENCY_LEVEL_TOWNSHIP: legal.AgencyLevel.TOWNSHIP,
}
CATEGORIES: dict[int, str] = {
    legal_pb2.DATA_CATEGORY_SUBSCRIBER_INFO: Category.SUBSCRIBER_INFO,
    legal_pb2.DATA_CATEGORY_CALL_DETAILS: Category.CALL_DETAILS,
    legal_pb2.DATA_CATEGORY_COMMUNICATION_CONTENT: Category.COMMUNICATION_CONTENT,
}
STATES: dict[int, str] = {
    legal_pb2.REQUEST_STATE_AWAITING_APPROVAL: State.AWAITING_APPROVAL,
    legal_pb2.REQUEST_STATE_AWAITING_DISCLOSURE: State.AWAITING_DISCLOSURE,
    legal_pb2.REQUEST_STATE_DISCLOSING: State.DISCLOSING,
    legal_pb2.REQUEST_STATE_DISCLOSED: State.DISCLOSED,
    legal_pb2.REQUEST_STATE_DISCLOSURE_NOT_AVAILABLE: State.DISCLOSURE_NOT_AVAILABLE,
    legal_pb2.REQUEST_STATE_REJECTED: State.REJECTED,
    legal_pb2.REQUEST_STATE_INVALID: State.INVALID,
    legal_pb2.REQUEST_STATE_CANCELLED: State.CANCELLED,
    legal_pb2.REQUEST_STATE_EXPIRED: State.EXPIRED,
}


def _inverse(d: dict[int, str]) -> dict[str, Any]:
    """Domain value to proto enum number (typed Any: the stubs type each enum's numbers apart)."""
    return {v: k for k, v in d.items()}


AGENCY_KIND_NUMBERS, AGENCY_LEVEL_NUMBERS = _inverse(AGENCY_KINDS), _inverse(AGENCY_LEVELS)
CATEGORY_NUMBERS, STATE_NUMBERS = _inverse(CATEGORIES), _inverse(STATES)


def _enum(mapping: dict[int, str], number: int) -> str:
    """The domain value of a proto enum number: "" when unset, a value no rule accepts when unknown."""
    return mapping.get(number, "") if number == 0 or number in mapping else f"unknown:{number}"


# --- timestamps --------------------------------------------------------------------------------

MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31 (google.protobuf.Timestamp)


def _time_in(v: rules.Violations, field: str, present: bool, ts: timestamp_pb2.Timestamp) -> datetime | None:
    if not present:
        return None
    if not (MIN_SECONDS <= ts.seconds <= MAX_SECONDS and 0 <= ts.nanos < 10**9):
        v.items.append((field, "is not a valid timestamp"))
        return None
    return ts.ToDatetime(tzinfo=UTC)


def _ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


def _window_in(v: rules.Violations, request: legal_pb2.RegisterRequestRequest | legal_pb2.FulfilRequestRequest
               ) -> tuple[datetime | None, datetime | None]:
    w = request.window
    present = request.HasField("window")
    return (_time_in(v, "window.start", present and w.HasField("start"), w.start),
            _time_in(v, "window.end", present and w.HasField("end"), w.end))


# --- domain to proto ---------------------------------------------------------------------------


def request_message(r: LegalRequest, config: legal.LegalConfig,
                    history: Iterable[Transition] = ()) -> legal_pb2.LegalRequest:
    out = legal_pb2.LegalRequest(
        request_id=r.request_id, state=STATE_NUMBERS[r.state],
        agency=legal_pb2.Agency(kind=AGENCY_KIND_NUMBERS[r.agency_kind], name=r.agency_name,
                                level=AGENCY_LEVEL_NUMBERS[r.agency_level]),
        letter=legal_pb2.LetterInfo(reference=r.letter_reference, date=r.letter_date,
                                    media_type=r.letter_media_type, sha256=r.letter_sha256,
                                    size_bytes=r.letter_size),
        legal_basis=r.legal_basis, case_number=r.case_number,
        officers=[legal_pb2.Officer(name=o.name, badge_number=o.badge_number) for o in r.officers],
        targets=list(r.targets), categories=[CATEGORY_NUMBERS[c] for c in r.categories],
        window=legal_pb2.DataWindow(start=_ts(r.window_start), end=_ts(r.window_end)),
        registered_by=r.registered_by, registered_at=_ts(r.registered_at), approved_by=r.approved_by,
        history=[transition_message(t) for t in history],
    )
    if r.approved_at is not None:
        out.approved_at.CopyFrom(_ts(r.approved_at))
    expires = legal.approval_expires_at(r, config)
    if expires is not None:
        out.approval_expires_at.CopyFrom(_ts(expires))
    if r.manifest:
        out.manifest.CopyFrom(legal_pb2.SignedManifest(manifest_json=r.manifest, signature=r.manifest_signature,
                                                       key_id=r.manifest_key_id, algorithm="Ed25519"))
    return out


def transition_message(t: Transition) -> legal_pb2.RequestTransition:
    return legal_pb2.RequestTransition(
        at=_ts(t.at), from_state=STATE_NUMBERS[t.from_state] if t.from_state else "REQUEST_STATE_UNSPECIFIED",
        to_state=STATE_NUMBERS[t.to_state], actor_staff_id=t.actor, actor_role=t.role, reason=t.reason)


def _note_targets(targets: Sequence[str]) -> None:
    """The audit trail's subscriber: one target as `msisdn` (masked, with its keyed pseudonym),
    several as a masked list with a pseudonym each. Never the numbers themselves."""
    call = request_context.current()
    if len(targets) == 1:
        call.msisdn = targets[0]
    else:
        call.msisdns = tuple(targets)
        call.subscriber = ",".join(rules.mask_msisdn(t) for t in targets)


def _note(action: str, request_id: str, why: str = "", **extra: str) -> None:
    """What the audit event says about this call; `reason` is replaced by the error's on failure,
    `detail` stays, so a refusal still names the request and the action tried."""
    call = request_context.current()
    call.reason = f"legal_{action}"
    call.detail = json.dumps({"action": action, "request_id": request_id, **extra, "why": why[:500]},
                             ensure_ascii=False, separators=(",", ":"))


class LegalServicer(legal_pb2_grpc.LegalServiceServicer):
    """Maps every RPC to one LegalDesk method; the desk validates and decides."""

    def __init__(self, desk: LegalDesk) -> None:
        self.desk = desk

    @staticmethod
    def actor() -> Actor:
        call = request_context.current()
        return Actor(getattr(call, "staff_id", ""), getattr(call, "role", ""))

    def _message(self, r: LegalRequest, history: Iterable[Transition] = ()) -> legal_pb2.LegalRequest:
        return request_message(r, self.desk.config, history)

    async def RegisterRequest(self, request: legal_pb2.RegisterRequestRequest,
                              context: grpc.aio.ServicerContext) -> legal_pb2.RegisterRequestResponse:
        v = rules.Violations()
        start, end = _window_in(v, request)
        v.raise_if_any()
        _note("register", "", case_number=request.case_number[:64])
        draft = legal.RequestDraft(
            agency_kind=_enum(AGENCY_KINDS, request.agency.kind), agency_name=request.agency.name,
            agency_level=_enum(AGENCY_LEVELS, request.agency.level), letter_reference=request.letter.reference,
            letter_date=request.letter.date, letter_media_type=request.letter.media_type,
            letter_content=request.letter.content, legal_basis=request.legal_basis,
            case_number=request.case_number,
            officers=[legal.Officer(o.name, o.badge_number) for o in request.officers],
            targets=list(request.targets), categories=[_enum(CATEGORIES, c) for c in request.categories],
            window_start=start, window_end=end)
        registered = await self.desk.register(self.actor(), draft)
        _note("register", registered.request_id, case_number=registered.case_number)
        _note_targets(registered.targets)
        return legal_pb2.RegisterRequestResponse(request=self._message(registered))

    async def _decide(self, action: str, request_id: str, reason: str) -> legal_pb2.LegalRequest:
        _note(action, request_id[:64], reason)
        method = {"approve": self.desk.approve, "reject": self.desk.reject,
                  "mark_invalid": self.desk.mark_invalid, "cancel": self.desk.cancel}[action]
        after = await method(self.actor(), request_id, reason)
        _note_targets(after.targets)
        return self._message(after)

    async def ApproveRequest(self, request: legal_pb2.ApproveRequestRequest,
                             context: grpc.aio.ServicerContext) -> legal_pb2.ApproveRequestResponse:
        return legal_pb2.ApproveRequestResponse(request=await self._decide("approve", request.request_id,
                                                                           request.reason))

    async def RejectRequest(self, request: legal_pb2.RejectRequestRequest,
                            context: grpc.aio.ServicerContext) -> legal_pb2.RejectRequestResponse:
        return legal_pb2.RejectRequestResponse(request=await self._decide("reject", request.request_id,
                                                                          request.reason))

    async def MarkInvalid(self, request: legal_pb2.MarkInvalidRequest,
                          context: grpc.aio.ServicerContext) -> legal_pb2.MarkInvalidResponse:
        return legal_pb2.MarkInvalidResponse(request=await self._decide("mark_invalid", request.request_id,
                                                                        request.reason))

    async def CancelRequest(self, request: legal_pb2.CancelRequestRequest,
                            context: grpc.aio.ServicerContext) -> legal_pb2.CancelRequestResponse:
        return legal_pb2.CancelRequestResponse(request=await self._decide("cancel", request.request_id,
                                                                          request.reason))

    async def FulfilRequest(self, request: legal_pb2.FulfilRequestRequest,
                            context: grpc.aio.ServicerContext) -> AsyncIterator[legal_pb2.FulfilRequestResponse]:
        v = rules.Violations()
        start, end = _window_in(v, request)
        v.raise_if_any()
        _note("fulfil", request.request_id[:64], request.reason)
        scope = legal.FulfilScope(targets=list(request.targets),
                                  categories=[_enum(CATEGORIES, c) for c in request.categories],
                                  window_start=start, window_end=end)
        call = request_context.current()
        # Closed deterministically: a client that cancels interrupts the fulfilment at once
        # (back to AWAITING_APPROVAL), not whenever the generator happens to be finalised.
        async with contextlib.aclosing(self.desk.fulfil(self.actor(), request.request_id, request.reason,
                                                        scope)) as parts:
            async for message in self._delivery_messages(parts, request.reason, call):
                yield message

    @staticmethod
    async def _delivery_messages(parts: AsyncIterator[legal.DeliveryPart], reason: str,
                                 call: request_context.CallContext) -> AsyncIterator[legal_pb2.FulfilRequestResponse]:
        async for part in parts:
            if isinstance(part, legal.DeliveryStart):
                sc = part.scope
                _note("fulfil", part.request.request_id, reason, delivery_id=part.delivery_id)
                _note_targets(sc.targets)
                yield legal_pb2.FulfilRequestResponse(header=legal_pb2.DeliveryHeader(
                    request_id=part.request.request_id, delivery_id=part.delivery_id,
                    case_number=part.request.case_number, targets=list(sc.targets),
                    categories=[CATEGORY_NUMBERS[c] for c in sc.categories],
                    window=legal_pb2.DataWindow(start=_ts(sc.window_start), end=_ts(sc.window_end))))
            elif isinstance(part, legal.DeliveryChunk):
                call.records += part.call_details
                yield legal_pb2.FulfilRequestResponse(records=part.data)
            else:
                s = part.signed
                yield legal_pb2.FulfilRequestResponse(manifest=legal_pb2.SignedManifest(
                    manifest_json=s.manifest, signature=s.signature, key_id=s.key_id, algorithm=s.algorithm))

    async def ListRequests(self, request: legal_pb2.ListRequestsRequest,
                           context: grpc.aio.ServicerContext) -> legal_pb2.ListRequestsResponse:
        call = request_context.current()
        call.reason = "legal_list"
        call.detail = json.dumps({"action": "list", "state": request.state, "case_number": request.case_number[:64],
                                  "agency_name": request.agency_name[:128]}, ensure_ascii=False,
                                 separators=(",", ":"))
        if request.state and request.state not in STATES:
            raise InvalidArgument([("state", "must be a RequestState")])
        page = await self.desk.list_requests(self.actor(), legal.ListFilter(
            state=State(STATES[request.state]) if request.state else None, case_number=request.case_number,
            agency_name=request.agency_name, page_size=request.page_size, page_token=request.page_token))
        return legal_pb2.ListRequestsResponse(requests=[self._message(r) for r in page.requests],
                                              next_page_token=page.next_page_token)

    async def GetLetter(self, request: legal_pb2.GetLetterRequest,
                        context: grpc.aio.ServicerContext) -> legal_pb2.GetLetterResponse:
        _note("letter", request.request_id[:64])
        found, data = await self.desk.get_letter(self.actor(), request.request_id)
        _note("letter", found.request_id, sha256=found.letter_sha256)
        return legal_pb2.GetLetterResponse(content=data, media_type=found.letter_media_type,
                                           sha256=found.letter_sha256)

    async def GetRequest(self, request: legal_pb2.GetRequestRequest,
                         context: grpc.aio.ServicerContext) -> legal_pb2.GetRequestResponse:
        _note("get", request.request_id[:64])
        found, history = await self.desk.get_request(self.actor(), request.request_id)
        _note_targets(found.targets)
        return legal_pb2.GetRequestResponse(request=self._message(found, history))
