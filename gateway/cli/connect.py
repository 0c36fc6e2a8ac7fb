"""How the CLI reaches a gateway: mutual TLS with a terminal certificate, and readable errors."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path
from typing import Any

import grpc
import pyotp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.pipeline.authorize import DEV_IDENTITY_HEADER
from gateway.runtime.settings import from_env
from hallgate_pb.v1 import staff_pb2, staff_pb2_grpc


def add_target_arguments(parser: argparse.ArgumentParser, default_cert: str) -> None:
    env = from_env()
    parser.add_argument("--target", default=os.environ.get("HALLGATE_TARGET", "127.0.0.1:50051"),
                        help="gateway address [HALLGATE_TARGET, default 127.0.0.1:50051]")
    parser.add_argument("--data-dir", default=env.data_dir,
                        help="where `make run` put the development PKI [HALLGATE_DATA_DIR, default .hallgate]")
    parser.add_argument("--cert", default=os.environ.get("HALLGATE_CLIENT_CERT", default_cert),
                        help=f"terminal certificate: a name in <data-dir>/pki or a path to NAME.crt with NAME.key "
                             f"beside it [HALLGATE_CLIENT_CERT, default {default_cert}]")
    parser.add_argument("--ca", default=os.environ.get("HALLGATE_CLIENT_CA", ""),
                        help="CA bundle the gateway's certificate chains to [default <data-dir>/pki/ca.crt]")
    parser.add_argument("--insecure-dev-identity", default="",
                        help="development only: plaintext, presenting this SPIFFE ID in a header")


def add_staff_terminal(sub: Any, name: str, helptext: str, default_cert: str, who: str) -> Any:
    """A `hallgate <name>` command group for a staff terminal: the connection flags, the staff
    token, and `sign-in`. Returns the group's subparsers for its own commands."""
    group = sub.add_parser(name, help=helptext)
    add_target_arguments(group, default_cert)
    group.add_argument("--staff-token", default=os.environ.get("HALLGATE_STAFF_TOKEN", ""),
                       help=f"staff token from `hallgate {name} sign-in` [HALLGATE_STAFF_TOKEN]")
    commands = group.add_subparsers(title=f"{name} commands")
    si = commands.add_parser("sign-in", help=f"sign {who} in on this terminal; prints the staff token")
    si.add_argument("staff_id")
    si.add_argument("--password", help="staff password (prompted for if omitted)")
    si.add_argument("--totp", help="code from the authenticator app (prompted for if omitted)")
    si.add_argument("--totp-secret", help="development: compute the code from this secret, as the app would")
    si.set_defaults(run=cmd_sign_in)
    return commands


def staff_metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {args.staff_token}"),) if args.staff_token else ()


def cmd_sign_in(args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass("staff password: ")
    code = pyotp.TOTP(args.totp_secret).now() if args.totp_secret else (args.totp or input("TOTP code: "))
    req = staff_pb2.SignInRequest(staff_id=args.staff_id, password=password, totp_code=code)
    with channel(args) as ch:
        reply = staff_pb2_grpc.StaffServiceStub(ch).SignIn(req, timeout=15)
    print(reply.staff_token)
    return 0


def channel(args: argparse.Namespace) -> grpc.Channel:
    if args.insecure_dev_identity:
        return grpc.intercept_channel(grpc.insecure_channel(args.target), _DevIdentity(args.insecure_dev_identity))
    pki = Path(args.data_dir) / "pki"
    cert = Path(args.cert) if args.cert.endswith(".crt") else pki / f"{args.cert}.crt"
    ca = Path(args.ca) if args.ca else pki / "ca.crt"
    creds = grpc.ssl_channel_credentials(ca.read_bytes(), cert.with_suffix(".key").read_bytes(), cert.read_bytes())
    return grpc.secure_channel(args.target, creds)


class _DevIdentity(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, identity: str) -> None:
        self.identity = identity

    def _add(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), (DEV_IDENTITY_HEADER, self.identity)]
        return details._replace(metadata=metadata)  # type: ignore[attr-defined, no-any-return]

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._add(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._add(details), request)


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
