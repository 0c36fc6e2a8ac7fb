"""Proof of ownership by service password + one-time SMS code (R9 way 1), shared by the kiosk
and the counter PIN pad: codes, send throttles, the SIM-swap guard, failure counting and locks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway import rules
from gateway.errors import TooManyRequests, Unauthenticated
from gateway.ports import Billing, SignInState, SmsSender
from gateway.settings import Settings


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


class OwnerProof:
    """The password + code rules, in the order the regulation asks for them."""

    def __init__(self, settings: Settings, state: SignInState, billing: Billing, sms: SmsSender, key: bytes,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), texts: Texts | None = None) -> None:
        self.s = settings
        self.state = state
        self.billing = billing
        self.sms = sms
        self.key = key
        self.clock = clock
        self.texts = texts or Texts()
        self.sim_guard = rules.SimSwapGuard(settings.sim_swap_window)

    async def request_code(self, msisdn: str, purpose: rules.Purpose) -> str:
        """Send a code if the number may have one. Returns the audit reason; the caller's answer
        is the same in every case, so nothing here tells whether the number exists."""
        slot = await self.state.take_send_slot(msisdn, self.s.send_min_interval, self.s.send_max_per_hour)
        if not slot.allowed:
            raise TooManyRequests("send_throttled", slot.retry_after)
        if slot.locked_for > 0:
            return "locked_no_code"
        sub = await self.billing.get_subscriber(msisdn)
        if not sub.exists:
            return "unknown_number"
        if self.sim_guard.holds(self.clock(), sub.sim_changed_at, sub.ported_at):
            await self.sms.send(msisdn, self.texts.sim_swap)
            return "sim_swap_hold"
        code = rules.new_code()
        await self.state.store_code(msisdn, purpose.value, rules.code_digest(self.key, msisdn, purpose, code),
                                    self.s.code_ttl)
        await self.sms.send(msisdn, self.texts.code[purpose].format(code=code, minutes=round(self.s.code_ttl / 60)))
        return "code_sent"

    async def check_lock(self, subject: str) -> None:
        locked = await self.state.lock_remaining(subject)
        if locked > 0:
            raise TooManyRequests("locked", locked)

    async def verify(self, msisdn: str, password: str, code: str, purpose: rules.Purpose) -> None:
        """Both proofs or nothing. The code is checked (and consumed) atomically first; the password
        is verified by billing whatever the code's outcome, so neither answer nor work tells which
        one was wrong. Every failure counts towards the lock, for known and unknown numbers alike."""
        digest = rules.code_digest(self.key, msisdn, purpose, code)
        check = await self.state.check_code(msisdn, purpose.value, digest, self.s.code_max_tries)
        if check.locked_for > 0:
            raise TooManyRequests("locked", check.locked_for)
        password_ok = await self.billing.verify_service_password(msisdn, password)
        if not (check.code_ok and password_ok):
            await self.fail(msisdn)

    async def fail(self, msisdn: str, subject: str | None = None) -> None:
        """Count one failed proof towards `subject`'s lock (the number itself, every channel, by
        default); at the threshold lock it and tell the owner."""
        locked_for = await self.state.record_failure(subject or msisdn, self.s.lock_threshold,
                                                     self.s.lock_duration, self.s.fail_memory)
        if locked_for > 0:
            if subject is None and (await self.billing.get_subscriber(msisdn)).exists:
                await self.sms.send(msisdn, self.texts.locked.format(
                    tries=self.s.lock_threshold, minutes=round(self.s.lock_duration / 60)))
            raise TooManyRequests("locked_now", locked_for)
        raise Unauthenticated("bad_credentials")
