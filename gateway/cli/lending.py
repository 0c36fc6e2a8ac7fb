"""`hallgate lending …`: the hall's archive lending register (R3) at a hall terminal: the custodian
registers documents, hands them out and takes them back; a clerk asks to borrow; the hall manager
approves or rejects and sees what is overdue."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf import json_format, timestamp_pb2

from gateway.cli import connect
from gateway.runtime.settings import from_env
from hallgate_pb.v1 import lending_pb2, lending_pb2_grpc

KINDS = {"contract": lending_pb2.DOCUMENT_KIND_CONTRACT, "id-copy": lending_pb2.DOCUMENT_KIND_ID_COPY,
         "application": lending_pb2.DOCUMENT_KIND_APPLICATION}
STATES = {"requested", "approved", "rejected", "out", "returned", "cancelled"}


def add_commands(sub: Any) -> None:
    ls = connect.add_staff_terminal(sub, "lending", "the hall's archive lending register (R3): originals kept by "
                                    "the custodian, lent with the hall manager's approval", "clerk-H001-T07",
                                    "a clerk, custodian or hall manager")
    rg = ls.add_parser("register", help="custodian: put an original document on the shelf")
    rg.add_argument("archive_id")
    rg.add_argument("--kind", required=True, choices=sorted(KINDS))
    rg.add_argument("--description", required=True, help="what it is (no customer data), at most 200 characters")
    rg.add_argument("--hall", default="", help="the hall keeping it (default: this terminal's)")
    rg.set_defaults(run=cmd_register)
    rq = ls.add_parser("request", help="clerk: ask to borrow a document; prints the loan id")
    rq.add_argument("archive_id")
    rq.add_argument("--reason", required=True)
    rq.add_argument("--days", type=float, default=0, help="due back in this many days (at most loan_max_days, "
                                                          "3; default: the most allowed)")
    rq.set_defaults(run=cmd_request)
    for name, helptext in (("approve", "hall manager: approve a loan (never your own)"),
                           ("reject", "hall manager: refuse a loan"),
                           ("cancel", "the borrower or a hall manager: withdraw a loan not yet handed out")):
        p = ls.add_parser(name, help=helptext)
        p.add_argument("loan_id")
        p.add_argument("--reason", required=True)
        p.set_defaults(run=cmd_decide, decision=name)
    for name, helptext in (("hand-out", "custodian: hand an approved loan's document to the borrower"),
                           ("return", "custodian: the document is back on the shelf")):
        p = ls.add_parser(name, help=helptext)
        p.add_argument("loan_id")
        p.set_defaults(run=cmd_custody, step=name)
    wh = ls.add_parser("where", help="where is archive X: on the shelf, or with whom since when, due when")
    wh.add_argument("archive_id")
    wh.set_defaults(run=cmd_where)
    hb = ls.add_parser("held-by", help="what does staff member Y hold (loans OUT)")
    hb.add_argument("staff_id")
    hb.set_defaults(run=cmd_held_by)
    od = ls.add_parser("overdue", help="the hall's loans past their due time, most overdue first")
    od.set_defaults(run=cmd_overdue)
    ll = ls.add_parser("list", help="the hall's loans (a clerk: their own)")
    ll.add_argument("--state", default="", choices=sorted(STATES | {""}))
    ll.add_argument("--holder", default="")
    ll.set_defaults(run=cmd_list)
    for p in (wh, hb, od, ll):
        p.add_argument("--timezone", default=from_env().timezone, help="time zone to show times in [HALLGATE_TIMEZONE]")
        p.add_argument("--json", action="store_true", help="JSON for machines: one object per loan (where: one "
                                                           "document)")


def _call(args: argparse.Namespace, call: Callable[[lending_pb2_grpc.LendingServiceStub], Any]) -> Any:
    with connect.channel(args) as channel:
        return call(lending_pb2_grpc.LendingServiceStub(channel))


def _md(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return connect.staff_metadata(args)


def _state(loan: lending_pb2.Loan) -> str:
    return lending_pb2.LoanState.Name(loan.state).removeprefix("LOAN_STATE_")


def _when(ts: timestamp_pb2.Timestamp, tz: str) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _line(loan: lending_pb2.Loan, tz: str) -> str:
    late = "  OVERDUE" if loan.overdue else ""
    return (f"{loan.loan_id}  {_state(loan):9} {loan.archive_id:20} {loan.borrower:10} "
            f"out {_when(loan.handed_out_at, tz)}  due {_when(loan.due_at, tz)}{late}")


def cmd_register(args: argparse.Namespace) -> int:
    req = lending_pb2.RegisterDocumentRequest(archive_id=args.archive_id, kind=KINDS[args.kind], hall=args.hall,
                                              description=args.description)
    doc = _call(args, lambda s: s.RegisterDocument(req, metadata=_md(args), timeout=15)).document
    print(f"{doc.archive_id}: on the shelf of hall {doc.hall}")
    return 0


def cmd_request(args: argparse.Namespace) -> int:
    req = lending_pb2.RequestLoanRequest(archive_id=args.archive_id, reason=args.reason)
    if args.days:
        req.due_at.FromDatetime(datetime.now(UTC) + timedelta(days=args.days))
    loan = _call(args, lambda s: s.RequestLoan(req, metadata=_md(args), timeout=15)).loan
    print(loan.loan_id)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    method = {"approve": "ApproveLoan", "reject": "RejectLoan", "cancel": "CancelLoan"}[args.decision]
    req = getattr(lending_pb2, f"{method}Request")(loan_id=args.loan_id, reason=args.reason)
    loan = _call(args, lambda s: getattr(s, method)(req, metadata=_md(args), timeout=15)).loan
    print(f"{loan.loan_id}: {_state(loan)}")
    return 0


def cmd_custody(args: argparse.Namespace) -> int:
    if args.step == "hand-out":
        loan = _call(args, lambda s: s.HandOut(lending_pb2.HandOutRequest(loan_id=args.loan_id), metadata=_md(args),
                                               timeout=15)).loan
    else:
        loan = _call(args, lambda s: s.RecordReturn(lending_pb2.RecordReturnRequest(loan_id=args.loan_id),
                                                    metadata=_md(args), timeout=15)).loan
    print(f"{loan.loan_id}: {_state(loan)} (archive {loan.archive_id}, borrower {loan.borrower})")
    return 0


def cmd_where(args: argparse.Namespace) -> int:
    reply = _call(args, lambda s: s.GetDocument(lending_pb2.GetDocumentRequest(archive_id=args.archive_id),
                                                metadata=_md(args), timeout=15))
    if args.json:
        print(json_format.MessageToJson(reply, indent=2, preserving_proto_field_name=True))
        return 0
    doc, loan = reply.document, reply.current_loan
    kind = lending_pb2.DocumentKind.Name(doc.kind).removeprefix("DOCUMENT_KIND_").lower()
    print(f"{doc.archive_id} ({kind}, hall {doc.hall}): {doc.description}")
    if reply.on_shelf:
        pending = f"; loan {loan.loan_id} {_state(loan)} for {loan.borrower}" if reply.HasField("current_loan") else ""
        print(f"on the shelf{pending}")
    else:
        print(f"lent to {loan.borrower} since {_when(loan.handed_out_at, args.timezone)}, due "
              f"{_when(loan.due_at, args.timezone)}{'  OVERDUE' if loan.overdue else ''} (loan {loan.loan_id})")
    return 0


def _print_loans(args: argparse.Namespace, req: lending_pb2.ListLoansRequest) -> int:
    token, pages = "", 0
    while pages < 1000:
        req.page_token = token
        reply = _call(args, lambda s: s.ListLoans(req, metadata=_md(args), timeout=15))
        for loan in reply.loans:
            print(json_format.MessageToJson(loan, indent=None, preserving_proto_field_name=True) if args.json
                  else _line(loan, args.timezone))
        token, pages = reply.next_page_token, pages + 1
        if not token:
            break
    return 0


def cmd_held_by(args: argparse.Namespace) -> int:
    return _print_loans(args, lending_pb2.ListLoansRequest(holder_staff_id=args.staff_id,
                                                           state=lending_pb2.LOAN_STATE_OUT))


def cmd_overdue(args: argparse.Namespace) -> int:
    return _print_loans(args, lending_pb2.ListLoansRequest(overdue_only=True))


def cmd_list(args: argparse.Namespace) -> int:
    req = lending_pb2.ListLoansRequest(holder_staff_id=args.holder)
    if args.state:
        req.state = lending_pb2.LoanState.Value(f"LOAN_STATE_{args.state.upper()}")
    return _print_loans(args, req)
