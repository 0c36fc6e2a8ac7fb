"""The `hallgate` command: serve, run the billing simulator, act as a kiosk, read the SMS outbox."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway import logs
from gateway.settings import Settings, add_arguments, from_args, from_env
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc

SIM_SETTINGS = ["sim_seed", "sim_subscribers", "sim_hash_n", "timezone", "log_format", "log_level"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except grpc.RpcError as err:
        print(describe_error(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `hallgate kiosk calls … | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hallgate", description=__doc__)
    sub = p.add_subparsers(title="commands")

    serve = sub.add_parser("serve", help="run the gateway", description=(
        "Run the gateway. With no HALLGATE_REDIS_URL it starts its own redis-server under the data "
        "directory; with no HALLGATE_BILLING_TARGET it runs the embedded billing simulator. Every "
        "flag can also be set by the environment variable shown."))
    add_arguments(serve)
    serve.set_defaults(run=cmd_serve)

    sim = sub.add_parser("billing-sim", help="run the billing simulator as its own process")
    sim.add_argument("--listen", default="127.0.0.1:50061", help="address to serve on [default 127.0.0.1:50061]")
    add_arguments(sim, SIM_SETTINGS)
    sim.set_defaults(run=cmd_billing_sim)

    kiosk = sub.add_parser("kiosk", help="act as a self-service kiosk against a running gateway")
    kiosk.add_argument("--target", default=os.environ.get("HALLGATE_TARGET", "127.0.0.1:50051"),
                       help="gateway address [HALLGATE_TARGET, default 127.0.0.1:50051]")
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
    en = ks.add_parser("end", help="end the session: the token dies")
    en.add_argument("--token", required=True)
    en.set_defaults(run=cmd_end)

    sms = sub.add_parser("sms", help="the development SMS outbox")
    ss = sms.add_subparsers(title="sms commands")
    ob = ss.add_parser("outbox", help="show the messages sent to a number, newest last")
    ob.add_argument("msisdn")
    ob.add_argument("--data-dir", default=None, help="gateway data directory [HALLGATE_DATA_DIR, default .hallgate]")
    ob.add_argument("--last", type=int, default=5, help="how many messages to show [5]")
    ob.set_defaults(run=cmd_outbox)
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.bootstrap import serve

    settings = from_args(args)
    logs.configure(settings.log_format, settings.log_level)
    asyncio.run(serve(settings))
    return 0


def cmd_billing_sim(args: argparse.Namespace) -> int:
    from adapters.billing_sim.data import SeededBilling
    from adapters.billing_sim.server import serve_billing_sim

    s = from_args(args)
    logs.configure(s.log_format, s.log_level)
    data = SeededBilling(seed=s.sim_seed, subscribers=s.sim_subscribers, hash_n=s.sim_hash_n, tz=s.timezone)
    print(f"billing simulator serving on {args.listen}", flush=True)
    asyncio.run(serve_billing_sim(args.listen, data))
    return 0


def _kiosk(args: argparse.Namespace, call: Callable[[kiosk_pb2_grpc.KioskServiceStub], Any]) -> Any:
    with grpc.insecure_channel(args.target) as channel:
        return call(kiosk_pb2_grpc.KioskServiceStub(channel))


def cmd_request_code(args: argparse.Namespace) -> int:
    r = _kiosk(args, lambda s: s.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=args.msisdn),
                                                    timeout=10))
    print(f"If {args.msisdn} may receive one, a code is on its way by SMS; it is valid for "
          f"{r.code_valid_for.seconds // 60} minutes.")
    return 0


def cmd_authenticate(args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass("service password: ")
    code = args.code or getpass.getpass("one-time code: ")
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
                if args.json:
                    print(json_format.MessageToJson(rec, indent=None))
                else:
                    print(format_record(rec, zone))
        print(f"{count} records", file=sys.stderr)
        return 0

    return int(_kiosk(args, run))


def format_record(rec: kiosk_pb2.CallDetail, zone: ZoneInfo) -> str:
    kind = kiosk_pb2.CallKind.Name(rec.kind).removeprefix("CALL_KIND_").lower()
    direction = kiosk_pb2.CallDirection.Name(rec.direction).removeprefix("CALL_DIRECTION_").lower()
    amount = f"{rec.volume_bytes / 1e6:.1f} MB" if rec.kind == kiosk_pb2.CALL_KIND_DATA else f"{rec.duration_seconds}s"
    return (f"{rec.start_time.ToDatetime(tzinfo=zone):%Y-%m-%d %H:%M:%S}  {kind:5} {direction:8} "
            f"{rec.other_party or '-':11}  {amount:>10}  {rec.charge_fen / 100:8.2f} CNY")


def cmd_end(args: argparse.Namespace) -> int:
    _kiosk(args, lambda s: s.EndSession(kiosk_pb2.EndSessionRequest(access_token=args.token), timeout=10))
    print("session ended")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from adapters.sms_outbox import OUTBOX_NAME, read_outbox

    data_dir = args.data_dir or from_env().data_dir or Settings().data_dir
    messages = read_outbox(Path(data_dir) / OUTBOX_NAME, args.msisdn)[-args.last:]
    if not messages:
        print(f"no messages to {args.msisdn} in {Path(data_dir) / OUTBOX_NAME}")
    for m in messages:
        print(f"{m['at']}  to {m['to']}: {m['text']}")
    return 0


def describe_error(err: grpc.RpcError) -> str:
    """The status, its message and any field violations or retry delay, for a person to read."""
    lines = [f"error: {err.code().name}: {err.details()}"]  # type: ignore[attr-defined]
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            lines += [f"  {v.field or 'request'}: {v.description}" for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            lines.append(f"  retry after {info.retry_delay.seconds} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
