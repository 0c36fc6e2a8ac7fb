"""`hallgate clerk …`: act as a clerk terminal at a hall counter (staff sign-in, customer sessions)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf import json_format

from gateway.cli import connect
from gateway.domain.purposes import PURPOSES, REASON_MAX
from gateway.runtime.settings import from_env
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc

SEXES = {"female": clerk_pb2.DOCUMENT_SEX_FEMALE, "male": clerk_pb2.DOCUMENT_SEX_MALE}
# --purpose password-reset → SESSION_PURPOSE_PASSWORD_RESET (gateway/domain/purposes.py is the list).
PURPOSE_CHOICES = {p.value.replace("_", "-"): getattr(clerk_pb2, f"SESSION_PURPOSE_{p.name}") for p in PURPOSES}


def add_commands(sub: Any) -> None:
    cs = connect.add_staff_terminal(sub, "clerk", "act as a clerk terminal against a running gateway",
                                    "clerk-H001-T07", "a clerk or hall manager")
    rc = cs.add_parser("request-code", help="send the customer a code for the counter PIN pad")
    rc.add_argument("msisdn")
    rc.set_defaults(run=cmd_request_code)
    op = cs.add_parser("open", help="open a customer session; prints its token")
    op.add_argument("msisdn")
    op.add_argument("--id-number", help="ID card number as printed (proof by ID document)")
    op.add_argument("--name", help="name as printed on the ID card")
    op.add_argument("--birth-date", help='birth date as printed, "YYYY-MM-DD"')
    op.add_argument("--sex", choices=sorted(SEXES), help="sex as printed")
    op.add_argument("--service-password", help="proof by password + code: typed by the customer")
    op.add_argument("--code", help="the code the customer received")
    needing = ", ".join(p.value.replace("_", "-") for p, spec in PURPOSES.items() if spec.needs_reason)
    op.add_argument("--purpose", required=True, choices=list(PURPOSE_CHOICES), metavar="PURPOSE",
                    help=f"why the customer came (R2): one of {', '.join(PURPOSE_CHOICES)}; the session may do "
                         "only what its purpose allows (reset-password: password-reset)")
    op.add_argument("--reason", default="", help=f"a short reason, at most {REASON_MAX} characters and no numbers; "
                                                 f"required for {needing}")
    op.set_defaults(run=cmd_open)
    for name, helptext, run in (("profile", "show the customer's masked profile", cmd_profile),
                                ("close", "close the customer session", cmd_close)):
        p = cs.add_parser(name, help=helptext)
        p.add_argument("--session", required=True, help="customer session token from `open`")
        if name == "profile":
            p.add_argument("--json", action="store_true", help="the profile as one JSON document")
        p.set_defaults(run=run)
    cd = cs.add_parser("code-delivery", help="did the last code SMS to the customer's phone arrive? (no text, no code)")
    cd.add_argument("--session", required=True, help="customer session token from `open`")
    cd.add_argument("--timezone", default=from_env().timezone, help="time zone to show times in [HALLGATE_TIMEZONE]")
    cd.set_defaults(run=cmd_code_delivery)
    rp = cs.add_parser("reset-password", help="reset the service password (ID-document sessions only)")
    rp.add_argument("--session", required=True)
    rp.add_argument("--new-password", help="typed by the customer on the PIN pad (prompted for twice if omitted)")
    rp.set_defaults(run=cmd_reset)


def _clerk(args: argparse.Namespace, call: Callable[[clerk_pb2_grpc.ClerkServiceStub], Any]) -> Any:
    with connect.channel(args) as channel:
        return call(clerk_pb2_grpc.ClerkServiceStub(channel))


def cmd_request_code(args: argparse.Namespace) -> int:
    _clerk(args, lambda s: s.RequestCustomerCode(clerk_pb2.RequestCustomerCodeRequest(msisdn=args.msisdn),
                                                 metadata=connect.staff_metadata(args), timeout=10))
    print("If the number may receive one, a code is on its way; the customer types it on the PIN pad.")
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    req = clerk_pb2.OpenCustomerSessionRequest(msisdn=args.msisdn, purpose=PURPOSE_CHOICES[args.purpose],
                                               reason=args.reason)
    if args.id_number:
        req.id_document.CopyFrom(clerk_pb2.IdDocumentProof(
            document_type=clerk_pb2.ID_DOCUMENT_TYPE_RESIDENT_ID_CARD, document_number=args.id_number,
            name=args.name or "", birth_date=args.birth_date or "",
            sex=SEXES.get(args.sex or "", clerk_pb2.DOCUMENT_SEX_UNSPECIFIED)))
    else:
        req.password_and_code.CopyFrom(clerk_pb2.PasswordAndCodeProof(
            service_password=args.service_password or connect.ask("service password (customer): ",
                                                                  "service password", "--service-password"),
            one_time_code=args.code or connect.ask("code (customer): ", "code", "--code")))
    reply = _clerk(args, lambda s: s.OpenCustomerSession(req, metadata=connect.staff_metadata(args), timeout=15))
    print(reply.customer_session)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    p = _clerk(args, lambda s: s.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(
        customer_session=args.session), metadata=connect.staff_metadata(args), timeout=10))
    if args.json:
        print(json_format.MessageToJson(p, indent=2, preserving_proto_field_name=True))
        return 0
    for field in ("msisdn_masked", "name_masked", "document_number_masked", "address_district", "plan_name",
                  "account_status", "proved_by"):
        print(f"{field:24} {getattr(p, field)}")
    print(f"{'purpose':24} {clerk_pb2.SessionPurpose.Name(p.purpose).removeprefix('SESSION_PURPOSE_').lower()}")
    return 0


def cmd_code_delivery(args: argparse.Namespace) -> int:
    d = _clerk(args, lambda s: s.GetCodeDelivery(clerk_pb2.GetCodeDeliveryRequest(
        customer_session=args.session), metadata=connect.staff_metadata(args), timeout=10))
    state = clerk_pb2.CodeDeliveryState.Name(d.state).removeprefix("CODE_DELIVERY_STATE_").lower()
    print(f"{'state':24} {state}")
    if d.HasField("queued_at"):
        zone = ZoneInfo(args.timezone)
        for field in ("queued_at", "updated_at"):
            print(f"{field:24} {getattr(d, field).ToDatetime(tzinfo=zone):%Y-%m-%d %H:%M:%S %Z}")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    new = args.new_password or connect.ask_new("new service password (customer, 6 digits): ", "new service password",
                                               "--new-password")
    reply = _clerk(args, lambda s: s.ResetServicePassword(clerk_pb2.ResetServicePasswordRequest(
        customer_session=args.session, new_service_password=new), metadata=connect.staff_metadata(args), timeout=15))
    print(reply.next_step)
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    _clerk(args, lambda s: s.CloseCustomerSession(clerk_pb2.CloseCustomerSessionRequest(
        customer_session=args.session), metadata=connect.staff_metadata(args), timeout=10))
    print("customer session closed")
    return 0
