"""Every call to a hallgate service is on record, allowed, denied or failed, before anything leaves.

A unary call leaves one event, stored before the response is released. A stream that sends
messages leaves two, linked by `call`: an opening event stored just before its first message
leaves, and a closing event saying how it ended (OK, CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE…)
and exactly how many records left. A stream that ends by sending its last message has its closing
event (OK, every record) stored just before that message leaves, in the same append as the opening
event when there is only one message; should that message then fail to leave, a second closing
event says how it truly ended (the last closing event of a call counts). Before each further
message the trail is probed; once it cannot be written the stream stops (at most the page in
flight has left) and ends UNAVAILABLE.
If an event cannot be stored the call fails with UNAVAILABLE (DependencyUnavailable). Side effects
the call asked for (SMS) start only once its event is stored and the call did not fail; an answer
that must not be timed is held to its floor (gateway/domain/pacing.py) after its event is
stored. The same facts also go to the operational log as one structured line per event.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from gateway.domain import effects, rules
from gateway.domain.audit_chain import AuditEvent
from gateway.domain.errors import DependencyUnavailable, DomainError, Interrupted
from gateway.domain.ports import AuditSink
from gateway.domain.request_context import CallContext
from gateway.pipeline.codes import Code, decision_of

log = structlog.get_logger("hallgate.access")

OPEN, CLOSE = "open", "close"


class PseudonymNotes(Protocol):
    def note(self, ref: str, msisdn: str) -> None:
        """Remember ref → number (sealed, in the background); never blocks, never raises."""
        ...


class Recorder:
    """Builds, stores and logs a call's events, and what follows a stored one."""

    def __init__(self, sink: AuditSink, key: bytes, pseudonyms: PseudonymNotes | None = None) -> None:
        self.sink = sink
        self.key = key
        self.late = LateEvents(sink)
        self.pseudonyms = pseudonyms  # the sealed pseudonym directory (adapters/pseudonyms.py): off the call path

    def event(self, call: CallContext, code: Code, phase: str = "", records: int | None = None,
              reason: str = "") -> AuditEvent:
        numbers = call.msisdns or ((call.msisdn,) if call.msisdn else ())
        known, refs = call.refs
        if known != numbers:  # once per call, not per event
            refs = tuple(rules.subscriber_ref(self.key, m) for m in numbers)
            call.refs = (numbers, refs)
            if self.pseudonyms is not None:
                for ref, number in zip(refs, numbers, strict=True):
                    self.pseudonyms.note(ref, number)
        return AuditEvent(
            at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            channel=call.channel or "unidentified", hall=call.hall, terminal=call.terminal,
            staff_id=call.staff_id, role=call.role, proof=call.proof, purpose=call.purpose,
            purpose_reason=call.purpose_reason, peer=call.peer, method=call.method,
            call=call.call_id, phase=phase,
            subscriber=call.subscriber or (rules.mask_msisdn(call.msisdn) if call.msisdn else ""),
            subscriber_ref=",".join(refs),
            decision="allowed" if phase else decision_of(code),
            reason=reason or call.reason or ("ok" if code == Code.OK else code.name.lower()),
            detail=call.detail, code=code.name, records=call.records if records is None else records,
            duration_ms=round((time.perf_counter() - call.started) * 1000, 3))

    async def store(self, *events: AuditEvent) -> None:
        """Store the events, in one append; DependencyUnavailable if the sink cannot."""
        stored = [event.fields() for event in events]
        try:
            await self.sink.append(*stored)
        except DomainError:
            for fields in stored:
                log.error("audit_unavailable", **fields)
            raise
        for fields in stored:
            log.info("call", **fields)

    async def record(self, call: CallContext, code: Code) -> None:
        """A call's only event, then its side effects (unless it failed)."""
        await self.store(self.event(call, code))
        effects_, call.effects = call.effects, []
        if decision_of(code) != "failed":
            effects.release(effects_)

    async def opened(self, call: CallContext) -> None:
        """A stream's opening event, just before its first message leaves."""
        await self.store(self.event(call, Code.OK, OPEN, records=0))
        self._released(call)

    async def closing(self, call: CallContext, records: int, with_opening: bool) -> None:
        """The closing event of a stream whose last message is about to leave: OK, with every record
        through that message. When it is also the first message, the opening event goes in the
        same append, and the call's side effects follow as after `opened`."""
        close = self.event(call, Code.OK, CLOSE, records=records)
        if not with_opening:
            await self.store(close)
            return
        await self.store(self.event(call, Code.OK, OPEN, records=0), close)
        self._released(call)

    @staticmethod
    def _released(call: CallContext) -> None:
        effects_, call.effects = call.effects, []
        effects.release(effects_)

    async def closed(self, call: CallContext, code: Code, released: int, err: BaseException | None) -> None:
        """The closing event of a stream that ended otherwise than by sending its last message (or
        whose last message, already closed as OK, failed to leave: this one then corrects it). If
        it cannot be stored now, it is kept and stored once the trail is back (the opening event is
        there: the close must follow it), and a stream still running ends UNAVAILABLE saying the
        list is incomplete."""
        event = self.event(call, code, CLOSE, records=released,
                           reason=err.reason if isinstance(err, DomainError) else "")
        try:
            await self.store(event)
        except DomainError:
            self.late.keep(event.fields())
            if err is None:
                raise Interrupted("audit", released) from None
            if isinstance(err, Exception):
                raise Interrupted("audit", released) from err


def interrupted(err: BaseException, released: int) -> BaseException:
    """What a stream that already released records ends with: the caller's cancellation as it is;
    any other failure as Interrupted, whose message says the list is incomplete (never "nothing
    was released")."""
    if isinstance(err, asyncio.CancelledError | GeneratorExit | Interrupted):
        return err
    if isinstance(err, DependencyUnavailable):
        return Interrupted(err.dependency, released)
    log.error("stream_failed", error_type=type(err).__name__, exc_info=err)
    return Interrupted("internal", released)


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
                except DomainError:  # the trail is still down: later
                    break
                except Exception as err:  # a bug: this event cannot be stored; its line keeps it
                    log.error("audit_event_lost", error_type=type(err).__name__, **self.pending.pop(0)[1])
                    continue
                self.pending.pop(0)
                log.info("call", late=True, **event)
