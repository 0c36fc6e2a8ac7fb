"""The state machine: who may take which step from which state, expiry, and fulfilment scope."""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from gateway.domain import rules
from gateway.domain.errors import PermissionDenied
from gateway.domain.legal.model import (
    STEPS,
    Action,
    Actor,
    Category,
    LegalConfig,
    LegalRequest,
    State,
    Step,
    wrong_state,
)
from gateway.domain.legal.validation import check_categories, check_targets

# --- the state machine -------------------------------------------------------------------------


def check_step(action: Action, actor: Actor, request: LegalRequest | None, *, same_person: bool = False) -> Step:
    """May `actor` take `action` on `request` now? Four eyes first (the person who registered the
    request never approves it, from this account or any other of theirs, whatever role they hold
    by then; `same_person` is the desk's finding from the staff directory), then the role, then the
    state."""
    step = STEPS[action]
    if not actor.staff_id:
        raise PermissionDenied("no_staff_identity")
    if action == Action.APPROVE and request is not None and (actor.staff_id == request.registered_by or same_person):
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


