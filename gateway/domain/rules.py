"""The hall's rules that are pure logic: input formats, the retention window, masking, codes.

Nothing here touches gRPC or Redis, so every rule can be read and tested in one place.
Rule ids (R1…R10) refer to docs/hall-rules.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from gateway.domain.errors import InvalidArgument

MSISDN_RE = re.compile(r"1[3-9][0-9]{9}")
SIX_DIGITS_RE = re.compile(r"[0-9]{6}")
MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_FIELD_CHARS = 64


class Purpose(StrEnum):
    """What a one-time code was requested for; a code proves nothing for any other purpose."""

    CALL_LIST = "call_list"
    COUNTER = "counter_session"


class Violations:
    """Collects field violations so a request reports all its bad fields at once."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def check(self, field: str, value: str, pattern: re.Pattern[str], what: str) -> str:
        if len(value) > MAX_FIELD_CHARS:
            self.items.append((field, f"must be at most {MAX_FIELD_CHARS} characters"))
        elif not value:
            self.items.append((field, f"is required: {what}"))
        elif not pattern.fullmatch(value):
            self.items.append((field, f"must be {what}"))
        return value

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def check_msisdn(v: Violations, value: str, field: str = "msisdn") -> str:
    return v.check(field, value, MSISDN_RE, "an 11-digit mobile number starting with 1, digits only")


def check_service_password(v: Violations, value: str, field: str = "service_password") -> str:
    return v.check(field, value, SIX_DIGITS_RE, "6 digits")


def check_code(v: Violations, value: str, field: str = "one_time_code") -> str:
    return v.check(field, value, SIX_DIGITS_RE, "6 digits")


def check_token(v: Violations, value: str, field: str = "access_token") -> str:
    return v.check(field, value, TOKEN_RE, "the access token returned by Authenticate")


def check_month(v: Violations, value: str, today: date, window_months: int, field: str = "month") -> str:
    """A month "YYYY-MM" within the retention window: this month and the `window_months - 1` before."""
    v.check(field, value, MONTH_RE, 'a calendar month written "YYYY-MM"')
    m = MONTH_RE.fullmatch(value)
    if m and not any(f == field for f, _ in v.items):
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            v.items.append((field, 'must be a calendar month written "YYYY-MM"'))
        else:
            age = (today.year - year) * 12 + (today.month - month)
            if not 0 <= age < window_months:
                oldest = month_add(today, -(window_months - 1))
                v.items.append((field, f"must be between {oldest} and {today:%Y-%m} (the retention window)"))
    return value


def month_add(day: date, months: int) -> str:
    index = day.year * 12 + day.month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def local_today(now: datetime, tz: str) -> date:
    return now.astimezone(ZoneInfo(tz)).date()


def mask_msisdn(msisdn: str) -> str:
    """`13800000001` → `138****0001`: enough for an auditor to match, not enough to dial."""
    if MSISDN_RE.fullmatch(msisdn):
        return f"{msisdn[:3]}****{msisdn[-4:]}"
    return "invalid"


def subscriber_ref(key: bytes, msisdn: str) -> str:
    """A keyed pseudonym of a number for the audit trail: masked numbers collide (138****0001 is
    many numbers), this does not, and without the key it cannot be turned back into the number."""
    return hmac.new(key, f"subscriber|{msisdn}".encode(), hashlib.sha256).hexdigest()[:24]


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def code_digest(key: bytes, msisdn: str, purpose: Purpose, code: str) -> str:
    """Codes are stored only as a keyed hash bound to number and purpose: a copy of Redis cannot be
    brute-forced over the 10^6 codes without the key, and a code proves nothing for another purpose."""
    return hmac.new(key, f"{msisdn}|{purpose.value}|{code}".encode(), hashlib.sha256).hexdigest()


def new_token() -> str:
    """256 random bits, URL-safe; only its SHA-256 is stored, so Redis never holds a usable token.
    Never starting with "-": a token is passed on command lines (`--staff-token "$T"`), where a
    leading dash reads as an option (one token in 64 would otherwise fail there)."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SimSwapGuard:
    """NIST 800-63B §5.1.3.3: an SMS code is only as strong as the SIM. A number whose SIM changed
    or which was ported in within the window gets no code; the owner is asked to come in person."""

    window_seconds: float

    def holds(self, now: datetime, sim_changed_at: datetime | None, ported_at: datetime | None) -> bool:
        return any(
            t is not None and (now - t).total_seconds() < self.window_seconds
            for t in (sim_changed_at, ported_at)
        )
