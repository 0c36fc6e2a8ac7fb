"""Tiny in-memory fakes of the ports in gateway/domain/ports.py, for testing the rules without Redis or gRPC.

Time is a FakeClock the test moves by hand: every TTL in FakeSignInState is measured on it, and
KioskFlows gets the same clock, so "five minutes later" is one `clock.advance(300)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.domain.ports import (
    Attempt,
    AttemptLimits,
    CodeClaim,
    ReleaseFold,
    SendSlot,
    Session,
    Sms,
    SmsDelivery,
    SmsKind,
    Subscriber,
)
from hallgate_pb.billing.v1 import billing_pb2

START = datetime(2025, 6, 15, 4, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """Seconds since the epoch, moved only by `advance`."""

    t: float = START.timestamp()

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeSignInState:
    """The SignInState port in dicts. An entry lives while `clock.t < its expiry`."""

    clock: FakeClock
    sends: dict[str, tuple[int, float]] = field(default_factory=dict)  # msisdn -> (count, hour window end)
    next_send: dict[str, float] = field(default_factory=dict)  # msisdn -> earliest next send
    codes: dict[tuple[str, str], list[Any]] = field(default_factory=dict)  # (msisdn, purpose) -> [digest, tries, end]
    fails: dict[str, tuple[int, float]] = field(default_factory=dict)  # msisdn -> (count, forget at)
    locks: dict[str, float] = field(default_factory=dict)  # msisdn -> lock end
    sessions: dict[str, tuple[Session, float, float]] = field(default_factory=dict)  # digest -> (s, idle end, deadline)
    lock_count: int = 0  # how many times a lock was set

    def _left(self, expiry: float) -> float:
        return max(0.0, expiry - self.clock.t)

    def lock_left(self, msisdn: str) -> float:
        return self._left(self.locks.get(msisdn, 0.0))

    def _live_code(self, key: tuple[str, str]) -> list[Any] | None:
        """The stored code [digest, tries, end] if it has not run out (one that has is dropped, as
        Redis drops an expired key)."""
        entry = self.codes.get(key)
        if entry is not None and self.clock.t >= entry[2]:
            del self.codes[key]
            entry = None
        return entry

    def fail_count(self, msisdn: str) -> int:
        count, forget_at = self.fails.get(msisdn, (0, 0.0))
        return count if self.clock.t < forget_at else 0

    async def issue_code(self, msisdn: str, purpose: str, digest: str | None, ttl: float, min_interval: float,
                         max_per_hour: int) -> SendSlot:
        lock = self.lock_left(msisdn)
        wait = self._left(self.next_send.get(msisdn, 0.0))
        if wait > 0:
            return SendSlot(False, wait, lock)
        count, window_end = self.sends.get(msisdn, (0, 0.0))
        if self.clock.t >= window_end:
            count, window_end = 0, self.clock.t + 3600
        if count >= max_per_hour:
            return SendSlot(False, self._left(window_end), lock)
        self.sends[msisdn] = (count + 1, window_end)
        self.next_send[msisdn] = self.clock.t + min_interval
        if lock <= 0 and digest:
            await self.store_code(msisdn, purpose, digest, ttl)
        return SendSlot(True, 0.0, lock)

    async def store_code(self, msisdn: str, purpose: str, digest: str, ttl: float) -> None:
        self.codes[(msisdn, purpose)] = [digest, 0, self.clock.t + ttl]

    async def begin_attempt(self, subject: str, limits: AttemptLimits, code: CodeClaim | None = None) -> Attempt:
        lock = self.lock_left(subject)
        if lock > 0:
            return Attempt(subject, lock, 0, code)
        n = self.fail_count(subject) + 1
        if n > limits.threshold:
            return Attempt(subject, limits.lock_for, 0, code)
        self.fails[subject] = (n, self.clock.t + limits.memory)
        if code is None:
            return Attempt(subject, 0.0, n)
        entry = self._live_code((subject, code.purpose))
        if entry is None:
            return Attempt(subject, 0.0, n, code)
        ttl = entry[2] - self.clock.t
        if entry[0] == code.digest:
            del self.codes[(subject, code.purpose)]
            return Attempt(subject, 0.0, n, code, True, entry[1], ttl)
        entry[1] += 1
        if entry[1] >= code.max_tries:
            del self.codes[(subject, code.purpose)]
        return Attempt(subject, 0.0, n, code, False, entry[1], ttl)

    async def fail_attempt(self, attempt: Attempt, limits: AttemptLimits) -> float:
        if attempt.number < limits.threshold:
            return 0.0
        self.fails.pop(attempt.subject, None)
        if self.lock_left(attempt.subject) > 0:
            return 0.0
        self.locks[attempt.subject] = self.clock.t + limits.lock_for
        self.lock_count += 1
        return limits.lock_for

    async def release_attempt(self, attempt: Attempt) -> None:
        count, forget_at = self.fails.get(attempt.subject, (0, 0.0))
        if count > 0:
            self.fails[attempt.subject] = (count - 1, forget_at)
        if attempt.code is None:
            return
        key = (attempt.subject, attempt.code.purpose)
        entry = self._live_code(key)
        if attempt.code_ok and entry is None:
            self.codes[key] = [attempt.code.digest, attempt.code_tries, self.clock.t + attempt.code_ttl]
        elif not attempt.code_ok and entry is not None and entry[1] > 0:
            entry[1] -= 1

    async def reset_failures(self, subject: str, unlock: bool = False) -> None:
        self.fails.pop(subject, None)
        if unlock:
            self.locks.pop(subject, None)

    async def lock_remaining(self, subject: str) -> float:
        return self.lock_left(subject)

    async def open_session(self, msisdn: str, token_digest: str, session: Session, idle: float,
                           absolute: float, now: float) -> None:
        # Like the Redis adapter: a successful sign-in clears the number's failure count.
        self.fails.pop(msisdn, None)
        self.sessions[token_digest] = (session, now + min(idle, absolute), now + absolute)

    async def touch_session(self, token_digest: str, idle: float, now: float) -> Session | None:
        found = self.sessions.get(token_digest)
        if found is None:
            return None
        session, idle_end, deadline = found
        if now >= idle_end or now >= deadline:
            del self.sessions[token_digest]
            return None
        self.sessions[token_digest] = (session, min(now + idle, deadline), deadline)
        return session

    async def end_session(self, token_digest: str, terminal: str) -> bool:
        found = self.sessions.get(token_digest)
        if found is not None and found[0].terminal == terminal:
            del self.sessions[token_digest]
            return True
        return False


@dataclass
class FakeBilling:
    """Subscribers by number, each with a service password; counts password checks."""

    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    records: dict[tuple[str, str], list[billing_pb2.CallDetail]] = field(default_factory=dict)
    page_size: int = 2
    password_checks: list[tuple[str, str]] = field(default_factory=list)

    def add(self, msisdn: str, password: str, sim_changed_at: datetime | None = None,
            ported_at: datetime | None = None) -> None:
        self.subscribers[msisdn] = Subscriber(True, sim_changed_at, ported_at)
        self.passwords[msisdn] = password

    async def verify_service_password(self, msisdn: str, password: str) -> bool:
        self.password_checks.append((msisdn, password))
        return msisdn in self.passwords and self.passwords[msisdn] == password

    async def get_subscriber(self, msisdn: str) -> Subscriber:
        return self.subscribers.get(msisdn, Subscriber(False))

    async def call_detail_pages(self, msisdn: str, month: str) -> AsyncIterator[bytes]:
        rows = self.records.get((msisdn, month), [])
        for i in range(0, max(len(rows), 1), self.page_size):
            last = i + self.page_size >= len(rows)
            yield billing_pb2.ListCallDetailsResponse(
                records=rows[i:i + self.page_size], next_page_token="" if last else f"p{i + self.page_size}",
            ).SerializeToString()


@dataclass
class FakeSms:
    """The SmsOutbox port in memory: collects every message sent, in order, applies the daily cap
    (one day: the fake's whole life) and keeps release folds."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    messages: list[Sms] = field(default_factory=list)
    capped: int = 0
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    firsts: dict[str, str] = field(default_factory=dict)
    folds: dict[str, tuple[str, str, set[str], float]] = field(default_factory=dict)

    async def send(self, sms: Sms) -> None:
        n = self.counts[(sms.kind, sms.to)] = self.counts.get((sms.kind, sms.to), 0) + 1
        if sms.daily_cap and n > sms.daily_cap:
            self.capped += 1
            return
        self.messages.append(sms)
        self.sent.append((sms.to, sms.text))

    def to(self, msisdn: str) -> list[str]:
        return [text for number, text in self.sent if number == msisdn]

    async def fold_release(self, session: str, to: str, terminal: str, month: str, due: float, ttl: float) -> bool:
        if session not in self.firsts:
            self.firsts[session] = month
            return True
        if self.firsts[session] != month:
            _, _, months, _ = self.folds.get(session, (to, terminal, set(), due))
            self.folds[session] = (to, terminal, months | {month}, due)
        return False

    async def take_folds(self, *, session: str | None = None, due_by: float | None = None) -> list[ReleaseFold]:
        names = [session] if session is not None else [s for s, f in self.folds.items() if f[3] <= (due_by or 0)]
        taken = [self.folds.pop(n) for n in names if n in self.folds]
        return [ReleaseFold(to, terminal, tuple(sorted(months))) for to, terminal, months, _ in taken]

    async def last_delivery(self, msisdn: str, kind: SmsKind) -> SmsDelivery | None:
        mine = [m for m in self.messages if m.to == msisdn and m.kind == kind]
        return SmsDelivery("queued", 0.0, 0.0) if mine else None


@dataclass
class FakeAudit:
    events: list[Mapping[str, Any]] = field(default_factory=list)

    async def append(self, *events: Mapping[str, Any]) -> None:
        self.events.extend(dict(event) for event in events)

    async def check(self) -> None:
        return None
