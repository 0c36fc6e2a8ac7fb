"""Answers that leave no sooner than a floor after the call began, so their timing tells nothing.

A rule that must not be timed (a code request, a failed owner proof) asks for a floor; the audit
stage holds the answer until then, after the call's event is stored, so everything the gateway
does for the call, whichever branch it took, its audit append and its error mapping included, is
hidden behind the same fixed time. Outside an RPC (the CLI, unit tests) there is no answer to hold.
"""

from __future__ import annotations

import asyncio
import time

from gateway.domain import request_context
from gateway.domain.request_context import CallContext


def answer_not_before(seconds: float) -> None:
    """The running call's answer leaves no sooner than `seconds` after the call began."""
    call = request_context.active()
    if call is not None and call.method and seconds > 0:
        call.answer_at = max(call.answer_at, call.started + seconds)


async def hold(call: CallContext) -> None:
    """Wait until the call's floor, if it has one."""
    # A loop, not one sleep: uvloop's timers wake up to a millisecond early.
    while (left := call.answer_at - time.perf_counter()) > 0:  # noqa: ASYNC110 (a time, not an event)
        await asyncio.sleep(left)
