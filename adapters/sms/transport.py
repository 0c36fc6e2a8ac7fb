"""What the dispatcher needs of a way to the SMS centre, and the development one (a file).

A transport hands one message to the SMSC and says what became of that hand-over; the dispatcher
(adapters/sms/dispatcher.py) owns queueing, retries, expiry and receipts' bookkeeping. SMPP is
adapters/sms/smpp.py; another protocol (CMPP, used by some operators in China) would be one more
class with these four methods (docs/sms.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from adapters.sms.queue import Queued
from adapters.sms_outbox import OutboxSms

Receipts = Callable[[str, str], Coroutine[Any, Any, None]]  # (SMSC message id, final state)


class Throttled(Exception):
    """The SMSC asked us to slow down (ESME_RTHROTTLED, ESME_RMSGQFUL): try again later."""


class Transient(Exception):
    """The hand-over failed in a way that may not happen again (link lost, timeout, SMSC error)."""


class Rejected(Exception):
    """The SMSC refused this message for good (bad destination, bad content)."""


class SmsTransport(Protocol):
    @property
    def ready(self) -> bool:
        """Can a message be handed over now (bound to the SMSC)?"""
        ...

    def status(self) -> str:
        """One line for health and logs: "bound", "connecting", "bind refused: ESME_RINVPASWD"."""
        ...

    async def start(self, receipts: Receipts) -> None:
        """Connect in the background (reconnecting for ever); final states go to `receipts`."""
        ...

    async def submit(self, message: Queued) -> str:
        """Hand the message over; the SMSC's message id. Raises Throttled, Transient or Rejected."""
        ...

    async def close(self) -> None: ...


class FileTransport:
    """Development transport: the phone is a JSON Lines file (`hallgate sms outbox NUMBER` reads
    it), and every message is delivered the moment it is written."""

    def __init__(self, path: Path) -> None:
        self.file = OutboxSms(path)
        self._receipts: Receipts | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> bool:
        return True

    def status(self) -> str:
        return f"writing {self.file.path}"

    async def start(self, receipts: Receipts) -> None:
        self._receipts = receipts

    async def submit(self, message: Queued) -> str:
        await self.file.send(message.to, message.text)
        smsc_id = uuid.uuid4().hex[:16]
        if self._receipts is not None:
            task = asyncio.get_running_loop().create_task(self._receipts(smsc_id, "delivered"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return smsc_id

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
