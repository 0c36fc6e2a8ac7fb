"""`hallgate incident …`: breach response (R10). Any staff member reports a suspected leak from the
terminal they are signed in on (`--cert`); the information supervisor works it on the audit
terminal; auditors read."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, timestamp_pb2

from gateway.cli import connect
from hallgate_pb.v1 import incident_pb2, incident_pb2_grpc

ACTOR_KINDS = {"staff": incident_pb2.ACTOR_KIND_STAFF, "terminal": incident_pb2.ACTOR_KIND_TERMINAL,
               "hall": incident_pb2.ACTOR_KIND_HALL}
STATES: dict[str, Any] = {"contained": incident_pb2.INCIDENT_STATE_CONTAINED,
                          "notified": incident_pb2.INCIDENT_STATE_NOTIFIED,
                          "closed": incident_pb2.INCIDENT_STATE_CLOSED,
                          "reported": incident_pb2.INCIDENT_STATE_REPORTED}
NOTICES = {"law-enforcement": incident_pb2.NOTIFICATION_KIND_LAW_ENFORCEMENT,
           "customers": incident_pb2.NOTIFICATION_KIND_CUSTOMERS}
PAGES = 10_000  # bound on the pages `affected` follows


def when(text: str) -> datetime:
    """ISO 8601 with an offset (2026-11-30T09:00:00+08:00), or `now`."""
    if text == "now":
        return datetime.now(UTC)
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError("give the offset, e.g. 2026-11-30T09:00:00+08:00")
    return t


def add_commands(sub: Any) -> None:
    ic = connect.add_staff_terminal(sub, "incident", "breach response (R10): report a suspected leak (any staff "
                                                     "member, any terminal: --cert), work it (information "
                                                     "supervisor), read it (auditor)",
                                    "audit-B01-A01", "an information supervisor, an auditor or any staff member")
    rp = ic.add_parser("report", help="report a suspected leak: what, and the actor and window suspected")
    rp.add_argument("--summary", required=True, help="what is suspected")
    rp.add_argument("--actor-kind", choices=sorted(ACTOR_KINDS), required=True)
    rp.add_argument("--actor", required=True, help="a staff id (C1001), terminal (H001/clerk/T07) or hall (H001)")
    rp.add_argument("--from", dest="start", type=when, required=True, help="window start (ISO 8601 with offset)")
    rp.add_argument("--to", dest="end", type=when, required=True, help="window end (inclusive), or now")
    rp.set_defaults(run=cmd_report)
    ls = ic.add_parser("list", help="list incidents, newest first, with their deadlines")
    ls.add_argument("--state", choices=sorted(STATES), default="")
    ls.add_argument("--overdue", action="store_true", help="only incidents with a deadline passed")
    ls.add_argument("--json", action="store_true", help="one JSON object per incident")
    ls.set_defaults(run=cmd_list)
    gt = ic.add_parser("get", help="show an incident: steps, notifications, history, deadlines")
    gt.add_argument("incident_id")
    gt.add_argument("--json", action="store_true", help="the incident as JSON (Incident)")
    gt.set_defaults(run=cmd_get)
    st = ic.add_parser("step", help="record a remediation step (by: you)")
    st.add_argument("incident_id")
    st.add_argument("--text", required=True)
    st.set_defaults(run=cmd_step)
    tr = ic.add_parser("transition", help="reported -> contained (--determined-at) -> notified -> closed")
    tr.add_argument("incident_id")
    tr.add_argument("--to", choices=["contained", "notified", "closed"], required=True)
    tr.add_argument("--determined-at", type=when, help="with --to contained: when the breach was determined")
    tr.add_argument("--reason", default="")
    tr.set_defaults(run=cmd_transition)
    nt = ic.add_parser("notify", help="record a notification of law enforcement or of the customers")
    nt.add_argument("incident_id")
    nt.add_argument("--kind", choices=sorted(NOTICES), required=True)
    nt.add_argument("--at", type=when, default="now")
    nt.add_argument("--reference", required=True, help="the agency's reference, or the letters' reference")
    nt.add_argument("--delay-customers-until", type=when, help="law enforcement asked to delay customer notice")
    nt.set_defaults(run=cmd_notify)
    af = ic.add_parser("affected", help="the subscribers (pseudonym, masked number) the actor touched in the window")
    af.add_argument("incident_id")
    af.add_argument("--page-size", type=int, default=500)
    af.set_defaults(run=cmd_affected)
    rv = ic.add_parser("reveal", help="information supervisor: the full numbers behind pseudonyms (audited)")
    rv.add_argument("incident_id")
    rv.add_argument("subscriber_refs", nargs="+")
    rv.set_defaults(run=cmd_reveal)


def _ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    with connect.channel(args) as channel:
        stub = incident_pb2_grpc.IncidentServiceStub(channel)
        return getattr(stub, method)(request, metadata=connect.staff_metadata(args), timeout=60)


def _show(inc: incident_pb2.Incident) -> None:
    print(json_format.MessageToJson(inc, indent=2, preserving_proto_field_name=True))


def _at(ts: timestamp_pb2.Timestamp) -> str:
    return "-" if not ts.seconds and not ts.nanos else f"{ts.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M}Z"


def _name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower().replace("_", " ")


def _text(inc: incident_pb2.Incident) -> str:
    """An incident for a person to read: what, who is suspected, deadlines, steps, notices, history."""
    s, d = inc.suspect, inc.deadlines
    rows = [("incident", inc.incident_id), ("state", _name(incident_pb2.IncidentState, inc.state, "INCIDENT_STATE_")),
            ("summary", inc.summary),
            ("suspect", f"{_name(incident_pb2.ActorKind, s.kind, 'ACTOR_KIND_')} {s.id}, {_at(s.start)} to "
                        f"{_at(s.end)}"),
            ("reported", f"by {inc.reported_by} ({inc.reporter_role}) at {_at(inc.reported_at)}"),
            ("determined", _at(inc.determined_at))]
    if d.HasField("law_enforcement_due"):
        rows.append(("law enforcement", f"notify by {_at(d.law_enforcement_due)}"
                                        + ("  OVERDUE" if d.law_enforcement_overdue else "")))
    if d.HasField("customers_from"):
        rows.append(("customers", f"notify from {_at(d.customers_from)}"
                                  + ("  OVERDUE" if d.customers_overdue else "")))
    if inc.HasField("closed_at"):
        rows.append(("closed", _at(inc.closed_at)))
    lines = [f"{k:16} {v}" for k, v in rows]
    if inc.steps:
        lines.append("steps")
        lines += [f"  {_at(st.at)}  by {st.by}: {st.text}" for st in inc.steps]
    if inc.notifications:
        lines.append("notifications")
        for n in inc.notifications:
            delay = (f"; customers not before {_at(n.delay_customers_until)}"
                     if n.HasField("delay_customers_until") else "")
            lines.append(f"  {_at(n.at)}  {_name(incident_pb2.NotificationKind, n.kind, 'NOTIFICATION_KIND_')}: "
                         f"{n.reference} (recorded by {n.recorded_by}){delay}")
    if inc.history:
        lines.append("history")
        lines += [f"  {_at(h.at)}  {_name(incident_pb2.IncidentState, h.from_state, 'INCIDENT_STATE_')} -> "
                  f"{_name(incident_pb2.IncidentState, h.to_state, 'INCIDENT_STATE_')} by {h.by}"
                  + (f": {h.reason}" if h.reason else "") for h in inc.history]
    return "\n".join(lines)


def _line(inc: incident_pb2.Incident) -> str:
    d = inc.deadlines
    due = ""
    if d.HasField("law_enforcement_due"):
        due = f" law enforcement by {d.law_enforcement_due.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M}Z"
    if d.HasField("customers_from"):
        due += f" customers from {d.customers_from.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M}Z"
    late = " OVERDUE" if d.law_enforcement_overdue or d.customers_overdue else ""
    state = incident_pb2.IncidentState.Name(inc.state).removeprefix("INCIDENT_STATE_").lower()
    return f"{inc.incident_id}  {state:9} {inc.suspect.id:18} by {inc.reported_by:8}{due}{late}"


def cmd_report(args: argparse.Namespace) -> int:
    reply = _call(args, "ReportIncident", incident_pb2.ReportIncidentRequest(
        summary=args.summary, suspect=incident_pb2.Suspect(kind=ACTOR_KINDS[args.actor_kind], id=args.actor,
                                                           start=_ts(args.start), end=_ts(args.end))))
    print(reply.incident_id)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    token, shown = "", 0
    for _ in range(PAGES):
        reply = _call(args, "ListIncidents", incident_pb2.ListIncidentsRequest(
            state=STATES.get(args.state, 0), overdue_only=args.overdue, page_size=200, page_token=token))
        for inc in reply.incidents:
            print(json_format.MessageToJson(inc, indent=None, preserving_proto_field_name=True) if args.json
                  else _line(inc))
            shown += 1
        token = reply.next_page_token
        if not token:
            break
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    inc = _call(args, "GetIncident", incident_pb2.GetIncidentRequest(incident_id=args.incident_id))
    if args.json:
        _show(inc)
    else:
        print(_text(inc))
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    print(_line(_call(args, "AddRemediationStep", incident_pb2.AddRemediationStepRequest(
        incident_id=args.incident_id, text=args.text))))
    return 0


def cmd_transition(args: argparse.Namespace) -> int:
    req = incident_pb2.TransitionRequest(incident_id=args.incident_id, to_state=STATES[args.to], reason=args.reason)
    if args.determined_at is not None:
        req.determined_at.CopyFrom(_ts(args.determined_at))
    print(_line(_call(args, "Transition", req)))
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    at = args.at if isinstance(args.at, datetime) else when(args.at)
    req = incident_pb2.RecordNotificationRequest(incident_id=args.incident_id, kind=NOTICES[args.kind], at=_ts(at),
                                                 reference=args.reference)
    if args.delay_customers_until is not None:
        req.delay_customers_until.CopyFrom(_ts(args.delay_customers_until))
    print(_line(_call(args, "RecordNotification", req)))
    return 0


def cmd_affected(args: argparse.Namespace) -> int:
    token, total, read = "", 0, 0
    for _ in range(PAGES):
        reply = _call(args, "ListAffected", incident_pb2.ListAffectedRequest(
            incident_id=args.incident_id, page_size=args.page_size, page_token=token))
        total, read = reply.total, reply.events_read
        for s in reply.subscribers:
            print(f"{s.subscriber_ref}  {s.masked:12} {s.events:6} event(s)  "
                  f"{s.first_touch.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M:%S}Z .. "
                  f"{s.last_touch.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M:%S}Z")
        token = reply.next_page_token
        if not token:
            break
    print(f"{total} subscriber(s) in {read} event(s)")
    return 0


def cmd_reveal(args: argparse.Namespace) -> int:
    reply = _call(args, "RevealNumbers", incident_pb2.RevealNumbersRequest(
        incident_id=args.incident_id, subscriber_refs=args.subscriber_refs))
    for n in reply.numbers:
        print(f"{n.subscriber_ref}  {n.msisdn or '(not in the directory)'}")
    return 0
