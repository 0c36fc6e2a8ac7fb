"""Per-request facts shared by the interceptors and servicers, in a ContextVar (one per RPC task)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

Effect = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class CallContext:
    """What the audit trail needs to know about one call. Never holds a secret: subscribers are
    stored masked, and there is no field for passwords, codes, tokens or records."""

    method: str
    peer: str = ""
    channel: str = ""
    hall: str = ""
    terminal: str = ""
    staff_id: str = ""
    role: str = ""
    proof: str = ""
    purpose: str = ""  # the customer session's purpose (gateway/domain/purposes.py)
    purpose_reason: str = ""  # the reason stated when the session was opened: on that call's event only
    msisdn: str = ""  # the customer's number: never written anywhere as is
    msisdns: tuple[str, ...] = ()  # several numbers (legal targets): likewise never written as is
    subscriber: str = ""  # set only where msisdn does not fit (several legal targets)
    reason: str = ""
    detail: str = ""
    records: int = 0  # records handed to the transport (a stream's audit stage counts what left)
    customer: Any = None  # the CustomerSession, for servicers; never written to the audit trail
    staff_session: str = ""  # the signed-in staff member's session (token digest); never written either
    started: float = field(default_factory=time.perf_counter)
    effects: list[Effect] = field(default_factory=list)  # run only once the call's event is stored
    call_id: str = field(default_factory=lambda: secrets.token_hex(8))  # links a stream's two events
    answer_at: float = 0.0  # perf_counter time before which the answer may not leave (gateway/domain/pacing.py)
    # (numbers, their pseudonyms), made once: a stream's two events share them
    refs: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


_current: ContextVar[CallContext | None] = ContextVar("hallgate_call", default=None)


def begin(method: str, peer: str) -> CallContext:
    call = CallContext(method=method, peer=peer)
    _current.set(call)
    return call


def active() -> CallContext | None:
    """The running call's context, or None outside an RPC."""
    return _current.get()


def current() -> CallContext:
    """The running call's context; a throwaway one outside an RPC (e.g. in unit tests)."""
    call = _current.get()
    if call is None:
        call = CallContext(method="")
        _current.set(call)
    return call
