"""Timers on uvloop fire up to a millisecond before the loop's clock reaches their time. So the
Connect transport's "is the deadline past?" is answered by the timer that fired, not by the clock
(or a call its deadline ended goes on record as CANCELLED), and an answer floor is waited out in a
loop (or an answer leaves a little before it)."""

from __future__ import annotations

import asyncio
import time

from gateway.domain import pacing
from gateway.domain.request_context import CallContext
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
