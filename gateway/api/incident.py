"""IncidentService over gRPC: breach response (R10). Maps proto to the IncidentDesk
(gateway/domain/incidents.py).

The policy table admits ReportIncident from every staff role on every staff channel, the reads
from the information supervisor and auditors, and every change and RevealNumbers from the
information supervisor alone, on the audit channel. The caller's staff id is the `by` of every
step. For the trail every call sets `reason` (incident_<action>) and `detail` (the incident id and
what changed); RevealNumbers is recorded as a disclosure naming each revealed subscriber (masked and
by pseudonym, as every event does), never the number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from gateway.domain import incidents as inc_
from gateway.domain import request_context, rules
from gateway.domain.errors import InvalidArgument
from gateway.domain.incidents import ActorKind, Incident, IncidentDesk, NoticeKind, State
from hallgate_pb.v1 import incident_pb2, incident_pb2_grpc

MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799
MAX_PAGE = 500
DEFAULT_PAGE = 50

ACTOR_KINDS: dict[int, str] = {incident_pb2.ACTOR_KIND_STAFF: ActorKind.STAFF,
                               incident_pb2.ACTOR_KIND_TERMINAL: ActorKind.TERMINAL,
                               incident_pb2.ACTOR_KIND_HALL: ActorKind.HALL}
STATES: dict[int, str] = {incident_pb2.INCIDENT_STATE_REPORTED: State.REPORTED,
                          incident_pb2.INCIDENT_STATE_CONTAINED: State.CONTAINED,
                          incident_pb2.INCIDENT_STATE_NOTIFIED: State.NOTIFIED,
                          incident_pb2.INCIDENT_STATE_CLOSED: State.CLOSED}
NOTICES: dict[int, str] = {incident_pb2.NOTIFICATION_KIND_LAW_ENFORCEMENT: NoticeKind.LAW_ENFORCEMENT,
                           incident_pb2.NOTIFICATION_KIND_CUSTOMERS: NoticeKind.CUSTOMERS}
ACTOR_NUMBERS: dict[str, Any] = {v: k for k, v in ACTOR_KINDS.items()}  # Any: the stubs type enums apart
STATE_NUMBERS: dict[str, Any] = {v: k for k, v in STATES.items()}
NOTICE_NUMBERS: dict[str, Any] = {v: k for k, v in NOTICES.items()}


def _enum(mapping: dict[int, str], number: int) -> str:
    return mapping.get(number, "") if number == 0 or number in mapping else f"unknown:{number}"


def _time(v: list[tuple[str, str]], name: str, present: bool, ts: timestamp_pb2.Timestamp) -> datetime | None:
    if not present:
        return None
    if not (MIN_SECONDS <= ts.seconds <= MAX_SECONDS and 0 <= ts.nanos < 10**9):
        v.append((name, "is not a valid timestamp"))
        return None
    return ts.ToDatetime(tzinfo=UTC)


def _ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


def _page(v: list[tuple[str, str]], size: int, token: str) -> tuple[int, int]:
    if size < 0 or size > MAX_PAGE:
        v.append(("page_size", f"must be between 0 and {MAX_PAGE}"))
    if token and not (token.isascii() and token.isdigit() and len(token) <= 9):
        v.append(("page_token", "must be a token from an earlier answer"))
    return (int(token) if token and token.isascii() and token.isdigit() and len(token) <= 9 else 0,
            size or DEFAULT_PAGE)


def _raise(v: list[tuple[str, str]]) -> None:
    if v:
        raise InvalidArgument(v)


def incident_message(i: Incident, desk: IncidentDesk, now: datetime | None = None) -> incident_pb2.Incident:
    d = inc_.deadlines(i, desk.config, now or datetime.now(UTC))
    out = incident_pb2.Incident(
        incident_id=i.incident_id, state=STATE_NUMBERS[i.state], summary=i.summary,
        suspect=incident_pb2.Suspect(kind=ACTOR_NUMBERS[i.suspect.kind], id=i.suspect.actor,
                                     start=_ts(i.suspect.start), end=_ts(i.suspect.end)),
        reported_by=i.reported_by, reporter_role=i.reporter_role, reported_at=_ts(i.reported_at),
        steps=[incident_pb2.RemediationStep(text=s.text, by=s.by, at=_ts(s.at)) for s in i.steps],
        history=[incident_pb2.StateChange(from_state=STATE_NUMBERS[c.from_state], to_state=STATE_NUMBERS[c.to_state],
                                          by=c.by, at=_ts(c.at), reason=c.reason) for c in i.history],
        deadlines=incident_pb2.Deadlines(law_enforcement_overdue=d.law_enforcement_overdue,
                                         customers_overdue=d.customers_overdue))
    for n in i.notices:
        msg = out.notifications.add(kind=NOTICE_NUMBERS[n.kind], at=_ts(n.at), reference=n.reference,
                                    recorded_by=n.recorded_by)
        if n.delay_customers_until is not None:
            msg.delay_customers_until.CopyFrom(_ts(n.delay_customers_until))
    if i.determined_at is not None:
        out.determined_at.CopyFrom(_ts(i.determined_at))
    if i.closed_at is not None:
        out.closed_at.CopyFrom(_ts(i.closed_at))
    if d.law_enforcement_due is not None:
        out.deadlines.law_enforcement_due.CopyFrom(_ts(d.law_enforcement_due))
    if d.customers_from is not None:
        out.deadlines.customers_from.CopyFrom(_ts(d.customers_from))
    return out


def _audit(reason: str, detail: str) -> None:
    call = request_context.current()
    call.reason, call.detail = reason, detail


class IncidentServicer(incident_pb2_grpc.IncidentServiceServicer):
    def __init__(self, desk: IncidentDesk) -> None:
        self.desk = desk

    async def ReportIncident(self, request: incident_pb2.ReportIncidentRequest, context: grpc.aio.ServicerContext
                             ) -> incident_pb2.ReportIncidentResponse:
        v: list[tuple[str, str]] = []
        s = request.suspect
        start = _time(v, "suspect.start", s.HasField("start"), s.start)
        end = _time(v, "suspect.end", s.HasField("end"), s.end)
        _raise(v)
        call = request_context.current()
        _audit("incident_report", f"suspect {_enum(ACTOR_KINDS, s.kind) or '-'}")
        found = await self.desk.report(request.summary, _enum(ACTOR_KINDS, s.kind), s.id, start, end,
                                       call.staff_id, call.role)
        call.detail = f"incident {found.incident_id}: suspect {found.suspect.kind} {found.suspect.actor}"
        return incident_pb2.ReportIncidentResponse(incident_id=found.incident_id)

    async def GetIncident(self, request: incident_pb2.GetIncidentRequest, context: grpc.aio.ServicerContext
                          ) -> incident_pb2.Incident:
        _audit("incident_read", f"incident {request.incident_id[:40]}")
        return incident_message(await self.desk.get(request.incident_id), self.desk)

    async def ListIncidents(self, request: incident_pb2.ListIncidentsRequest, context: grpc.aio.ServicerContext
                            ) -> incident_pb2.ListIncidentsResponse:
        v: list[tuple[str, str]] = []
        state = _enum(STATES, request.state)
        if state.startswith("unknown"):
            v.append(("state", "must be a known incident state"))
        offset, size = _page(v, request.page_size, request.page_token)
        _raise(v)
        _audit("incident_list", f"state {state or 'any'}{' overdue' if request.overdue_only else ''}")
        now = datetime.now(UTC)
        page, total = await self.desk.incidents(state, request.overdue_only, offset, size, now)
        request_context.current().records = len(page)
        nxt = str(offset + len(page)) if offset + len(page) < total and page else ""
        return incident_pb2.ListIncidentsResponse(incidents=[incident_message(i, self.desk, now) for i in page],
                                                  next_page_token=nxt)

    async def AddRemediationStep(self, request: incident_pb2.AddRemediationStepRequest,
                                 context: grpc.aio.ServicerContext) -> incident_pb2.Incident:
        _audit("incident_step", f"incident {request.incident_id[:40]}")
        found = await self.desk.add_step(request.incident_id, request.text, request_context.current().staff_id)
        return incident_message(found, self.desk)

    async def Transition(self, request: incident_pb2.TransitionRequest, context: grpc.aio.ServicerContext
                         ) -> incident_pb2.Incident:
        v: list[tuple[str, str]] = []
        determined = _time(v, "determined_at", request.HasField("determined_at"), request.determined_at)
        _raise(v)
        to = _enum(STATES, request.to_state)
        _audit("incident_transition", f"incident {request.incident_id[:40]} to {to[:20] or '-'}")
        found = await self.desk.transition(request.incident_id, to, request_context.current().staff_id, determined,
                                           request.reason)
        return incident_message(found, self.desk)

    async def RecordNotification(self, request: incident_pb2.RecordNotificationRequest,
                                 context: grpc.aio.ServicerContext) -> incident_pb2.Incident:
        v: list[tuple[str, str]] = []
        at = _time(v, "at", request.HasField("at"), request.at)
        delay = _time(v, "delay_customers_until", request.HasField("delay_customers_until"),
                      request.delay_customers_until)
        _raise(v)
        kind = _enum(NOTICES, request.kind)
        _audit("incident_notification", f"incident {request.incident_id[:40]}: {kind[:20] or '-'} notified")
        found = await self.desk.notify(request.incident_id, kind, at, request.reference,
                                       request_context.current().staff_id, delay)
        return incident_message(found, self.desk)

    async def ListAffected(self, request: incident_pb2.ListAffectedRequest, context: grpc.aio.ServicerContext
                           ) -> incident_pb2.ListAffectedResponse:
        v: list[tuple[str, str]] = []
        offset, size = _page(v, request.page_size, request.page_token)
        _raise(v)
        _audit("incident_affected", f"incident {request.incident_id[:40]}")
        found, subscribers, read = await self.desk.affected(request.incident_id)
        page = subscribers[offset:offset + size]
        call = request_context.current()
        call.records = len(page)
        call.detail = (f"incident {found.incident_id}: {len(subscribers)} subscriber(s) in {read} event(s) of "
                       f"{found.suspect.kind} {found.suspect.actor}")
        nxt = str(offset + len(page)) if offset + len(page) < len(subscribers) and page else ""
        return incident_pb2.ListAffectedResponse(
            subscribers=[incident_pb2.AffectedSubscriber(subscriber_ref=a.subscriber_ref, masked=a.masked,
                                                         first_touch=_ts(a.first), last_touch=_ts(a.last),
                                                         events=a.events) for a in page],
            next_page_token=nxt, total=len(subscribers), events_read=read)

    async def RevealNumbers(self, request: incident_pb2.RevealNumbersRequest, context: grpc.aio.ServicerContext
                            ) -> incident_pb2.RevealNumbersResponse:
        refs = list(request.subscriber_refs)
        _audit("incident_reveal_disclosure", f"incident {request.incident_id[:40]}: {len(refs)} asked")
        numbers = await self.desk.reveal(request.incident_id, refs)
        call = request_context.current()
        # A disclosure: the event names every revealed subscriber (pseudonym and mask, never the number).
        revealed = tuple(numbers[r] for r in dict.fromkeys(refs) if r in numbers)
        call.msisdns = revealed
        call.subscriber = ",".join(rules.mask_msisdn(m) for m in revealed)
        call.records = len(revealed)
        call.detail = f"incident {request.incident_id}: {len(revealed)} number(s) revealed of {len(refs)} asked"
        return incident_pb2.RevealNumbersResponse(
            numbers=[incident_pb2.RevealedNumber(subscriber_ref=r, msisdn=numbers.get(r, "")) for r in refs])
