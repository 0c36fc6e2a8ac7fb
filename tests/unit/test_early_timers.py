"""Timers fire a little before the clock they are read against reaches their time (uvloop's by up to
a millisecond; gRPC core's deadline against grpc's time_remaining() likewise). So the Connect
transport's "is the deadline past?" is answered by the timer that fired, a call stopped within a
few milliseconds of its deadline ends DEADLINE_EXCEEDED (not CANCELLED, as if its caller left), and
an answer floor is waited out in a loop (or an answer leaves a little before it)."""

from __future__ import annotations

import asyncio
import time

from gateway.domain import pacing
from gateway.domain.request_context import CallContext
from gateway.pipeline import outcome
from gateway.pipeline.codes import Code
from gateway.pipeline.facts import CallFacts
from gateway.runtime import event_loop
from gateway.transport.browser.connect import HttpRequest


def test_once_the_deadline_fired_no_time_is_left_even_if_the_clock_lags() -> None:
    async def main() -> tuple[int, list[float | None]]:
        loop = asyncio.get_running_loop()
        early, seen = 0, []
        for _ in range(40):
            http = HttpRequest(peer=None, headers={}, cookies={}, deadline=loop.time() + 0.0053)
            assert (left := http.time_left()) is not None and left > 0
            try:
                async with http.timeout():
                    await asyncio.sleep(1)
            except TimeoutError:
                early += loop.time() < http.deadline  # type: ignore[operator]
                seen.append(http.time_left())
        return early, seen

    early, seen = event_loop.run(main())
    assert seen == [0.0] * 40
    assert early > 0, "uvloop fired no timer early here: the case this guards was not exercised"


def test_without_a_deadline_there_is_no_limit() -> None:
    async def main() -> float | None:
        http = HttpRequest(peer=None, headers={}, cookies={})
        async with http.timeout():
            await asyncio.sleep(0)
        return http.time_left()

    assert event_loop.run(main()) is None


def test_an_answer_floor_is_kept_to_the_microsecond_on_uvloop() -> None:
    """pacing.hold: one sleep of the time left wakes up early on uvloop; the floor is a promise."""
    async def main() -> list[float]:
        short = []
        for _ in range(40):
            call = CallContext("/hallgate.v1.KioskService/RequestOneTimeCode")
            call.answer_at = time.perf_counter() + 0.0053
            await pacing.hold(call)
            short.append(max(0.0, call.answer_at - time.perf_counter()))
        return short

    assert event_loop.run(main()) == [0.0] * 40


def test_a_call_stopped_at_its_deadline_by_an_early_timer_ends_deadline_exceeded() -> None:
    """gRPC core's deadline timer, like libuv's, can stop a call a little before time_remaining()
    reaches 0: that is the deadline, not the caller cancelling."""
    def ended(left: float | None) -> Code:
        return outcome.ended_by_caller(CallFacts("/hallgate.v1.KioskService/ListCallDetails", time_left=lambda: left))

    assert ended(-0.2) == ended(0.0) == ended(0.004) == Code.DEADLINE_EXCEEDED
    assert ended(0.5) == ended(None) == Code.CANCELLED
