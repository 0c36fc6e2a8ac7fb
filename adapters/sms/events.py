"""What the SMS path tells the operator's metrics, as a port of the adapters' own.

The queue, the dispatcher and the SMPP link report events here; gateway/runtime/metrics.py turns
them into Prometheus series. No event carries a number or a text.
"""

from __future__ import annotations

from typing import Protocol


class SmsEvents(Protocol):
    def capped(self, kind: str) -> None:
        """A notice held back by its daily cap."""

    def submitted(self, kind: str, seconds: float) -> None:
        """The SMSC took a message; `seconds` from handing it over to the SMSC's answer."""

    def receipt(self, state: str) -> None:
        """A final state: delivered, undeliverable, expired, no_receipt."""

    def dropped(self, kind: str, reason: str) -> None:
        """A message that left the queue unsent: expired (never sent late) or failed (dead letter)."""

    def throttled(self) -> None: ...

    def reconnected(self) -> None: ...

    def link(self, up: bool) -> None:
        """The SMPP session is bound (True) or not."""

    def depth(self, messages: int) -> None:
        """Messages waiting in the queue."""


class NoEvents:
    """Events go nowhere (tools, tests that do not look at metrics)."""

    def capped(self, kind: str) -> None: ...

    def submitted(self, kind: str, seconds: float) -> None: ...

    def receipt(self, state: str) -> None: ...

    def dropped(self, kind: str, reason: str) -> None: ...

    def throttled(self) -> None: ...

    def reconnected(self) -> None: ...

    def link(self, up: bool) -> None: ...

    def depth(self, messages: int) -> None: ...
