"""How the CLI reaches a gateway: mutual TLS with a terminal certificate, and readable errors."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.interceptors.authorization import DEV_IDENTITY_HEADER
from gateway.settings import from_env


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
