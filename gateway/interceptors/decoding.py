"""Undecodable request bytes become INVALID_ARGUMENT inside the call, where the audit trail sees
them, instead of failing inside gRPC's deserializer where no interceptor would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from gateway.errors import InvalidArgument
from gateway.interceptors.wrapping import Streaming, Unary, wrap


class Malformed:
    """Stands for a request whose bytes did not decode."""


MALFORMED = Malformed()
MALFORMED_ERROR = [("", "the request is not a valid protobuf message of this method's type")]


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return MALFORMED

    return decode


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):
    """Innermost interceptor: the servicer only ever sees a well-formed message."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        return wrap(handler, self._unary, self._streaming, tolerant)

    @staticmethod
    def _unary(behaviour: Unary) -> Unary:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request is MALFORMED:
                raise InvalidArgument(MALFORMED_ERROR)
            return await behaviour(request, context)

        return call

    @staticmethod
    def _streaming(behaviour: Streaming) -> Streaming:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if request is MALFORMED:
                raise InvalidArgument(MALFORMED_ERROR)
            async for message in behaviour(request, context):
                yield message

        return call
