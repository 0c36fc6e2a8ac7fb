"""`hallgate clerk …`: act as a clerk terminal at a hall counter (staff sign-in, customer sessions)."""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable
from typing import Any

import pyotp

from gateway.cli import connect
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc, staff_pb2, staff_pb2_grpc

SEXES = {"female": clerk_pb2.DOCUMENT_SEX_FEMALE, "male": clerk_pb2.DOCUMENT_SEX_MALE}


def add_commands(sub: Any) -> None:
    clerk = sub.add_parser("clerk", help="act as a clerk terminal against a running gateway")
    connect.add_target_arguments(clerk, "clerk-H001-T07")
    clerk.add_argument("--staff-token", default=os.environ.get("HALLGATE_STAFF_TOKEN", ""),
                       help="staff token from `sign-in` [HALLGATE_STAFF_TOKEN]")
    cs = clerk.add_subparsers(title="clerk commands")
    si = cs.add_parser("sign-in", help="sign a staff member in on this terminal; prints the staff token")
    si.add_argument("staff_id")
    si.add_argument("--password", help="staff password (prompted for if omitted)")
    si.add_argument("--totp", help="code from the authenticator app (prompted for if omitted)")
    si.add_argument("--totp-secret", help="development: compute the code from this secret, as the app would")
    si.set_defaults(run=cmd_sign_in)
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
    op.set_defaults(run=cmd_open)
    for name, helptext, run in (("profile", "show the customer's masked profile", cmd_profile),
                                ("close", "close the customer session", cmd_close)):
        p = cs.add_parser(name, help=helptext)
        p.add_argument("--session", required=True, help="customer session token from `open`")
        p.set_defaults(run=run)
    rp = cs.add_parser("reset-password", help="reset the service password (ID-document sessions only)")
    rp.add_argument("--session", required=True)
    rp.add_argument("--new-password", help="typed by the customer on the PIN pad (prompted for if omitted)")
    rp.set_defaults(run=cmd_reset)


def _metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {args.staff_token}"),) if args.staff_token else ()


def _clerk(args: argparse.Namespace, call: Callable[[clerk_pb2_grpc.ClerkServiceStub], Any]) -> Any:
    with connect.channel(args) as channel:
        return call(clerk_pb2_grpc.ClerkServiceStub(channel))


def cmd_sign_in(args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass("staff password: ")
    code = pyotp.TOTP(args.totp_secret).now() if args.totp_secret else (args.totp or input("TOTP code: "))
    req = staff_pb2.SignInRequest(staff_id=args.staff_id, password=password, totp_code=code)
    with connect.channel(args) as channel:
        reply = staff_pb2_grpc.StaffServiceStub(channel).SignIn(req, timeout=15)
    print(reply.staff_token)
    return 0


def cmd_request_code(args: argparse.Namespace) -> int:
    _clerk(args, lambda s: s.RequestCustomerCode(clerk_pb2.RequestCustomerCodeRequest(msisdn=args.msisdn),
                                                 metadata=_metadata(args), timeout=10))
    print("If the number may receive one, a code is on its way; the customer types it on the PIN pad.")
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    req = clerk_pb2.OpenCustomerSessionRequest(msisdn=args.msisdn)
    if args.id_number:
        req.id_document.CopyFrom(clerk_pb2.IdDocumentProof(
            document_type=clerk_pb2.ID_DOCUMENT_TYPE_RESIDENT_ID_CARD, document_number=args.id_number,
            name=args.name or "", birth_date=args.birth_date or "",
            sex=SEXES.get(args.sex or "", clerk_pb2.DOCUMENT_SEX_UNSPECIFIED)))
    else:
        req.password_and_code.CopyFrom(clerk_pb2.PasswordAndCodeProof(
            service_password=args.service_password or getpass.getpass("service password (customer): "),
            one_time_code=args.code or getpass.getpass("code (customer): ")))
    reply = _clerk(args, lambda s: s.OpenCustomerSession(req, metadata=_metadata(args), timeout=15))
    print(reply.customer_session)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    p = _clerk(args, lambda s: s.GetCustomerProfile(
        clerk_pb2.GetCustomerProfileRequest(customer_session=args.session), metadata=_metadata(args), timeout=10))
    for field in ("msisdn_masked", "name_masked", "document_number_masked", "address_district", "plan_name",
                  "account_status", "proved_by"):
        print(f"{field:24} {getattr(p, field)}")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    new = args.new_password or getpass.getpass("new service password (customer, 6 digits): ")
    reply = _clerk(args, lambda s: s.ResetServicePassword(clerk_pb2.ResetServicePasswordRequest(
        customer_session=args.session, new_service_password=new), metadata=_metadata(args), timeout=15))
    print(reply.next_step)
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    _clerk(args, lambda s: s.CloseCustomerSession(clerk_pb2.CloseCustomerSessionRequest(
        customer_session=args.session), metadata=_metadata(args), timeout=10))
    print("customer session closed")
    return 0
