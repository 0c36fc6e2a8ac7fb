"""The gRPC transport decides nothing: every public RPC, called from every channel's terminal with and
without a signed-in staff member, ends with the same status through gRPC as through the call
pipeline directly (same dependencies, same servicer, same request)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from gateway.pipeline.facts import CallFacts
from gateway.pipeline.run import Refusal
from gateway.runtime.bootstrap import call_pipeline
from tests.hostile.fuzz_cases import Rpc, public_rpcs
from tests.support.parity import CERTS, HALLS, through_grpc


def uris(pem: bytes) -> tuple[str, ...]:
    cert = x509.load_pem_x509_certificate(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return tuple(str(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier))


class Context:
    """The little of a ServicerContext the servicers read: the request headers."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata


def behaviour(gw: Any, rpc: Rpc) -> Any:
    """The servicer method the server registered for `rpc` (the very objects create_server got)."""
    service, method = rpc.method.rsplit("/", 2)[1:]
    return getattr(gw.services.by_name()[service], method)


async def through_pipeline(gw: Any, rpc: Rpc, cert: str, md: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    pem = (Path(gw.pki) / f"{cert}.crt").read_bytes()
    facts = CallFacts(method=rpc.method, peer="ipv4:127.0.0.1:1", tls=True, peer_uris=uris(pem), peer_cert_pem=pem,
                      metadata=dict(md), kind="server_stream" if rpc.streaming else "unary")
    pipeline = call_pipeline(gw.settings, gw.deps)
    method = behaviour(gw, rpc)
    context = Context(md)
    request = rpc.request()
    try:
        if rpc.streaming:
            async def send(message: Any) -> None:
                return None

            await pipeline.stream(facts, request, lambda r: method(r, context), send)
        else:
            await pipeline.unary(facts, request, lambda r: method(r, context))
    except Refusal as r:
        return next(c for c in grpc.StatusCode if c.value[0] == r.status.code)
    return grpc.StatusCode.OK


@pytest.mark.parametrize("signed_in", [False, True])
async def test_every_rpc_ends_the_same_through_grpc_and_through_the_pipeline(gw, signed_in):
    mismatches = []
    seen = set()
    serial = 0
    for rpc in public_rpcs():
        for cert, role in CERTS.items():
            sessions: list[tuple[tuple[str, str], ...]] = [(), ()]
            if signed_in and role:  # a session each: a direct SignOut must not end the other's
                for k in range(2):
                    serial += 1
                    secret = await gw.add_staff(f"P{serial:04d}", role, hall=HALLS[role])
                    sessions[k] = await gw.staff_sign_in(cert, f"P{serial:04d}", secret)
            direct = await through_pipeline(gw, rpc, cert, sessions[0])
            over_grpc = await through_grpc(gw, rpc, cert, sessions[1])
            seen.add(over_grpc)
            if direct != over_grpc:
                mismatches.append((rpc.method, cert, direct.name, over_grpc.name))
    assert mismatches == []
    assert len(seen) >= 3, seen  # the matrix reaches several outcomes, not one refusal for all
