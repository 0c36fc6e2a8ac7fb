"""The legal channel's rules (gateway/domain/legal.py) and the LegalService mapping, over in-memory fakes:
validation with field paths, the state machine, four eyes, fulfil once, lapses, and the history."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from gateway.api.legal import LegalServicer
from gateway.domain import delivery, legal, request_context
from gateway.domain.errors import (
    DependencyUnavailable,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from gateway.domain.legal import (
    FINAL_STATES,
    STEPS,
    Action,
    Actor,
    FulfilScope,
    LegalConfig,
    LegalDesk,
    ListFilter,
    Officer,
    RequestDraft,
    State,
)
from hallgate_pb.v1 import legal_pb2
from tests.support.legal_world import (
    APPROVER,
    APPROVER2,
    AUDITOR,
    IN_WINDOW,
    NOW,
    OFFICER,
    OFFICER2,
    PDF,
    UNKNOWN,
    WINDOW_END,
    WINDOW_START,
    A,
    B,
    approved,
    draft,
    local,
    make_world,
    registered,
)


def fields_of(err: InvalidArgument) -> list[str]:
    return [f for f, _ in err.violations]


def violations(d: RequestDraft, config: LegalConfig | None = None) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as e:
        legal.validate_draft(d, NOW, config or LegalConfig())
    return dict(e.value.violations)


async def collect(parts: AsyncIterator[legal.DeliveryPart]) -> list[legal.DeliveryPart]:
    return [p async for p in parts]


def chunks_of(parts: list[legal.DeliveryPart]) -> list[bytes]:
    return [p.data for p in parts if isinstance(p, legal.DeliveryChunk)]


# --- validation ----------------------------------------------------------------------------------


def test_a_valid_draft_is_normalised():
    d = legal.validate_draft(draft(agency_name="  Shanghai PSB ", letter_media_type="Application/PDF",
                                   categories=("call_details", "subscriber_info")), NOW, LegalConfig())
    assert d.agency_name == "Shanghai PSB"
    assert d.letter_media_type == "application/pdf"
    assert d.categories == ("subscriber_info", "call_details")  # canonical (delivery) order


@pytest.mark.parametrize(("overrides", "field", "says"), [
    # who may ask (R5)
    ({"agency_kind": ""}, "agency.kind", "required"),
    ({"agency_kind": "court"}, "agency.kind", "public security"),
    ({"agency_kind": "unknown:9"}, "agency.kind", "(R5)"),
    ({"agency_level": "county"}, "agency.level", "prefecture (city) level or above"),
    ({"agency_level": "township"}, "agency.level", "prefecture (city) level or above"),
    ({"agency_level": ""}, "agency.level", "required"),
    ({"agency_name": "  "}, "agency.name", "required"),
    ({"agency_name": "x" * 129}, "agency.name", "at most 128"),
    ({"agency_name": "Bureau\x00"}, "agency.name", "control characters"),
    # the letter
    ({"letter_content": b""}, "letter.content", "required: the scanned letter"),
    ({"letter_content": b"plain text, not a scan"}, "letter.content", "not a application/pdf file"),
    ({"letter_media_type": ""}, "letter.media_type", "required"),
    ({"letter_media_type": "text/plain"}, "letter.media_type", "must be one of"),
    ({"letter_reference": ""}, "letter.reference", "required"),
    ({"letter_date": ""}, "letter.date", "required"),
    ({"letter_date": "2025-02-30"}, "letter.date", "YYYY-MM-DD"),
    ({"letter_date": "10/06/2025"}, "letter.date", "YYYY-MM-DD"),
    ({"letter_date": "2025-06-16"}, "letter.date", "future"),
    # the basis and the case
    ({"legal_basis": ""}, "legal_basis", "required"),
    ({"legal_basis": "x" * 501}, "legal_basis", "at most 500"),
    ({"case_number": ""}, "case_number", "required"),
    # the officers
    ({"officers": ()}, "officers", "at least one"),
    ({"officers": (Officer("", "310123"),)}, "officers[0].name", "required"),
    ({"officers": (Officer("Li Wei", ""),)}, "officers[0].badge_number", "required"),
    ({"officers": (Officer("Li Wei", "31 0123"),)}, "officers[0].badge_number", "letters, digits"),
    ({"officers": (Officer("Li Wei", "310123"), Officer("Li Wei", "310123"))}, "officers[1].badge_number",
     "repeats officers[0]"),
    ({"officers": tuple(Officer("N", f"B{i}") for i in range(11))}, "officers", "at most 10"),
    # the targets
    ({"targets": ()}, "targets", "at least one"),
    ({"targets": (A, "12345")}, "targets[1]", "11-digit"),
    ({"targets": (A, "")}, "targets[1]", "required"),
    ({"targets": (A, B, A)}, "targets[2]", "repeats targets[0]"),
    ({"targets": tuple(f"138000000{i:02d}" for i in range(21))}, "targets", "at most 20"),
    # the categories (R1: never content)
    ({"categories": ()}, "categories", "required"),
    ({"categories": ("call_details", "communication_content")}, "categories[1]",
     "never available through this gateway (R1)"),
    ({"categories": ("unknown:7",)}, "categories[0]", "subscriber_info or call_details"),
    ({"categories": ("",)}, "categories[0]", "subscriber_info or call_details"),
    ({"categories": ("call_details", "call_details")}, "categories[1]", "twice"),
    # the window
    ({"window_start": None}, "window.start", "required"),
    ({"window_end": None}, "window.end", "required"),
    ({"window_end": NOW + timedelta(seconds=1)}, "window.end", "future"),
    ({"window_start": NOW + timedelta(days=1), "window_end": NOW + timedelta(days=2)}, "window.start", "future"),
    ({"window_end": WINDOW_START}, "window.end", "after window.start"),
    ({"window_start": local(2024, 3, 1), "window_end": local(2025, 3, 1, 1)}, "window.end", "at most 12 months"),
])
def test_each_rule_names_its_field(overrides, field, says):
    found = violations(draft(**overrides))
    assert field in found, found
    assert says in found[field]


def test_a_letter_above_the_size_limit_is_refused():
    config = LegalConfig(max_letter_bytes=2**20)
    found = violations(draft(letter_content=b"%PDF-" + bytes(2**20)), config)
    assert found == {"letter.content": "must be at most 1 MiB"}


def test_the_window_may_be_exactly_twelve_months_and_end_now():
    legal.validate_draft(draft(window_start=local(2024, 4, 1), window_end=local(2025, 4, 1)), NOW, LegalConfig())
    legal.validate_draft(draft(window_start=NOW - timedelta(days=1), window_end=NOW), NOW, LegalConfig())
    short = LegalConfig(max_window_months=1)
    assert "window.end" in violations(draft(), short)  # the setting counts


def test_a_window_at_the_end_of_time_is_a_field_error_not_a_crash():
    # Found by `make fuzz` (INTERNAL): a start in year 9999 had no twelfth month to add.
    far = datetime(9999, 12, 1, tzinfo=UTC)
    found = violations(draft(window_start=far, window_end=far + timedelta(days=20)))
    assert found["window.start"] == "must not be in the future" and found["window.end"] == "must not be in the future"


def test_every_bad_field_is_reported_at_once():
    found = violations(RequestDraft())
    assert set(found) == {"agency.kind", "agency.name", "agency.level", "letter.reference", "letter.date",
                          "letter.media_type", "letter.content", "legal_basis", "case_number", "officers",
                          "targets", "categories", "window.start", "window.end"}


def test_all_image_types_are_recognised_by_their_first_bytes():
    for media, magic in [("image/jpeg", b"\xff\xd8\xff\xe0"), ("image/png", b"\x89PNG\r\n\x1a\n"),
                         ("image/tiff", b"II*\x00"), ("image/tiff", b"MM\x00*")]:
        legal.validate_draft(draft(letter_media_type=media, letter_content=magic + b"data"), NOW, LegalConfig())
        assert "letter.content" in violations(draft(letter_media_type=media, letter_content=PDF))


def test_calendar_helpers():
    assert legal.add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert legal.add_months(datetime(2024, 11, 30, tzinfo=UTC), 3) == datetime(2025, 2, 28, tzinfo=UTC)
    assert legal.months_covering(WINDOW_START, WINDOW_END, "Asia/Shanghai") == ["2025-03", "2025-04"]
    assert legal.months_covering(local(2024, 12, 31, 23), local(2025, 2, 1, 0), "Asia/Shanghai") == [
        "2024-12", "2025-01"]


# --- the state machine ---------------------------------------------------------------------------


def test_final_states_are_final_and_every_state_is_reachable():
    for step in STEPS.values():
        assert not step.sources & FINAL_STATES
    reached = {s.target for s in STEPS.values()}
    assert reached == set(State)
    assert FINAL_STATES == {State.DISCLOSED, State.DISCLOSURE_NOT_AVAILABLE, State.REJECTED, State.INVALID,
                            State.CANCELLED, State.EXPIRED}


def test_who_may_take_each_step():
    roles = {a: {r.value for r in s.roles} for a, s in STEPS.items()}
    assert roles[Action.REGISTER] == {"legal_officer"}
    assert roles[Action.APPROVE] == roles[Action.REJECT] == {"legal_approver"}
    assert roles[Action.MARK_INVALID] == roles[Action.CANCEL] == {"legal_officer", "legal_approver"}
    assert roles[Action.START_FULFILMENT] == {"legal_officer"}
    assert roles[Action.EXPIRE] == roles[Action.INTERRUPT] == {"system"}
    assert not any("auditor" in r for r in roles.values())  # auditors only read


# --- the desk: the happy path --------------------------------------------------------------------


async def test_the_full_happy_path_with_history_and_a_verifiable_delivery():
    w = make_world()
    r = await registered(w)
    assert r.state == State.AWAITING_APPROVAL and legal.REQUEST_ID_RE.fullmatch(r.request_id)
    assert w.documents.docs[r.letter_sha256] == PDF and r.letter_size == len(PDF)

    w.clock.advance(3600)
    a = await w.desk.approve(APPROVER, r.request_id, "letter verified by phone with the bureau")
    assert (a.state, a.approved_by, a.approved_at) == (State.AWAITING_DISCLOSURE, "A001", w.clock())
    assert legal.approval_expires_at(a, w.desk.config) == w.clock() + timedelta(days=30)

    w.clock.advance(3600)
    parts = await collect(w.desk.fulfil(OFFICER2, r.request_id, "handed to officer Li Wei in person"))
    start, end = parts[0], parts[-1]
    assert isinstance(start, legal.DeliveryStart) and isinstance(end, legal.DeliveryEnd)
    assert start.scope.targets == (A, B)
    assert end.request.state == State.DISCLOSED and end.request.fulfilled_by == "L002"

    chunks = chunks_of(parts)
    doc = delivery.verify_delivery(end.signed.manifest, end.signed.signature, w.signer.public_key, chunks)
    assert doc["request_id"] == r.request_id and doc["delivery_id"] == start.delivery_id
    assert doc["per_target"] == [{"target": A, "subscriber": "found", "call_details": len(IN_WINDOW)},
                                 {"target": B, "subscriber": "found", "call_details": 1}]
    assert doc["letter_sha256"] == r.letter_sha256 and doc["case_number"] == "SH-2025-0042"

    # Only the window's records left billing's pages; SIM data never left at all (R7).
    delivered = [legal_pb2.DeliveryRecords.FromString(c) for c in chunks]
    times = [d.start_time.ToDatetime(tzinfo=UTC) for c in delivered for d in c.call_details if c.target == A]
    assert times == IN_WINDOW
    first = delivered[0]
    assert first.target == A and first.subscriber.exists and first.subscriber.owner_name == "Zhang San"
    assert not any(b"460001234567890" in c or b"89860012345678901234" in c for c in chunks)

    # The stored request keeps the signed manifest; the history names who and why at each step.
    got, history = await w.desk.get_request(AUDITOR, r.request_id)
    assert got.manifest == end.signed.manifest and got.manifest_signature == end.signed.signature
    assert [(t.action, t.from_state, t.to_state, t.actor, t.role) for t in history] == [
        (Action.REGISTER, None, State.AWAITING_APPROVAL, "L001", "legal_officer"),
        (Action.APPROVE, State.AWAITING_APPROVAL, State.AWAITING_DISCLOSURE, "A001", "legal_approver"),
        (Action.START_FULFILMENT, State.AWAITING_DISCLOSURE, State.DISCLOSING, "L002", "legal_officer"),
        (Action.DISCLOSE, State.DISCLOSING, State.DISCLOSED, "L002", "legal_officer"),
    ]
    assert "letter verified by phone" in history[1].reason
    assert "handed to officer Li Wei" in history[2].reason and start.delivery_id in history[2].reason
    assert doc["content_sha256"] in history[3].reason
    assert all(t.reason for t in history)


async def test_a_fulfilment_may_narrow_the_approval():
    w = make_world()
    r = await approved(w)
    scope = FulfilScope(targets=[B], categories=["call_details"], window_start=local(2025, 4, 1),
                        window_end=local(2025, 4, 2))
    parts = await collect(w.desk.fulfil(OFFICER, r.request_id, "first part", scope))
    end = parts[-1]
    assert isinstance(end, legal.DeliveryEnd)
    doc = delivery.verify_delivery(end.signed.manifest, end.signed.signature, w.signer.public_key, chunks_of(parts))
    assert doc["targets"] == [B] and doc["categories"] == ["call_details"]
    assert doc["per_target"] == [{"target": B, "subscriber": "not_requested", "call_details": 1}]
    assert ("subscriber", A) not in w.billing.asked and not any(A in x for _, x in w.billing.asked)


async def test_billing_without_the_data_gives_disclosure_not_available_with_a_signed_answer():
    w = make_world()
    r = await approved(w, targets=(UNKNOWN,))
    parts = await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))
    end = parts[-1]
    assert isinstance(end, legal.DeliveryEnd) and end.request.state == State.DISCLOSURE_NOT_AVAILABLE
    doc = delivery.verify_delivery(end.signed.manifest, end.signed.signature, w.signer.public_key, chunks_of(parts))
    assert doc["per_target"] == [{"target": UNKNOWN, "subscriber": "not_found", "call_details": 0}]
    _, history = await w.desk.get_request(OFFICER, r.request_id)
    assert history[-1].action == Action.NOT_AVAILABLE and "none of the data" in history[-1].reason


# --- four eyes and roles -------------------------------------------------------------------------


async def test_the_registering_officer_may_never_approve_even_as_an_approver_later():
    w = make_world()
    r = await registered(w)
    with pytest.raises(PermissionDenied) as e:
        await w.desk.approve(OFFICER, r.request_id, "looks fine to me")
    assert e.value.reason == "four_eyes"
    promoted = Actor(OFFICER.staff_id, "legal_approver")  # the same person, promoted since
    with pytest.raises(PermissionDenied) as e:
        await w.desk.approve(promoted, r.request_id, "looks fine to me")
    assert e.value.reason == "four_eyes"
    assert (await w.store.get(r.request_id)).state == State.AWAITING_APPROVAL  # type: ignore[union-attr]


@pytest.mark.parametrize("actor", [OFFICER2, AUDITOR, Actor("X1", ""), Actor("X1", "clerk")])
async def test_only_an_approver_approves(actor):
    w = make_world()
    r = await registered(w)
    with pytest.raises(PermissionDenied) as e:
        await w.desk.approve(actor, r.request_id, "approve")
    assert e.value.reason == "role"


async def test_roles_for_the_other_steps():
    w = make_world()
    for who in (APPROVER, AUDITOR):
        with pytest.raises(PermissionDenied, match="role"):
            await registered(w, by=who)
    with pytest.raises(PermissionDenied) as e:
        await w.desk.register(Actor("", "legal_officer"), draft())
    assert e.value.reason == "no_staff_identity"
    r = await registered(w)
    with pytest.raises(PermissionDenied, match="role"):
        await w.desk.reject(OFFICER2, r.request_id, "no")  # rejecting is the approver's decision
    with pytest.raises(PermissionDenied, match="role"):
        await w.desk.cancel(AUDITOR, r.request_id, "no")
    await w.desk.approve(APPROVER, r.request_id, "ok")
    for who in (APPROVER, AUDITOR):
        with pytest.raises(PermissionDenied, match="role"):
            await collect(w.desk.fulfil(who, r.request_id, "deliver"))
    with pytest.raises(PermissionDenied, match="role"):
        await w.desk.list_requests(Actor("C1", "clerk"), ListFilter())


async def test_refusals_are_decided_before_validation_and_store_nothing():
    w = make_world()
    with pytest.raises(PermissionDenied):
        await w.desk.register(AUDITOR, RequestDraft())
    with pytest.raises(InvalidArgument):
        await w.desk.register(OFFICER, draft(categories=("communication_content",)))
    assert not w.store.requests and not w.documents.docs


# --- the lifecycle -------------------------------------------------------------------------------


@pytest.mark.parametrize(("act", "by", "state"), [
    ("reject", APPROVER, State.REJECTED),
    ("mark_invalid", APPROVER, State.INVALID),
    ("mark_invalid", OFFICER2, State.INVALID),
    ("cancel", OFFICER, State.CANCELLED),
])
async def test_closing_decisions_are_final(act, by, state):
    w = make_world()
    r = await registered(w)
    after = await getattr(w.desk, act)(by, r.request_id, "the bureau phoned: letter withdrawn")
    assert after.state == state
    with pytest.raises(FailedPrecondition) as e:
        await w.desk.approve(APPROVER, r.request_id, "approve anyway")
    assert e.value.reason == f"request_{state.value}"
    with pytest.raises(FailedPrecondition):
        await w.desk.cancel(OFFICER, r.request_id, "cancel")
    with pytest.raises(FailedPrecondition):
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))
    _, history = await w.desk.get_request(AUDITOR, r.request_id)
    assert history[-1].to_state == state and history[-1].actor == by.staff_id


async def test_an_approved_request_may_still_be_cancelled_or_found_invalid():
    w = make_world()
    r = await approved(w)
    assert (await w.desk.mark_invalid(OFFICER, r.request_id, "the seal does not match")).state == State.INVALID


async def test_decisions_need_a_reason_and_a_well_formed_id():
    w = make_world()
    r = await registered(w)
    with pytest.raises(InvalidArgument) as e:
        await w.desk.approve(APPROVER, r.request_id, "   ")
    assert fields_of(e.value) == ["reason"]
    with pytest.raises(InvalidArgument) as e:
        await w.desk.approve(APPROVER, "LR-1", "ok")
    assert fields_of(e.value) == ["request_id"]
    with pytest.raises(NotFound):
        await w.desk.approve(APPROVER, "LR-0000000000000000", "ok")


async def test_approving_twice_is_refused():
    w = make_world()
    r = await approved(w)
    with pytest.raises(FailedPrecondition) as e:
        await w.desk.approve(APPROVER2, r.request_id, "ok too")
    assert e.value.reason == "request_awaiting_disclosure"


# --- fulfilment refusals -------------------------------------------------------------------------


async def test_no_fulfilment_before_approval():
    w = make_world()
    r = await registered(w)
    with pytest.raises(FailedPrecondition) as e:
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))
    assert e.value.reason == "request_awaiting_approval"
    assert not w.billing.asked


async def test_no_fulfilment_after_the_approval_lapsed_and_the_lapse_is_recorded():
    w = make_world()
    r = await approved(w)
    approved_at = w.clock()
    w.clock.advance(30 * 86400 - 1)
    got, _ = await w.desk.get_request(OFFICER, r.request_id)
    assert got.state == State.AWAITING_DISCLOSURE  # one second to go
    w.clock.advance(1)
    with pytest.raises(FailedPrecondition) as e:
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))
    assert e.value.reason == "request_expired"
    assert not w.billing.asked
    got, history = await w.desk.get_request(OFFICER, r.request_id)
    assert got.state == State.EXPIRED
    lapse = history[-1]
    assert (lapse.action, lapse.actor, lapse.role, lapse.at) == (
        Action.EXPIRE, "system", "system", approved_at + timedelta(days=30))
    assert "30 days" in lapse.reason


async def test_the_validity_is_a_setting():
    w = make_world(LegalConfig(approval_days=1))
    r = await approved(w)
    w.clock.advance(86400)
    with pytest.raises(FailedPrecondition, match="request_expired"):
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))


async def test_a_request_is_fulfilled_once():
    w = make_world()
    r = await approved(w)
    await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))
    asked = len(w.billing.asked)
    with pytest.raises(FailedPrecondition) as e:
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver again"))
    assert e.value.reason == "request_disclosed"
    assert len(w.billing.asked) == asked


async def test_a_second_fulfilment_cannot_start_while_one_streams():
    w = make_world()
    r = await approved(w)
    first = w.desk.fulfil(OFFICER, r.request_id, "deliver")
    assert isinstance(await anext(first), legal.DeliveryStart)
    with pytest.raises(FailedPrecondition) as e:
        await collect(w.desk.fulfil(OFFICER2, r.request_id, "deliver too"))
    assert e.value.reason == "request_disclosing"
    assert isinstance((await collect(first))[-1], legal.DeliveryEnd)


@pytest.mark.parametrize(("scope", "reason"), [
    (FulfilScope(targets=[UNKNOWN]), "outside_approved_targets"),
    (FulfilScope(targets=[A, "13800000003"]), "outside_approved_targets"),
    (FulfilScope(window_start=WINDOW_START - timedelta(seconds=1)), "outside_approved_window"),
    (FulfilScope(window_end=WINDOW_END + timedelta(microseconds=1)), "outside_approved_window"),
    (FulfilScope(window_start=WINDOW_END), "outside_approved_window"),
])
async def test_no_fulfilment_outside_the_approval(scope, reason):
    w = make_world()
    r = await approved(w)
    with pytest.raises(PermissionDenied) as e:
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver", scope))
    assert e.value.reason == reason
    assert not w.billing.asked
    assert (await w.store.get(r.request_id)).state == State.AWAITING_DISCLOSURE  # type: ignore[union-attr]


async def test_no_fulfilment_of_categories_not_approved_nor_of_content():
    w = make_world()
    r = await approved(w, categories=("call_details",))
    with pytest.raises(PermissionDenied, match="outside_approved_categories"):
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver", FulfilScope(categories=["subscriber_info"])))
    with pytest.raises(InvalidArgument) as e:
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver",
                                    FulfilScope(categories=["communication_content"])))
    assert fields_of(e.value) == ["categories[0]"]
    with pytest.raises(InvalidArgument) as e:
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver", FulfilScope(targets=["1"])))
    assert fields_of(e.value) == ["targets[0]"]


async def test_nothing_is_disclosed_unless_the_letter_is_on_file_unaltered():
    w = make_world()
    r = await approved(w)
    w.documents.docs[r.letter_sha256] = PDF + b"altered"
    with pytest.raises(FailedPrecondition, match="letter_corrupt"):
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))
    del w.documents.docs[r.letter_sha256]
    with pytest.raises(FailedPrecondition, match="letter_missing"):
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))
    assert not w.billing.asked


# --- interrupted fulfilments ---------------------------------------------------------------------


async def test_a_fulfilment_that_fails_midway_needs_a_new_approval():
    w = make_world()
    r = await approved(w)
    w.billing.fail_after = 1
    with pytest.raises(DependencyUnavailable):
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))
    got, history = await w.desk.get_request(OFFICER, r.request_id)
    assert got.state == State.AWAITING_APPROVAL and got.approved_by == "" and got.approved_at is None
    last = history[-1]
    assert (last.action, last.actor, last.to_state) == (Action.INTERRUPT, "system", State.AWAITING_APPROVAL)
    assert "billing_unavailable" in last.reason and "new approval" in last.reason
    with pytest.raises(FailedPrecondition, match="request_awaiting_approval"):
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver again"))
    # Four eyes still holds for the new approval; then it can be fulfilled.
    with pytest.raises(PermissionDenied, match="four_eyes"):
        await w.desk.approve(Actor("L001", "legal_approver"), r.request_id, "again")
    w.billing.fail_after = None
    await w.desk.approve(APPROVER2, r.request_id, "re-approved after the billing outage")
    end = (await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver again")))[-1]
    assert isinstance(end, legal.DeliveryEnd) and end.request.state == State.DISCLOSED


async def test_a_client_that_goes_away_interrupts_the_fulfilment():
    w = make_world()
    r = await approved(w)
    parts = w.desk.fulfil(OFFICER, r.request_id, "deliver")
    await anext(parts)
    await anext(parts)
    await parts.aclose()  # type: ignore[attr-defined]
    _, history = await w.desk.get_request(OFFICER, r.request_id)
    assert history[-1].action == Action.INTERRUPT and "went away" in history[-1].reason


async def test_a_fulfilment_that_outlives_its_lease_is_interrupted():
    w = make_world(LegalConfig(fulfil_lease=600))
    r = await approved(w)
    parts = w.desk.fulfil(OFFICER, r.request_id, "deliver")
    await anext(parts)
    w.clock.advance(600)
    with pytest.raises(FailedPrecondition, match="fulfilment_lapsed"):
        await collect(parts)
    got, _ = await w.desk.get_request(OFFICER, r.request_id)
    assert got.state == State.AWAITING_APPROVAL


async def test_a_fulfilment_whose_gateway_died_is_recovered_after_the_lease():
    w = make_world(LegalConfig(fulfil_lease=600))
    r = await approved(w)
    parts = w.desk.fulfil(OFFICER, r.request_id, "deliver")
    start = await anext(parts)
    assert isinstance(start, legal.DeliveryStart)
    # The process dies here: nothing more runs in this generator (never closed).
    w.clock.advance(599)
    got, _ = await w.desk.get_request(OFFICER, r.request_id)
    assert got.state == State.DISCLOSING
    w.clock.advance(1)
    page = await w.desk.list_requests(OFFICER, ListFilter(state=State.AWAITING_APPROVAL))
    assert [x.request_id for x in page.requests] == [r.request_id]
    _, history = await w.desk.get_request(OFFICER, r.request_id)
    assert history[-1].action == Action.INTERRUPT and start.delivery_id in history[-1].reason
    assert history[-1].at == start.request.fulfilment_started_at + timedelta(seconds=600)  # type: ignore[operator]


async def test_a_store_outage_fails_closed_before_anything_is_released():
    w = make_world()
    r = await approved(w)
    w.store.down = True
    with pytest.raises(DependencyUnavailable):
        await collect(w.desk.fulfil(OFFICER, r.request_id, "deliver"))
    assert not w.billing.asked


# --- queries -------------------------------------------------------------------------------------


async def test_list_by_state_case_and_agency_newest_first_with_pages():
    w = make_world()
    ids = []
    for i in range(5):
        w.clock.advance(60)
        r = await registered(w, case_number=f"CASE-{i % 2}",
                             agency_name="Beijing PSB" if i < 3 else "Shanghai Procuratorate",
                             agency_kind="public_security" if i < 3 else "procuratorate")
        ids.append(r.request_id)
    await w.desk.approve(APPROVER, ids[0], "ok")
    everything = await w.desk.list_requests(AUDITOR, ListFilter())
    assert [r.request_id for r in everything.requests] == ids[::-1] and everything.next_page_token == ""
    by_state = await w.desk.list_requests(AUDITOR, ListFilter(state=State.AWAITING_DISCLOSURE))
    assert [r.request_id for r in by_state.requests] == [ids[0]]
    by_case = await w.desk.list_requests(AUDITOR, ListFilter(case_number=" case-0 "))
    assert [r.request_id for r in by_case.requests] == [ids[4], ids[2], ids[0]]
    by_both = await w.desk.list_requests(AUDITOR, ListFilter(case_number="CASE-0", agency_name="beijing  psb"))
    assert [r.request_id for r in by_both.requests] == [ids[2], ids[0]]
    first = await w.desk.list_requests(OFFICER, ListFilter(page_size=2))
    second = await w.desk.list_requests(OFFICER, ListFilter(page_size=2, page_token=first.next_page_token))
    third = await w.desk.list_requests(OFFICER, ListFilter(page_size=2, page_token=second.next_page_token))
    assert [r.request_id for p in (first, second, third) for r in p.requests] == ids[::-1]
    assert third.next_page_token == ""


async def test_listing_records_lapsed_approvals_so_the_state_filter_is_right():
    w = make_world()
    r = await approved(w)
    w.clock.advance(31 * 86400)
    page = await w.desk.list_requests(AUDITOR, ListFilter(state=State.EXPIRED))
    assert [x.request_id for x in page.requests] == [r.request_id]
    assert not (await w.desk.list_requests(AUDITOR, ListFilter(state=State.AWAITING_DISCLOSURE))).requests


async def test_list_paging_is_validated():
    w = make_world()
    with pytest.raises(InvalidArgument) as e:
        await w.desk.list_requests(OFFICER, ListFilter(page_size=201, page_token="abc"))
    assert fields_of(e.value) == ["page_size", "page_token"]


# --- no tipping off ------------------------------------------------------------------------------


def test_the_desk_has_no_way_to_reach_a_subscriber_or_a_hall():
    names = {f.name for f in dataclasses.fields(LegalDesk)}
    assert names == {"store", "documents", "billing", "signer", "config", "clock", "make_id", "people"}
    # `people` (four eyes per person) only reads staff records: no way to a subscriber or a hall.
    assert {n for n in dir(legal.People) if not n.startswith("_")} == {"get"}
    assert not {"get_subscriber", "get_customer_profile", "call_detail_pages"} ^ {
        n for n in dir(legal.LegalBilling) if not n.startswith("_")}


# --- the servicer: proto in, proto out -----------------------------------------------------------


def as_staff(actor: Actor) -> request_context.CallContext:
    call = request_context.begin("/hallgate.v1.LegalService/X", "test")
    call.staff_id, call.role = actor.staff_id, actor.role
    return call


def register_message(**overrides: Any) -> legal_pb2.RegisterRequestRequest:
    m = legal_pb2.RegisterRequestRequest(
        agency=legal_pb2.Agency(kind=legal_pb2.AGENCY_KIND_PROCURATORATE, name="Hangzhou People's Procuratorate",
                                level=legal_pb2.AGENCY_LEVEL_PREFECTURE),
        letter=legal_pb2.Letter(reference="杭检调\u30142025\u30157号", date="2025-06-01", media_type="image/png",
                                content=b"\x89PNG\r\n\x1a\n" + b"scan"),
        legal_basis="Criminal Procedure Law art. 54", case_number="HZ-77",
        officers=[legal_pb2.Officer(name="Chen Jing", badge_number="330011")],
        targets=[A], categories=[legal_pb2.DATA_CATEGORY_CALL_DETAILS],
        window=legal_pb2.DataWindow())
    m.window.start.FromDatetime(WINDOW_START)
    m.window.end.FromDatetime(WINDOW_END)
    for k, v in overrides.items():
        if isinstance(v, list):
            del getattr(m, k)[:]
            getattr(m, k).extend(v)
        else:
            getattr(m, k).CopyFrom(v)
    return m


async def test_the_servicer_maps_a_whole_flow_and_notes_the_audit_facts():
    w = make_world()
    svc = LegalServicer(w.desk)
    call = as_staff(OFFICER)
    reg = (await svc.RegisterRequest(register_message(), None)).request
    assert reg.state == legal_pb2.REQUEST_STATE_AWAITING_APPROVAL and reg.targets == [A]
    assert reg.agency.kind == legal_pb2.AGENCY_KIND_PROCURATORATE and reg.letter.size_bytes == 12
    assert (call.reason, call.msisdn, call.subscriber) == ("legal_register", A, "")
    assert reg.request_id in call.detail

    call = as_staff(APPROVER)
    ok = (await svc.ApproveRequest(legal_pb2.ApproveRequestRequest(request_id=reg.request_id,
                                                                   reason="checked"), None)).request
    assert ok.state == legal_pb2.REQUEST_STATE_AWAITING_DISCLOSURE and ok.approved_by == "A001"
    assert ok.approval_expires_at.ToDatetime(tzinfo=UTC) == NOW + timedelta(days=30)
    assert call.reason == "legal_approve" and '"why":"checked"' in call.detail

    call = as_staff(OFFICER2)
    out = [m async for m in svc.FulfilRequest(legal_pb2.FulfilRequestRequest(request_id=reg.request_id,
                                                                             reason="handover"), None)]
    assert [m.WhichOneof("part") for m in out] == ["header"] + ["records"] * (len(out) - 2) + ["manifest"]
    assert out[0].header.targets == [A] and out[0].header.categories == [legal_pb2.DATA_CATEGORY_CALL_DETAILS]
    m = out[-1].manifest
    doc = delivery.verify_delivery(m.manifest_json, m.signature, w.signer.public_pem(), [x.records for x in out[1:-1]])
    assert call.records == doc["totals"]["call_details"] == len(IN_WINDOW)
    assert call.reason == "legal_fulfil" and out[0].header.delivery_id in call.detail

    call = as_staff(AUDITOR)
    got = (await svc.GetRequest(legal_pb2.GetRequestRequest(request_id=reg.request_id), None)).request
    assert got.state == legal_pb2.REQUEST_STATE_DISCLOSED and got.manifest.signature == m.signature
    assert [(h.from_state, h.to_state, h.actor_staff_id, h.actor_role) for h in got.history] == [
        (0, legal_pb2.REQUEST_STATE_AWAITING_APPROVAL, "L001", "legal_officer"),
        (legal_pb2.REQUEST_STATE_AWAITING_APPROVAL, legal_pb2.REQUEST_STATE_AWAITING_DISCLOSURE, "A001",
         "legal_approver"),
        (legal_pb2.REQUEST_STATE_AWAITING_DISCLOSURE, legal_pb2.REQUEST_STATE_DISCLOSING, "L002", "legal_officer"),
        (legal_pb2.REQUEST_STATE_DISCLOSING, legal_pb2.REQUEST_STATE_DISCLOSED, "L002", "legal_officer"),
    ]
    listed = await svc.ListRequests(legal_pb2.ListRequestsRequest(state=legal_pb2.REQUEST_STATE_DISCLOSED), None)
    assert [r.request_id for r in listed.requests] == [reg.request_id] and not listed.requests[0].history


@pytest.mark.parametrize(("overrides", "field"), [
    ({"agency": legal_pb2.Agency(kind=cast(Any, 0), name="X", level=legal_pb2.AGENCY_LEVEL_PREFECTURE)}, "agency.kind"),
    ({"agency": legal_pb2.Agency(kind=cast(Any, 9), name="X", level=legal_pb2.AGENCY_LEVEL_PREFECTURE)}, "agency.kind"),
    ({"agency": legal_pb2.Agency(kind=cast(Any, 1), name="X", level=legal_pb2.AGENCY_LEVEL_COUNTY)}, "agency.level"),
    ({"categories": [legal_pb2.DATA_CATEGORY_COMMUNICATION_CONTENT]}, "categories[0]"),
    ({"targets": [A, "+8613800000002"]}, "targets[1]"),
    ({"letter": legal_pb2.Letter(reference="R", date="2025-06-01", media_type="application/pdf")}, "letter.content"),
    ({"window": legal_pb2.DataWindow()}, "window.start"),
])
async def test_the_servicer_reports_field_paths_of_the_proto(overrides, field):
    w = make_world()
    as_staff(OFFICER)
    with pytest.raises(InvalidArgument) as e:
        await LegalServicer(w.desk).RegisterRequest(register_message(**overrides), None)
    assert field in fields_of(e.value)


async def test_the_servicer_refuses_a_malformed_timestamp_and_an_unknown_state_filter():
    w = make_world()
    as_staff(OFFICER)
    m = register_message()
    m.window.end.nanos = -1
    with pytest.raises(InvalidArgument) as e:
        await LegalServicer(w.desk).RegisterRequest(m, None)
    assert fields_of(e.value) == ["window.end"]
    with pytest.raises(InvalidArgument) as e:
        await LegalServicer(w.desk).ListRequests(legal_pb2.ListRequestsRequest(state=cast(Any, 42)), None)
    assert fields_of(e.value) == ["state"]


async def test_a_cancelled_stream_interrupts_the_fulfilment_at_once():
    w = make_world()
    r = await approved(w)
    as_staff(OFFICER)
    stream = LegalServicer(w.desk).FulfilRequest(legal_pb2.FulfilRequestRequest(request_id=r.request_id,
                                                                               reason="handover"), None)
    assert (await anext(stream)).WhichOneof("part") == "header"
    assert (await anext(stream)).WhichOneof("part") == "records"
    await stream.aclose()  # type: ignore[attr-defined]  # what grpc does when the client cancels
    got, history = await w.desk.get_request(OFFICER, r.request_id)
    assert got.state == State.AWAITING_APPROVAL and history[-1].action == Action.INTERRUPT


async def test_several_targets_are_noted_masked():
    w = make_world()
    call = as_staff(OFFICER)
    await LegalServicer(w.desk).RegisterRequest(register_message(targets=[A, B]), None)
    assert (call.msisdn, call.subscriber) == ("", "138****0001,138****0002")


async def test_a_refusal_still_names_the_request_in_the_audit_detail():
    w = make_world()
    svc = LegalServicer(w.desk)
    as_staff(OFFICER)
    reg = (await svc.RegisterRequest(register_message(), None)).request
    call = as_staff(OFFICER)
    with pytest.raises(PermissionDenied, match="four_eyes"):
        await svc.ApproveRequest(legal_pb2.ApproveRequestRequest(request_id=reg.request_id, reason="mine"), None)
    assert reg.request_id in call.detail and '"action":"approve"' in call.detail
