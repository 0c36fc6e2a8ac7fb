"""Staff sign-in (R6): staff id + password + TOTP, on the terminal their role belongs to.

Passwords are slow salted hashes, expire after 90 days, and 5 failures lock the account for 30
minutes. A TOTP code is accepted once only. Sessions are bound to the terminal certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pyotp

from gateway.domain import passwords, rules
from gateway.domain.config import pick
from gateway.domain.errors import (
    DependencyUnavailable,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    TooManyRequests,
    Unauthenticated,
)
from gateway.domain.identity import Identity
from gateway.domain.policy import SIGN_IN_CHANNELS, Role
from gateway.domain.ports import AttemptLimits, Sessions, SignInState, StaffDirectory, StaffRecord, StaffSession

HALL_ROLES = {Role.CLERK, Role.HALL_MANAGER, Role.CUSTODIAN}  # sign in only at their own hall's terminals


@dataclass(frozen=True, slots=True)
class StaffGrant:
    token: str
    staff_id: str
    role: str
    idle_timeout: float


def totp_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code matches (the current one or its neighbours), or None."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


@dataclass(frozen=True, slots=True)
class StaffConfig:
    """What staff sign-in needs of the settings."""

    lock_threshold: int = 5
    lock_duration: float = 1800
    fail_memory: float = 86400
    staff_password_max_age: float = 90 * 86400
    staff_hash_n: int = 2**14
    staff_idle: float = 900

    @classmethod
    def from_settings(cls, settings: Any) -> StaffConfig:
        return pick(cls, settings)


class StaffDesk:
    """Sign-in, password change and sign-out for staff."""

    def __init__(self, config: StaffConfig, directory: StaffDirectory, state: SignInState, sessions: Sessions,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.s = config
        self.directory = directory
        self.state = state
        self.sessions = sessions
        self.clock = clock
        self.limits = AttemptLimits(config.lock_threshold, config.lock_duration, config.fail_memory)

    async def _verify(self, staff_id: str, password: str, code: str) -> StaffRecord:
        """The record if password and TOTP are right (the TOTP step is then used up); else one
        generic failure that counts towards the account lock. The attempt is counted before the
        password is hashed, so a burst of guesses gets at most the threshold of comparisons."""
        subject = f"staff:{staff_id}"
        attempt = await self.state.begin_attempt(subject, self.limits)
        if attempt.locked_for > 0:
            raise TooManyRequests("staff_locked", attempt.locked_for)
        try:
            record = await self.directory.get(staff_id)
            usable = record is not None and not record.disabled
            password_ok = await asyncio.to_thread(passwords.verify_password, password,
                                                  record.password_hash if usable and record else None)
            step = totp_step(record.totp_secret, code, self.clock()) if usable and record else None
            ok = usable and password_ok and step is not None
            if ok and step is not None:
                ok = await self.directory.accept_totp_step(staff_id, step)
        except DependencyUnavailable:
            with contextlib.suppress(DependencyUnavailable):
                await self.state.release_attempt(attempt)
            raise
        if not ok or record is None:
            if await self.state.fail_attempt(attempt, self.limits) > 0:
                raise TooManyRequests("staff_locked_now", self.s.lock_duration)
            raise Unauthenticated("bad_staff_credentials")
        await self.state.reset_failures(subject)
        return record

    async def sign_in(self, identity: Identity, staff_id: str, password: str, code: str) -> StaffGrant:
        record = await self._verify(staff_id, password, code)
        role = Role(record.role)
        if identity.channel not in SIGN_IN_CHANNELS[role] or (role in HALL_ROLES and record.hall != identity.hall):
            raise PermissionDenied("wrong_terminal_for_role")
        if self.clock().timestamp() - record.password_changed_at > self.s.staff_password_max_age:
            raise FailedPrecondition("password_expired")
        token = rules.new_token()
        session = StaffSession(record.staff_id, record.role, identity.terminal, identity.hall)
        await self.sessions.open_staff(rules.token_digest(token), session, self.s.staff_idle)
        return StaffGrant(token, record.staff_id, record.role, self.s.staff_idle)

    async def change_password(self, staff_id: str, old: str, new: str, code: str) -> None:
        problems = passwords.staff_password_problems(new)
        if new == old:
            problems.append("must differ from the current password")
        if problems:
            raise InvalidArgument([("new_password", p) for p in problems])
        record = await self._verify(staff_id, old, code)
        hashed = await asyncio.to_thread(passwords.hash_password, new, self.s.staff_hash_n)
        await self.directory.put(replace(record, password_hash=hashed, password_changed_at=self.clock().timestamp()))

    async def sign_out(self, token: str) -> None:
        await self.sessions.end("staff", rules.token_digest(token))
