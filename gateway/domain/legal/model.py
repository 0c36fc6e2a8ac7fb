"""The legal channel's vocabulary: agencies, categories, ETSI TS 103 120 task states, steps, requests."""


from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.domain.errors import FailedPrecondition

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
    """The staff roles of the legal channel (the same values as gateway.domain.policy.Role), and the
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
# Only existing classes are raised (mapped in gateway/pipeline/outcome.py):
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
        """From gateway.runtime.settings.Settings; settings it does not (yet) declare keep their defaults."""
        d = cls()
        return cls(approval_days=getattr(settings, "legal_approval_days", d.approval_days),
                   max_window_months=getattr(settings, "legal_max_window_months", d.max_window_months),
                   fulfil_lease=getattr(settings, "legal_fulfil_lease", d.fulfil_lease),
                   timezone=getattr(settings, "timezone", d.timezone),
                   max_letter_bytes=getattr(settings, "legal_max_letter_bytes", d.max_letter_bytes))


