"""Every call to a hallgate service is on record, allowed, denied or failed, before anything leaves.

A unary call leaves one event, stored before the response is released. A stream that sends
messages leaves two, linked by `call`: an opening event stored just before its first message
leaves, and a closing event saying how it ended (OK, CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE…)
and exactly how many records left. Before each further message the trail is probed; once it
cannot be written the stream stops (at most the page in flight has left) and ends UNAVAILABLE.
If an event cannot be stored the call fails with UNAVAILABLE (DependencyUnavailable, mapped by
the error interceptor outside this one). Side effects the call asked for (SMS) start only once
its event is stored and the call did not fail; an answer that must not be timed is held to its
floor (gateway/pacing.py) after its event is stored. The same facts also go to the operational log
as one structured line per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import grpc
import structlog

from gateway import effects, pacing, request_context, rules, status
from gateway.errors import DependencyUnavailable, DomainError, Interrupted, Unimplemented
from gateway.interceptors.wrapping import Streaming, Unary, messages, wrap
from gateway.ports import AuditSink
from gateway.request_context import CallContext

log = structlog.get_logger("hallgate.access")

AUDITED_PREFIX = "/hallgate."


class AuditInterceptor(grpc.aio.ServerInterceptor):
    """Sits just inside the error interceptor, so it sees every outcome as an exception or a
    result, and its own failure still becomes a clean UNAVAILABLE."""

    def __init__(self, sink: AuditSink, key: bytes) -> None:
        self.sink = sink
        self.key = key
        self.late = LateEvents(sink)

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

    def _event(self, call: CallContext, code: grpc.StatusCode, phase: str = "", records: int | None = None,
               reason: str = "") -> dict[str, Any]:
        """The event for a call. `phase` is "open" or "close" for the two events of a stream that
        sent messages, "" for a call's only event."""
        return {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "channel": call.channel or "unidentified",
            "hall": call.hall,
            "terminal": call.terminal,
            "staff_id": call.staff_id,
            "role": call.role,
            "proof": call.proof,
            "peer": call.peer,
            "method": call.method,
            "call": call.call_id,
            "phase": phase,
            "subscriber": call.subscriber or (rules.mask_msisdn(call.msisdn) if call.msisdn else ""),
            "subscriber_ref": ",".join(rules.subscriber_ref(self.key, m)
                                       for m in (call.msisdns or ((call.msisdn,) if call.msisdn else ()))),
            "decision": "allowed" if phase else status.decision_of(code),
            "reason": reason or call.reason or ("ok" if code == grpc.StatusCode.OK else code.name.lower()),
            "detail": call.detail,
            "code": code.name,
            "records": call.records if records is None else records,
            "duration_ms": round((time.perf_counter() - call.started) * 1000, 3),
        }

    async def _store(self, event: dict[str, Any]) -> None:
        """Store the event; DependencyUnavailable if the sink cannot."""
        try:
            await self.sink.append(event)
        except DomainError:
            log.error("audit_unavailable", **event)
            raise
        log.info("call", **event)

    async def _record(self, call: CallContext, code: grpc.StatusCode, phase: str = "", records: int | None = None,
                      reason: str = "") -> None:
        await self._store(self._event(call, code, phase, records, reason))

    @staticmethod
    def _release_effects(call: CallContext, code: grpc.StatusCode) -> None:
        effects_, call.effects = call.effects, []
        if status.decision_of(code) != "failed":
            effects.release(effects_)

    async def _record_error(self, call: CallContext, err: BaseException, context: grpc.aio.ServicerContext) -> None:
        if isinstance(err, DomainError):
            call.reason = err.reason
        elif not isinstance(err, grpc.aio.AbortError | asyncio.CancelledError | GeneratorExit):
            call.reason = call.reason or "internal_error"
        code = status.code_of(err, context)
        await self._record(call, code)
        self._release_effects(call, code)
        await pacing.hold(call)

    def _unary(self, behaviour: Unary, method: str) -> Unary:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            ctx = self._begin(method, context)
            try:
                response = await behaviour(request, context)
            except BaseException as err:
                await self._record_error(ctx, err, context)
                raise
            await self._record(ctx, grpc.StatusCode.OK)
            self._release_effects(ctx, grpc.StatusCode.OK)
            await pacing.hold(ctx)
            return response

        return call

    def _streaming(self, behaviour: Streaming, method: str) -> Streaming:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncGenerator[Any, None]:
            ctx = self._begin(method, context)
            opened = False
            released = 0  # records in messages the transport has taken (the layer above asked for more)
            try:
                async with messages(behaviour, request, context) as inner:
                    async for message in inner:
                        if not opened:
                            await self._record(ctx, grpc.StatusCode.OK, phase="open", records=0)
                            self._release_effects(ctx, grpc.StatusCode.OK)
                            opened = True
                        else:
                            await self.sink.check()
                        yield message
                        released = ctx.records
            except BaseException as err:
                if not opened:
                    await self._record_error(ctx, err, context)
                    raise
                ended = self._interrupted(err, released)
                await self._close(ctx, status.code_of(ended, context), released, ended)
                if ended is err:
                    raise
                raise ended from err
            if opened:
                await self._close(ctx, grpc.StatusCode.OK, released, None)
            else:
                await self._record(ctx, grpc.StatusCode.OK)
                self._release_effects(ctx, grpc.StatusCode.OK)

        return call

    @staticmethod
    def _interrupted(err: BaseException, released: int) -> BaseException:
        """What a stream that already released records ends with: the caller's cancellation or an
        abort as they are; any other failure as Interrupted, whose message says the list is
        incomplete (never "nothing was released")."""
        if isinstance(err, asyncio.CancelledError | GeneratorExit | grpc.aio.AbortError | Interrupted):
            return err
        if isinstance(err, DependencyUnavailable):
            return Interrupted(err.dependency, released)
        log.error("stream_failed", error_type=type(err).__name__, exc_info=err)
        return Interrupted("internal", released)

    async def _close(self, call: CallContext, code: grpc.StatusCode, released: int,
                     err: BaseException | None) -> None:
        """The stream's closing event. If it cannot be stored now, it is kept and stored once the
        trail is back (the opening event is there: the close must follow it), and a stream still
        running ends UNAVAILABLE saying the list is incomplete."""
        event = self._event(call, code, phase="close", records=released,
                            reason=err.reason if isinstance(err, DomainError) else "")
        try:
            await self._store(event)
        except DomainError:
            self.late.keep(event)
            if err is None:
                raise Interrupted("audit", released) from None
            if isinstance(err, Exception):
                raise Interrupted("audit", released) from err


class LateEvents:
    """Closing events that could not be stored when their stream ended (the trail was down), kept
    in memory and stored in order once it is back. Bounded: past `limit` events, or `give_up`
    seconds, an event is dropped with an error line that carries it whole, so the operational log
    still holds what the trail could not."""

    def __init__(self, sink: AuditSink, limit: int = 10_000, give_up: float = 3600.0, every: float = 0.5) -> None:
        self.sink = sink
        self.limit = limit
        self.give_up = give_up
        self.every = every
        self.pending: list[tuple[float, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    def keep(self, event: dict[str, Any]) -> None:
        if len(self.pending) >= self.limit:
            log.error("audit_event_lost", **self.pending.pop(0)[1])
        self.pending.append((time.monotonic(), event))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending:
            await asyncio.sleep(self.every)
            while self.pending:
                kept_at, event = self.pending[0]
                if time.monotonic() - kept_at > self.give_up:
                    log.error("audit_event_lost", **self.pending.pop(0)[1])
                    continue
                try:
                    await self.sink.append(event)
                except DomainError:
                    break
                self.pending.pop(0)
                log.info("call", late=True, **event)
