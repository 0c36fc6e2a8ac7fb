"""The archive lending register (R3): original documents kept by a hall's custodian, lent with a
reason and the hall manager's approval, handed out and taken back by the custodian, due back
within `loan_max_days` (3).

    request ─► REQUESTED ─approve─► APPROVED ─hand out─► OUT ─return─► RETURNED
                  │                    │
                  ├─reject─► REJECTED  │
                  └─cancel─► CANCELLED ◄┘

Final states stay final. A document has at most one open loan (requested, approved or out) at a
time. Four eyes, per person: the hall manager who approves is never the borrower, from any of
their accounts (the staff directory's employee number names the person). Everything happens in
one hall: the staff member's (their terminal's) hall, which keeps the document.

Pure rules and the desk over ports: no gRPC, no Redis. The store (adapters/redis_lending.py)
makes every transition atomic: a transition names the version and state it starts from, and only
one of two racing transitions wins.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from gateway.domain import rules
from gateway.domain.errors import FailedPrecondition, NotFound, PermissionDenied
from gateway.domain.legal.ports import People, person_of
from gateway.domain.legal.validation import text

# --- vocabulary --------------------------------------------------------------------------------


class Kind(StrEnum):
    CONTRACT = "contract"
    ID_COPY = "id_copy"
    APPLICATION = "application"


class State(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    OUT = "out"
    RETURNED = "returned"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset({State.REQUESTED, State.APPROVED, State.OUT})
FINAL_STATES = frozenset({State.REJECTED, State.RETURNED, State.CANCELLED})


class Role(StrEnum):
    """The staff roles of the register (the same values as gateway.domain.policy.Role)."""

    CLERK = "clerk"
    HALL_MANAGER = "hall_manager"
    CUSTODIAN = "custodian"


READERS = frozenset(Role)


class Action(StrEnum):
    REGISTER = "register"
    REQUEST = "request"
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"
    HAND_OUT = "hand_out"
    RETURN = "return"


@dataclass(frozen=True, slots=True)
class Step:
    sources: frozenset[State]
    target: State | None  # None: registering a document (no loan state)
    roles: frozenset[Role]


def _step(sources: set[State], target: State | None, roles: set[Role]) -> Step:
    return Step(frozenset(sources), target, frozenset(roles))


_CLERK, _MANAGER, _CUSTODIAN = Role.CLERK, Role.HALL_MANAGER, Role.CUSTODIAN

# The state machine. Final states appear in no `sources`, so nothing leaves them.
STEPS: dict[Action, Step] = {
    Action.REGISTER: _step(set(), None, {_CUSTODIAN}),
    Action.REQUEST: _step(set(), State.REQUESTED, {_CLERK, _MANAGER}),
    Action.APPROVE: _step({State.REQUESTED}, State.APPROVED, {_MANAGER}),
    Action.REJECT: _step({State.REQUESTED}, State.REJECTED, {_MANAGER}),
    Action.CANCEL: _step({State.REQUESTED, State.APPROVED}, State.CANCELLED, {_CLERK, _MANAGER}),
    Action.HAND_OUT: _step({State.APPROVED}, State.OUT, {_CUSTODIAN}),
    Action.RETURN: _step({State.OUT}, State.RETURNED, {_CUSTODIAN}),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a signed-in staff member and the hall of the terminal they signed in on."""

    staff_id: str
    role: str
    hall: str


@dataclass(frozen=True, slots=True)
class Document:
    archive_id: str
    kind: Kind
    hall: str
    description: str
    registered_by: str
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class Loan:
    """One loan. `version` grows by one with every transition (optimistic concurrency)."""

    loan_id: str
    archive_id: str
    hall: str
    state: State
    version: int
    borrower: str
    reason: str
    requested_at: datetime
    due_at: datetime
    decided_by: str = ""
    decided_at: datetime | None = None
    handed_out_by: str = ""
    handed_out_at: datetime | None = None
    returned_to: str = ""
    returned_at: datetime | None = None

    def overdue(self, now: datetime) -> bool:
        return self.state == State.OUT and now >= self.due_at

    @property
    def closed_at(self) -> datetime | None:
        """When it reached a final state (the disposal clock's start); None while open."""
        if self.state == State.RETURNED:
            return self.returned_at
        if self.state in FINAL_STATES:
            return self.decided_at
        return None


@dataclass(frozen=True, slots=True)
class Transition:
    at: datetime
    action: Action
    from_state: State | None
    to_state: State
    actor: str
    role: str
    reason: str


@dataclass(frozen=True, slots=True)
class LendingConfig:
    max_days: float = 3
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_settings(cls, settings: Any) -> LendingConfig:
        d = cls()
        return cls(max_days=getattr(settings, "loan_max_days", d.max_days),
                   timezone=getattr(settings, "timezone", d.timezone))


# --- errors ------------------------------------------------------------------------------------
# Only existing classes are raised (mapped in gateway/pipeline/outcome.py):
#   InvalidArgument    bad fields, with field paths
#   PermissionDenied   "role", "no_staff_identity", "borrower_approves" (four eyes), "other_hall",
#                      "not_the_borrower", "own_loans_only"
#   NotFound           "document", "loan" (also for another hall's: a hall sees its own archive only)
#   FailedPrecondition "loan_<state>" (not in a state that allows the call), "loan_changed" (another
#                      transition won the race), "document_exists", "document_unavailable" (an open
#                      loan holds it), "loan_due_passed" (hand-out after the due time)


def wrong_state(state: State) -> FailedPrecondition:
    return FailedPrecondition(f"loan_{state.value}")


# --- validation --------------------------------------------------------------------------------

ARCHIVE_ID_RE = re.compile(r"[A-Z0-9][A-Z0-9-]{2,39}")
LOAN_ID_RE = re.compile(r"LN-[0-9A-F]{16}")
HALL_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
STAFF_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_DESCRIPTION, MAX_REASON = 200, 500
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 200, 50


def check_archive_id(v: rules.Violations, value: str, field: str = "archive_id") -> str:
    return v.check(field, value, ARCHIVE_ID_RE, "an archive id: 3 to 40 of A-Z, 0-9 and hyphens")


def check_loan_id(v: rules.Violations, value: str, field: str = "loan_id") -> str:
    return v.check(field, value, LOAN_ID_RE, 'a loan id, "LN-" and 16 hex digits')


def check_reason(v: rules.Violations, value: str, field: str = "reason") -> str:
    return text(v, field, value, MAX_REASON, "why, in your words", multiline=True)


def check_due(v: rules.Violations, due: datetime | None, now: datetime, config: LendingConfig,
              field: str = "due_at") -> datetime:
    """The due time: in the future and at most `max_days` from now; unset: the most allowed."""
    latest = now + timedelta(days=config.max_days)
    if due is None:
        return latest
    if due <= now:
        v.items.append((field, "must be in the future"))
    elif due > latest:
        v.items.append((field, f"must be at most {config.max_days:g} days from now (R3)"))
    return due


# --- the state machine -------------------------------------------------------------------------


def check_step(action: Action, actor: Actor, loan: Loan | None, *, same_person: bool = False) -> Step:
    """May `actor` take `action` on `loan` now? Identity, four eyes (the borrower never approves,
    from this account or any other of theirs: `same_person` is the desk's finding from the staff
    directory), the role, the hall, then the state."""
    step = STEPS[action]
    if not actor.staff_id or not actor.hall:
        raise PermissionDenied("no_staff_identity")
    if action == Action.APPROVE and loan is not None and (actor.staff_id == loan.borrower or same_person):
        raise PermissionDenied("borrower_approves")
    if actor.role not in step.roles:
        raise PermissionDenied("role")
    if loan is not None and loan.hall != actor.hall:
        raise NotFound("loan")
    if action == Action.CANCEL and loan is not None and actor.role == Role.CLERK and actor.staff_id != loan.borrower:
        raise PermissionDenied("not_the_borrower")
    if loan is not None and loan.state not in step.sources:
        raise wrong_state(loan.state)
    return step


def advance(loan: Loan, action: Action, **changes: Any) -> Loan:
    target = STEPS[action].target
    assert target is not None
    return replace(loan, state=target, version=loan.version + 1, **changes)


def day_of(t: datetime, tz: str) -> str:
    """The calendar day (operator's zone) an overdue alert belongs to: at most one per loan per day."""
    return t.astimezone(ZoneInfo(tz)).date().isoformat()


def new_loan_id() -> str:
    return f"LN-{secrets.token_hex(8).upper()}"


# --- ports -------------------------------------------------------------------------------------


class LendingStore(Protocol):
    """Documents, loans and their histories. Every method is atomic; DependencyUnavailable when
    the store cannot answer."""

    async def add_document(self, doc: Document) -> bool:
        """Store a new document; False if the archive id is taken."""
        ...

    async def document(self, archive_id: str) -> tuple[Document, str] | None:
        """The document and the id of its open loan ("" when none)."""
        ...

    async def create_loan(self, loan: Loan, first: Transition) -> str:
        """Store a new loan and mark its document held: "ok", "taken" (loan id), "no_document",
        or "unavailable" (the document has an open loan)."""
        ...

    async def transition(self, after: Loan, t: Transition) -> bool:
        """Replace the loan by `after` and append `t`, only if the stored one is still version
        `after.version - 1` in state `t.from_state`; else change nothing and return False."""
        ...

    async def loan(self, loan_id: str) -> Loan | None: ...

    async def history(self, loan_id: str) -> list[Transition]: ...

    async def list_loans(self, hall: str, *, holder: str = "", state: State | None = None, overdue_at:
                         datetime | None = None, offset: int = 0, limit: int = DEFAULT_PAGE_SIZE) -> list[Loan]:
        """The hall's loans, newest request first; with `overdue_at`, the loans OUT and due by
        then, most overdue first."""
        ...


# --- the desk ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentDraft:
    archive_id: str = ""
    kind: str = ""
    hall: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """Where a document is: its open loan (with history) if any."""

    document: Document
    loan: Loan | None
    history: list[Transition]

    @property
    def on_shelf(self) -> bool:
        return self.loan is None or self.loan.state != State.OUT


@dataclass(frozen=True, slots=True)
class LoanFilter:
    holder: str = ""
    state: State | None = None
    overdue_only: bool = False
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class LoanPage:
    loans: list[Loan]
    next_page_token: str


@dataclass
class LendingDesk:
    """Every use case of the LendingService, given the actor."""

    store: LendingStore
    config: LendingConfig = field(default_factory=LendingConfig)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    make_id: Callable[[], str] = field(default=new_loan_id)
    people: People | None = None  # four eyes per person; without it only the borrower's own account is refused

    async def register(self, actor: Actor, d: DocumentDraft) -> Document:
        check_step(Action.REGISTER, actor, None)
        v = rules.Violations()
        archive_id = check_archive_id(v, d.archive_id)
        if not d.kind:
            v.items.append(("kind", "is required: contract, id_copy or application"))
        elif d.kind not in set(Kind):
            v.items.append(("kind", "must be contract, id_copy or application"))
        hall = d.hall.strip()
        if hall and not HALL_RE.fullmatch(hall):
            v.items.append(("hall", "must be a hall id"))
        description = text(v, "description", d.description, MAX_DESCRIPTION, "what the document is")
        v.raise_if_any()
        if hall and hall != actor.hall:
            raise PermissionDenied("other_hall")
        doc = Document(archive_id, Kind(d.kind), actor.hall, description, actor.staff_id, self.clock())
        if not await self.store.add_document(doc):
            raise FailedPrecondition("document_exists")
        return doc

    async def request(self, actor: Actor, archive_id: str, reason: str, due: datetime | None) -> Loan:
        check_step(Action.REQUEST, actor, None)
        now = self.clock()
        v = rules.Violations()
        archive_id, why = check_archive_id(v, archive_id), check_reason(v, reason)
        due_at = check_due(v, due, now, self.config)
        v.raise_if_any()
        await self._document(actor, archive_id)
        for _ in range(3):
            loan = Loan(self.make_id(), archive_id, actor.hall, State.REQUESTED, 1, actor.staff_id, why, now, due_at)
            first = Transition(now, Action.REQUEST, None, State.REQUESTED, actor.staff_id, actor.role, why)
            found = await self.store.create_loan(loan, first)
            if found == "ok":
                return loan
            if found == "no_document":
                raise NotFound("document")
            if found == "unavailable":
                raise FailedPrecondition("document_unavailable")
        raise RuntimeError("could not allocate a loan id")

    async def approve(self, actor: Actor, loan_id: str, reason: str) -> Loan:
        return await self._decide(actor, loan_id, reason, Action.APPROVE)

    async def reject(self, actor: Actor, loan_id: str, reason: str) -> Loan:
        return await self._decide(actor, loan_id, reason, Action.REJECT)

    async def cancel(self, actor: Actor, loan_id: str, reason: str) -> Loan:
        return await self._decide(actor, loan_id, reason, Action.CANCEL)

    async def hand_out(self, actor: Actor, loan_id: str) -> Loan:
        return await self._decide(actor, loan_id, "", Action.HAND_OUT)

    async def record_return(self, actor: Actor, loan_id: str) -> Loan:
        return await self._decide(actor, loan_id, "", Action.RETURN)

    async def _decide(self, actor: Actor, loan_id: str, reason: str, action: Action) -> Loan:
        v = rules.Violations()
        loan_id = check_loan_id(v, loan_id)
        why = check_reason(v, reason) if action not in (Action.HAND_OUT, Action.RETURN) else ""
        v.raise_if_any()
        loan = await self.store.loan(loan_id)
        if loan is None or loan.hall != actor.hall:
            raise NotFound("loan")
        same = action == Action.APPROVE and await self._same_person(actor.staff_id, loan.borrower)
        check_step(action, actor, loan, same_person=same)
        now = self.clock()
        changes: dict[str, Any] = {}
        if action in (Action.APPROVE, Action.REJECT):
            changes = {"decided_by": actor.staff_id, "decided_at": now}
        elif action == Action.CANCEL:
            changes = {"decided_by": actor.staff_id, "decided_at": now}
        elif action == Action.HAND_OUT:
            if now >= loan.due_at:
                raise FailedPrecondition("loan_due_passed")
            changes = {"handed_out_by": actor.staff_id, "handed_out_at": now}
            why = f"handed to {loan.borrower}, due back {loan.due_at.isoformat(timespec='minutes')}"
        elif action == Action.RETURN:
            changes = {"returned_to": actor.staff_id, "returned_at": now}
            late = now - loan.due_at
            why = "back on the shelf" + (f", {_late(late)} late" if late > timedelta(0) else "")
        after = advance(loan, action, **changes)
        t = Transition(now, action, loan.state, after.state, actor.staff_id, actor.role, why)
        if not await self.store.transition(after, t):
            raise FailedPrecondition("loan_changed")
        return after

    async def _same_person(self, staff_id: str, other: str) -> bool:
        if not staff_id or staff_id == other:
            return bool(staff_id)
        if self.people is None:
            return False
        return person_of(staff_id, await self.people.get(staff_id)) == person_of(other, await self.people.get(other))

    async def _document(self, actor: Actor, archive_id: str) -> tuple[Document, str]:
        found = await self.store.document(archive_id)
        if found is None or found[0].hall != actor.hall:
            raise NotFound("document")
        return found

    # --- queries

    async def where(self, actor: Actor, archive_id: str) -> Whereabouts:
        self._reader(actor)
        v = rules.Violations()
        archive_id = check_archive_id(v, archive_id)
        v.raise_if_any()
        doc, loan_id = await self._document(actor, archive_id)
        loan = await self.store.loan(loan_id) if loan_id else None
        if loan is not None and loan.state not in OPEN_STATES:
            loan = None
        return Whereabouts(doc, loan, await self.store.history(loan.loan_id) if loan else [])

    async def list_loans(self, actor: Actor, f: LoanFilter) -> LoanPage:
        self._reader(actor)
        v = rules.Violations()
        size = f.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            v.items.append(("page_size", f"must be between 1 and {MAX_PAGE_SIZE}"))
        if f.page_token and not (f.page_token.isascii() and f.page_token.isdigit() and len(f.page_token) < 10):
            v.items.append(("page_token", "must be a next_page_token from a previous page"))
        if f.holder and not STAFF_ID_RE.fullmatch(f.holder):
            v.items.append(("holder_staff_id", "must be a staff id"))
        if f.overdue_only and f.state not in (None, State.OUT):
            v.items.append(("state", "overdue loans are OUT: leave state unset or OUT"))
        v.raise_if_any()
        holder = f.holder
        if actor.role == Role.CLERK:
            if holder and holder != actor.staff_id:
                raise PermissionDenied("own_loans_only")
            holder = actor.staff_id
        offset = int(f.page_token or 0)
        found = await self.store.list_loans(actor.hall, holder=holder, state=f.state,
                                            overdue_at=self.clock() if f.overdue_only else None,
                                            offset=offset, limit=size + 1)
        more = len(found) > size
        return LoanPage(found[:size], str(offset + size) if more else "")

    def _reader(self, actor: Actor) -> None:
        if not actor.staff_id or not actor.hall:
            raise PermissionDenied("no_staff_identity")
        if actor.role not in READERS:
            raise PermissionDenied("role")


def _late(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 24 else f"{hours:.1f} hours"


# --- overdue alerts ----------------------------------------------------------------------------


def overdue_detail(loan: Loan, now: datetime) -> str:
    """What an overdue alert says: the loan, the document, the borrower (a staff id), the due
    time and by how much it is late. Nothing of a customer, no secret."""
    return (f"loan {loan.loan_id} of archive {loan.archive_id} (hall {loan.hall}) is overdue: held by "
            f"{loan.borrower} since {loan.handed_out_at.isoformat(timespec='minutes') if loan.handed_out_at else '-'}, "
            f"due {loan.due_at.isoformat(timespec='minutes')}, {_late(now - loan.due_at)} late")
