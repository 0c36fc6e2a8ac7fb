"""The counter (R2, R4, R9 way 2): a clerk serves a customer who is present and proved ownership.

A customer session is opened by the owner's ID document, checked in person, or by service
password + SMS code typed on the PIN pad, for a stated purpose (gateway/domain/purposes.py: what it
may do is the policy table's say). It is bound to the clerk, the terminal and the number.
Inside it: a minimal masked profile, whether the last code SMS reached the phone, and (ID document
only) a service password reset. Never call details: after a reset the customer uses a kiosk with
the new password and a code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.domain import passwords, resident_id, rules
from gateway.domain.config import pick
from gateway.domain.errors import InvalidArgument, TooManyRequests, Unauthenticated
from gateway.domain.notices import Notices
from gateway.domain.owner_proof import OwnerProof
from gateway.domain.ports import Billing, CustomerProfile, CustomerSession, Sessions, SmsDelivery, SmsKind
from gateway.domain.purposes import SessionPurpose

ID_DOCUMENT = "id_document"
PASSWORD_AND_CODE = "password_and_code"  # noqa: S105 - a proof kind, not a password
NEXT_STEP = ("The service password is reset. To get the call list, use a self-service kiosk: enter the new "
             "password and the code sent to the phone. Staff cannot print call lists.")
RESET_TEXT = ("[hallgate] Your service password was reset at service hall {hall} on {date} after your ID "
              "card was checked. If this was not you, call customer service at once.")


@dataclass(frozen=True, slots=True)
class IdDocument:
    """What the clerk read from the card."""

    document_type: str
    number: str
    name: str
    birth_date: str
    sex: str


@dataclass(frozen=True, slots=True)
class CounterProfile:
    """What a counter may see of a customer: minimal and masked, never SIM data (R7)."""

    msisdn_masked: str
    name_masked: str
    document_number_masked: str
    address_district: str
    plan_name: str
    account_status: str
    proved_by: str
    purpose: str = ""


def counter_view(msisdn: str, full: CustomerProfile, proved_by: str, purpose: str = "") -> CounterProfile:
    """The only way a profile leaves the gateway: explicit fields, each masked (R1, R7)."""
    number = full.document_number
    return CounterProfile(
        msisdn_masked=rules.mask_msisdn(msisdn),
        name_masked=full.name[:1] + "*" * max(len(full.name) - 1, 1),
        document_number_masked="*" * max(len(number) - 4, 0) + number[-4:],
        address_district=" ".join(p for p in (full.province, full.city, full.district) if p),
        plan_name=full.plan_name,
        account_status=full.account_status,
        proved_by=proved_by,
        purpose=purpose,
    )


@dataclass(frozen=True, slots=True)
class ClerkConfig:
    """What the counter's rules need of the settings."""

    timezone: str = "Asia/Shanghai"
    customer_session_idle: float = 600
    notify_subscriber: bool = True

    @classmethod
    def from_settings(cls, settings: Any) -> ClerkConfig:
        return pick(cls, settings)


class ClerkDesk:
    """Customer sessions at the counter, over the shared owner proof."""

    def __init__(self, config: ClerkConfig, proof: OwnerProof, billing: Billing, notices: Notices, sessions: Sessions,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.s = config
        self.proof = proof
        self.billing = billing
        self.notices = notices
        self.sessions = sessions
        self.clock = clock

    async def request_code(self, msisdn: str) -> str:
        return await self.proof.request_code(msisdn, rules.Purpose.COUNTER)

    def check_document(self, doc: IdDocument) -> None:
        """R4, before anything is asked of billing: the ID number's check character, and the
        birth date and sex on the card agree with it. A mismatch is a misread card: a field error."""
        problems = resident_id.problems(doc.number, doc.birth_date, doc.sex, rules.local_today(
            self.clock(), self.s.timezone))
        if problems:
            raise InvalidArgument([(f"id_document.{f}", d) for f, d in problems])

    async def open_by_document(self, staff_id: str, terminal: str, hall: str, msisdn: str, doc: IdDocument,
                               purpose: SessionPurpose, reason: str = "", staff_session: str = "") -> str:
        """R9 way 2. The owner in person with their card is how a number locked by wrong passwords
        gets served again, so the password lock does not apply here; document mismatches count
        towards a lock of their own."""
        self.check_document(doc)
        subject = f"id-document:{msisdn}"
        attempt = await self.proof.state.begin_attempt(subject, self.proof.limits)
        if attempt.locked_for > 0:
            raise TooManyRequests("locked", attempt.locked_for)
        match = await self.proof.judged(attempt, self.billing.verify_owner_document(
            msisdn, doc.document_type, doc.number.upper(), doc.name))
        if not match:
            await self.proof.fail(attempt)
        await self.proof.state.reset_failures(subject)
        return await self._open(CustomerSession(msisdn, staff_id, terminal, hall, ID_DOCUMENT, purpose, reason,
                                                staff_session))

    async def open_by_password(self, staff_id: str, terminal: str, hall: str, msisdn: str, password: str,
                               code: str, purpose: SessionPurpose, reason: str = "", staff_session: str = "") -> str:
        await self.proof.verify(msisdn, password, code, rules.Purpose.COUNTER)
        return await self._open(CustomerSession(msisdn, staff_id, terminal, hall, PASSWORD_AND_CODE, purpose,
                                                reason, staff_session))

    async def _open(self, session: CustomerSession) -> str:
        if session.proof == PASSWORD_AND_CODE:
            await self.proof.state.reset_failures(session.msisdn)
        token = rules.new_token()
        await self.sessions.open_customer(rules.token_digest(token), session, self.s.customer_session_idle)
        return token

    async def profile(self, session: CustomerSession) -> CounterProfile:
        full = await self.billing.get_customer_profile(session.msisdn)
        if full is None:
            raise Unauthenticated("customer_gone")
        return counter_view(session.msisdn, full, session.proof, session.purpose)

    async def reset_password(self, session: CustomerSession, new_password: str) -> str:
        """Only reachable in an ID-document session (the policy table says so). Refuses trivial
        passwords, lifts the number's lock, and tells the owner by SMS (without the password)."""
        full = await self.billing.get_customer_profile(session.msisdn)
        if full is None:
            raise Unauthenticated("customer_gone")
        why = passwords.trivial_service_password(new_password, birth_date=full.birth_date,
                                                 document_number=full.document_number, msisdn=session.msisdn)
        if why:
            raise InvalidArgument([("new_service_password", why)])
        await self.billing.set_service_password(session.msisdn, new_password)
        await self.proof.state.reset_failures(session.msisdn, unlock=True)
        if self.s.notify_subscriber:
            day = rules.local_today(self.clock(), self.s.timezone).isoformat()
            await self.notices.tell(SmsKind.RESET, session.msisdn, RESET_TEXT.format(hall=session.hall, date=day))
        return NEXT_STEP

    async def code_delivery(self, session: CustomerSession) -> SmsDelivery | None:
        """What became of the newest code SMS to the session's number (kiosk or counter, kind CODE
        covers both; kept a day), or None. Its state and times only: never its text or code."""
        return await self.notices.outbox.last_delivery(session.msisdn, SmsKind.CODE)

    async def close(self, token: str) -> None:
        await self.sessions.end("customer", rules.token_digest(token))
