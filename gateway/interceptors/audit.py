"""Every call to a hallgate service leaves exactly one audit event, allowed, denied or failed.

The event is stored before anything is released: a unary response is held until the sink has
acknowledged its event, and a stream's event is stored just before its first message leaves.
If the sink cannot store it, the call fails with UNAVAILABLE (DependencyUnavailable, mapped by
the error interceptor outside this one) and releases nothing. The same facts also go to the
operational log as one structured line per call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import structlog

from gateway import request_context, rules, status
from gateway.errors import DomainError, Unimplemented
from gateway.interceptors.wrapping import Streaming, Unary, wrap
from gateway.ports import AuditSink
from gateway.request_context import CallContext

log = structlog.get_logger("hallgate.access")

AUDITED_PREFIX = "/hallgate."
DECISIONS = {
    grpc.StatusCode.OK: "allowed",
    grpc.StatusCode.INVALID_ARGUMENT: "invalid",
    grpc.StatusCode.UNIMPLEMENTED: "invalid",
    grpc.StatusCode.UNAUTHENTICATED: "denied",
    grpc.StatusCode.PERMISSION_DENIED: "denied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "denied",
    grpc.StatusCode.FAILED_PRECONDITION: "denied",
    grpc.StatusCode.NOT_FOUND: "denied",
}


class AuditInterceptor(grpc.aio.ServerInterceptor):
    """Sits just inside the error interceptor, so it sees every outcome as an exception or a
    result, and its own failure still becomes a clean UNAVAILABLE."""

    def __init__(self, sink: AuditSink, key: bytes) -> None:
        self.sink = sink
        self.key = key

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method
        if not method.startswith(AUDITED_PREFIX):
            return await continuation(details)
        handler = await continuation(details)
        if handler is None:
            return grpc.unary_unary_rpc_method_handler(self._unary(self._unimplemented, method))
        return wrap(handler, lambda b: self._unary(b, method), lambda b: self._streaming(b, method))

    @staticmethod
    async def _unimplemented(request: Any, context: grpc.aio.ServicerContext) -> Any:
        # Raised, not aborted here: an abort sends the status at once, and the event must be
        # stored first (the error interceptor outside turns this into UNIMPLEMENTED).
        raise Unimplemented()

    @staticmethod
    def _begin(method: str, context: grpc.aio.ServicerContext) -> CallContext:
        call = request_context.begin(method, context.peer())
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(method=method)
        return call

    async def _record(self, call: CallContext, code: grpc.StatusCode) -> None:
        """Store the event; DependencyUnavailable if the sink cannot."""
        event = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "channel": call.channel or "unidentified",
            "hall": call.hall,
            "terminal": call.terminal,
            "staff_id": call.staff_id,
            "role": call.role,
            "proof": call.proof,
            "peer": call.peer,
            "method": call.method,
            "subscriber": call.subscriber or (rules.mask_msisdn(call.msisdn) if call.msisdn else ""),
            "subscriber_ref": ",".join(rules.subscriber_ref(self.key, m)
                                       for m in (call.msisdns or ((call.msisdn,) if call.msisdn else ()))),
            "decision": DECISIONS.get(code, "failed"),
            "reason": call.reason or ("ok" if code == grpc.StatusCode.OK else code.name.lower()),
            "detail": call.detail,
            "code": code.name,
            "records": call.records,
            "duration_ms": round((time.perf_counter() - call.started) * 1000, 3),
        }
        try:
            await self.sink.append(event)
        except DomainError:
            log.error("audit_unavailable", **event)
            raise
        log.info("call", **event)

    async def _record_error(self, call: CallContext, err: BaseException, context: grpc.aio.ServicerContext) -> None:
        if isinstance(err, DomainError):
            call.reason = err.reason
        elif not isinstance(err, grpc.aio.AbortError):
            call.reason = call.reason or "internal_error"
        await self._record(call, status.code_of(err, context))

    def _unary(self, behaviour: Unary, method: str) -> Unary:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            ctx = self._begin(method, context)
            try:
                response = await behaviour(request, context)
            except Exception as err:
                await self._record_error(ctx, err, context)
                raise
            await self._record(ctx, grpc.StatusCode.OK)
            return response

        return call

    def _streaming(self, behaviour: Streaming, method: str) -> Streaming:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            ctx = self._begin(method, context)
            recorded = False
            try:
                async for message in behaviour(request, context):
                    if not recorded:
                        await self._record(ctx, grpc.StatusCode.OK)
                        recorded = True
                    yield message
            except Exception as err:
                if not recorded:
                    await self._record_error(ctx, err, context)
                else:
                    log.warning("stream_failed_after_release", code=status.code_of(err, context).name,
                                records=ctx.records)
                raise
            if not recorded:
                await self._record(ctx, grpc.StatusCode.OK)
            else:
                log.info("stream_done", records=ctx.records)

        return call
