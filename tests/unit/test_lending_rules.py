"""The archive lending register's rules (R3), pure: the state machine, four eyes per person, the
hall, the due time, and the desk over an in-memory store."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain import lending as ln
from gateway.domain.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from gateway.domain.lending import Action, Actor, LendingConfig, LendingDesk, Loan, State
from gateway.domain.ports import StaffRecord

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
CLERK = Actor("C1", "clerk", "H001")
MANAGER = Actor("M1", "hall_manager", "H001")
CUSTODIAN = Actor("K1", "custodian", "H001")
OTHER_HALL_MANAGER = Actor("M2", "hall_manager", "H002")


def loan(state: State = State.REQUESTED, **kw: object) -> Loan:
    base = Loan("LN-0123456789ABCDEF", "H001-CT-0001", "H001", state, 1, "C1", "dispute", NOW, NOW + timedelta(days=3))
    return replace(base, **kw)  # type: ignore[arg-type]


# --- the state machine -------------------------------------------------------------------------

def test_final_states_are_no_source_and_every_step_has_roles():
    for step in ln.STEPS.values():
        assert not step.sources & ln.FINAL_STATES
        assert step.roles
    assert ln.OPEN_STATES | ln.FINAL_STATES == set(State)


@pytest.mark.parametrize(("action", "actor", "state"), [
    (Action.APPROVE, MANAGER, State.REQUESTED), (Action.REJECT, MANAGER, State.REQUESTED),
    (Action.CANCEL, CLERK, State.REQUESTED), (Action.CANCEL, MANAGER, State.APPROVED),
    (Action.HAND_OUT, CUSTODIAN, State.APPROVED), (Action.RETURN, CUSTODIAN, State.OUT),
])
def test_allowed_steps(action, actor, state):
    assert ln.check_step(action, actor, loan(state)).target is not None


def test_the_borrower_never_approves_their_own_loan():
    me_as_manager = Actor("C1", "hall_manager", "H001")
    with pytest.raises(PermissionDenied) as e:
        ln.check_step(Action.APPROVE, me_as_manager, loan())
    assert e.value.reason == "borrower_approves"
    # another account of the same person (the desk's finding from the directory)
    with pytest.raises(PermissionDenied) as e:
        ln.check_step(Action.APPROVE, MANAGER, loan(), same_person=True)
    assert e.value.reason == "borrower_approves"


@pytest.mark.parametrize(("action", "actor"), [
    (Action.APPROVE, Actor("C2", "clerk", "H001")), (Action.APPROVE, CUSTODIAN), (Action.HAND_OUT, MANAGER),
    (Action.HAND_OUT, CLERK),
    (Action.RETURN, CLERK), (Action.REGISTER, CLERK), (Action.REGISTER, MANAGER), (Action.REQUEST, CUSTODIAN),
    (Action.CANCEL, CUSTODIAN),
])
def test_wrong_roles_are_refused(action, actor):
    with pytest.raises(PermissionDenied) as e:
        ln.check_step(action, actor, None if action in (Action.REGISTER, Action.REQUEST) else loan(State.APPROVED))
    assert e.value.reason == "role"


def test_the_custodian_hands_out_only_approved_loans():
    for state in (State.REQUESTED, State.REJECTED, State.OUT, State.RETURNED, State.CANCELLED):
        with pytest.raises(FailedPrecondition) as e:
            ln.check_step(Action.HAND_OUT, CUSTODIAN, loan(state))
        assert e.value.reason == f"loan_{state.value}"


def test_a_clerk_cancels_only_their_own_loan_and_another_hall_sees_nothing():
    with pytest.raises(PermissionDenied) as e:
        ln.check_step(Action.CANCEL, Actor("C2", "clerk", "H001"), loan())
    assert e.value.reason == "not_the_borrower"
    with pytest.raises(NotFound):
        ln.check_step(Action.APPROVE, OTHER_HALL_MANAGER, loan())
    with pytest.raises(PermissionDenied) as e:
        ln.check_step(Action.APPROVE, Actor("", "hall_manager", "H001"), loan())
    assert e.value.reason == "no_staff_identity"


def test_advance_counts_versions():
    after = ln.advance(loan(), Action.APPROVE, decided_by="M1", decided_at=NOW)
    assert (after.state, after.version, after.decided_by) == (State.APPROVED, 2, "M1")


# --- due times and overdue ---------------------------------------------------------------------

def test_due_within_loan_max_days():
    cfg = LendingConfig(max_days=3)
    v = ln.rules.Violations()
    assert ln.check_due(v, None, NOW, cfg) == NOW + timedelta(days=3)
    assert ln.check_due(v, NOW + timedelta(days=3), NOW, cfg) == NOW + timedelta(days=3)
    assert not v.items
    ln.check_due(v, NOW + timedelta(days=3, seconds=1), NOW, cfg)
    ln.check_due(v, NOW, NOW, cfg)
    assert [f for f, _ in v.items] == ["due_at", "due_at"]
    assert "3 days" in v.items[0][1]


def test_overdue_only_when_out_and_past_due():
    due = NOW + timedelta(days=1)
    assert loan(State.OUT, due_at=due).overdue(due)
    assert not loan(State.OUT, due_at=due).overdue(due - timedelta(seconds=1))
    assert not loan(State.APPROVED, due_at=due).overdue(due + timedelta(days=9))


def test_closed_at_starts_the_disposal_clock_only_when_final():
    assert loan(State.OUT).closed_at is None
    assert loan(State.RETURNED, returned_at=NOW).closed_at == NOW
    assert loan(State.REJECTED, decided_at=NOW).closed_at == NOW
    assert loan(State.APPROVED, decided_at=NOW).closed_at is None


def test_alert_day_is_the_operators_calendar_day():
    late_utc = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # 01:00 on Dec 1st in Shanghai
    assert ln.day_of(late_utc, "Asia/Shanghai") == "2026-12-01"
    assert ln.day_of(late_utc, "UTC") == "2026-11-30"


def test_the_overdue_detail_names_no_customer_and_says_how_late():
    text = ln.overdue_detail(loan(State.OUT, handed_out_at=NOW, due_at=NOW), NOW + timedelta(days=2))
    assert "LN-0123456789ABCDEF" in text and "C1" in text and "2.0 days late" in text


# --- the desk over an in-memory store ----------------------------------------------------------

class MemoryStore:
    def __init__(self) -> None:
        self.docs: dict[str, tuple[ln.Document, str]] = {}
        self.loans: dict[str, Loan] = {}
        self.hist: dict[str, list[ln.Transition]] = {}

    async def add_document(self, doc):
        if doc.archive_id in self.docs:
            return False
        self.docs[doc.archive_id] = (doc, "")
        return True

    async def document(self, archive_id):
        return self.docs.get(archive_id)

    async def create_loan(self, loan, first):
        if loan.archive_id not in self.docs:
            return "no_document"
        doc, held = self.docs[loan.archive_id]
        if held:
            return "unavailable"
        self.docs[loan.archive_id] = (doc, loan.loan_id)
        self.loans[loan.loan_id], self.hist[loan.loan_id] = loan, [first]
        return "ok"

    async def transition(self, after, t):
        cur = self.loans.get(after.loan_id)
        if cur is None or cur.version != after.version - 1 or cur.state != t.from_state:
            return False
        self.loans[after.loan_id] = after
        self.hist[after.loan_id].append(t)
        if after.state in ln.FINAL_STATES:
            doc, _ = self.docs[after.archive_id]
            self.docs[after.archive_id] = (doc, "")
        return True

    async def loan(self, loan_id):
        return self.loans.get(loan_id)

    async def history(self, loan_id):
        return list(self.hist.get(loan_id, []))

    async def list_loans(self, hall, *, holder="", state=None, overdue_at=None, offset=0, limit=50):
        out = [x for x in self.loans.values() if x.hall == hall and (not holder or x.borrower == holder)
               and (state is None or x.state == state) and (overdue_at is None or x.overdue(overdue_at))]
        return out[offset:offset + limit]


class People:
    def __init__(self, employees: dict[str, str]) -> None:
        self.employees = employees

    async def get(self, staff_id):
        no = self.employees.get(staff_id)
        return None if no is None else StaffRecord(staff_id, "x", "clerk", "H001", "", 0, "", employee_no=no)


def desk(people=None, clock=lambda: NOW) -> LendingDesk:
    return LendingDesk(MemoryStore(), LendingConfig(max_days=3), clock=clock, people=people)


def run(coro):
    return asyncio.run(coro)


def test_the_whole_flow_and_where_the_document_is():
    async def go():
        d = desk()
        doc = await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0001", "contract", "", "contract of 2024"))
        assert doc.hall == "H001" and (await d.where(CLERK, doc.archive_id)).on_shelf
        x = await d.request(CLERK, doc.archive_id, "billing dispute", None)
        assert x.due_at == NOW + timedelta(days=3) and x.state == State.REQUESTED
        with pytest.raises(FailedPrecondition) as e:
            await d.request(Actor("C2", "clerk", "H001"), doc.archive_id, "me too", None)
        assert e.value.reason == "document_unavailable"
        await d.approve(MANAGER, x.loan_id, "ok")
        out = await d.hand_out(CUSTODIAN, x.loan_id)
        where = await d.where(MANAGER, doc.archive_id)
        assert not where.on_shelf and where.loan == out and len(where.history) == 3
        held = await d.list_loans(MANAGER, ln.LoanFilter(holder="C1", state=State.OUT))
        assert [y.loan_id for y in held.loans] == [x.loan_id]
        back = await d.record_return(CUSTODIAN, x.loan_id)
        assert back.state == State.RETURNED and (await d.where(CLERK, doc.archive_id)).on_shelf
        # free again: a new loan may be asked for
        assert (await d.request(CLERK, doc.archive_id, "again", None)).state == State.REQUESTED

    run(go())


def test_four_eyes_per_person_through_the_directory():
    async def go():
        d = desk(People({"C1": "E1", "M9": "E1", "M1": "E2"}))
        await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0001", "contract", "H001", "c"))
        x = await d.request(CLERK, "H001-CT-0001", "why", None)
        with pytest.raises(PermissionDenied) as e:
            await d.approve(Actor("M9", "hall_manager", "H001"), x.loan_id, "it's me, another account")
        assert e.value.reason == "borrower_approves"
        assert (await d.approve(MANAGER, x.loan_id, "ok")).state == State.APPROVED

    run(go())


def test_validation_names_every_bad_field_and_halls_stay_apart():
    async def go():
        d = desk()
        with pytest.raises(InvalidArgument) as e:
            await d.register(CUSTODIAN, ln.DocumentDraft("x", "", "bad hall!", ""))
        assert [f for f, _ in e.value.violations] == ["archive_id", "kind", "hall", "description"]
        with pytest.raises(PermissionDenied) as p:
            await d.register(CUSTODIAN, ln.DocumentDraft("H002-CT-0001", "contract", "H002", "c"))
        assert p.value.reason == "other_hall"
        await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0001", "contract", "", "c"))
        with pytest.raises(FailedPrecondition):
            await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0001", "contract", "", "c"))
        with pytest.raises(InvalidArgument) as e:
            await d.request(CLERK, "", "", NOW + timedelta(days=4))
        assert [f for f, _ in e.value.violations] == ["archive_id", "reason", "due_at"]
        with pytest.raises(NotFound):
            await d.request(Actor("C5", "clerk", "H002"), "H001-CT-0001", "why", None)
        with pytest.raises(PermissionDenied) as p:
            await d.list_loans(CLERK, ln.LoanFilter(holder="C9"))
        assert p.value.reason == "own_loans_only"

    run(go())


def test_hand_out_after_the_due_time_is_refused():
    now = [NOW]

    async def go():
        d = desk(clock=lambda: now[0])
        await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0001", "contract", "", "c"))
        x = await d.request(CLERK, "H001-CT-0001", "why", NOW + timedelta(hours=2))
        await d.approve(MANAGER, x.loan_id, "ok")
        now[0] = NOW + timedelta(hours=3)
        with pytest.raises(FailedPrecondition) as e:
            await d.hand_out(CUSTODIAN, x.loan_id)
        assert e.value.reason == "loan_due_passed"

    run(go())


# --- the policy table agrees with the desk -------------------------------------------------------

def test_lending_rows_admit_the_clerk_channel_only_and_agree_with_the_desk():
    from gateway.domain.identity import Channel
    from gateway.domain.policy import POLICY, SIGN_IN_CHANNELS
    from gateway.domain.policy import Role as PolicyRole
    from hallgate_pb.v1 import lending_pb2

    methods = [m.name for m in lending_pb2.DESCRIPTOR.services_by_name["LendingService"].methods]
    step_of = {"RegisterDocument": Action.REGISTER, "RequestLoan": Action.REQUEST, "ApproveLoan": Action.APPROVE,
               "RejectLoan": Action.REJECT, "CancelLoan": Action.CANCEL, "HandOut": Action.HAND_OUT,
               "RecordReturn": Action.RETURN}
    for name in methods:
        rule = POLICY[f"/hallgate.v1.LendingService/{name}"]
        assert rule.channels == {Channel.CLERK}, name
        roles = {r.value for r in rule.roles}
        desk_roles = ln.STEPS[step_of[name]].roles if name in step_of else ln.READERS
        expected = {r.value for r in desk_roles}
        assert roles == expected, name
        for r in rule.roles:
            assert SIGN_IN_CHANNELS[r] == {Channel.CLERK}, r  # every lending role signs in at a hall terminal
    assert {r.value for r in ln.Role} <= {r.value for r in PolicyRole}
