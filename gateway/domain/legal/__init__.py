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
approver holds the approver role and is not the person who registered the request, from any of
their accounts (the staff directory's employee number names the person; see LegalDesk.people). Approvals
lapse after `approval_days`; the lapse is recorded lazily, the first time anyone looks. A request
is fulfilled once: the fulfilment moves it atomically to DISCLOSING, so two fulfilments cannot both
start; one that fails midway sends it back to AWAITING_APPROVAL, so another needs a new approval.

No tipping off: nothing here can reach a subscriber or a hall. The desk has no SMS port, writes no
per-number state a hall path reads, and keeps no index by target number.

Pure rules and service logic over ports: no gRPC, no Redis. Rule ids refer to docs/hall-rules.md."""

from __future__ import annotations

from gateway.domain.legal.desk import (
    DeliveryChunk,
    DeliveryEnd,
    DeliveryPart,
    DeliveryStart,
    LegalDesk,
    ListFilter,
    RequestPage,
    new_id,
)
from gateway.domain.legal.lifecycle import (
    FulfilScope,
    Scope,
    advance,
    approval_expires_at,
    check_step,
    lapse,
    reopened,
    resolve_scope,
)
from gateway.domain.legal.model import (
    ACCEPTED_LEVELS,
    AVAILABLE_CATEGORIES,
    FINAL_STATES,
    READER_ROLES,
    STEPS,
    SYSTEM,
    Action,
    Actor,
    AgencyKind,
    AgencyLevel,
    Category,
    LegalConfig,
    LegalRequest,
    Officer,
    Role,
    State,
    Step,
    Transition,
    wrong_state,
)
from gateway.domain.legal.ports import (
    DocumentStore,
    LegalBilling,
    LegalStore,
    People,
    person_of,
)
from gateway.domain.legal.validation import (
    BADGE_RE,
    DATE_RE,
    DEFAULT_PAGE_SIZE,
    MAX_BASIS,
    MAX_NAME,
    MAX_PAGE_SIZE,
    MAX_REASON,
    MAX_REFERENCE,
    MEDIA_TYPES,
    REQUEST_ID_RE,
    RequestDraft,
    add_months,
    check_categories,
    check_letter,
    check_letter_date,
    check_officers,
    check_reason,
    check_request_id,
    check_targets,
    check_window,
    index_key,
    months_covering,
    text,
    validate_draft,
)

__all__ = [
    "ACCEPTED_LEVELS",
    "AVAILABLE_CATEGORIES",
    "BADGE_RE",
    "DATE_RE",
    "DEFAULT_PAGE_SIZE",
    "FINAL_STATES",
    "MAX_BASIS",
    "MAX_NAME",
    "MAX_PAGE_SIZE",
    "MAX_REASON",
    "MAX_REFERENCE",
    "MEDIA_TYPES",
    "READER_ROLES",
    "REQUEST_ID_RE",
    "STEPS",
    "SYSTEM",
    "Action",
    "Actor",
    "AgencyKind",
    "AgencyLevel",
    "Category",
    "DeliveryChunk",
    "DeliveryEnd",
    "DeliveryPart",
    "DeliveryStart",
    "DocumentStore",
    "FulfilScope",
    "LegalBilling",
    "LegalConfig",
    "LegalDesk",
    "LegalRequest",
    "LegalStore",
    "ListFilter",
    "Officer",
    "People",
    "RequestDraft",
    "RequestPage",
    "Role",
    "Scope",
    "State",
    "Step",
    "Transition",
    "add_months",
    "advance",
    "approval_expires_at",
    "check_categories",
    "check_letter",
    "check_letter_date",
    "check_officers",
    "check_reason",
    "check_request_id",
    "check_step",
    "check_targets",
    "check_window",
    "index_key",
    "lapse",
    "months_covering",
    "new_id",
    "person_of",
    "reopened",
    "resolve_scope",
    "text",
    "validate_draft",
    "wrong_state",
]
