"""gRPC into the call pipeline: one interceptor, hiding the four handler shapes, deciding nothing.

It turns a gRPC call into CallFacts (method, peer, the verified client certificate, headers, the
deadline), gives the servicer's behaviour to the pipeline as a handler, writes a stream's messages
with `context.write` (so a message has left once the write returns, and a client's cancellation
reaches the pipeline wherever it lands), and sends a Refusal's Status as it is. Request bytes are
decoded tolerantly (gateway/pipeline/decoding.py), so an undecodable or oversized request reaches
the pipeline, and the audit trail, as Malformed instead of failing inside gRPC. The peer goes
through `peers` (the edge front's PeerMap, gateway/transport/proxy_front.py): a connection relayed
from an edge proxy is recorded with the terminal's address its PROXY protocol header named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import grpc
from grpc_status import rpc_status

from gateway.pipeline.decoding import tolerant
from gateway.pipeline.facts import CallFacts
from gateway.pipeline.run import AUDITED_PREFIX, Pipeline, Refusal


def grpc_type(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return "bidi_stream" if handler.response_streaming else "client_stream"
    return "server_stream" if handler.response_streaming else "unary"


class PeerResolver(Protocol):
    def resolve(self, peer: str) -> str:
        """The address to record for a peer given in grpc's form (`ipv4:127.0.0.1:54321`)."""


class SamePeer:
    """No edge front: every peer is what gRPC says."""

    def resolve(self, peer: str) -> str:
        return peer


SAME_PEER = SamePeer()


def facts_of(method: str, kind: str, metadata: dict[str, str], context: grpc.aio.ServicerContext,
             peers: PeerResolver = SAME_PEER) -> CallFacts:
    auth = context.auth_context()
    tls = auth.get("transport_security_type") == [b"ssl"]
    uris: Sequence[bytes] = (auth.get("peer_spiffe_id") or auth.get("x509_subject_alternative_name") or ()) if tls \
        else ()
    pem = (auth.get("x509_pem_cert") or [b""])[0] if tls else b""
    return CallFacts(method=method, peer=peers.resolve(context.peer()), tls=tls,
                     peer_uris=tuple(u.decode(errors="replace") for u in uris), peer_cert_pem=pem,
                     metadata=metadata, time_left=context.time_remaining, kind=kind)


class GrpcTransport(grpc.aio.ServerInterceptor):
    """The only interceptor: every call, known or not, goes through the pipeline."""

    def __init__(self, pipeline: Pipeline, max_bytes: int, limits: dict[str, int] | None = None,
                 ceiling: int | None = None, peers: PeerResolver | None = None) -> None:
        self.pipeline = pipeline
        self.peers = peers if peers is not None else SAME_PEER  # the edge front's PeerMap (runtime/edge.py)
        self.max_bytes = max_bytes
        self.limits = limits or {}
        # Largest request decoded to name its large fields: gRPC's receive limit as bootstrap sets it.
        self.ceiling = max(max_bytes, *self.limits.values()) if ceiling is None else ceiling
        # method -> (the servicer's handler, the one wrapped around it): wrapped once, not per call
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method = details.method
        if handler is None:
            if not method.startswith(AUDITED_PREFIX):
                return None
            return grpc.unary_unary_rpc_method_handler(self._unimplemented(method))
        known = self._wrapped.get(method)  # only methods a servicer has: a bounded set
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, self._wrap(method, handler))
        return known[1]

    def _wrap(self, method: str, handler: Any) -> Any:
        kind = grpc_type(handler)
        limit = self.limits.get(method, self.max_bytes)
        changes: dict[str, Any] = {"request_deserializer": tolerant(limit, self.ceiling)(handler.request_deserializer)}
        for name in ("unary_unary", "stream_unary"):
            if getattr(handler, name) is not None:
                changes[name] = self._unary(getattr(handler, name), method, kind)
        for name in ("unary_stream", "stream_stream"):
            if getattr(handler, name) is not None:
                changes[name] = self._stream(getattr(handler, name), method, kind)
        return handler._replace(**changes)

    def _facts(self, method: str, kind: str, context: grpc.aio.ServicerContext) -> CallFacts:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        return facts_of(method, kind, metadata, context, self.peers)

    def _unary(self, behaviour: Any, method: str, kind: str) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await self.pipeline.unary(self._facts(method, kind, context), request,
                                                 lambda r: behaviour(r, context))
            except Refusal as r:
                await context.abort_with_status(rpc_status.to_status(r.status))

        return call

    def _stream(self, behaviour: Any, method: str, kind: str) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> None:
            try:
                await self.pipeline.stream(self._facts(method, kind, context), request,
                                           lambda r: behaviour(r, context), context.write)
            except Refusal as r:
                await context.abort_with_status(rpc_status.to_status(r.status))

        return call

    def _unimplemented(self, method: str) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> None:
            try:
                await self.pipeline.unimplemented(facts_of(method, "unary", {}, context, self.peers))
            except Refusal as r:
                await context.abort_with_status(rpc_status.to_status(r.status))

        return call
