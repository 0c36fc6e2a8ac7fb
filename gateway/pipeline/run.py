"""The pipeline every call goes through, whatever its transport (see the package docstring).

For an audited method (the public API, /hallgate.*): counters start; the call context begins;
the caller is identified and the policy enforced; the request's decoding is checked; the handler
runs; the event is stored (for a stream: an opening event before the first message, the trail
probed before each further one, and a closing event with what left); side effects start; the
answer is held to its floor; a failure becomes the Status the caller gets; counters finish.
Other methods (health, reflection) get the decoding check, error mapping and counters only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar

import structlog
from google.rpc import status_pb2

from gateway.domain import pacing, request_context
from gateway.domain.errors import DomainError, Unimplemented
from gateway.domain.request_context import CallContext
from gateway.pipeline import outcome
from gateway.pipeline.audit import Recorder, interrupted
from gateway.pipeline.authorize import Authorizer
from gateway.pipeline.codes import Code
from gateway.pipeline.counters import Counters
from gateway.pipeline.decoding import check_decoded
from gateway.pipeline.facts import CallFacts

log = structlog.get_logger("hallgate.errors")
AUDITED_PREFIX = "/hallgate."

T = TypeVar("T")
_END = object()  # a stream's handler has no further message
Unary = Callable[[Any], Awaitable[Any]]
Streaming = Callable[[Any], AsyncIterator[Any]]
Send = Callable[[Any], Awaitable[None]]


class CallerGone(asyncio.CancelledError):
    """The transport could not deliver a message: the caller cancelled, its deadline passed, or the
    connection broke. It ends the call as the caller's stopping it does (CANCELLED or
    DEADLINE_EXCEEDED), not as a failure of ours."""


async def _deliver(send: Send, message: Any) -> None:
    try:
        await send(message)
    except Exception as err:
        raise CallerGone() from err


class Refusal(Exception):
    """The call ends with this Status: the transport sends it as it is."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


def refusal(err: BaseException) -> BaseException:
    """What leaves the pipeline for `err`: a cancellation as it is, anything else as a Refusal with
    the caller's Status (an unexpected error logged here, and nothing of it told)."""
    if isinstance(err, Refusal) or not isinstance(err, Exception):
        return err
    if not isinstance(err, DomainError):
        log.error("unhandled_error", error_type=type(err).__name__, exc_info=err)
    return Refusal(outcome.status_of(err))


def _code(err: BaseException, facts: CallFacts) -> Code:
    if isinstance(err, Refusal):
        return Code(err.status.code)
    return outcome.code_of(err, facts)


async def _unimplemented(request: Any) -> None:
    raise Unimplemented()


class Pipeline:
    """One per server; each call runs `unary` or `stream` (or `unimplemented`)."""

    def __init__(self, authorizer: Authorizer, recorder: Recorder, counters: Counters | None = None) -> None:
        self.authorizer = authorizer
        self.recorder = recorder
        self.counters = counters or Counters()

    def _begin(self, facts: CallFacts) -> CallContext:
        audited = facts.method.startswith(AUDITED_PREFIX)
        call = request_context.begin(facts.method if audited else "", facts.peer)
        if audited:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(method=facts.method)
        return call

    async def _refused(self, call: CallContext, err: BaseException, facts: CallFacts) -> None:
        """Record a call that ends before it released anything."""
        if isinstance(err, DomainError):
            call.reason = err.reason
        elif isinstance(err, Exception):
            call.reason = call.reason or "internal_error"
        if call.method:
            await self.recorder.record(call, _code(err, facts))
            await pacing.hold(call)

    async def _around(self, facts: CallFacts, body: Callable[[CallContext], Awaitable[T]]) -> T:
        """What every call gets, whatever its shape: counted and timed, and a failure turned into
        the Status the caller gets (a cancellation passed on as it is)."""
        counters = self.counters.of(facts.method, facts.kind)
        counters.started.inc()
        call = self._begin(facts)
        started = time.perf_counter()
        code = Code.OK
        try:
            return await body(call)
        except BaseException as err:
            ended = refusal(err)
            code = _code(ended, facts)
            if ended is err:
                raise
            raise ended from err
        finally:
            counters.finish(call, code, time.perf_counter() - started)

    async def _admitted(self, facts: CallFacts, call: CallContext, request: Any, authorize: bool = True) -> None:
        """Identified, allowed by the policy, and decoded; else on record as refused."""
        try:
            if call.method and authorize:
                await self.authorizer.authorize(facts, call, request)
            check_decoded(request)
        except BaseException as err:
            await self._refused(call, err, facts)
            raise

    async def unary(self, facts: CallFacts, request: Any, handler: Unary, authorize: bool = True) -> Any:
        """The handler's response, or Refusal / a cancellation."""
        async def body(call: CallContext) -> Any:
            await self._admitted(facts, call, request, authorize)
            try:
                response = await handler(request)
            except BaseException as err:
                await self._refused(call, err, facts)
                raise
            if call.method:
                await self.recorder.record(call, Code.OK)
                await pacing.hold(call)
            return response

        return await self._around(facts, body)

    async def unimplemented(self, facts: CallFacts) -> None:
        """A method of the public API's package that no service has: on record, UNIMPLEMENTED
        (before any identification, as there is no policy row to check it against)."""
        await self.unary(facts, None, _unimplemented, authorize=False)

    async def stream(self, facts: CallFacts, request: Any, handler: Streaming, send: Send) -> None:
        """Send the handler's messages with `send` (a message has left once it returns), or end
        with Refusal / a cancellation."""
        async def body(call: CallContext) -> None:
            await self._admitted(facts, call, request)
            if call.method:
                await self._audited_stream(facts, call, request, handler, send)
                return
            async with aclosing(handler(request)) as messages:  # type: ignore[type-var]
                async for message in messages:
                    await _deliver(send, message)

        await self._around(facts, body)

    async def _audited_stream(self, facts: CallFacts, call: CallContext, request: Any, handler: Streaming,
                              send: Send) -> None:
        """The handler is asked for the next message before this one leaves, so the last message is
        known as such: its closing event (OK, every record) is stored before it leaves, in the same
        append as the opening event when it is also the first. A last message that then fails to
        leave gets a second closing event with the true ending; the last closing event counts."""
        opened = False
        released = 0  # records in messages that have left
        try:
            async with aclosing(handler(request)) as messages:  # type: ignore[type-var]
                following = aiter(messages)
                message = await anext(following, _END)
                while message is not _END:
                    through = call.records  # the records up to and including this message
                    after = await anext(following, _END)
                    if after is _END:
                        await self.recorder.closing(call, through, with_opening=not opened)
                        opened = True
                    elif not opened:
                        await self.recorder.opened(call)
                        opened = True
                    else:
                        await self.recorder.sink.check()
                    await _deliver(send, message)
                    released, message = through, after
        except BaseException as err:
            if not opened:
                call.records = 0  # whatever the handler had made, nothing left
                await self._refused(call, err, facts)
                raise
            ended = interrupted(err, released)
            await self.recorder.closed(call, _code(ended, facts), released, ended)
            if ended is err:
                raise
            raise ended from err
        if not opened:  # a stream that sent nothing: one event, as a unary call
            await self.recorder.record(call, Code.OK)
