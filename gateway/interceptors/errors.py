"""Translate domain errors (and anything unexpected) into gRPC statuses, at the edge only.

Outermost interceptor: whatever an inner layer raises (the audit trail included) leaves as a
clean status with google.rpc details, never as a traceback.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import grpc
import structlog

from gateway import status
from gateway.errors import DomainError
from gateway.interceptors.wrapping import Streaming, Unary, messages, wrap

log = structlog.get_logger("hallgate.errors")


async def _abort_for(err: Exception, context: grpc.aio.ServicerContext) -> None:
    if isinstance(err, DomainError):
        await context.abort_with_status(status.to_status(err))
    log.error("unhandled_error", error_type=type(err).__name__, exc_info=err)
    await context.abort_with_status(status.internal_status())


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Servicers raise plain domain errors and never build statuses themselves."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        return wrap(handler, self._unary, self._streaming)

    @staticmethod
    def _unary(behaviour: Unary) -> Unary:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behaviour(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as err:  # every failure becomes a clean status
                await _abort_for(err, context)

        return call

    @staticmethod
    def _streaming(behaviour: Streaming) -> Streaming:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncGenerator[Any, None]:
            try:
                async with messages(behaviour, request, context) as inner:
                    async for message in inner:
                        yield message
            except grpc.aio.AbortError:
                raise
            except Exception as err:  # every failure becomes a clean status
                await _abort_for(err, context)

        return call
