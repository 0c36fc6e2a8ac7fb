"""The kiosk call-list path (R4, R9 way 1): one-time code, owner sign-in, call list, sign-out.

Pure service logic over the ports: no gRPC, no Redis. Inputs arrive validated by the servicer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway import rules
from gateway.errors import TooManyRequests, Unauthenticated
from gateway.ports import Billing, Session, SignInState, SmsSender
from gateway.settings import Settings

CALL_LIST_SCOPE = "call_list"


@dataclass(frozen=True, slots=True)
class Texts:
    """What the operator sends by SMS. Never a password; a code only in the code message."""

    code: str = ("[hallgate] Your verification code is {code}. It is valid for {minutes} minutes and "
                 "only for viewing your call list. Never tell it to anyone, including our staff.")
    sim_swap: str = ("[hallgate] Someone asked for your call list at a self-service kiosk. Your SIM card "
                     "was changed recently, so no code was sent. If this was you, please visit a service "
                     "hall with your ID card. If it was not, call customer service.")
    locked: str = ("[hallgate] Your service password was entered wrongly {tries} times. Self-service "
                   "access to your account is locked for {minutes} minutes. If this was not you, call "
                   "customer service.")


@dataclass(frozen=True, slots=True)
class Grant:
    """A successful sign-in: the token goes to the kiosk, the rest to the audit trail."""

    token: str
    idle_timeout: float
    expires_at: datetime


class KioskFlows:
    """The kiosk's rules, in the order the regulation asks for them."""

    def __init__(self, settings: Settings, state: SignInState, billing: Billing, sms: SmsSender,
                 key: bytes, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 texts: Texts = Texts()) -> None:
        self.s = settings
        self.state = state
        self.billing = billing
        self.sms = sms
        self.key = key
        self.clock = clock
        self.texts = texts
        self.sim_guard = rules.SimSwapGuard(settings.sim_swap_window)

    async def request_code(self, msisdn: str, purpose: rules.Purpose = rules.Purpose.CALL_LIST) -> str:
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
        await self.sms.send(msisdn, self.texts.code.format(code=code, minutes=round(self.s.code_ttl / 60)))
        return "code_sent"

    async def authenticate(self, msisdn: str, password: str, code: str, terminal: str = "",
                           purpose: rules.Purpose = rules.Purpose.CALL_LIST) -> Grant:
        """Both proofs or nothing. The code is checked (and consumed) atomically first; the password
        is verified by billing whatever the code's outcome, so neither answer nor work tells which
        one was wrong. Every failure counts towards the lock, for known and unknown numbers alike."""
        digest = rules.code_digest(self.key, msisdn, purpose, code)
        check = await self.state.check_code(msisdn, purpose.value, digest, self.s.code_max_tries)
        if check.locked_for > 0:
            raise TooManyRequests("locked", check.locked_for)
        password_ok = await self.billing.verify_service_password(msisdn, password)
        if not (check.code_ok and password_ok):
            locked_for = await self.state.record_failure(msisdn, self.s.lock_threshold, self.s.lock_duration,
                                                         self.s.fail_memory)
            if locked_for > 0:
                await self._tell_owner_locked(msisdn)
                raise TooManyRequests("locked_now", locked_for)
            raise Unauthenticated("bad_credentials")
        token = rules.new_token()
        now = self.clock()
        await self.state.open_session(msisdn, rules.token_digest(token), Session(msisdn, CALL_LIST_SCOPE, terminal),
                                      self.s.token_idle, self.s.token_absolute, now.timestamp())
        return Grant(token, self.s.token_idle, now + timedelta(seconds=self.s.token_absolute))

    async def _tell_owner_locked(self, msisdn: str) -> None:
        if (await self.billing.get_subscriber(msisdn)).exists:
            await self.sms.send(msisdn, self.texts.locked.format(
                tries=self.s.lock_threshold, minutes=round(self.s.lock_duration / 60)))

    async def session(self, token: str, terminal: str = "", scope: str = CALL_LIST_SCOPE) -> Session:
        """The live session behind a token, or Unauthenticated (unknown, expired, ended, issued for
        another scope, or presented by another terminal than the one it was issued to)."""
        found = await self.state.touch_session(rules.token_digest(token), self.s.token_idle,
                                               self.clock().timestamp())
        if found is None or found.scope != scope or found.terminal != terminal:
            raise Unauthenticated("bad_token")
        return found

    def today(self) -> rules.date:
        return rules.local_today(self.clock(), self.s.timezone)

    def call_detail_pages(self, session: Session, month: str) -> AsyncIterator[bytes]:
        """The owner's month, page by page straight from billing: the gateway stores none of it."""
        return self.billing.call_detail_pages(session.msisdn, month)

    async def end_session(self, token: str) -> None:
        await self.state.end_session(rules.token_digest(token))
