"""Undecodable or oversized request bytes become INVALID_ARGUMENT inside the call, where the audit
trail sees them, instead of failing inside gRPC's deserializer where no interceptor would.

gRPC's own receive limit is server-wide and must admit the one large message (a scanned agency
letter); the per-method limits here keep every other request small."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from gateway.errors import InvalidArgument
from gateway.interceptors.wrapping import Streaming, Unary, wrap


class Malformed:
    """Stands for a request whose bytes did not decode, or were too many."""

    def __init__(self, why: str) -> None:
        self.violations = [("", why)]


MALFORMED = Malformed("the request is not a valid protobuf message of this method's type")
MALFORMED_ERROR = MALFORMED.violations


def tolerant(limit: int) -> Callable[[Callable[[bytes], Any] | None], Callable[[bytes], Any] | None]:
    too_large = Malformed(f"the request is larger than {limit} bytes")

    def make(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        if deserializer is None:
            return None

        def decode(data: bytes) -> Any:
            if len(data) > limit:
                return too_large
            try:
                return deserializer(data)
            except DecodeError:
                return MALFORMED

        return decode

    return make


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):
    """Innermost interceptor: the servicer only ever sees a well-formed message of a sane size."""

    def __init__(self, max_bytes: int, limits: dict[str, int] | None = None) -> None:
        self.max_bytes = max_bytes
        self.limits = limits or {}

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        limit = self.limits.get(details.method, self.max_bytes)
        return wrap(handler, self._unary, self._streaming, tolerant(limit))

    @staticmethod
    def _unary(behaviour: Unary) -> Unary:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Malformed):
                raise InvalidArgument(request.violations)
            return await behaviour(request, context)

        return call

    @staticmethod
    def _streaming(behaviour: Streaming) -> Streaming:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if isinstance(request, Malformed):
                raise InvalidArgument(request.violations)
            async for message in behaviour(request, context):
                yield message

        return call
