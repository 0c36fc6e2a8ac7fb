"""The ports: what the gateway's rules need from the outside world, as small Protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
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
    subset (gateway/domain/clerk.py), never the SIM data (R7)."""

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


class SmsKind(StrEnum):
    """What an SMS is for. Codes are limited by the code throttle; each notice kind by a daily cap."""

    CODE = "code"
    SIM_SWAP = "sim_swap"
    LOCK = "lock"
    RELEASE = "release"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class Sms:
    """One message to a subscriber's phone. `expires_at` (epoch seconds) is the moment after which
    it is worthless: a code past its own expiry is dropped, never sent late. `daily_cap` > 0 holds
    back the message once the number had that many of this kind today (0: no cap)."""

    kind: SmsKind
    to: str
    text: str
    expires_at: float
    daily_cap: int = 0


@dataclass(frozen=True, slots=True)
class SmsDelivery:
    """What is known of a message's way to the phone, never its text. `state`: queued, submitted,
    delivered, undeliverable, expired (at the SMSC, or dropped unsent past its expiry), failed
    (dead-lettered), no_receipt (submitted, but no receipt came in time)."""

    state: str
    queued_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ReleaseFold:
    """Call-list months released in one kiosk session after its first, told in one notice."""

    to: str
    terminal: str
    months: tuple[str, ...]


class SmsSender(Protocol):
    """The durable queue to the operator's SMS centre: `send` only enqueues, so a request never
    waits for the SMSC. Raises DependencyUnavailable when the queue cannot take the message."""

    async def send(self, sms: Sms) -> None: ...


class SmsOutbox(SmsSender, Protocol):
    """The queue, with what the notice rules and the counter need of it."""

    async def fold_release(self, session: str, to: str, terminal: str, month: str, due: float,
                           ttl: float) -> bool:
        """Record that `month` was released in kiosk session `session`. True when it is the
        session's first release (the caller tells the owner at once); later months are kept
        (once each) for one notice, due at `due` (epoch seconds) unless the session ends first.
        The session's memory of its first release lasts `ttl` seconds."""
        ...

    async def take_folds(self, *, session: str | None = None, due_by: float | None = None) -> list[ReleaseFold]:
        """Atomically take (so exactly one process tells it) the fold of `session`, or every fold
        due by `due_by`. An empty fold is not returned."""
        ...

    async def last_delivery(self, msisdn: str, kind: SmsKind) -> SmsDelivery | None:
        """The way of the newest message of `kind` to `msisdn` (kept a day), or None."""
        ...


class AuditSink(Protocol):
    """Where audit events go. `append` returns only once its events are stored, else raises."""

    async def append(self, *events: Mapping[str, Any]) -> None:
        """Store the events in this order, all or none (several: one append, so that a stream whose
        only message is about to leave costs one write for its opening and closing events)."""
        ...

    async def check(self) -> None:
        """Return if events can be stored now, else raise DependencyUnavailable (a cheap probe a
        long stream makes before each further page leaves)."""
        ...


@dataclass(frozen=True, slots=True)
class SendSlot:
    """The answer of the send throttle: may a code be sent now, and is the number locked?"""

    allowed: bool
    retry_after: float
    locked_for: float


@dataclass(frozen=True, slots=True)
class AttemptLimits:
    """How many consecutive failed proofs lock a subject, for how long, and how long a failure is
    remembered."""

    threshold: int
    lock_for: float
    memory: float


@dataclass(frozen=True, slots=True)
class CodeClaim:
    """A one-time code to compare in the same atomic step that reserves the attempt."""

    purpose: str
    digest: str
    max_tries: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """One proof attempt, counted against `subject`'s lock before any secret is compared.

    `locked_for` > 0: refused, nothing may be compared (locked, or the limit is taken by attempts
    in flight). Otherwise `number` is this attempt's place in the count. With a CodeClaim,
    `code_ok` says whether the code matched (a matching code is taken, so no other attempt can
    use it); `code_tries` and `code_ttl` let `release_attempt` put the code back as it was."""

    subject: str
    locked_for: float
    number: int = 0
    code: CodeClaim | None = None
    code_ok: bool = False
    code_tries: int = 0
    code_ttl: float = 0.0


@dataclass(frozen=True, slots=True)
class Session:
    """What an access token stands for. The token itself is never stored, only its digest."""

    msisdn: str
    scope: str
    terminal: str
    # The token's digest: names the session (its release notices), is not part of what it stands for.
    ref: str = field(default="", compare=False)


class SignInState(Protocol):
    """Shared, atomically changed state of codes, throttles, failures, locks and tokens.

    Every method is one atomic step in the shared store, so any number of gateway processes
    behave as one. Raises DependencyUnavailable when the store cannot answer."""

    async def issue_code(self, msisdn: str, purpose: str, digest: str | None, ttl: float, min_interval: float,
                         max_per_hour: int) -> SendSlot:
        """Take a send slot and, if one was free, the number is not locked and `digest` is given,
        store the code (replacing an older one) in the same step. The slot is taken for every
        number, known or not, so throttling tells nothing about existence."""
        ...

    async def store_code(self, msisdn: str, purpose: str, digest: str, ttl: float) -> None: ...

    async def begin_attempt(self, subject: str, limits: AttemptLimits, code: CodeClaim | None = None) -> Attempt:
        """Reserve one attempt against `subject`'s lock (and claim or count the code), atomically,
        before anything secret is compared. Attempts in flight count: once `threshold` are
        reserved, further ones are refused until they settle."""
        ...

    async def fail_attempt(self, attempt: Attempt, limits: AttemptLimits) -> float:
        """The attempt failed: keep it counted; returns the lock duration if this failure locked
        the subject (only one failure ever does), else 0."""
        ...

    async def release_attempt(self, attempt: Attempt) -> None:
        """The attempt could not be judged (a dependency failed): uncount it and put a claimed
        code back, so a fault costs the owner nothing."""
        ...

    async def open_session(self, msisdn: str, token_digest: str, session: Session, idle: float,
                           absolute: float, now: float) -> None: ...

    async def touch_session(self, token_digest: str, idle: float, now: float) -> Session | None:
        """The session if alive (and extend its idle life), else None."""
        ...

    async def end_session(self, token_digest: str, terminal: str) -> bool:
        """End the session, but only when `terminal` is the one it was issued to. True if it ended."""
        ...

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
    """A customer present at a counter who proved ownership of `msisdn`; bound to the clerk, the
    terminal and the clerk's very sign-in (`staff_session`, its token digest) that opened it, so it
    ends with that sign-in: signed out, expired or ended because the account was disabled. `proof`
    is "id_document" or "password_and_code". `purpose` is why it was opened
    (gateway/domain/purposes.py; "" for a session stored before purposes existed, which only calls
    open to any purpose accept), `reason` the clerk's short words, if any. A session stored before
    `staff_session` existed has it empty and is bound to the clerk and terminal only."""

    msisdn: str
    staff_id: str
    terminal: str
    hall: str
    proof: str
    purpose: str = ""
    reason: str = ""
    staff_session: str = ""


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
    """The terminal deny-list, answered from memory on every call, refreshed in the background."""

    def revoked(self, terminal: str, serial: str) -> bool: ...

    async def refresh(self) -> None: ...

    async def run(self, every: float) -> None:
        """Refresh every `every` seconds until cancelled."""
        ...


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

    async def verify_incremental(self) -> Any:
        """An audit_chain.IncrementalResult: the events after the last signed verified position."""
        ...


class AuditTrailReader(AuditReader, AccessLog, Protocol):
    """The trail as auditors read it and as a subscriber's own access history reads it."""


class Throttle(Protocol):
    """Counters shared by every gateway process, for limits on callers that have no account to lock
    (the website's visitors, by address). Raises DependencyUnavailable when it cannot count."""

    async def hit(self, key: str, limit: int, window: float) -> float:
        """Count one call against `key` first, then answer: 0 while the window's count is within
        `limit`, else the seconds until the window ends."""
        ...


class Challenge(Protocol):
    """Bot defence for the website: a challenge a person's browser solved (a vendor's widget in
    production, adapters/dev_challenge.py in development). Raises DependencyUnavailable when the
    provider cannot answer."""

    async def verify(self, token: str, client: str) -> bool: ...
