"""The ports: what the gateway's rules need from the outside world, as small Protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Subscriber:
    """What billing tells the gateway about a number; `exists=False` for unknown numbers."""

    exists: bool
    sim_changed_at: datetime | None = None
    ported_at: datetime | None = None


class Billing(Protocol):
    """The operator's billing system. Raises DependencyUnavailable when it cannot answer."""

    async def verify_service_password(self, msisdn: str, password: str) -> bool: ...

    async def get_subscriber(self, msisdn: str) -> Subscriber: ...

    def call_detail_pages(self, msisdn: str, month: str) -> AsyncIterator[bytes]:
        """Yield a month's call details page by page, each page a serialized billing
        `ListCallDetailsResponse` (kept as bytes so the gateway never holds more than a page)."""
        ...


class SmsSender(Protocol):
    """The operator's SMS centre."""

    async def send(self, msisdn: str, text: str) -> None: ...


class AuditSink(Protocol):
    """Where audit events go. `append` returns only once the event is stored, else raises."""

    async def append(self, event: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class SendSlot:
    """The answer of the send throttle: may a code be sent now, and is the number locked?"""

    allowed: bool
    retry_after: float
    locked_for: float


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """The atomic check of a one-time code: `locked_for` > 0 means nothing was checked."""

    code_ok: bool
    locked_for: float


@dataclass(frozen=True, slots=True)
class Session:
    """What an access token stands for. The token itself is never stored, only its digest."""

    msisdn: str
    scope: str
    terminal: str


class SignInState(Protocol):
    """Shared, atomically changed state of codes, throttles, failures, locks and tokens.

    Every method is one atomic step in the shared store, so any number of gateway processes
    behave as one. Raises DependencyUnavailable when the store cannot answer."""

    async def take_send_slot(self, msisdn: str, min_interval: float, max_per_hour: int) -> SendSlot: ...

    async def store_code(self, msisdn: str, purpose: str, digest: str, ttl: float) -> None: ...

    async def check_code(self, msisdn: str, purpose: str, digest: str, max_tries: int) -> CodeCheck: ...

    async def record_failure(self, msisdn: str, threshold: int, lock_for: float, memory: float) -> float:
        """Count one failed sign-in; returns the lock duration if this failure locked the number."""
        ...

    async def open_session(self, msisdn: str, token_digest: str, session: Session, idle: float,
                           absolute: float, now: float) -> None: ...

    async def touch_session(self, token_digest: str, idle: float, now: float) -> Session | None:
        """The session if alive (and extend its idle life), else None."""
        ...

    async def end_session(self, token_digest: str) -> None: ...
