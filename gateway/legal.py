"""The legal channel (R5): law-enforcement requests, their review, and the signed delivery of data.

The model follows the shape of ETSI TS 103 120 (an authorisation with its document, a task that
delivers data, and the task states), reduced to what a branch office's legal department needs:

    register ─► AWAITING_APPROVAL ─approve─► AWAITING_DISCLOSURE ─fulfil─► DISCLOSING ─► DISCLOSED
                   │   ▲                          │        │  (lapse)          │    └──► DISCLOSURE_NOT_AVAILABLE
                   │   └──────── interrupted ─────┼────────┼───────────────────┘
                   ├─reject─► REJECTED            │        └─► EXPIRED
                   ├─mark invalid─► INVALID ◄─────┤
                   └─cancel─► CANCELLED ◄─────────┘

Final states stay final. Every transition names who (staff id and role) and why. Four eyes: the
approver holds the approver role and is not the officer who registered the request. Approvals
lapse after `approval_days`; the lapse is recorded lazily, the first time anyone looks. A request
is fulfilled once: the fulfilment moves it atomically to DISCLOSING, so two fulfilments cannot both
start; one that fails midway sends it back to AWAITING_APPROVAL, so another needs a new approval.

No tipping off: nothing here can reach a subscriber or a hall. The desk has no SMS port, writes no
per-number state a hall path reads, and keeps no index by target number.

Pure rules and service logic over ports: no gRPC, no Redis. Rule ids refer to ../shared/hall-rules.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from gateway import delivery, rules
from gateway.errors import DomainError, FailedPrecondition, NotFound, PermissionDenied
from gateway.ports import CustomerProfile, Subscriber

# --- vocabulary --------------------------------------------------------------------------------


class AgencyKind(StrEnum):
    """The organs that may ask (Telecommunications Regulations art. 66, R5)."""

    PUBLIC_SECURITY = "public_security"
    PROCURATORATE = "procuratorate"
    STATE_SECURITY = "state_security"


class AgencyLevel(StrEnum):
    NATIONAL = "national"
    PROVINCIAL = "provincial"
    PREFECTURE = "prefecture"
    COUNTY = "county"
    TOWNSHIP = "township"


ACCEPTED_LEVELS = frozenset({AgencyLevel.NATIONAL, AgencyLevel.PROVINCIAL, AgencyLevel.PREFECTURE})


class Category(StrEnum):
    SUBSCRIBER_INFO = "subscriber_info"
    CALL_DETAILS = "call_details"
    COMMUNICATION_CONTENT = "communication_content"  # named only to be refused (R1)


AVAILABLE_CATEGORIES = (Category.SUBSCRIBER_INFO, Category.CALL_DETAILS)  # also the delivery order


class State(StrEnum):
    """ETSI TS 103 120 task states, plus DISCLOSING while a fulfilment streams."""

    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_DISCLOSURE = "awaiting_disclosure"
    DISCLOSING = "disclosing"
    DISCLOSED = "disclosed"
    DISCLOSURE_NOT_AVAILABLE = "disclosure_not_available"
    REJECTED = "rejected"
    INVALID = "invalid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINAL_STATES = frozenset({State.DISCLOSED, State.DISCLOSURE_NOT_AVAILABLE, State.REJECTED, State.INVALID,
                          State.CANCELLED, State.EXPIRED})


class Role(StrEnum):
    """The staff roles of the legal channel (the same values as gateway.policy.Role), and the
    gateway itself for what happens by lapse of time or failure."""

    LEGAL_OFFICER = "legal_officer"
    LEGAL_APPROVER = "legal_approver"
    AUDITOR = "auditor"
    SYSTEM = "system"


READER_ROLES = frozenset({Role.LEGAL_OFFICER, Role.LEGAL_APPROVER, Role.AUDITOR})


class Action(StrEnum):
    REGISTER = "register"
    APPROVE = "approve"
    REJECT = "reject"
    MARK_INVALID = "mark_invalid"
    CANCEL = "cancel"
    START_FULFILMENT = "start_fulfilment"
    DISCLOSE = "disclose"
    NOT_AVAILABLE = "not_available"
    INTERRUPT = "interrupt"
    EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class Step:
    """One row of the transition table: from which states, to which state, by which roles."""

    sources: frozenset[State]
    target: State
    roles: frozenset[Role]


def _step(sources: set[State], target: State, roles: set[Role]) -> Step:
    return Step(frozenset(sources), target, frozenset(roles))


_OFFICER, _APPROVER, _SYSTEM = Role.LEGAL_OFFICER, Role.LEGAL_APPROVER, Role.SYSTEM
_OPEN = {State.AWAITING_APPROVAL, State.AWAITING_DISCLOSURE}

# The state machine. Final states appear in no `sources`, so nothing leaves them.
STEPS: dict[Action, Step] = {
    Action.REGISTER: _step(set(), State.AWAITING_APPROVAL, {_OFFICER}),
    Action.APPROVE: _step({State.AWAITING_APPROVAL}, State.AWAITING_DISCLOSURE, {_APPROVER}),
    Action.REJECT: _step({State.AWAITING_APPROVAL}, State.REJECTED, {_APPROVER}),
    Action.MARK_INVALID: _step(_OPEN, State.INVALID, {_OFFICER, _APPROVER}),
    Action.CANCEL: _step(_OPEN, State.CANCELLED, {_OFFICER, _APPROVER}),
    Action.START_FULFILMENT: _step({State.AWAITING_DISCLOSURE}, State.DISCLOSING, {_OFFICER}),
    Action.DISCLOSE: _step({State.DISCLOSING}, State.DISCLOSED, {_OFFICER}),
    Action.NOT_AVAILABLE: _step({State.DISCLOSING}, State.DISCLOSURE_NOT_AVAILABLE, {_OFFICER}),
    Action.INTERRUPT: _step({State.DISCLOSING}, State.AWAITING_APPROVAL, {_SYSTEM}),
    Action.EXPIRE: _step({State.AWAITING_DISCLOSURE}, State.EXPIRED, {_SYSTEM}),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a signed-in staff member (from the call context), or the gateway itself."""

    staff_id: str
    role: str


SYSTEM = Actor("system", Role.SYSTEM.value)


@dataclass(frozen=True, slots=True)
class Officer:
    """A requesting officer of the agency."""

    name: str
    badge_number: str


@dataclass(frozen=True, slots=True)
class LegalRequest:
    """A registered request. `version` grows by one with every transition (optimistic concurrency)."""

    request_id: str
    state: State
    version: int
    agency_kind: AgencyKind
    agency_name: str
    agency_level: AgencyLevel
    letter_reference: str
    letter_date: str
    letter_media_type: str
    letter_sha256: str
    letter_size: int
    legal_basis: str
    case_number: str
    officers: tuple[Officer, ...]
    targets: tuple[str, ...]
    categories: tuple[Category, ...]
    window_start: datetime
    window_end: datetime
    registered_by: str
    registered_at: datetime
    approved_by: str = ""  # the current approval's; cleared when a fulfilment is interrupted
    approved_at: datetime | None = None
    delivery_id: str = ""
    fulfilment_started_at: datetime | None = None
    fulfilled_by: str = ""
    manifest: bytes = b""
    manifest_signature: bytes = b""
    manifest_key_id: str = ""


@dataclass(frozen=True, slots=True)
class Transition:
    """One entry of a request's history."""

    at: datetime
    action: Action
    from_state: State | None
    to_state: State
    actor: str
    role: str
    reason: str


# --- errors ------------------------------------------------------------------------------------
# Only existing classes are raised (mapped in gateway/status.py):
#   InvalidArgument    bad fields, with field paths
#   PermissionDenied   "role", "four_eyes", "no_staff_identity", "outside_approved_targets",
#                      "outside_approved_categories", "outside_approved_window"
#   NotFound           "legal_request"
#   FailedPrecondition "request_<state>" (not in a state that allows the call), "request_changed"
#                      (another transition won the race), "fulfilment_lapsed", "letter_missing",
#                      "letter_corrupt"


def wrong_state(state: State) -> FailedPrecondition:
    return FailedPrecondition(f"request_{state.value}")


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegalConfig:
    approval_days: float = 30
    max_window_months: int = 12
    fulfil_lease: float = 3600  # seconds a fulfilment may stream before it counts as interrupted
    timezone: str = "Asia/Shanghai"
    max_letter_bytes: int = 8 * 2**20
    max_targets: int = 20
    max_officers: int = 10

    @classmethod
    def from_settings(cls, settings: Any) -> LegalConfig:
        """From gateway.settings.Settings; settings it does not (yet) declare keep their defaults."""
        d = cls()
        return cls(approval_days=getattr(settings, "legal_approval_days", d.approval_days),
                   max_window_months=getattr(settings, "legal_max_window_months", d.max_window_months),
                   fulfil_lease=getattr(settings, "legal_fulfil_lease", d.fulfil_lease),
                   timezone=getattr(settings, "timezone", d.timezone),
                   max_letter_bytes=getattr(settings, "legal_max_letter_bytes", d.max_letter_bytes))


# --- validation --------------------------------------------------------------------------------

REQUEST_ID_RE = re.compile(r"LR-[0-9A-F]{16}")
BADGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")
DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
MAX_NAME, MAX_REFERENCE, MAX_BASIS, MAX_REASON = 128, 64, 500, 500
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 200, 50
MEDIA_TYPES: dict[str, tuple[bytes, ...]] = {  # what a scan may be, and how its first bytes look
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}


@dataclass(frozen=True)
class RequestDraft:
    """A registration as received, before validation. Enum-like fields are the domain values
    ("public_security", …); anything else (empty, unknown) is reported by `validate_draft`."""

    agency_kind: str = ""
    agency_name: str = ""
    agency_level: str = ""
    letter_reference: str = ""
    letter_date: str = ""
    letter_media_type: str = ""
    letter_content: bytes = b""
    legal_basis: str = ""
    case_number: str = ""
    officers: Sequence[Officer] = ()
    targets: Sequence[str] = ()
    categories: Sequence[str] = ()
    window_start: datetime | None = None
    window_end: datetime | None = None


def text(v: rules.Violations, field: str, value: str, max_chars: int, what: str, multiline: bool = False) -> str:
    """Required free text: trimmed, at most `max_chars`, no control characters."""
    value = value.strip()
    if not value:
        v.items.append((field, f"is required: {what}"))
    elif len(value) > max_chars:
        v.items.append((field, f"must be at most {max_chars} characters"))
    elif not (value.replace("\n", " ") if multiline else value).isprintable():
        v.items.append((field, "must not contain control characters"))
    return value


def add_months(t: datetime, months: int) -> datetime:
    """The same wall-clock time `months` calendar months later, the day clamped to the month's end."""
    index = t.year * 12 + t.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    days = (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days
    return t.replace(year=year, month=month, day=min(t.day, days))


def months_covering(start: datetime, end: datetime, tz: str) -> list[str]:
    """The calendar months ("YYYY-MM", in the operator's zone) that [start, end) touches, in order."""
    zone = ZoneInfo(tz)
    first, last = start.astimezone(zone), (end - timedelta(microseconds=1)).astimezone(zone)
    out = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def check_window(v: rules.Violations, start: datetime | None, end: datetime | None, now: datetime,
                 max_months: int, field: str = "window") -> None:
    if start is None:
        v.items.append((f"{field}.start", "is required: the first instant of the data asked for"))
    elif start > now:
        v.items.append((f"{field}.start", "must not be in the future"))
    if end is None:
        v.items.append((f"{field}.end", "is required: the end of the data asked for"))
    elif end > now:
        v.items.append((f"{field}.end", "must not be in the future"))
    if start is not None and end is not None:
        if end <= start:
            v.items.append((f"{field}.end", "must be after window.start"))
        elif end > add_months(start, max_months):
            v.items.append((f"{field}.end", f"the window may be at most {max_months} months long"))


def check_categories(v: rules.Violations, values: Sequence[str], field: str = "categories",
                     required: bool = True) -> list[Category]:
    out: list[Category] = []
    if required and not values:
        v.items.append((field, "is required: subscriber_info and/or call_details"))
    for i, raw in enumerate(values):
        f = f"{field}[{i}]"
        if raw == Category.COMMUNICATION_CONTENT:
            v.items.append((f, "communication content is never available through this gateway (R1)"))
        elif raw not in set(AVAILABLE_CATEGORIES):
            v.items.append((f, "must be subscriber_info or call_details"))
        elif Category(raw) in out:
            v.items.append((f, "is listed twice"))
        else:
            out.append(Category(raw))
    return out


def check_targets(v: rules.Violations, values: Sequence[str], max_targets: int, field: str = "targets",
                  required: bool = True) -> list[str]:
    if required and not values:
        v.items.append((field, "is required: at least one number"))
    if len(values) > max_targets:
        v.items.append((field, f"must list at most {max_targets} numbers"))
    seen: dict[str, int] = {}
    for i, t in enumerate(values):
        rules.check_msisdn(v, t, f"{field}[{i}]")
        if t in seen:
            v.items.append((f"{field}[{i}]", f"repeats {field}[{seen[t]}]"))
        seen.setdefault(t, i)
    return list(values)


def check_letter_date(v: rules.Violations, value: str, today: date) -> str:
    m = DATE_RE.fullmatch(value.strip())
    if not value.strip():
        v.items.append(("letter.date", 'is required: the date on the letter, "YYYY-MM-DD"'))
        return value
    try:
        if not m:
            raise ValueError
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        v.items.append(("letter.date", 'must be a date written "YYYY-MM-DD"'))
        return value
    if day > today:
        v.items.append(("letter.date", "must not be in the future"))
    return day.isoformat()


def check_letter(v: rules.Violations, d: RequestDraft, today: date, max_bytes: int) -> tuple[str, str, str]:
    reference = text(v, "letter.reference", d.letter_reference, MAX_REFERENCE, "the letter's reference number")
    letter_date = check_letter_date(v, d.letter_date, today)
    media = d.letter_media_type.strip().lower()
    if not media:
        v.items.append(("letter.media_type", f"is required: one of {', '.join(MEDIA_TYPES)}"))
    elif media not in MEDIA_TYPES:
        v.items.append(("letter.media_type", f"must be one of {', '.join(MEDIA_TYPES)}"))
    if not d.letter_content:
        v.items.append(("letter.content", "is required: the scanned letter"))
    elif len(d.letter_content) > max_bytes:
        v.items.append(("letter.content", f"must be at most {max_bytes // 2**20} MiB"))
    elif media in MEDIA_TYPES and not d.letter_content.startswith(MEDIA_TYPES[media]):
        v.items.append(("letter.content", f"is not a {media} file"))
    return reference, letter_date, media


def check_officers(v: rules.Violations, officers: Sequence[Officer], max_officers: int) -> list[Officer]:
    if not officers:
        v.items.append(("officers", "is required: at least one requesting officer"))
    if len(officers) > max_officers:
        v.items.append(("officers", f"must list at most {max_officers} officers"))
    out: list[Officer] = []
    badges: dict[str, int] = {}
    for i, o in enumerate(officers):
        name = text(v, f"officers[{i}].name", o.name, 64, "the officer's full name")
        badge = o.badge_number.strip()
        if not badge:
            v.items.append((f"officers[{i}].badge_number", "is required: the officer's badge number"))
        elif not BADGE_RE.fullmatch(badge):
            v.items.append((f"officers[{i}].badge_number", "must be letters, digits and hyphens, at most 32"))
        elif badge.upper() in badges:
            v.items.append((f"officers[{i}].badge_number", f"repeats officers[{badges[badge.upper()]}]"))
        badges.setdefault(badge.upper(), i)
        out.append(Officer(name, badge))
    return out


def validate_draft(d: RequestDraft, now: datetime, config: LegalConfig) -> RequestDraft:
    """Every rule of a registration; raises InvalidArgument naming every bad field at once.
    Returns the draft normalised (trimmed text, canonical values)."""
    v = rules.Violations()
    if not d.agency_kind:
        v.items.append(("agency.kind", "is required: public_security, procuratorate or state_security"))
    elif d.agency_kind not in set(AgencyKind):
        v.items.append(("agency.kind", "must be a public security organ, a procuratorate or a state security "
                                       "organ (R5)"))
    agency_name = text(v, "agency.name", d.agency_name, MAX_NAME, "the agency's full name")
    if not d.agency_level:
        v.items.append(("agency.level", "is required: the agency's administrative level"))
    elif d.agency_level not in {x.value for x in ACCEPTED_LEVELS}:
        v.items.append(("agency.level", "must be prefecture (city) level or above (R5)"))
    today = now.astimezone(ZoneInfo(config.timezone)).date()
    reference, letter_date, media = check_letter(v, d, today, config.max_letter_bytes)
    legal_basis = text(v, "legal_basis", d.legal_basis, MAX_BASIS, "the legal basis the letter cites", True)
    case_number = text(v, "case_number", d.case_number, MAX_REFERENCE, "the agency's case number")
    officers = check_officers(v, d.officers, config.max_officers)
    targets = check_targets(v, d.targets, config.max_targets)
    categories = check_categories(v, d.categories)
    check_window(v, d.window_start, d.window_end, now, config.max_window_months)
    v.raise_if_any()
    return replace(d, agency_name=agency_name, letter_reference=reference, letter_date=letter_date,
                   letter_media_type=media, legal_basis=legal_basis, case_number=case_number,
                   officers=tuple(officers), targets=tuple(targets),
                   categories=tuple(c.value for c in AVAILABLE_CATEGORIES if c in categories))


def check_request_id(v: rules.Violations, value: str, field: str = "request_id") -> str:
    return v.check(field, value, REQUEST_ID_RE, 'a request id, "LR-" and 16 hex digits')


def check_reason(v: rules.Violations, value: str, field: str = "reason") -> str:
    return text(v, field, value, MAX_REASON, "why, in your words", multiline=True)


def index_key(value: str) -> str:
    """How case numbers and agency names are matched: spaces collapsed, case folded."""
    return " ".join(value.split()).casefold()


# --- the state machine -------------------------------------------------------------------------


def check_step(action: Action, actor: Actor, request: LegalRequest | None) -> Step:
    """May `actor` take `action` on `request` now? Four eyes first (the registering officer never
    approves, whatever role they hold by then), then the role, then the state."""
    step = STEPS[action]
    if not actor.staff_id:
        raise PermissionDenied("no_staff_identity")
    if action == Action.APPROVE and request is not None and actor.staff_id == request.registered_by:
        raise PermissionDenied("four_eyes")
    if actor.role not in step.roles:
        raise PermissionDenied("role")
    if request is not None and request.state not in step.sources:
        raise wrong_state(request.state)
    return step


def approval_expires_at(request: LegalRequest, config: LegalConfig) -> datetime | None:
    if request.approved_at is None:
        return None
    return request.approved_at + timedelta(days=config.approval_days)


def lapse(request: LegalRequest, now: datetime, config: LegalConfig) -> tuple[Action, datetime] | None:
    """What time alone has done to a request and when: an approval lapsed, or a fulfilment that
    outlived its lease (its gateway died) counts as interrupted."""
    expires = approval_expires_at(request, config)
    if request.state == State.AWAITING_DISCLOSURE and expires is not None and now >= expires:
        return Action.EXPIRE, expires
    if request.state == State.DISCLOSING and request.fulfilment_started_at is not None:
        deadline = request.fulfilment_started_at + timedelta(seconds=config.fulfil_lease)
        if now >= deadline:
            return Action.INTERRUPT, deadline
    return None


def advance(request: LegalRequest, action: Action, **changes: Any) -> LegalRequest:
    return replace(request, state=STEPS[action].target, version=request.version + 1, **changes)


def reopened(request: LegalRequest) -> LegalRequest:
    """Back to AWAITING_APPROVAL after an interrupted fulfilment: the approval is used up."""
    return advance(request, Action.INTERRUPT, approved_by="", approved_at=None, delivery_id="",
                   fulfilment_started_at=None, fulfilled_by="")


@dataclass(frozen=True)
class FulfilScope:
    """What a fulfilment asks for; empty fields mean everything approved."""

    targets: Sequence[str] = ()
    categories: Sequence[str] = ()
    window_start: datetime | None = None
    window_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    targets: tuple[str, ...]
    categories: tuple[Category, ...]
    window_start: datetime
    window_end: datetime


def resolve_scope(request: LegalRequest, scope: FulfilScope, config: LegalConfig) -> Scope:
    """The delivery's scope: well-formed (InvalidArgument), and within the approval
    (PermissionDenied "outside_approved_…")."""
    v = rules.Violations()
    targets = check_targets(v, scope.targets, config.max_targets, required=False)
    categories = check_categories(v, scope.categories, required=False)
    v.raise_if_any()
    if any(t not in request.targets for t in targets):
        raise PermissionDenied("outside_approved_targets")
    if any(c not in request.categories for c in categories):
        raise PermissionDenied("outside_approved_categories")
    start = scope.window_start or request.window_start
    end = scope.window_end or request.window_end
    if not request.window_start <= start < end <= request.window_end:
        raise PermissionDenied("outside_approved_window")
    return Scope(tuple(t for t in request.targets if not targets or t in targets),
                 tuple(c for c in request.categories if not categories or c in categories), start, end)


# --- ports -------------------------------------------------------------------------------------


class LegalStore(Protocol):
    """Requests and their histories. Every method is atomic; DependencyUnavailable when the store
    cannot answer."""

    async def create(self, request: LegalRequest, first: Transition) -> bool:
        """Store a new request with its first history entry; False if the id is taken."""
        ...

    async def transition(self, after: LegalRequest, t: Transition) -> bool:
        """Replace the stored request by `after` and append `t` to its history, only if the stored
        one is still version `after.version - 1` in state `t.from_state`; else change nothing and
        return False (someone else moved it first)."""
        ...

    async def get(self, request_id: str) -> LegalRequest | None: ...

    async def history(self, request_id: str) -> list[Transition]:
        """Oldest first."""
        ...

    async def list(self, *, state: State | None = None, case_number: str = "", agency_name: str = "",
                   offset: int = 0, limit: int = DEFAULT_PAGE_SIZE) -> list[LegalRequest]:
        """Newest registration first. Case number and agency name match by `index_key`."""
        ...


class DocumentStore(Protocol):
    """Scanned letters, addressed by their SHA-256."""

    async def put(self, data: bytes) -> str:
        """Store `data`; returns its lower-case hex SHA-256, the reference. Idempotent."""
        ...

    async def get(self, ref: str) -> bytes | None:
        """The stored bytes, None if missing. Not necessarily intact: callers check the digest."""
        ...


class LegalBilling(Protocol):
    """What the legal desk needs of gateway.ports.Billing."""

    async def get_subscriber(self, msisdn: str) -> Subscriber: ...

    async def get_customer_profile(self, msisdn: str) -> CustomerProfile | None: ...

    def call_detail_pages(self, msisdn: str, month: str) -> AsyncIterator[bytes]: ...


# --- the desk ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestPage:
    requests: list[LegalRequest]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class ListFilter:
    state: State | None = None
    case_number: str = ""
    agency_name: str = ""
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryStart:
    request: LegalRequest  # in state DISCLOSING
    delivery_id: str
    scope: Scope


@dataclass(frozen=True, slots=True)
class DeliveryChunk:
    target: str
    data: bytes  # a serialized hallgate.v1.DeliveryRecords
    call_details: int


@dataclass(frozen=True, slots=True)
class DeliveryEnd:
    request: LegalRequest  # in its final state
    signed: delivery.SignedManifest


DeliveryPart = DeliveryStart | DeliveryChunk | DeliveryEnd


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8).upper()}"


def _describe(err: BaseException) -> str:
    if isinstance(err, DomainError):
        return err.reason
    if isinstance(err, GeneratorExit | asyncio.CancelledError):
        return "the receiving client went away"
    return type(err).__name__


@dataclass
class LegalDesk:
    """The legal department's desk: every use case of the LegalService, given the actor."""

    store: LegalStore
    documents: DocumentStore
    billing: LegalBilling
    signer: delivery.Signer
    config: LegalConfig = field(default_factory=LegalConfig)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    make_id: Callable[[str], str] = field(default=new_id)

    # --- registration and decisions

    async def register(self, actor: Actor, draft: RequestDraft) -> LegalRequest:
        check_step(Action.REGISTER, actor, None)
        now = self.clock()
        d = validate_draft(draft, now, self.config)
        ref = await self.documents.put(d.letter_content)
        for _ in range(3):
            request = LegalRequest(
                request_id=self.make_id("LR"), state=State.AWAITING_APPROVAL, version=1,
                agency_kind=AgencyKind(d.agency_kind), agency_name=d.agency_name,
                agency_level=AgencyLevel(d.agency_level), letter_reference=d.letter_reference,
                letter_date=d.letter_date, letter_media_type=d.letter_media_type, letter_sha256=ref,
                letter_size=len(d.letter_content), legal_basis=d.legal_basis, case_number=d.case_number,
                officers=tuple(d.officers), targets=tuple(d.targets),
                categories=tuple(Category(c) for c in d.categories), window_start=d.window_start or now,
                window_end=d.window_end or now, registered_by=actor.staff_id, registered_at=now)
            first = Transition(now, Action.REGISTER, None, State.AWAITING_APPROVAL, actor.staff_id, actor.role,
                               f"registered letter {d.letter_reference} of {d.agency_name}")
            if await self.store.create(request, first):
                return request
        raise RuntimeError("could not allocate a request id")

    async def approve(self, actor: Actor, request_id: str, reason: str) -> LegalRequest:
        return await self._decide(actor, request_id, reason, Action.APPROVE)

    async def reject(self, actor: Actor, request_id: str, reason: str) -> LegalRequest:
        return await self._decide(actor, request_id, reason, Action.REJECT)

    async def mark_invalid(self, actor: Actor, request_id: str, reason: str) -> LegalRequest:
        return await self._decide(actor, request_id, reason, Action.MARK_INVALID)

    async def cancel(self, actor: Actor, request_id: str, reason: str) -> LegalRequest:
        return await self._decide(actor, request_id, reason, Action.CANCEL)

    async def _decide(self, actor: Actor, request_id: str, reason: str, action: Action) -> LegalRequest:
        v = rules.Violations()
        request_id, why = check_request_id(v, request_id), check_reason(v, reason)
        v.raise_if_any()
        request = await self._current(request_id)
        check_step(action, actor, request)
        now = self.clock()
        changes: dict[str, Any] = {"approved_by": actor.staff_id, "approved_at": now} \
            if action == Action.APPROVE else {}
        after = advance(request, action, **changes)
        t = Transition(now, action, request.state, after.state, actor.staff_id, actor.role, why)
        if not await self.store.transition(after, t):
            raise FailedPrecondition("request_changed")
        return after

    # --- queries

    async def get_request(self, actor: Actor, request_id: str) -> tuple[LegalRequest, list[Transition]]:
        self._reader(actor)
        v = rules.Violations()
        request_id = check_request_id(v, request_id)
        v.raise_if_any()
        request = await self._current(request_id)
        return request, await self.store.history(request_id)

    async def list_requests(self, actor: Actor, f: ListFilter) -> RequestPage:
        self._reader(actor)
        v = rules.Violations()
        size = f.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            v.items.append(("page_size", f"must be between 1 and {MAX_PAGE_SIZE}"))
        if f.page_token and not (f.page_token.isascii() and f.page_token.isdigit() and len(f.page_token) < 10):
            v.items.append(("page_token", "must be a next_page_token from a previous page"))
        if len(f.case_number) > MAX_REFERENCE:
            v.items.append(("case_number", f"must be at most {MAX_REFERENCE} characters"))
        if len(f.agency_name) > MAX_NAME:
            v.items.append(("agency_name", f"must be at most {MAX_NAME} characters"))
        v.raise_if_any()
        await self.settle_lapses()
        offset = int(f.page_token or 0)
        found = await self.store.list(state=f.state, case_number=f.case_number, agency_name=f.agency_name,
                                      offset=offset, limit=size + 1)
        more = len(found) > size
        return RequestPage(found[:size], str(offset + size) if more else "")

    def _reader(self, actor: Actor) -> None:
        if not actor.staff_id:
            raise PermissionDenied("no_staff_identity")
        if actor.role not in READER_ROLES:
            raise PermissionDenied("role")

    # --- lazily recorded lapses

    async def _current(self, request_id: str) -> LegalRequest:
        """The request as it stands now, any lapse recorded first."""
        for _ in range(3):
            request = await self.store.get(request_id)
            if request is None:
                raise NotFound("legal_request")
            due = lapse(request, self.clock(), self.config)
            if due is None:
                return request
            await self._record_lapse(request, *due)
        raise FailedPrecondition("request_changed")

    async def _record_lapse(self, request: LegalRequest, action: Action, at: datetime) -> bool:
        if action == Action.EXPIRE:
            after = advance(request, action)
            why = f"the approval lapsed: not disclosed within {self.config.approval_days:g} days"
        else:
            after = reopened(request)
            why = (f"delivery {request.delivery_id} did not finish within {self.config.fulfil_lease:g} seconds; "
                   "a new approval is needed")
        t = Transition(at, action, request.state, after.state, SYSTEM.staff_id, SYSTEM.role, why)
        return await self.store.transition(after, t)

    async def settle_lapses(self) -> None:
        """Record every lapse that is due, so lists by state are right. Concurrent callers are
        harmless: only one transition per version can win."""
        now = self.clock()
        for state in (State.AWAITING_DISCLOSURE, State.DISCLOSING):
            for request in await self.store.list(state=state, limit=10_000):
                due = lapse(request, now, self.config)
                if due is not None:
                    await self._record_lapse(request, *due)

    # --- fulfilment

    async def fulfil(self, actor: Actor, request_id: str, reason: str,
                     scope: FulfilScope = FulfilScope()) -> AsyncGenerator[DeliveryPart, None]:
        """Stream the delivery: DeliveryStart, DeliveryChunk…, DeliveryEnd. Nothing is checked
        before the first `anext`; every refusal is raised before DeliveryStart."""
        v = rules.Violations()
        request_id, why = check_request_id(v, request_id), check_reason(v, reason)
        v.raise_if_any()
        request = await self._current(request_id)
        check_step(Action.START_FULFILMENT, actor, request)
        sc = resolve_scope(request, scope, self.config)
        await self._check_letter(request)
        now, delivery_id = self.clock(), self.make_id("DL")
        started = advance(request, Action.START_FULFILMENT, delivery_id=delivery_id, fulfilment_started_at=now,
                          fulfilled_by=actor.staff_id)
        t = Transition(now, Action.START_FULFILMENT, request.state, started.state, actor.staff_id, actor.role,
                       f"{why} (delivery {delivery_id})")
        if not await self.store.transition(started, t):
            raise FailedPrecondition("request_changed")
        builder = delivery.DeliveryBuilder(
            request_id=request.request_id, delivery_id=delivery_id, case_number=request.case_number,
            letter_sha256=request.letter_sha256, targets=sc.targets, categories=[c.value for c in sc.categories],
            window_start=sc.window_start, window_end=sc.window_end)
        finished = False
        try:
            yield DeliveryStart(started, delivery_id, sc)
            async with contextlib.aclosing(self._chunks(builder, sc, started)) as chunks:
                async for chunk in chunks:
                    yield chunk
            end = await self._finish(actor, started, builder)
            finished = True
            yield end
        except BaseException as err:
            if not finished:
                await asyncio.shield(self._interrupt(started, builder, err))
            raise

    async def _check_letter(self, request: LegalRequest) -> None:
        """Disclose nothing unless the authorising letter is still on file, unaltered."""
        data = await self.documents.get(request.letter_sha256)
        if data is None:
            raise FailedPrecondition("letter_missing")
        if hashlib.sha256(data).hexdigest() != request.letter_sha256:
            raise FailedPrecondition("letter_corrupt")

    def _within_lease(self, started: LegalRequest) -> None:
        assert started.fulfilment_started_at is not None
        if self.clock() >= started.fulfilment_started_at + timedelta(seconds=self.config.fulfil_lease):
            raise FailedPrecondition("fulfilment_lapsed")

    async def _chunks(self, b: delivery.DeliveryBuilder, sc: Scope,
                      started: LegalRequest) -> AsyncGenerator[DeliveryChunk, None]:
        """Target by target, subscriber record first, then call details oldest first, one billing
        page at a time: only the targets, categories and window in scope ever leave billing."""
        for target in sc.targets:
            if Category.SUBSCRIBER_INFO in sc.categories:
                subscriber = await self.billing.get_subscriber(target)
                profile = await self.billing.get_customer_profile(target) if subscriber.exists else None
                yield DeliveryChunk(target, b.subscriber_chunk(target, subscriber, profile), 0)
            if Category.CALL_DETAILS in sc.categories:
                for month in months_covering(sc.window_start, sc.window_end, self.config.timezone):
                    async for page in self.billing.call_detail_pages(target, month):
                        self._within_lease(started)
                        records = delivery.records_in_window(page, sc.window_start, sc.window_end)
                        if records:
                            yield DeliveryChunk(target, b.call_details_chunk(target, records), len(records))
        self._within_lease(started)

    async def _finish(self, actor: Actor, started: LegalRequest, b: delivery.DeliveryBuilder) -> DeliveryEnd:
        now = self.clock()
        signed = self.signer.sign(b.manifest(now, self.signer.key_id))
        action = Action.DISCLOSE if b.has_data else Action.NOT_AVAILABLE
        after = advance(started, action, manifest=signed.manifest, manifest_signature=signed.signature,
                        manifest_key_id=signed.key_id)
        found = sum(c.subscriber == "found" for c in b.counts.values())
        why = (f"delivery {b.delivery_id}: {b.call_details} call details and {found} subscriber records for "
               f"{len(b.targets)} targets; content sha256 {b.digest}") if b.has_data else \
            f"delivery {b.delivery_id}: billing holds none of the data asked for"
        t = Transition(now, action, started.state, after.state, actor.staff_id, actor.role, why)
        if not await self.store.transition(after, t):
            raise FailedPrecondition("fulfilment_lapsed")
        return DeliveryEnd(after, signed)

    async def _interrupt(self, started: LegalRequest, b: delivery.DeliveryBuilder, err: BaseException) -> None:
        why = (f"delivery {b.delivery_id} interrupted after {b.call_details} call details in {b.chunks} chunks "
               f"({_describe(err)}); a new approval is needed")
        t = Transition(self.clock(), Action.INTERRUPT, started.state, State.AWAITING_APPROVAL, SYSTEM.staff_id,
                       SYSTEM.role, why)
        try:
            await self.store.transition(reopened(started), t)
        except DomainError:
            pass  # the store is down: the lease runs out and the next look records the interruption
