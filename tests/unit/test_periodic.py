"""gateway/runtime/periodic.py: a timed check keeps running through failures and logs an outage
once when it starts and once when it ends."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

from gateway.runtime.periodic import Periodic


class Flaky(Periodic):
    check_name = "flaky_check"

    def __init__(self, results: list[bool]) -> None:
        self.results, self.rounds, self.every, self.task = results, 0, 0.001, None

    async def once(self) -> Any:
        self.rounds += 1
        ok = self.results.pop(0) if self.results else True
        if not ok:
            raise ConnectionError("redis away")
        return ok


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() -> None:
    check = Flaky([True, False, False, False, True, True, False, True])
    with capture_logs() as logs:
        check.start()
        for _ in range(1000):
            if check.rounds >= 10:
                break
            await asyncio.sleep(0.002)
        await check.stop()
    events = [e["event"] for e in logs]
    assert events == ["flaky_check_failed", "flaky_check_recovered", "flaky_check_failed", "flaky_check_recovered"]
    assert logs[0]["error_type"] == "ConnectionError"
    assert check.task is None and check.rounds >= 10


async def test_stop_before_start_and_twice_is_harmless() -> None:
    check = Flaky([])
    await check.stop()
    check.start()
    await check.stop()
    await check.stop()
    assert check.task is None
