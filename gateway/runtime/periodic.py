"""A check every process runs on a timer (overdue loans, incident deadlines): one loop, so each such
check fails the same way. A failure (Redis or the trail away) is logged when it starts and when it
ends, not at every round, and never stops the loop; `stop` cancels it and waits for it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

import structlog

log = structlog.get_logger("hallgate.periodic")


class Periodic:
    """Mixin: a subclass names its check (`check_name`, the log events `<name>_failed` and
    `<name>_recovered`), has `every` seconds and a `task` slot, and does one round in `once`."""

    check_name: ClassVar[str]
    every: float
    task: asyncio.Task[Any] | None

    async def once(self) -> Any:
        raise NotImplementedError

    async def run(self) -> None:
        failing = False
        while True:
            try:
                await self.once()
            except Exception as err:  # the next round tries again
                if not failing:
                    failing = True
                    log.warning(f"{self.check_name}_failed", error_type=type(err).__name__)
            else:
                if failing:
                    failing = False
                    log.info(f"{self.check_name}_recovered")
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
            self.task = None
