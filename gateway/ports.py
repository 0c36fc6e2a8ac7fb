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


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """The owner's full profile as billing holds it. Internal: what leaves the gateway is a masked
    subset (gateway/clerk.py), never the SIM data (R7)."""

    name: str
    document_type: str  # "resident_id_card" | "passport"
    document_number: str
    birth_date: str  # YYYY-MM-DD
    sex: str  # "female" | "male" | ""
    province: str
    city: str
    district: str
    street: str
    plan_name: str
    account_status: str
    iccid: str
    imsi: str


class Billing(Protocol):
    """The operator's billing system. Raises DependencyUnavailable when it cannot answer."""

    async def verify_service_password(self, msisdn: str, password: str) -> bool: ...

    async def get_subscriber(self, msisdn: str) -> Subscriber: ...

    async def verify_owner_document(self, msisdn: str, document_type: str, document_number: str,
                                    name: str) -> bool: ...

    async def get_customer_profile(self, msisdn: str) -> CustomerProfile | None: ...

    async def set_service_password(self, msisdn: str, new_password: str) -> None: ...

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

    async def lock_remaining(self, subject: str) -> float:
        """Seconds left on `subject`'s lock (a number, or "staff:<id>"), 0 if not locked."""
        ...

    async def reset_failures(self, subject: str, unlock: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class StaffRecord:
    """A staff member in the directory. Only a slow salted hash of the password is kept; the TOTP
    secret is plain here and sealed at rest by the store.

    `employee_no` names the person behind the account (unique: one account per person), so rules
    such as four eyes compare people, not accounts. Records from before employee numbers have none:
    each such account counts as a person of its own."""

    staff_id: str
    name: str
    role: str
    hall: str
    password_hash: str
    password_changed_at: float
    totp_secret: str
    disabled: bool = False
    employee_no: str = ""

    @property
    def person(self) -> str:
        """Who this account belongs to: "employee:<no>", or "staff:<id>" for a record without one."""
        return f"employee:{self.employee_no}" if self.employee_no else f"staff:{self.staff_id}"


@dataclass(frozen=True, slots=True)
class StaffSession:
    """A signed-in staff member, bound to the terminal certificate they signed in on."""

    staff_id: str
    role: str
    terminal: str
    hall: str


@dataclass(frozen=True, slots=True)
class CustomerSession:
    """A customer present at a counter who proved ownership of `msisdn`; bound to the clerk and
    the terminal that opened it. `proof` is "id_document" or "password_and_code"."""

    msisdn: str
    staff_id: str
    terminal: str
    hall: str
    proof: str


class StaffDirectory(Protocol):
    """Staff accounts, and the TOTP steps already used (a code is accepted once only)."""

    async def get(self, staff_id: str) -> StaffRecord | None: ...

    async def put(self, record: StaffRecord) -> None: ...

    async def all(self) -> list[StaffRecord]: ...

    async def is_active(self, staff_id: str) -> bool:
        """True if the account exists and is not disabled (checked on every staff call)."""
        ...

    async def accept_totp_step(self, staff_id: str, step: int) -> bool:
        """Atomically accept `step` only if it is later than every step accepted before."""
        ...


class Sessions(Protocol):
    """Staff and customer sessions, stored by token digest, with an idle lifetime."""

    async def open_staff(self, digest: str, session: StaffSession, idle: float) -> None: ...

    async def staff(self, digest: str, idle: float) -> StaffSession | None: ...

    async def open_customer(self, digest: str, session: CustomerSession, idle: float) -> None: ...

    async def customer(self, digest: str, idle: float) -> CustomerSession | None: ...

    async def end(self, kind: str, digest: str) -> None: ...


class Revocations(Protocol):
    """The terminal deny-list, answered from memory on every call."""

    def revoked(self, terminal: str, serial: str) -> bool: ...


class AccessLog(Protocol):
    """Read side of the audit trail, for the subscriber's own access history."""

    def accesses(self, subscriber_ref: str, since: datetime) -> AsyncIterator[Mapping[str, str]]:
        """Stored events about one subscriber (by keyed pseudonym) since a time, oldest first."""
        ...


class AuditReader(Protocol):
    """Auditors' read access to the audit chain."""

    def query(self, where: Any, limit: int | None = None) -> AsyncIterator[dict[str, str]]:
        """Stored events matching an audit_chain.AuditFilter, oldest first."""
        ...

    async def verify(self, start_seq: int | None, end_seq: int | None) -> Any:
        """An audit_chain.VerifyResult for the range."""
        ...
