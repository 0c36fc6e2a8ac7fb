"""The legal channel (R5) end to end over mutual TLS: a law-enforcement request registered with its
letter, approved by a second person (four eyes), fulfilled once as a signed delivery that verifies
offline with the gateway's public key; every refusal (hall certificates, wrong roles, wrong states,
lapsed approvals, anything outside the approval, bad registrations) and every step audited with who
and why; and nothing of it ever reaches the subscriber (no SMS, no kiosk history entry)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from gateway.domain import delivery, rules
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc, kiosk_pb2, legal_pb2, legal_pb2_grpc, staff_pb2, staff_pb2_grpc
from tests.support.clerk import id_card
from tests.support.dates import ZONE, month
from tests.support.legal import PDF, Desk, S, desk, letter, register_message, window
from tests.support.staff import STAFF_PASSWORD, fresh_totp
from tests.support.status import drain, reason, refused, violations
from tests.support.subscribers import HEAVY, ORDINARY, OTHER, UNKNOWN
from tests.support.tls import CLERK_CERT, KIOSK_CERT, LEGAL_CERT

Code = grpc.StatusCode
LEGAL_METHOD = "/hallgate.v1.LegalService/"
BRANCH = "branch office's legal department"


# --- helpers -------------------------------------------------------------------------------------


def expected_calls(gw, target: str, start: datetime, end: datetime) -> list[bytes]:
    """The target's call details in [start, end) as billing holds them, as the public message."""
    lo, hi = delivery.nanos(start), delivery.nanos(end)
    m = month(-1)
    out = []
    for r in gw.billing.records(target, m, 0, gw.billing.record_count(target, m)):
        if lo <= r.start_time.seconds * 10**9 + r.start_time.nanos < hi:
            c = kiosk_pb2.CallDetail.FromString(r.SerializeToString())
            c.DiscardUnknownFields()
            out.append(c.SerializeToString())
    return out


def public_key(gw) -> bytes:
    """The gateway's delivery public key, derived from the signing key in its data directory."""
    path = Path(gw.settings.data_dir) / "legal-signing.pem"
    return delivery.Signer(delivery.load_private_key(path)).public_pem()


async def legal_department(gw) -> tuple[Desk, Desk, Desk]:
    """An officer L001, an approver A001 and a second officer L002."""
    return (await desk(gw, "L001", "legal_officer"), await desk(gw, "A001", "legal_approver"),
            await desk(gw, "L002", "legal_officer"))


async def approved(gw, officer: Desk, approver: Desk, **kw) -> legal_pb2.LegalRequest:
    reg = await officer.register(register_message(**kw))
    return await approver.approve(reg.request_id)


async def legal_events(gw) -> list[dict[str, str]]:
    return [e for e in await gw.audit_events() if e["method"].startswith(LEGAL_METHOD)]


def history(r: legal_pb2.LegalRequest) -> list[tuple[int, int, str, str]]:
    return [(h.from_state, h.to_state, h.actor_staff_id, h.actor_role) for h in r.history]


# --- the happy path ------------------------------------------------------------------------------


async def test_register_approve_fulfil_delivers_a_signed_package_that_verifies_offline(gw, tmp_path):
    officer, approver, _ = await legal_department(gw)
    start, end = window()
    reg = await officer.register(register_message(targets=(ORDINARY, OTHER)))
    assert re.fullmatch(r"LR-[0-9A-F]{16}", reg.request_id)
    assert reg.state == S.REQUEST_STATE_AWAITING_APPROVAL and reg.registered_by == "L001"
    assert reg.letter.sha256 == hashlib.sha256(PDF).hexdigest() and reg.letter.size_bytes == len(PDF)
    assert reg.letter.media_type == "application/pdf" and not reg.approved_by
    assert list(reg.targets) == [ORDINARY, OTHER]

    ok = await approver.approve(reg.request_id)
    assert ok.state == S.REQUEST_STATE_AWAITING_DISCLOSURE and ok.approved_by == "A001"
    assert ok.approval_expires_at.ToDatetime() - ok.approved_at.ToDatetime() == timedelta(days=30)

    parts = await officer.fulfil(reg.request_id)
    kinds = [p.WhichOneof("part") for p in parts]
    assert kinds[0] == "header" and kinds[-1] == "manifest" and set(kinds[1:-1]) == {"records"}
    header, manifest = parts[0].header, parts[-1].manifest
    assert header.request_id == reg.request_id and re.fullmatch(r"DL-[0-9A-F]{16}", header.delivery_id)
    assert header.case_number == "SH-2026-0113" and list(header.targets) == [ORDINARY, OTHER]
    assert list(header.categories) == [S.DATA_CATEGORY_SUBSCRIBER_INFO, S.DATA_CATEGORY_CALL_DETAILS]
    assert header.window.start.ToDatetime(tzinfo=UTC) == start and header.window.end.ToDatetime(tzinfo=UTC) == end

    chunks = [p.records for p in parts[1:-1]]
    records = [legal_pb2.DeliveryRecords.FromString(c) for c in chunks]
    assert [r.target for r in records] == sorted((r.target for r in records), key=[ORDINARY, OTHER].index)
    for target in (ORDINARY, OTHER):
        mine = [r for r in records if r.target == target]
        owner = gw.billing.owner_of(target)
        first = mine[0].subscriber
        assert mine[0].HasField("subscriber") and first.exists and not mine[0].call_details
        assert (first.owner_name, first.document_number, first.birth_date, first.city, first.plan_name) == (
            owner.name, owner.document_number, owner.birth_date, owner.city, owner.plan_name)
        assert not any(r.HasField("subscriber") for r in mine[1:])
        got = [c.SerializeToString() for r in mine for c in r.call_details]
        assert got == expected_calls(gw, target, start, end) and len(got) > 5
        # R7: SIM card data never leaves the gateway.
        assert owner.iccid.encode() not in b"".join(chunks) and owner.imsi.encode() not in b"".join(chunks)

    pem = public_key(gw)
    assert pem == (Path(gw.settings.data_dir) / "legal-signing.pem.pub").read_bytes()
    assert manifest.algorithm == "Ed25519" and len(manifest.signature) == 64
    assert manifest.key_id == delivery.key_id(delivery.load_public_key(pem))
    doc = json.loads(manifest.manifest_json)
    assert manifest.manifest_json == delivery.canonical_json(doc)
    assert (doc["request_id"], doc["delivery_id"], doc["case_number"]) == (
        reg.request_id, header.delivery_id, "SH-2026-0113")
    assert doc["targets"] == [ORDINARY, OTHER] and doc["categories"] == ["subscriber_info", "call_details"]
    assert doc["window"] == {"start": delivery.iso(start), "end": delivery.iso(end)}
    assert doc["letter_sha256"] == reg.letter.sha256
    assert doc["content_sha256"] == delivery.content_sha256(chunks)
    assert doc["per_target"] == [
        {"target": t, "subscriber": "found", "call_details": len(expected_calls(gw, t, start, end))}
        for t in (ORDINARY, OTHER)]
    assert doc["totals"]["chunks"] == len(chunks)

    # The receiving side saves the package and checks it offline with the public key alone.
    pub_file = tmp_path / "gateway.pub"
    pub_file.write_bytes(pem)
    package = tmp_path / "package"
    writer = delivery.PackageWriter(package)
    for c in chunks:
        writer.add_chunk(c)
    writer.finish(manifest.manifest_json, manifest.signature)
    assert delivery.verify_package(package, pem)["delivery_id"] == header.delivery_id
    assert hashlib.sha256((package / delivery.RECORDS_FILE).read_bytes()).hexdigest() == doc["content_sha256"]
    assert delivery.main(["verify", str(package), "--public-key", str(pub_file)]) == 0

    # One byte changed anywhere, and the package no longer verifies.
    for name, find in ((delivery.RECORDS_FILE, OTHER.encode()), (delivery.MANIFEST_FILE, b'"case_number"'),
                       (delivery.SIGNATURE_FILE, b"")):
        tampered = tmp_path / f"tampered-{name}"
        shutil.copytree(package, tampered)
        data = bytearray((tampered / name).read_bytes())
        at = data.index(find) + len(find) - 1 if find else 10
        data[at] ^= 0x01  # "…02" → "…03"; '"' → '#'; a signature bit
        (tampered / name).write_bytes(bytes(data))
        with pytest.raises(delivery.DeliveryInvalid):
            delivery.verify_package(tampered, pem)
        assert delivery.main(["verify", str(tampered), "--public-key", str(pub_file)]) == 1

    # Another key does not verify it either.
    other_key = delivery.Signer(delivery.load_or_create_private_key(tmp_path / "other.pem")).public_pem()
    with pytest.raises(delivery.DeliveryInvalid):
        delivery.verify_package(package, other_key)

    done = await officer.get(reg.request_id)
    assert done.state == S.REQUEST_STATE_DISCLOSED
    assert done.manifest.manifest_json == manifest.manifest_json and done.manifest.signature == manifest.signature
    assert history(done) == [
        (S.REQUEST_STATE_UNSPECIFIED, S.REQUEST_STATE_AWAITING_APPROVAL, "L001", "legal_officer"),
        (S.REQUEST_STATE_AWAITING_APPROVAL, S.REQUEST_STATE_AWAITING_DISCLOSURE, "A001", "legal_approver"),
        (S.REQUEST_STATE_AWAITING_DISCLOSURE, S.REQUEST_STATE_DISCLOSING, "L001", "legal_officer"),
        (S.REQUEST_STATE_DISCLOSING, S.REQUEST_STATE_DISCLOSED, "L001", "legal_officer"),
    ]
    assert "letter checked with the issuing agency" in done.history[1].reason
    assert header.delivery_id in done.history[2].reason and "encrypted drive" in done.history[2].reason
    assert doc["content_sha256"] in done.history[3].reason
    listed = await officer.stub.ListRequests(legal_pb2.ListRequestsRequest(
        state=S.REQUEST_STATE_DISCLOSED, case_number="  sh-2026-0113 "), metadata=officer.md)
    assert [r.request_id for r in listed.requests] == [reg.request_id] and not listed.requests[0].history


async def test_a_corrupted_records_file_is_reported_as_an_invalid_package(gw, tmp_path):
    officer, approver, _ = await legal_department(gw)
    rid = (await approved(gw, officer, approver)).request_id
    parts = await officer.fulfil(rid)
    package = tmp_path / "package"
    writer = delivery.PackageWriter(package)
    for p in parts[1:-1]:
        writer.add_chunk(p.records)
    writer.finish(parts[-1].manifest.manifest_json, parts[-1].manifest.signature)
    data = bytearray((package / delivery.RECORDS_FILE).read_bytes())
    data[delivery.FRAME] = 0x0F  # the first chunk's first tag byte: field 1 with wire type 7 (invalid)
    (package / delivery.RECORDS_FILE).write_bytes(bytes(data))
    pub_file = tmp_path / "gateway.pub"
    pub_file.write_bytes(public_key(gw))
    with pytest.raises(delivery.DeliveryInvalid):
        delivery.verify_package(package, pub_file)
    assert delivery.main(["verify", str(package), "--public-key", str(pub_file)]) == 1


# --- four eyes and roles -------------------------------------------------------------------------


async def test_the_registering_officer_never_approves_even_after_becoming_an_approver(gw):
    officer, approver, officer2 = await legal_department(gw)
    reg = await officer.register()
    e = await refused(officer.approve(reg.request_id))
    assert e.code() == Code.PERMISSION_DENIED and reason(e) == "FOUR_EYES"
    assert "someone other than the officer who registered it" in e.details()
    # Promoted to approver and signed in again: still the one who registered it.
    store = gw.deps.staff  # the gateway's own store, which seals secrets under its key
    record = await store.get("L001")
    assert record is not None
    await store.put(dataclasses.replace(record, role="legal_approver"))
    promoted = Desk(gw, "L001", await gw.staff_sign_in(LEGAL_CERT, "L001", officer.secret))
    e = await refused(promoted.approve(reg.request_id))
    assert e.code() == Code.PERMISSION_DENIED and reason(e) == "FOUR_EYES"
    # Neither a second officer nor an auditor (who may read) approves.
    for other in (officer2, await desk(gw, "X001", "auditor")):
        e = await refused(other.approve(reg.request_id))
        assert e.code() == Code.PERMISSION_DENIED and reason(e) == "ROLE"
    assert (await officer.get(reg.request_id)).state == S.REQUEST_STATE_AWAITING_APPROVAL
    assert (await approver.approve(reg.request_id)).approved_by == "A001"
    denied = [e for e in await legal_events(gw) if e["decision"] == "denied"]
    assert [(e["staff_id"], e["role"], e["reason"]) for e in denied] == [
        ("L001", "legal_officer", "four_eyes"), ("L001", "legal_approver", "four_eyes"),
        ("L002", "legal_officer", "role"), ("X001", "auditor", "role")]
    assert all(json.loads(e["detail"])["request_id"] == reg.request_id for e in denied[:3])


async def test_only_legal_officers_register_and_fulfil(gw):
    officer, approver, _ = await legal_department(gw)
    auditor = await desk(gw, "X001", "auditor")
    for who in (approver, auditor):
        e = await refused(who.register())
        assert e.code() == Code.PERMISSION_DENIED and reason(e) == "ROLE"
    rid = (await approved(gw, officer, approver)).request_id
    for who in (approver, auditor):
        e = await refused(who.fulfil(rid))
        assert e.code() == Code.PERMISSION_DENIED and reason(e) == "ROLE"
    # The auditor reads on the legal channel.
    assert (await auditor.get(rid)).state == S.REQUEST_STATE_AWAITING_DISCLOSURE
    unsigned = Desk(gw, "", (), LEGAL_CERT)
    e = await refused(unsigned.get(rid))
    assert e.code() == Code.UNAUTHENTICATED


# --- fulfilment refusals -------------------------------------------------------------------------


async def test_fulfilment_before_approval_and_a_second_one_are_refused(gw):
    officer, approver, officer2 = await legal_department(gw)
    reg = await officer.register()
    e = await refused(officer.fulfil(reg.request_id))
    assert e.code() == Code.FAILED_PRECONDITION and reason(e) == "REQUEST_AWAITING_APPROVAL"
    await approver.approve(reg.request_id)
    parts = await officer2.fulfil(reg.request_id)
    assert parts[-1].WhichOneof("part") == "manifest"
    for who in (officer, officer2):
        e = await refused(who.fulfil(reg.request_id))
        assert e.code() == Code.FAILED_PRECONDITION and reason(e) == "REQUEST_DISCLOSED"
    e = await refused(officer.fulfil("LR-0000000000000000"))
    assert e.code() == Code.NOT_FOUND


async def test_a_lapsed_approval_cannot_be_fulfilled(make_gateway):
    gw = await make_gateway(legal_approval_days=1 / 86400)  # one second
    officer, approver, _ = await legal_department(gw)
    ok = await approved(gw, officer, approver)
    assert ok.approval_expires_at.ToDatetime() - ok.approved_at.ToDatetime() == timedelta(seconds=1)
    await asyncio.sleep(1.2)
    e = await refused(officer.fulfil(ok.request_id))
    assert e.code() == Code.FAILED_PRECONDITION and reason(e) == "REQUEST_EXPIRED"
    assert "approval has lapsed" in e.details()
    got = await officer.get(ok.request_id)
    assert got.state == S.REQUEST_STATE_EXPIRED
    assert history(got)[-1] == (S.REQUEST_STATE_AWAITING_DISCLOSURE, S.REQUEST_STATE_EXPIRED, "system", "system")
    assert "lapsed" in got.history[-1].reason
    e = await refused(approver.approve(ok.request_id))  # final: a new request is needed
    assert e.code() == Code.FAILED_PRECONDITION and reason(e) == "REQUEST_EXPIRED"


async def test_fulfilment_outside_the_approved_targets_categories_or_window_is_refused(gw):
    officer, approver, _ = await legal_department(gw)
    start, end = window(3, 10)
    ok = await approved(gw, officer, approver, categories=(S.DATA_CATEGORY_CALL_DETAILS,), start=start, end=end)
    rid = ok.request_id
    outside = [
        ({"targets": (OTHER,)}, "OUTSIDE_APPROVED_TARGETS"),
        ({"targets": (ORDINARY, OTHER)}, "OUTSIDE_APPROVED_TARGETS"),
        ({"categories": (S.DATA_CATEGORY_SUBSCRIBER_INFO,)}, "OUTSIDE_APPROVED_CATEGORIES"),
        ({"start": start - timedelta(seconds=1)}, "OUTSIDE_APPROVED_WINDOW"),
        ({"end": end + timedelta(seconds=1)}, "OUTSIDE_APPROVED_WINDOW"),
        ({"start": start - timedelta(days=40), "end": start - timedelta(days=35)}, "OUTSIDE_APPROVED_WINDOW"),
    ]
    for scope, why in outside:
        e = await refused(officer.fulfil(rid, **scope))
        assert (e.code(), reason(e)) == (Code.PERMISSION_DENIED, why), scope
    e = await refused(officer.fulfil(rid, categories=(S.DATA_CATEGORY_COMMUNICATION_CONTENT,)))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["categories[0]"]
    # Nothing was delivered and the approval still stands; a narrower delivery is allowed.
    assert (await officer.get(rid)).state == S.REQUEST_STATE_AWAITING_DISCLOSURE
    narrow_start, narrow_end = window(5, 7)
    parts = await officer.fulfil(rid, targets=(ORDINARY,), start=narrow_start, end=narrow_end)
    doc = json.loads(parts[-1].manifest.manifest_json)
    assert doc["window"] == {"start": delivery.iso(narrow_start), "end": delivery.iso(narrow_end)}
    assert doc["categories"] == ["call_details"]
    delivered = [c.SerializeToString() for p in parts[1:-1]
                 for c in legal_pb2.DeliveryRecords.FromString(p.records).call_details]
    assert delivered == expected_calls(gw, ORDINARY, narrow_start, narrow_end)
    assert (await officer.get(rid)).state == S.REQUEST_STATE_DISCLOSED
    denied = [e for e in await legal_events(gw) if e["decision"] == "denied"]
    assert [e["reason"] for e in denied] == [w.lower() for _, w in outside]
    assert all(e["staff_id"] == "L001" and json.loads(e["detail"])["request_id"] == rid for e in denied)


async def test_final_states_stay_final(gw):
    officer, approver, _ = await legal_department(gw)
    rejected = await officer.register()
    r = (await approver.stub.RejectRequest(legal_pb2.RejectRequestRequest(
        request_id=rejected.request_id, reason="not signed by the head of the agency"), metadata=approver.md)).request
    assert r.state == S.REQUEST_STATE_REJECTED
    cancelled = await approved(gw, officer, approver)
    c = (await officer.stub.CancelRequest(legal_pb2.CancelRequestRequest(
        request_id=cancelled.request_id, reason="withdrawn by the agency's letter of 3 May"),
        metadata=officer.md)).request
    assert c.state == S.REQUEST_STATE_CANCELLED
    for rid, state in ((rejected.request_id, "REQUEST_REJECTED"), (cancelled.request_id, "REQUEST_CANCELLED")):
        e = await refused(approver.approve(rid))
        assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, state)
        e = await refused(officer.fulfil(rid))
        assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, state)
        e = await refused(officer.stub.MarkInvalid(legal_pb2.MarkInvalidRequest(request_id=rid, reason="x"),
                                                   metadata=officer.md))
        assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, state)


# --- validation ----------------------------------------------------------------------------------


INVALID = [
    ("kind unset", {"agency": legal_pb2.Agency(name="X", level=S.AGENCY_LEVEL_PREFECTURE)}, ["agency.kind"]),
    ("kind unknown", {"agency": legal_pb2.Agency(kind=7, name="X", level=S.AGENCY_LEVEL_NATIONAL)},  # type: ignore
     ["agency.kind"]),
    ("county level", {"agency": legal_pb2.Agency(kind=S.AGENCY_KIND_PUBLIC_SECURITY, name="X",
                                                 level=S.AGENCY_LEVEL_COUNTY)}, ["agency.level"]),
    ("township level", {"agency": legal_pb2.Agency(kind=S.AGENCY_KIND_PROCURATORATE, name="X",
                                                   level=S.AGENCY_LEVEL_TOWNSHIP)}, ["agency.level"]),
    ("level unset", {"agency": legal_pb2.Agency(kind=S.AGENCY_KIND_STATE_SECURITY, name="X")}, ["agency.level"]),
    ("future window", {"start": "future", "end": "future+"}, ["window.start", "window.end"]),
    ("end in future", {"end": "future"}, ["window.end"]),
    ("13 months", {"start": "13 months ago", "end": "now"}, ["window.end"]),
    ("end before start", {"start": "now-1d", "end": "now-2d"}, ["window.end"]),
    ("no window", {"window": legal_pb2.DataWindow()}, ["window.start", "window.end"]),
    ("content", {"categories": [S.DATA_CATEGORY_SUBSCRIBER_INFO, S.DATA_CATEGORY_COMMUNICATION_CONTENT]},
     ["categories[1]"]),
    ("only content", {"categories": [S.DATA_CATEGORY_COMMUNICATION_CONTENT]}, ["categories[0]"]),
    ("no categories", {"categories": []}, ["categories"]),
    ("no letter", {"letter": legal_pb2.Letter()},
     ["letter.reference", "letter.date", "letter.media_type", "letter.content"]),
    ("empty scan", {"letter": letter(content=b"")}, ["letter.content"]),
    ("not a pdf", {"letter": letter(content=b"GIF89a....")}, ["letter.content"]),
    ("a word file", {"letter": letter(media_type="application/msword")}, ["letter.media_type"]),
    ("letter from tomorrow", {"letter": letter(date=(datetime.now(ZONE).date() + timedelta(days=1)).isoformat())},
     ["letter.date"]),
    ("no targets", {"targets": []}, ["targets"]),
    ("bad targets", {"targets": ["+8613800000001", ORDINARY, ORDINARY]}, ["targets[0]", "targets[2]"]),
    ("no officers", {"officers": []}, ["officers"]),
    ("bad badge", {"officers": [legal_pb2.Officer(name="Chen Jing", badge_number="310 044")]},
     ["officers[0].badge_number"]),
    ("no case number", {"case_number": "  "}, ["case_number"]),
    ("no legal basis", {"legal_basis": ""}, ["legal_basis"]),
]


def _invalid_message(changes: dict[str, object]) -> legal_pb2.RegisterRequestRequest:
    now = datetime.now(UTC)
    times = {"future": now + timedelta(days=1), "future+": now + timedelta(days=2), "now": now - timedelta(minutes=1),
             "13 months ago": now - timedelta(days=400), "now-1d": now - timedelta(days=1),
             "now-2d": now - timedelta(days=2)}
    changes = dict(changes)
    start, end = changes.pop("start", None), changes.pop("end", None)
    return register_message(start=times[str(start)] if start else None, end=times[str(end)] if end else None,
                            **changes)


@pytest.mark.parametrize(("changes", "fields"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
async def test_registration_rules_name_every_bad_field(gw, changes, fields):
    officer = await desk(gw, "L001", "legal_officer")
    e = await refused(officer.register(_invalid_message(changes)))
    assert e.code() == Code.INVALID_ARGUMENT
    assert violations(e) == fields
    [event] = await legal_events(gw)
    assert (event["decision"], event["staff_id"], event["method"]) == ("invalid", "L001",
                                                                       LEGAL_METHOD + "RegisterRequest")


async def test_an_empty_registration_names_every_missing_field_at_once(gw):
    officer = await desk(gw, "L001", "legal_officer")
    e = await refused(officer.register(legal_pb2.RegisterRequestRequest()))
    assert e.code() == Code.INVALID_ARGUMENT
    assert set(violations(e)) == {
        "agency.kind", "agency.name", "agency.level", "letter.reference", "letter.date", "letter.media_type",
        "letter.content", "legal_basis", "case_number", "officers", "targets", "categories", "window.start",
        "window.end"}
    e = await refused(officer.approve(""))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["request_id"]
    e = await refused(officer.stub.ApproveRequest(legal_pb2.ApproveRequestRequest(request_id="LR-0000000000000000"),
                                                  metadata=officer.md))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["reason"]


# --- hall channels -------------------------------------------------------------------------------


def every_legal_rpc(stub, md, rid: str):
    """Every LegalService RPC, each as a function starting one call (awaitable; raises its error)."""
    return {
        "RegisterRequest": lambda: stub.RegisterRequest(register_message(), metadata=md),
        "ApproveRequest": lambda: stub.ApproveRequest(legal_pb2.ApproveRequestRequest(request_id=rid, reason="ok"),
                                                      metadata=md),
        "RejectRequest": lambda: stub.RejectRequest(legal_pb2.RejectRequestRequest(request_id=rid, reason="no"),
                                                    metadata=md),
        "MarkInvalid": lambda: stub.MarkInvalid(legal_pb2.MarkInvalidRequest(request_id=rid, reason="no"),
                                                metadata=md),
        "CancelRequest": lambda: stub.CancelRequest(legal_pb2.CancelRequestRequest(request_id=rid, reason="no"),
                                                    metadata=md),
        "FulfilRequest": lambda: drain(stub.FulfilRequest(legal_pb2.FulfilRequestRequest(request_id=rid,
                                                                                         reason="now"), metadata=md)),
        "ListRequests": lambda: stub.ListRequests(legal_pb2.ListRequestsRequest(), metadata=md),
        "GetRequest": lambda: stub.GetRequest(legal_pb2.GetRequestRequest(request_id=rid), metadata=md),
        "GetLetter": lambda: stub.GetLetter(legal_pb2.GetLetterRequest(request_id=rid), metadata=md),
    }


@pytest.mark.parametrize("who", ["kiosk", "clerk terminal", "signed-in clerk", "signed-in hall manager"])
async def test_hall_certificates_are_referred_to_the_branch_on_every_legal_rpc(gw, who):
    officer, approver, _ = await legal_department(gw)
    rid = (await approved(gw, officer, approver)).request_id
    cert, md = (KIOSK_CERT, ()) if who == "kiosk" else (CLERK_CERT, ())
    if who.startswith("signed-in"):
        role = "clerk" if who.endswith("clerk") else "hall_manager"
        secret = await gw.add_staff("C1001", role, hall="H001")
        md = await gw.staff_sign_in(CLERK_CERT, "C1001", secret)
    before = len(await gw.audit_events())
    stub = legal_pb2_grpc.LegalServiceStub(gw.channel_for(cert))
    calls = every_legal_rpc(stub, md, rid)
    assert len(calls) == len(legal_pb2.DESCRIPTOR.services_by_name["LegalService"].methods)
    for name, start_call in calls.items():
        e = await refused(start_call())
        assert e.code() == Code.PERMISSION_DENIED, name
        assert BRANCH in e.details() and reason(e) == "LEGAL_VIA_HALL", name
    events = (await gw.audit_events())[before:]
    terminal = "H001/kiosk/K01" if cert == KIOSK_CERT else "H001/clerk/T07"
    assert [e["method"] for e in events] == [LEGAL_METHOD + n for n in calls]
    assert all((e["channel"], e["hall"], e["terminal"], e["decision"], e["reason"]) == (
        cert.split("-")[0], "H001", terminal, "denied", "legal_via_hall") for e in events)
    # Nothing changed.
    assert (await officer.get(rid)).state == S.REQUEST_STATE_AWAITING_DISCLOSURE
    listed = await officer.stub.ListRequests(legal_pb2.ListRequestsRequest(), metadata=officer.md)
    assert [r.request_id for r in listed.requests] == [rid]


async def test_a_legal_officer_cannot_use_a_hall_terminal_and_a_clerk_cannot_sign_in_on_the_legal_one(gw):
    secret = await gw.add_staff("L001", "legal_officer", hall="B01")
    e = await refused(gw.staff_sign_in(CLERK_CERT, "L001", secret))
    assert e.code() == Code.PERMISSION_DENIED
    clerk_secret = await gw.add_staff("C1001", "clerk", hall="H001")
    stub = staff_pb2_grpc.StaffServiceStub(gw.channel_for(LEGAL_CERT))
    e = await refused(stub.SignIn(staff_pb2.SignInRequest(staff_id="C1001", password=STAFF_PASSWORD,
                                                          totp_code=fresh_totp(clerk_secret))))
    assert e.code() == Code.PERMISSION_DENIED


# --- the audit trail and no tipping off ----------------------------------------------------------


async def test_every_step_is_audited_with_who_and_why_and_no_full_number(gw):
    officer, approver, _ = await legal_department(gw)
    reg = await officer.register(register_message(targets=(ORDINARY, OTHER)))
    await refused(officer.approve(reg.request_id, "my own request"))
    await approver.approve(reg.request_id, "verified the letter with the agency")
    parts = await officer.fulfil(reg.request_id, why="handover to the agency courier")
    await officer.get(reg.request_id)
    events = await legal_events(gw)
    summary = [(e["method"].removeprefix(LEGAL_METHOD), e["staff_id"], e["role"], e["decision"], e["reason"])
               for e in events]
    assert summary == [
        ("RegisterRequest", "L001", "legal_officer", "allowed", "legal_register"),
        ("ApproveRequest", "L001", "legal_officer", "denied", "four_eyes"),
        ("ApproveRequest", "A001", "legal_approver", "allowed", "legal_approve"),
        ("FulfilRequest", "L001", "legal_officer", "allowed", "legal_fulfil"),  # opened: before anything left
        ("FulfilRequest", "L001", "legal_officer", "allowed", "legal_fulfil"),  # closed: how it ended, what left
        ("GetRequest", "L001", "legal_officer", "allowed", "legal_get"),
    ]
    assert [e["phase"] for e in events[3:5]] == ["open", "close"] and events[4]["code"] == "OK"
    detail = [json.loads(e["detail"]) for e in events]
    assert all(d["request_id"] == reg.request_id for d in detail)
    assert detail[1]["why"] == "my own request" and detail[1]["action"] == "approve"
    assert detail[2]["why"] == "verified the letter with the agency"
    assert detail[3]["why"] == "handover to the agency courier"
    assert detail[3]["delivery_id"] == parts[0].header.delivery_id
    assert detail[0]["case_number"] == "SH-2026-0113"
    assert all((e["channel"], e["hall"], e["terminal"]) == ("legal", "B01", "B01/legal/L01") for e in events)
    # (A stream's event is sealed before its first message leaves, so it cannot count records;
    # what was delivered is in the request's history, which names the content digest.)
    doc = json.loads(parts[-1].manifest.manifest_json)
    assert doc["content_sha256"] in (await officer.get(reg.request_id)).history[-1].reason
    assert events[0]["subscriber"] == f"{rules.mask_msisdn(ORDINARY)},{rules.mask_msisdn(OTHER)}"
    for e in events:
        assert not any(n in v for n in (ORDINARY, OTHER) for v in e.values()), e


async def test_no_tipping_off_no_sms_no_per_number_state_and_no_kiosk_history_entry(gw):
    officer, approver, officer2 = await legal_department(gw)
    assert (await gw.messages(ORDINARY)) == []
    reg = await officer.register(register_message(targets=(ORDINARY,)))
    await approver.approve(reg.request_id)
    await officer2.fulfil(reg.request_id)
    await officer.get(reg.request_id)
    await officer.stub.ListRequests(legal_pb2.ListRequestsRequest(), metadata=officer.md)
    # A second request, rejected, and a third, cancelled: no trace either.
    r2 = await officer.register(register_message(targets=(ORDINARY,)))
    await approver.stub.RejectRequest(legal_pb2.RejectRequestRequest(request_id=r2.request_id, reason="unsigned"),
                                      metadata=approver.md)
    assert len([e for e in await legal_events(gw) if e["decision"] == "allowed"]) == 8  # a fulfilment: two
    assert (await gw.messages(ORDINARY)) == []
    assert [k async for k in gw.redis.scan_iter(match=f"*{ORDINARY}*")] == []

    token = await gw.sign_in(ORDINARY)
    history_ = [m.record async for m in gw.stub.ListAccessHistory(
        kiosk_pb2.ListAccessHistoryRequest(access_token=token))]
    assert [(h.channel, h.hall, h.what, h.outcome) for h in history_] == [
        ("kiosk", "H001", "sign-in at a self-service kiosk", "allowed")]
    assert all("legal" not in str(h).lower() and "B01" not in str(h) for h in history_)
    assert [m for m in (await gw.messages(ORDINARY)) if "code is" not in m] == []


async def test_a_clerk_session_sees_nothing_of_a_legal_request(gw):
    """The clerk's view of the subscriber (profile) carries nothing about legal work on the number."""
    officer, approver, _ = await legal_department(gw)
    owner = gw.billing.owner_of(ORDINARY)
    secret = await gw.add_staff("C1001", "clerk", hall="H001")
    md = await gw.staff_sign_in(CLERK_CERT, "C1001", secret)
    clerk = clerk_pb2_grpc.ClerkServiceStub(gw.channel_for(CLERK_CERT))
    doc = id_card(owner)

    async def profile() -> bytes:
        session = (await clerk.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
            msisdn=ORDINARY, id_document=doc, purpose=clerk_pb2.SESSION_PURPOSE_BILL_ENQUIRY),
            metadata=md)).customer_session
        reply = await clerk.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(customer_session=session),
                                               metadata=md)
        await clerk.CloseCustomerSession(clerk_pb2.CloseCustomerSessionRequest(customer_session=session),
                                         metadata=md)
        return reply.SerializeToString()

    before = await profile()
    rid = (await approved(gw, officer, approver, targets=(ORDINARY,))).request_id
    await officer.fulfil(rid)
    assert await profile() == before


# --- robustness ----------------------------------------------------------------------------------


async def test_a_number_billing_does_not_know_gets_a_signed_not_available_delivery(gw):
    officer, approver, _ = await legal_department(gw)
    rid = (await approved(gw, officer, approver, targets=(UNKNOWN,))).request_id
    parts = await officer.fulfil(rid)
    [chunk] = [legal_pb2.DeliveryRecords.FromString(p.records) for p in parts[1:-1]]
    assert chunk.target == UNKNOWN and chunk.HasField("subscriber") and not chunk.subscriber.exists
    assert chunk.subscriber == legal_pb2.SubscriberRecord(exists=False) and not chunk.call_details
    m = parts[-1].manifest
    doc = delivery.verify_delivery(m.manifest_json, m.signature, public_key(gw), [p.records for p in parts[1:-1]])
    assert doc["per_target"] == [{"target": UNKNOWN, "subscriber": "not_found", "call_details": 0}]
    got = await officer.get(rid)
    assert got.state == S.REQUEST_STATE_DISCLOSURE_NOT_AVAILABLE and got.manifest.signature == m.signature
    e = await refused(officer.fulfil(rid))
    assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, "REQUEST_DISCLOSURE_NOT_AVAILABLE")


async def test_a_missing_or_altered_letter_blocks_disclosure(gw):
    officer, approver, _ = await legal_department(gw)
    rid = (await approved(gw, officer, approver)).request_id
    ref = hashlib.sha256(PDF).hexdigest()
    stored = Path(gw.settings.data_dir) / "documents" / ref[:2] / ref
    assert stored.read_bytes() == PDF
    stored.write_bytes(PDF.replace(b"/Count 0", b"/Count 1"))
    e = await refused(officer.fulfil(rid))
    assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, "LETTER_CORRUPT")
    stored.unlink()
    e = await refused(officer.fulfil(rid))
    assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, "LETTER_MISSING")
    assert (await officer.get(rid)).state == S.REQUEST_STATE_AWAITING_DISCLOSURE
    stored.write_bytes(PDF)
    assert (await officer.fulfil(rid))[-1].WhichOneof("part") == "manifest"


async def test_the_readers_get_the_very_letter_and_an_altered_one_is_refused(gw):
    """GetLetter: the scan as registered, for the legal readers (officer, approver, auditor) on the
    legal terminal; checked against the request's SHA-256 first, like a fulfilment; on record."""
    officer, approver, _ = await legal_department(gw)
    rid = (await officer.register()).request_id
    ask = legal_pb2.GetLetterRequest(request_id=rid)
    for reader in (officer, approver):
        got = await reader.stub.GetLetter(ask, metadata=reader.md)
        assert (got.content, got.media_type, got.sha256) == (PDF, "application/pdf", hashlib.sha256(PDF).hexdigest())
    clerk = await desk(gw, "K9001", "clerk", cert=CLERK_CERT, hall="H001")
    e = await refused(legal_pb2_grpc.LegalServiceStub(gw.channel_for(CLERK_CERT)).GetLetter(ask, metadata=clerk.md))
    assert (e.code(), reason(e)) == (Code.PERMISSION_DENIED, "LEGAL_VIA_HALL")
    ref = hashlib.sha256(PDF).hexdigest()
    stored = Path(gw.settings.data_dir) / "documents" / ref[:2] / ref
    stored.write_bytes(PDF.replace(b"/Count 0", b"/Count 1"))
    e = await refused(officer.stub.GetLetter(ask, metadata=officer.md))
    assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, "LETTER_CORRUPT")
    stored.unlink()
    e = await refused(officer.stub.GetLetter(ask, metadata=officer.md))
    assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, "LETTER_MISSING")
    events = [e for e in await gw.audit_events() if e["method"].endswith("/GetLetter")]
    assert [(e["code"], e["staff_id"]) for e in events][:2] == [("OK", officer.staff_id), ("OK", approver.staff_id)]
    assert all(rid in e["detail"] for e in events if e["channel"] == "legal")  # the clerk's never got that far


async def test_a_letter_may_be_8_mib_and_not_a_byte_more(gw):
    officer = await desk(gw, "L001", "legal_officer")
    limit = 8 * 2**20
    big = PDF + b"%" * (limit - len(PDF))
    reg = await officer.register(register_message(letter=letter(content=big)))
    assert reg.letter.size_bytes == limit
    e = await refused(officer.register(register_message(letter=letter(content=big + b"%"))))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["letter.content"]


async def test_two_fulfilments_at_once_deliver_once(gw):
    officer, approver, officer2 = await legal_department(gw)
    rid = (await approved(gw, officer, approver)).request_id
    results = await asyncio.gather(officer.fulfil(rid), officer2.fulfil(rid), return_exceptions=True)
    delivered = [r for r in results if isinstance(r, list)]
    failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(delivered) == 1 and len(failed) == 1, results
    assert failed[0].code() == Code.FAILED_PRECONDITION
    assert reason(failed[0]) in {"REQUEST_DISCLOSING", "REQUEST_DISCLOSED", "REQUEST_CHANGED"}
    got = await officer.get(rid)
    assert got.state == S.REQUEST_STATE_DISCLOSED
    assert [h.to_state for h in got.history].count(S.REQUEST_STATE_DISCLOSING) == 1


async def test_two_approvals_at_once_approve_once(gw):
    officer, approver, _ = await legal_department(gw)
    approver2 = await desk(gw, "A002", "legal_approver")
    rid = (await officer.register()).request_id
    results = await asyncio.gather(approver.approve(rid), approver2.approve(rid), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["AioRpcError", "LegalRequest"], results
    [e] = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert e.code() == Code.FAILED_PRECONDITION
    assert len((await officer.get(rid)).history) == 2


async def test_a_delivery_the_receiver_abandons_needs_a_new_approval(make_gateway):
    gw = await make_gateway(billing_page_size=200)
    officer, approver, _ = await legal_department(gw)
    y, m = (int(x) for x in month(-1).split("-"))
    start = datetime(y, m, 1, tzinfo=ZONE)
    end = datetime(y + m // 12, m % 12 + 1, 1, tzinfo=ZONE)
    rid = (await approved(gw, officer, approver, targets=(HEAVY,), categories=(S.DATA_CATEGORY_CALL_DETAILS,),
                          start=start, end=end)).request_id
    call = officer.stub.FulfilRequest(legal_pb2.FulfilRequestRequest(request_id=rid, reason="handover"),
                                      metadata=officer.md)
    first = await call.read()
    assert first.WhichOneof("part") == "header"
    call.cancel()
    for _ in range(50):
        got = await officer.get(rid)
        if got.state == S.REQUEST_STATE_AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.05)
    assert got.state == S.REQUEST_STATE_AWAITING_APPROVAL and not got.approved_by
    assert history(got)[-1] == (S.REQUEST_STATE_DISCLOSING, S.REQUEST_STATE_AWAITING_APPROVAL, "system", "system")
    assert "interrupted" in got.history[-1].reason and "new approval" in got.history[-1].reason
    e = await refused(officer.fulfil(rid))
    assert (e.code(), reason(e)) == (Code.FAILED_PRECONDITION, "REQUEST_AWAITING_APPROVAL")
    await approver.approve(rid, "approved again after the interrupted handover")
    parts = await officer.fulfil(rid, start=start, end=start + timedelta(days=1))
    assert parts[-1].WhichOneof("part") == "manifest"
