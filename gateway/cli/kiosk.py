"""`hallgate kiosk …`: act as a self-service kiosk against a running gateway."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf import json_format

from gateway.cli import connect
from gateway.runtime.settings import from_env
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc


def add_commands(sub: Any) -> None:
    kiosk = sub.add_parser("kiosk", help="act as a self-service kiosk against a running gateway")
    connect.add_target_arguments(kiosk, "kiosk-H001-K01")
    ks = kiosk.add_subparsers(title="kiosk commands")
    rc = ks.add_parser("request-code", help="have a one-time code sent by SMS to a number")
    rc.add_argument("msisdn")
    rc.set_defaults(run=cmd_request_code)
    au = ks.add_parser("authenticate", help="sign in with service password + code; prints the access token")
    au.add_argument("msisdn")
    au.add_argument("--password", help="service password (prompted for if omitted)")
    au.add_argument("--code", help="one-time code from the SMS (prompted for if omitted)")
    au.set_defaults(run=cmd_authenticate)
    ca = ks.add_parser("calls", help="list a month's call details")
    ca.add_argument("--token", required=True, help="access token from `authenticate`")
    ca.add_argument("--month", required=True, help='calendar month "YYYY-MM"')
    ca.add_argument("--json", action="store_true", help="one JSON object per record")
    ca.add_argument("--timezone", default=from_env().timezone, help="time zone to show times in [HALLGATE_TIMEZONE]")
    ca.set_defaults(run=cmd_calls)
    hi = ks.add_parser("history", help="who accessed this subscriber's data, when, where and why "
                                       "(ListAccessHistory), newest first")
    hi.add_argument("--token", required=True, help="access token from `authenticate`")
    hi.add_argument("--json", action="store_true", help="one JSON object per access")
    hi.add_argument("--timezone", default=from_env().timezone, help="time zone to show times in [HALLGATE_TIMEZONE]")
    hi.set_defaults(run=cmd_history)
    en = ks.add_parser("end", help="end the session: the token dies")
    en.add_argument("--token", required=True)
    en.set_defaults(run=cmd_end)


def _kiosk(args: argparse.Namespace, call: Callable[[kiosk_pb2_grpc.KioskServiceStub], Any]) -> Any:
    with connect.channel(args) as channel:
        return call(kiosk_pb2_grpc.KioskServiceStub(channel))


def cmd_request_code(args: argparse.Namespace) -> int:
    r = _kiosk(args, lambda s: s.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=args.msisdn),
                                                    timeout=10))
    print(f"If {args.msisdn} may receive one, a code is on its way by SMS; it is valid for "
          f"{r.code_valid_for.seconds // 60} minutes.")
    return 0


def cmd_authenticate(args: argparse.Namespace) -> int:
    password = args.password or connect.ask("service password: ", "service password", "--password")
    code = args.code or connect.ask("one-time code: ", "one-time code", "--code")
    req = kiosk_pb2.AuthenticateRequest(msisdn=args.msisdn, service_password=password, one_time_code=code)
    r = _kiosk(args, lambda s: s.Authenticate(req, timeout=15))
    print(r.access_token)
    print(f"(valid {r.idle_timeout.seconds // 60} minutes idle, until {r.expires_at.ToDatetime():%H:%M:%S} UTC)",
          file=sys.stderr)
    return 0


def cmd_calls(args: argparse.Namespace) -> int:
    req = kiosk_pb2.ListCallDetailsRequest(access_token=args.token, month=args.month)
    zone = ZoneInfo(args.timezone)

    def run(stub: kiosk_pb2_grpc.KioskServiceStub) -> int:
        count = 0
        for chunk in stub.ListCallDetails(req, timeout=120):
            for rec in chunk.records:
                count += 1
                print(json_format.MessageToJson(rec, indent=None) if args.json else format_record(rec, zone))
        print(f"{count} records", file=sys.stderr)
        return 0

    return int(_kiosk(args, run))


def format_record(rec: kiosk_pb2.CallDetail, zone: ZoneInfo) -> str:
    kind = kiosk_pb2.CallKind.Name(rec.kind).removeprefix("CALL_KIND_").lower()
    direction = kiosk_pb2.CallDirection.Name(rec.direction).removeprefix("CALL_DIRECTION_").lower()
    amount = f"{rec.volume_bytes / 1e6:.1f} MB" if rec.kind == kiosk_pb2.CALL_KIND_DATA else f"{rec.duration_seconds}s"
    return (f"{rec.start_time.ToDatetime(tzinfo=zone):%Y-%m-%d %H:%M:%S}  {kind:5} {direction:8} "
            f"{rec.other_party or '-':11}  {amount:>10}  {rec.charge_fen / 100:8.2f} CNY")


def cmd_history(args: argparse.Namespace) -> int:
    req = kiosk_pb2.ListAccessHistoryRequest(access_token=args.token)
    zone = ZoneInfo(args.timezone)

    def run(stub: kiosk_pb2_grpc.KioskServiceStub) -> int:
        count = 0
        for reply in stub.ListAccessHistory(req, timeout=60):
            count += 1
            rec = reply.record
            if args.json:
                print(json_format.MessageToJson(rec, indent=None, preserving_proto_field_name=True))
            else:
                purpose = f"  ({rec.purpose})" if rec.purpose else ""
                print(f"{rec.time.ToDatetime(tzinfo=zone):%Y-%m-%d %H:%M:%S}  {rec.hall or '-':6} {rec.channel:6} "
                      f"{rec.outcome:8} {rec.what}{purpose}")
        print(f"{count} accesses", file=sys.stderr)
        return 0

    return int(_kiosk(args, run))


def cmd_end(args: argparse.Namespace) -> int:
    _kiosk(args, lambda s: s.EndSession(kiosk_pb2.EndSessionRequest(access_token=args.token), timeout=10))
    print("session ended")
    return 0
