"""Proof of ownership by service password + one-time SMS code (R9 way 1), shared by the kiosk
and the counter PIN pad: codes, send throttles, the SIM-swap guard, failure counting and locks."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

from gateway.domain import effects, pacing, rules
from gateway.domain.config import pick
from gateway.domain.errors import DependencyUnavailable, TooManyRequests, Unauthenticated
from gateway.domain.notices import Notices
from gateway.domain.ports import Attempt, AttemptLimits, Billing, CodeClaim, SignInState, SmsKind

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Texts:
    """What the operator sends by SMS. Never a password; a code only in the code messages."""

    code: dict[rules.Purpose, str] = None  # type: ignore[assignment]
    sim_swap: str = ("[hallgate] Someone asked for your call list at a self-service kiosk. Your SIM card "
                     "was changed recently, so no code was sent. If this was you, please visit a service "
                     "hall with your ID card. If it was not, call customer service.")
    locked: str = ("[hallgate] Your service password was entered wrongly {tries} times. Self-service "
                   "access to your account is locked for {minutes} minutes. If this was not you, call "
                   "customer service.")

    def __post_init__(self) -> None:
        if self.code is None:
            object.__setattr__(self, "code", {
                rules.Purpose.CALL_LIST: (
                    "[hallgate] Your verification code is {code}. It is valid for {minutes} minutes and only "
                    "for viewing your call list. Never tell it to anyone, including our staff."),
                rules.Purpose.COUNTER: (
                    "[hallgate] Your verification code is {code}. It is valid for {minutes} minutes and only "
                    "for identifying yourself at a service hall counter. Type it on the PIN pad yourself; "
                    "never tell it to anyone, including our staff."),
            })


@dataclass(frozen=True, slots=True)
class ProofConfig:
    """What the owner proof needs of the settings (gateway/runtime/settings.py has each one's meaning)."""

    code_ttl: float = 300
    code_max_tries: int = 5
    send_min_interval: float = 60
    send_max_per_hour: int = 5
    sim_swap_window: float = 72 * 3600
    lock_threshold: int = 5
    lock_duration: float = 1800
    fail_memory: float = 86400
    answer_floor: float = 0.3

    @classmethod
    def from_settings(cls, settings: Any) -> ProofConfig:
        return pick(cls, settings)


class OwnerProof:
    """The password + code rules, in the order the regulation asks for them.

    Attempts are counted before anything is compared (a burst of guesses from any number of
    gateway processes gets at most `lock_threshold` comparisons), a fault in a dependency costs
    the owner nothing (no slot, no try, no code), and every code request and every failed proof is
    answered no sooner than `answer_floor` after the call began (gateway/domain/pacing.py), so a known,
    unknown, locked, SIM-swapped or throttled number, a wrong code and a wrong password all take
    the same time to the caller, whatever the branch cost inside."""

    def __init__(self, config: ProofConfig, state: SignInState, billing: Billing, notices: Notices, key: bytes,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), texts: Texts | None = None) -> None:
        self.s = config
        self.state = state
        self.billing = billing
        self.notices = notices
        self.key = key
        self.clock = clock
        self.texts = texts or Texts()
        self.sim_guard = rules.SimSwapGuard(config.sim_swap_window)
        self.limits = AttemptLimits(config.lock_threshold, config.lock_duration, config.fail_memory)

    async def request_code(self, msisdn: str, purpose: rules.Purpose) -> str:
        """Send a code if the number may have one. Returns the audit reason; the caller's answer
        is the same in every case, so nothing here tells whether the number exists.

        Every number costs the same work: billing is asked first (so a billing fault spends no
        slot), then one atomic step takes the slot and stores the code where there is one to send.
        The SMS leaves only once the call is on record, off the request path; the answer comes no
        sooner than the floor, whatever the number's state or outcome."""
        pacing.answer_not_before(self.s.answer_floor)
        return await self._request_code(msisdn, purpose)

    async def _request_code(self, msisdn: str, purpose: rules.Purpose) -> str:
        sub = await self.billing.get_subscriber(msisdn)
        hold = sub.exists and self.sim_guard.holds(self.clock(), sub.sim_changed_at, sub.ported_at)
        code = rules.new_code()
        digest = rules.code_digest(self.key, msisdn, purpose, code)
        text = self.texts.code[purpose].format(code=code, minutes=round(self.s.code_ttl / 60))
        slot = await self.state.issue_code(msisdn, purpose.value, digest if sub.exists and not hold else None,
                                           self.s.code_ttl, self.s.send_min_interval, self.s.send_max_per_hour)
        if not slot.allowed:
            raise TooManyRequests("send_throttled", slot.retry_after)
        if slot.locked_for > 0:
            return "locked_no_code"
        if not sub.exists:
            return "unknown_number"
        if hold:
            await self.notices.tell(SmsKind.SIM_SWAP, msisdn, self.texts.sim_swap)
            return "sim_swap_hold"
        await self.notices.code(msisdn, text, self.s.code_ttl)
        return "code_sent"

    async def verify(self, msisdn: str, password: str, code: str, purpose: rules.Purpose) -> None:
        """Both proofs or nothing. The attempt is counted and the code claimed in one atomic step
        first; the password is verified by billing whatever the code's outcome, so neither answer
        nor work tells which one was wrong. Every failure counts towards the lock, for known and
        unknown numbers alike. The caller's success step (opening a session) clears the count."""
        claim = CodeClaim(purpose.value, rules.code_digest(self.key, msisdn, purpose, code), self.s.code_max_tries)
        try:
            attempt = await self.state.begin_attempt(msisdn, self.limits, claim)
            if attempt.locked_for > 0:
                raise TooManyRequests("locked", attempt.locked_for)
            password_ok = await self.judged(attempt, self.billing.verify_service_password(msisdn, password))
            if not (attempt.code_ok and password_ok):
                await self.fail(attempt, notify=msisdn)
        except (Unauthenticated, TooManyRequests):
            pacing.answer_not_before(self.s.answer_floor)
            raise

    async def judged(self, attempt: Attempt, check: Awaitable[T]) -> T:
        """The outcome of `check`; if a dependency fails instead, the attempt is released (not
        counted, its code put back) before the failure goes on."""
        try:
            return await check
        except DependencyUnavailable:
            with contextlib.suppress(DependencyUnavailable):
                await self.state.release_attempt(attempt)
            raise

    async def fail(self, attempt: Attempt, notify: str | None = None) -> NoReturn:
        """The attempt failed: it stays counted; the failure that reaches the threshold locks the
        subject and, with `notify`, tells that number's owner (if it has one) once on record."""
        locked_for = await self.state.fail_attempt(attempt, self.limits)
        if locked_for > 0:
            if notify is not None:
                await effects.defer(lambda: self._notify_locked(notify))
            raise TooManyRequests("locked_now", locked_for)
        raise Unauthenticated("bad_credentials")

    async def _notify_locked(self, msisdn: str) -> None:
        if (await self.billing.get_subscriber(msisdn)).exists:
            await self.notices.tell(SmsKind.LOCK, msisdn, self.texts.locked.format(
                tries=self.s.lock_threshold, minutes=round(self.s.lock_duration / 60)))
