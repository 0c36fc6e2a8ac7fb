"""Side effects (SMS, notices) that may happen only once the call's audit event is stored.

A rule asks for an effect with `defer`; inside an RPC it waits on the call until the audit stage
has stored the event, and is dropped if the event cannot be stored or the call failed, so nothing
leaves the gateway without its record (and a call answered with a failure has sent nothing).
Outside an RPC (the CLI, unit tests of the rules) there is no record to wait for: it runs at once.
The effects then run off the request path, so their cost and timing never reach the caller.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from gateway.domain import request_context
from gateway.domain.ports import Sms, SmsSender
from gateway.domain.request_context import Effect

log = structlog.get_logger("hallgate.effects")
_running: set[asyncio.Task[None]] = set()


async def defer(effect: Effect) -> None:
    call = request_context.active()
    if call is None or not call.method:
        await effect()
    else:
        call.effects.append(effect)


def release(effects: Iterable[Effect]) -> None:
    """Start the effects of a call whose event is stored, in the background (tracked, so they are
    not garbage-collected half-way; a failure is logged, never raised into the call)."""
    for effect in effects:
        # A fresh context: the effect runs outside the call, so its own `defer`s run at once.
        task = asyncio.get_running_loop().create_task(_run(effect), context=contextvars.Context())
        _running.add(task)
        task.add_done_callback(_running.discard)


async def _run(effect: Effect) -> None:
    try:
        await effect()
    except Exception as err:  # an SMS that could not go is logged; the call has already ended
        log.error("effect_failed", error_type=type(err).__name__)


async def drain(seconds: float = 5.0) -> None:
    """Wait for effects still running (on shutdown), at most `seconds`."""
    if _running:
        await asyncio.wait(set(_running), timeout=seconds)


@dataclass(frozen=True, slots=True)
class DeferredSms:
    """The SmsSender port, deferred: `send` queues the message on the running call."""

    inner: SmsSender

    async def send(self, sms: Sms) -> None:
        inner = self.inner
        await defer(lambda: inner.send(sms))
