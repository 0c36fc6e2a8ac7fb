"""How the CLI reaches a gateway: mutual TLS with a terminal certificate, and readable errors."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

import grpc
import pyotp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.domain.errors import DependencyUnavailable
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
    si.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add_totp_arguments(si)
    si.set_defaults(run=cmd_sign_in)
    cp = commands.add_parser("change-password", help="change your staff password (also when it has expired); "
                                                     "asks for the new one twice")
    cp.add_argument("staff_id")
    cp.add_argument("--password-stdin", action="store_true",
                    help="read the current and the new password from standard input, one a line")
    add_totp_arguments(cp)
    cp.set_defaults(run=cmd_change_password)
    so = commands.add_parser("sign-out", help="end the staff session of --staff-token")
    so.set_defaults(run=cmd_sign_out)
    return commands


def add_totp_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--totp", help="code from the authenticator app (prompted for if omitted)")
    p.add_argument("--totp-secret", help="development: compute the code from this secret, as the app would")


def staff_metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {args.staff_token}"),) if args.staff_token else ()


# --- prompts -----------------------------------------------------------------------------------------


class NoTerminal(RuntimeError):
    """A prompt without a terminal to ask on: `main` prints it as one line."""


def ask(prompt: str, what: str, option: str, secret: bool = True) -> str:
    """What a person types at a prompt (hidden when `secret`). Without a terminal on standard input
    nobody can answer: NoTerminal naming the option to give instead."""
    if not sys.stdin.isatty():
        raise NoTerminal(f"no terminal to ask for the {what}: give {option}")
    return getpass.getpass(prompt) if secret else input(prompt)


def ask_new(prompt: str, what: str, option: str) -> str:
    """A new password or PIN, typed twice; RuntimeError when the two differ (nothing is changed)."""
    first = ask(prompt, what, option)
    if ask("the same again, to confirm: ", what, option) != first:
        raise RuntimeError(f"the two entries of the {what} differ; nothing was changed")
    return first


def stdin_lines(count: int, what: str) -> list[str]:
    """`count` lines of standard input (a --*-stdin option)."""
    lines = [sys.stdin.readline() for _ in range(count)]
    if any(not line for line in lines):  # "" only at the end of the input
        raise RuntimeError(f"standard input ended before the {what}")
    return [line.rstrip("\r\n") for line in lines]


def totp_code(args: argparse.Namespace) -> str:
    if args.totp_secret:
        return pyotp.TOTP(args.totp_secret).now()
    return str(args.totp or ask("TOTP code: ", "TOTP code", "--totp", secret=False))


def cmd_sign_in(args: argparse.Namespace) -> int:
    if args.password_stdin:
        [password] = stdin_lines(1, "password")
    else:
        password = args.password or ask("staff password: ", "staff password", "--password or --password-stdin")
    req = staff_pb2.SignInRequest(staff_id=args.staff_id, password=password, totp_code=totp_code(args))
    with channel(args) as ch:
        reply = staff_pb2_grpc.StaffServiceStub(ch).SignIn(req, timeout=15)
    print(reply.staff_token)
    return 0


def cmd_change_password(args: argparse.Namespace) -> int:
    if args.password_stdin:
        current, new = stdin_lines(2, "current and new password")
    else:
        current = ask("current staff password: ", "current staff password", "--password-stdin")
        new = ask_new("new staff password (letters and digits, at least 8): ", "new staff password",
                      "--password-stdin")
    req = staff_pb2.ChangePasswordRequest(staff_id=args.staff_id, current_password=current, new_password=new,
                                          totp_code=totp_code(args))
    with channel(args) as ch:
        staff_pb2_grpc.StaffServiceStub(ch).ChangePassword(req, timeout=15)
    print("password changed; sign in again with the new one (and the next TOTP code)", file=sys.stderr)
    return 0


def cmd_sign_out(args: argparse.Namespace) -> int:
    with channel(args) as ch:
        staff_pb2_grpc.StaffServiceStub(ch).SignOut(staff_pb2.SignOutRequest(), metadata=staff_metadata(args),
                                                    timeout=10)
    print("signed out", file=sys.stderr)
    return 0


def channel(args: argparse.Namespace) -> grpc.Channel:
    if args.insecure_dev_identity:
        return grpc.intercept_channel(grpc.insecure_channel(args.target), _DevIdentity(args.insecure_dev_identity))
    pki = Path(args.data_dir) / "pki"
    cert = Path(args.cert) if args.cert.endswith(".crt") else pki / f"{args.cert}.crt"
    ca = Path(args.ca) if args.ca else pki / "ca.crt"
    try:
        creds = grpc.ssl_channel_credentials(ca.read_bytes(), cert.with_suffix(".key").read_bytes(),
                                             cert.read_bytes())
    except OSError as e:
        raise RuntimeError(f"cannot read the terminal's TLS material ({e.filename}: {e.strerror}); give --cert "
                           "NAME (in <data-dir>/pki) or a path to NAME.crt with NAME.key beside it, and --ca, or "
                           "--data-dir where `make run` put them") from None
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


# What the CLI adds to a refusal, by its ErrorInfo reason (gateway/pipeline/outcome.py).
HINTS = {
    # The gateway answers a reused TOTP code exactly as a wrong one (no oracle: the answer never says
    # which credential failed), so the CLI cannot tell; it says what to do in both cases.
    "BAD_STAFF_CREDENTIALS": ("the staff id, password or TOTP code was not accepted (the gateway does not say "
                              "which). A TOTP code works only once: if you just used this code, wait for the next "
                              "one (a new code every 30 s) and try again with it"),
    "PASSWORD_EXPIRED": "change it with `hallgate <clerk|legal|lending|audit|incident> change-password STAFF_ID`",
    "STAFF_SIGN_IN_REQUIRED": "give --staff-token (from `sign-in`) or set HALLGATE_STAFF_TOKEN; a token dies after "
                              "15 minutes idle",
}


def describe_unreachable(err: BaseException, args: argparse.Namespace) -> str:
    """One line for a dependency the CLI itself could not reach (Redis for the host commands)."""
    if isinstance(err, DependencyUnavailable):
        cause = f": {err.__cause__}" if err.__cause__ else ""
        return f"{err.dependency} unavailable{cause}"
    url = getattr(args, "redis_url", "") or "the embedded Redis under --data-dir (is `hallgate serve` running?)"
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"Redis unavailable at {url}: {first}"


def _unreachable(err: grpc.RpcError, status: Any) -> bool:
    """UNAVAILABLE from the client's own channel (no answer from a gateway), not the gateway's answer."""
    if err.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
        return False
    return not any(d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) for d in (status.details if status else []))


def describe_error(err: grpc.RpcError, target: str = "") -> str:
    """The status, its message and any field violations, retry delay or hint, for a person to read."""
    try:
        status = rpc_status.from_call(err)  # type: ignore[arg-type]
    except ValueError:
        status = None
    if _unreachable(err, status):
        first = next(iter((err.details() or "").splitlines()), "")  # type: ignore[attr-defined]
        where = f" at {target}" if target else ""
        return (f"error: UNAVAILABLE: no answer from a gateway{where} (is it running? --target, HALLGATE_TARGET; "
                f"does it trust this terminal's certificate?): {first}")
    lines = [f"error: {err.code().name}: {err.details()}"]  # type: ignore[attr-defined]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            why = error_details_pb2.ErrorInfo()
            detail.Unpack(why)
            if why.reason in HINTS:
                lines.append(f"  {HINTS[why.reason]}")
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            lines += [f"  {v.field or 'request'}: {v.description}" for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            lines.append(f"  retry after {info.retry_delay.seconds} s")
    return "\n".join(lines)
