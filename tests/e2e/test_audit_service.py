"""The tamper-evident audit trail (R10) end to end over mutual TLS: auditors query, verify and export
the chain on the audit channel; numbers are matched by keyed pseudonym, never by mask; an edited or
deleted entry is found at its seq; retention trims without breaking verification; nobody but an
auditor on the audit channel gets in; and the subscriber sees their own hall and kiosk accesses
(never staff ids, never anyone else's) and is told by SMS when their call list is released."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2

from adapters.audit import retention
from adapters.audit.keys import ChainKeys, stream_key
from gateway.domain import audit_chain as ac
from gateway.domain import rules
from hallgate_pb.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    clerk_pb2,
    clerk_pb2_grpc,
    kiosk_pb2,
    legal_pb2,
    legal_pb2_grpc,
)
from tests.support.audit_calls import Auditor, auditor, counter
from tests.support.dates import month
from tests.support.legal import desk, register_message
from tests.support.processes import hallgate
from tests.support.status import details, drain, refused, violations
from tests.support.subscribers import HEAVY, ORDINARY, OTHER, UNKNOWN
from tests.support.tls import AUDIT_CERT, CLERK_CERT, LEGAL_CERT

Code = grpc.StatusCode
H002_CERT = "clerk-H002-T01"
TWIN = "13811110001"  # masks like ORDINARY (138****0001); billing does not know it
THIRD = "13800000003"
KIOSK = "/hallgate.v1.KioskService/"
CLERK = "/hallgate.v1.ClerkService/"
AUDIT = "/hallgate.v1.AuditService/"


# --- helpers -------------------------------------------------------------------------------------


async def entries(gw) -> list[tuple[str, dict[str, str]]]:
    """The stored chain as (stream id, fields), straight from Redis."""
    raw = await gw.redis.xrange(stream_key(gw.settings.audit_chain))
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in raw]


def ids(events: list[audit_pb2.AuditEvent]) -> list[str]:
    return [e.id for e in events]


def matching(stored: list[tuple[str, dict[str, str]]], **criteria: str) -> list[str]:
    return [i for i, f in stored if all(f.get(k, "") == v for k, v in criteria.items())]


async def call_list(gw, token: str, m: str | None = None) -> int:
    n = 0
    async for chunk in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token,
                                                                                 month=m or month())):
        n += len(chunk.records)
    return n


async def access_history(gw, token: str) -> list[kiosk_pb2.AccessRecord]:
    return [m.record async for m in gw.stub.ListAccessHistory(kiosk_pb2.ListAccessHistoryRequest(
        access_token=token))]


async def varied_trail(gw) -> Auditor:
    """Kiosk, two halls' counters, a refusal and an invalid call; returns the signed-in auditor."""
    aud = await auditor(gw)
    await gw.sign_in(ORDINARY)
    await (await counter(gw)).serve_by_id(OTHER)
    await (await counter(gw, "C2001", H002_CERT, "H002")).serve_by_id(THIRD)
    kiosk_as_clerk = clerk_pb2_grpc.ClerkServiceStub(gw.channel)
    await refused(kiosk_as_clerk.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(customer_session="x")))
    await refused(gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn="1380000000")))
    return aud


# --- queries -------------------------------------------------------------------------------------


async def test_a_number_is_matched_by_its_pseudonym_never_by_its_mask(gw):
    aud = await auditor(gw)
    assert rules.mask_msisdn(TWIN) == rules.mask_msisdn(ORDINARY) == "138****0001"
    await gw.sign_in(ORDINARY)  # RequestOneTimeCode + Authenticate
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=TWIN))
    await refused(gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(msisdn=TWIN, service_password="480273",
                                                                     one_time_code="123456")))
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=UNKNOWN))
    key = gw.settings.key_bytes()
    for msisdn, methods in ((ORDINARY, ["RequestOneTimeCode", "Authenticate"]),
                            (TWIN, ["RequestOneTimeCode", "Authenticate"]), (UNKNOWN, ["RequestOneTimeCode"])):
        stored = await entries(gw)
        found = await aud.query(msisdn=msisdn)
        assert ids(found) == matching(stored, subscriber_ref=rules.subscriber_ref(key, msisdn))
        assert [e.fields["method"].removeprefix(KIOSK) for e in found] == methods, msisdn
        assert all(e.fields["subscriber"] == rules.mask_msisdn(msisdn) for e in found)
        assert all(msisdn not in v for e in found for v in e.fields.values())
    # The auditor's own look at a number is part of that number's trail.
    again = await aud.query(msisdn=TWIN)
    assert [(e.fields["method"], e.fields["decision"]) for e in again] == [
        (KIOSK + "RequestOneTimeCode", "allowed"), (KIOSK + "Authenticate", "denied"),
        (AUDIT + "QueryEvents", "allowed"), (AUDIT + "QueryEvents", "allowed")]  # a stream: opened, closed
    assert [e.fields["phase"] for e in again[-2:]] == ["open", "close"]
    assert again[-1].fields["staff_id"] == "X001" and again[-1].fields["subscriber"] == "138****0001"
    assert await aud.query(msisdn="13822220001") == []


async def test_each_filter_returns_exactly_the_matching_events(gw):
    aud = await varied_trail(gw)
    cases = [
        {"staff_id": "C1001"}, {"staff_id": "C2001"}, {"staff_id": "X001"},
        {"terminal": "H002/clerk/T01"}, {"terminal": "H001/kiosk/K01"},
        {"hall": "H002"}, {"hall": "H001"}, {"hall": "B01"},
        {"method": CLERK + "GetCustomerProfile"}, {"method": KIOSK + "Authenticate"},
        {"decision": "denied"}, {"decision": "invalid"}, {"decision": "allowed"},
        {"channel": "clerk"}, {"channel": "kiosk"}, {"channel": "audit"},
        {"channel": "clerk", "hall": "H001", "method": CLERK + "OpenCustomerSession"},
        {"staff_id": "C1001", "hall": "H002"},
    ]
    for criteria in cases:
        stored = await entries(gw)
        expected = matching(stored, **criteria)
        found = await aud.query(**criteria)
        assert ids(found) == expected, criteria
        assert all(e.seq == int(dict(stored)[e.id]["seq"]) for e in found)
        assert all(dict(e.fields) == {k: v for k, v in dict(stored)[e.id].items()} for e in found)
        if criteria != {"staff_id": "C1001", "hall": "H002"}:
            assert found, criteria
    assert [e.fields["reason"] for e in await aud.query(decision="invalid")] == ["invalid_argument"]
    assert len(await aud.query(limit=3)) == 3


async def test_a_time_range_returns_exactly_the_events_inside_it(gw):
    aud = await auditor(gw)
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY))
    await asyncio.sleep(0.05)
    t1 = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=OTHER))
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=THIRD))
    await asyncio.sleep(0.05)
    t2 = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=UNKNOWN))
    inside = await aud.query(start_time=t1, end_time=t2)
    assert [e.fields["subscriber"] for e in inside] == [rules.mask_msisdn(OTHER), rules.mask_msisdn(THIRD)]
    stored = await entries(gw)
    after_t1 = [i for i, _ in stored if ac.time_of(i) >= t1.replace(microsecond=t1.microsecond // 1000 * 1000)]
    assert ids(await aud.query(start_time=t1)) == after_t1
    before_t2 = await aud.query(end_time=t2, channel="kiosk")
    assert [e.fields["subscriber"] for e in before_t2] == [rules.mask_msisdn(m) for m in (ORDINARY, OTHER, THIRD)]


async def legal_disclosure(gw, targets: tuple[str, ...]) -> None:
    officer, approver = await desk(gw, "L001", "legal_officer"), await desk(gw, "A001", "legal_approver")
    reg = await officer.register(register_message(targets=targets))
    await approver.approve(reg.request_id)
    await officer.fulfil(reg.request_id)


# The fulfilment is a stream: its opening and its closing event.
LEGAL_STEPS = ["/hallgate.v1.LegalService/" + m
               for m in ("RegisterRequest", "ApproveRequest", "FulfilRequest", "FulfilRequest")]


async def test_a_legal_disclosure_about_one_number_is_found_by_that_number(gw):
    aud = await auditor(gw)
    await legal_disclosure(gw, (ORDINARY,))
    found = await aud.query(msisdn=ORDINARY)
    assert [(e.fields["method"], e.fields["channel"], e.fields["decision"]) for e in found] == [
        (m, "legal", "allowed") for m in LEGAL_STEPS]
    assert await aud.query(msisdn=TWIN) == []


async def test_a_legal_disclosure_about_several_numbers_is_found_by_each_number(gw):
    aud = await auditor(gw)
    await legal_disclosure(gw, (ORDINARY, OTHER))
    for msisdn in (ORDINARY, OTHER):
        found = await aud.query(msisdn=msisdn, channel="legal")
        assert [e.fields["method"] for e in found] == LEGAL_STEPS, msisdn


async def test_the_end_of_a_time_range_is_inclusive_as_documented(gw):
    aud = await auditor(gw)
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY))
    [(entry_id, _)] = [(i, f) for i, f in await entries(gw) if f["method"] == KIOSK + "RequestOneTimeCode"]
    at = ac.time_of(entry_id)
    assert entry_id in ids(await aud.query(start_time=at))
    assert entry_id in ids(await aud.query(start_time=at, end_time=at))


# --- verification --------------------------------------------------------------------------------


async def rewrite(gw, change) -> None:
    """What someone with Redis access can do: rewrite the stream, keeping every stream id."""
    stored = await entries(gw)
    change(stored)
    key = stream_key(gw.settings.audit_chain)
    await gw.redis.delete(key)
    for entry_id, fields in stored:
        await gw.redis.xadd(key, fields, id=entry_id)


async def test_verify_chain_finds_an_edited_entry_at_its_seq(gw):
    aud = await varied_trail(gw)
    before = await entries(gw)
    clean = await aud.verify()
    assert clean.ok and clean.checked == len(before) and clean.first_bad_seq == 0 and clean.reason == ""
    # Turn the refusal into an allowed call, as someone covering their tracks would.
    [target] = [i for i, f in before if f["decision"] == "denied"]
    seq = int(dict(before)[target]["seq"])

    def edit(stored):
        for _, fields in stored:
            if fields["decision"] == "denied":
                fields["decision"] = "allowed"

    await rewrite(gw, edit)
    # Before the verified position the default (incremental) run does not read again: the full
    # check, from the first seq, does.
    broken = await aud.verify(start_seq=1)
    assert (broken.ok, broken.first_bad_seq, broken.first_bad_id, broken.reason) == (False, seq, target, "edited")
    assert broken.checked == seq - 1
    assert (await aud.verify(start_seq=1, end_seq=seq - 1)).ok
    after = await aud.verify(start_seq=seq + 1)
    assert after.ok and after.checked > 0
    # The verdicts themselves are in the trail.
    details_ = [e.fields["detail"] for e in await aud.query(method=AUDIT + "VerifyChain")]
    assert details_[0].startswith("verify ok=True") and details_[1].startswith("verify ok=False")


async def test_verify_chain_finds_a_deleted_entry_at_its_seq(gw):
    aud = await varied_trail(gw)
    stored = await entries(gw)
    victim, fields = stored[4]
    seq = int(fields["seq"])
    await gw.redis.xdel(stream_key(gw.settings.audit_chain), victim)
    broken = await aud.verify()
    assert (broken.ok, broken.first_bad_seq, broken.reason) == (False, seq, "deleted")
    assert broken.first_bad_id == stored[5][0]  # where the gap shows


async def test_verify_chain_notices_the_newest_entries_deleted(gw):
    aud = await varied_trail(gw)
    stored = await entries(gw)
    await gw.redis.xdel(stream_key(gw.settings.audit_chain), stored[-1][0], stored[-2][0])
    broken = await aud.verify()
    assert (broken.ok, broken.first_bad_seq, broken.reason) == (False, int(stored[-2][1]["seq"]), "deleted")


async def test_trimming_keeps_the_chain_verifiable_and_is_itself_recorded(gw):
    aud = await varied_trail(gw)
    await asyncio.sleep(0.05)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await gw.sign_in(HEAVY)
    old = [i for i, _ in await entries(gw) if ac.time_of(i) < cutoff]
    keys, kid = gw.settings.audit_keys()
    result = await retention.trim(gw.redis, gw.settings.audit_chain, keys, kid, cutoff,
                                     actor={"staff_id": "X001", "role": "auditor"})
    assert result.trimmed == len(old) and result.checkpoint is not None
    assert result.checkpoint.seq == len(old)
    kept = await entries(gw)
    assert not set(old) & {i for i, _ in kept}
    verdict = await aud.verify()
    assert verdict.ok and verdict.checked == len(kept), verdict
    [trim] = await aud.query(method="maintenance/trim")
    assert (trim.fields["channel"], trim.fields["decision"], trim.fields["staff_id"]) == ("maintenance", "allowed",
                                                                                       "X001")
    assert trim.fields["checkpoint_seq"] == str(len(old)) and trim.fields["records"] == str(len(old))
    assert ids(await aud.query(channel="maintenance")) == [trim.id]
    assert await aud.query(end_time=cutoff - timedelta(milliseconds=5)) == []
    # The gateway goes on appending after the trim, and the chain stays whole.
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=UNKNOWN))
    assert (await aud.verify()).ok
    assert (await aud.verify(start_seq=1)).ok
    # A tampered checkpoint is caught.
    cp_key = ChainKeys.of(gw.settings.audit_chain).checkpoint
    await gw.redis.hset(cp_key, "seq", str(len(old) - 1))
    bad = await aud.verify()
    assert not bad.ok and bad.reason == "checkpoint"


# --- export --------------------------------------------------------------------------------------


async def test_export_is_json_lines_matching_the_query_and_verifiable_offline(gw):
    aud = await varied_trail(gw)
    key = gw.settings.key_bytes()
    for criteria in ({"channel": "kiosk"}, {"msisdn": OTHER}, {"hall": "H002"}, {"decision": "denied"}):
        queried = await aud.query(**criteria)
        stored = await entries(gw)
        exported = await aud.export(**criteria)
        assert exported, criteria
        assert {c for c, _, _ in exported} == {gw.settings.audit_chain}
        assert [(i, f) for _, i, f in exported] == [(i, dict(stored)[i]) for i in ids(queried)] + (
            # the query about a number is itself about that number: its opening and closing events
            [(stored[-2][0], stored[-2][1]), (stored[-1][0], stored[-1][1])] if "msisdn" in criteria else []), criteria
        if "msisdn" in criteria:
            assert [e["method"] for _, e in stored[-2:]] == [AUDIT + "QueryEvents"] * 2
            assert [e["phase"] for _, e in stored[-2:]] == ["open", "close"]
            assert {e["subscriber_ref"] for _, e in stored[-2:]} == {rules.subscriber_ref(key, OTHER)}
    stored = await entries(gw)
    chunks = await aud.export_chunks()
    assert chunks and all(c.endswith(b"\n") for c in chunks)
    everything = [ac.from_json_line(line) for line in b"".join(chunks).decode().splitlines()]
    assert [(i, f) for _, i, f in everything] == stored
    keys, _ = gw.settings.audit_keys()
    offline = ac.verify_entries(gw.settings.audit_chain, keys, [(i, f) for _, i, f in everything])
    assert offline.ok and offline.checked == len(stored)
    for line in b"".join(chunks).decode().splitlines():
        assert set(json.loads(line)) >= {"chain", "id", "seq", "mac", "prev", "method", "decision"}


async def test_hallgate_audit_verify_export_checks_a_downloaded_file_on_the_host(gw, tmp_path):
    """The host command an auditor runs on a file the desk or `audit export` saved: every seal under
    the audit key and every link between consecutive events; the first bad line named."""
    aud = await varied_trail(gw)
    env = {"HALLGATE_SECRET_KEY": gw.settings.secret_key, "HALLGATE_DATA_DIR": str(tmp_path / "host")}
    filtered = b"".join(await aud.export_chunks(channel="kiosk"))
    whole = b"".join(await aud.export_chunks())
    for name, data, expect in (("filtered", filtered, "every seal holds;"), ("whole", whole, "one unbroken run")):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(data)
        done = await asyncio.to_thread(hallgate, "audit", "verify-export", str(path), env=env)
        assert done.returncode == 0 and expect in done.stdout, done.stdout + done.stderr
    lines = whole.decode().splitlines()
    event = json.loads(lines[3])
    event["decision"] = "allowed" if event["decision"] != "allowed" else "denied"  # an edited line
    lines[3] = json.dumps(event)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    done = await asyncio.to_thread(hallgate, "audit", "verify-export", str(tampered), "--json", env=env)
    verdict = json.loads(done.stdout)
    assert done.returncode == 1 and (verdict["ok"], verdict["bad_line"]) == (False, 4) and "seal" in verdict["why"]
    del lines[3]  # a deleted line in an unfiltered export: the next one no longer links
    tampered.write_text("\n".join(lines) + "\n")
    done = await asyncio.to_thread(hallgate, "audit", "verify-export", str(tampered), env=env)
    assert done.returncode == 0 and "one unbroken run" not in done.stdout  # seals hold; the gap shows
    assert "links between consecutive events checked" in done.stdout


async def test_a_large_export_comes_in_several_chunks_of_whole_lines(gw):
    aud = await auditor(gw)
    unknown = [f"1390000{i:04d}" for i in range(700)]
    for i in range(0, len(unknown), 50):
        await asyncio.gather(*(gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=m))
                               for m in unknown[i:i + 50]))
    stored = await entries(gw)
    chunks = await aud.export_chunks()
    assert len(chunks) >= 2 and all(c.endswith(b"\n") for c in chunks)
    exported = [ac.from_json_line(line) for c in chunks for line in c.decode().splitlines()]
    # The export's own event is stored as its first chunk leaves, so a long export may include it.
    assert [i for _, i, _ in exported][:len(stored)] == [i for i, _ in stored]
    assert all(f["method"] == AUDIT + "ExportEvents" for _, _, f in exported[len(stored):])
    assert len(exported) - len(stored) <= 1
    everything = await entries(gw)
    found = ids(await aud.query())
    assert found[:len(everything)] == [i for i, _ in everything] and len(found) - len(everything) <= 1


# --- who may ask ---------------------------------------------------------------------------------


def every_audit_rpc(stub, md):
    return {
        "QueryEvents": lambda: drain(stub.QueryEvents(audit_pb2.QueryEventsRequest(), metadata=md)),
        "VerifyChain": lambda: stub.VerifyChain(audit_pb2.VerifyChainRequest(), metadata=md),
        "ExportEvents": lambda: drain(stub.ExportEvents(audit_pb2.ExportEventsRequest(), metadata=md)),
    }


async def test_only_auditors_on_the_audit_channel_get_in(gw):
    clerk_secret = await gw.add_staff("C1001", "clerk", hall="H001")
    clerk_md = await gw.staff_sign_in(CLERK_CERT, "C1001", clerk_secret)
    legal_secret = await gw.add_staff("L001", "legal_officer", hall="B01")
    legal_md = await gw.staff_sign_in(LEGAL_CERT, "L001", legal_secret)
    approver_secret = await gw.add_staff("A001", "legal_approver", hall="B01")
    approver_md = await gw.staff_sign_in(LEGAL_CERT, "A001", approver_secret)
    auditor_secret = await gw.add_staff("X001", "auditor", hall="B01")
    auditor_md = await gw.staff_sign_in(AUDIT_CERT, "X001", auditor_secret)
    auditor_on_legal_md = await gw.staff_sign_in(LEGAL_CERT, "X001", auditor_secret)
    admin_secret = await gw.add_staff("M001", "admin", hall="B01")
    admin_md = await gw.staff_sign_in(AUDIT_CERT, "M001", admin_secret)
    attempts = [
        ("clerk on its clerk terminal", CLERK_CERT, clerk_md, Code.PERMISSION_DENIED, "WRONG_CHANNEL"),
        ("legal officer on the legal terminal", LEGAL_CERT, legal_md, Code.PERMISSION_DENIED, "WRONG_CHANNEL"),
        ("legal approver on the legal terminal", LEGAL_CERT, approver_md, Code.PERMISSION_DENIED, "WRONG_CHANNEL"),
        ("auditor token from a clerk terminal", CLERK_CERT, auditor_md, Code.PERMISSION_DENIED, "WRONG_CHANNEL"),
        ("auditor token from the kiosk", "kiosk-H001-K01", auditor_md, Code.PERMISSION_DENIED, "WRONG_CHANNEL"),
        ("auditor signed in on the legal terminal", LEGAL_CERT, auditor_on_legal_md, Code.PERMISSION_DENIED,
         "WRONG_CHANNEL"),
        ("auditor's legal-terminal token on the audit terminal", AUDIT_CERT, auditor_on_legal_md,
         Code.UNAUTHENTICATED, "STAFF_SIGN_IN_REQUIRED"),
        ("admin on the audit terminal", AUDIT_CERT, admin_md, Code.PERMISSION_DENIED, "ROLE"),
        ("nobody signed in on the audit terminal", AUDIT_CERT, (), Code.UNAUTHENTICATED, "STAFF_SIGN_IN_REQUIRED"),
    ]
    for who, cert, md, code, why in attempts:
        stub = audit_pb2_grpc.AuditServiceStub(gw.channel_for(cert))
        before = len(await entries(gw))
        for name, start_call in every_audit_rpc(stub, md).items():
            e = await refused(start_call())
            assert (e.code(), str(details(e)["ErrorInfo"].reason)) == (code, why), (who, name)
        new = (await entries(gw))[before:]
        assert [f["method"] for _, f in new] == [AUDIT + n for n in every_audit_rpc(stub, md)], who
        assert all(f["decision"] == "denied" for _, f in new), who
    # The auditor on the audit terminal does get in, and sees every refusal above.
    aud = Auditor(gw, auditor_md)
    assert (await aud.verify()).ok
    denied = await aud.query(decision="denied", method=AUDIT + "QueryEvents")
    assert len(denied) == len(attempts)
    # A legal officer's view of the legal channel has no audit trail in it either.
    legal = legal_pb2_grpc.LegalServiceStub(gw.channel_for(LEGAL_CERT))
    assert (await legal.ListRequests(legal_pb2.ListRequestsRequest(), metadata=legal_md)).requests == []


async def test_bad_filters_and_ranges_are_invalid_argument_naming_the_fields(gw):
    aud = await auditor(gw)
    now = datetime.now(UTC)
    bad = [
        ({"msisdn": "1380000000"}, ["filter.msisdn"]),
        ({"msisdn": "+8613800000001"}, ["filter.msisdn"]),
        ({"decision": "maybe"}, ["filter.decision"]),
        ({"decision": "ALLOWED"}, ["filter.decision"]),
        ({"start_time": now, "end_time": now - timedelta(seconds=1)}, ["filter.end_time"]),
        ({"staff_id": "C1001 OR 1=1"}, ["filter.staff_id"]),
        ({"terminal": "H001/clerk/T07\n"}, ["filter.terminal"]),
        ({"channel": "x" * 200}, ["filter.channel"]),
        ({"msisdn": "12", "decision": "nope", "start_time": now, "end_time": now - timedelta(days=1)},
         ["filter.msisdn", "filter.decision", "filter.end_time"]),
    ]
    for criteria, fields in bad:
        e = await refused(aud.query(**criteria))
        assert e.code() == Code.INVALID_ARGUMENT and violations(e) == fields, criteria
        e = await refused(aud.export(**criteria))
        assert e.code() == Code.INVALID_ARGUMENT and violations(e) == fields, criteria
    e = await refused(aud.query(limit=-1))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["limit"]
    for (start, end), field in (((-1, 0), "start_seq"), ((0, -5), "end_seq"), ((7, 3), "end_seq")):
        e = await refused(aud.verify(start, end))
        assert e.code() == Code.INVALID_ARGUMENT and set(violations(e)) == {field}, (start, end)
    invalid = await aud.query(decision="invalid")
    assert len(invalid) == 2 * len(bad) + 4 and all(e.fields["staff_id"] == "X001" for e in invalid)


async def test_both_negative_seqs_are_named(gw):
    aud = await auditor(gw)
    e = await refused(aud.verify(-1, -1))
    assert e.code() == Code.INVALID_ARGUMENT and set(violations(e)) == {"start_seq", "end_seq"}


# --- the subscriber's side -----------------------------------------------------------------------


async def test_access_history_shows_own_kiosk_and_counter_accesses_without_staff_ids(gw):
    clerk = await counter(gw)
    await clerk.serve_by_id(ORDINARY)
    await clerk.serve_by_id(OTHER)  # another subscriber at the same counter
    await (await counter(gw, "C2001", H002_CERT, "H002")).serve_by_id(ORDINARY)
    code = await gw.request_code(ORDINARY)
    password = gw.billing.password_for(ORDINARY)
    await refused(gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=ORDINARY, service_password=password, one_time_code=f"{(int(code) + 1) % 10**6:06d}")))
    token = (await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=ORDINARY, service_password=password, one_time_code=code))).access_token
    released = await call_list(gw, token, month(-1))
    assert released > 0
    first = await access_history(gw, token)
    assert [(h.channel, h.hall, h.what, h.outcome) for h in first] == [
        ("kiosk", "H001", f"call list viewed at a self-service kiosk ({released} records)", "allowed"),
        ("kiosk", "H001", "sign-in at a self-service kiosk", "allowed"),
        ("kiosk", "H001", "sign-in at a self-service kiosk", "refused"),
        ("clerk", "H002", "profile viewed at a service hall counter", "allowed"),
        ("clerk", "H002", "identified at a service hall counter", "allowed"),
        ("clerk", "H001", "profile viewed at a service hall counter", "allowed"),
        ("clerk", "H001", "identified at a service hall counter", "allowed"),
    ]
    times = [h.time.ToDatetime() for h in first]
    assert times == sorted(times, reverse=True)
    raw = b"".join(h.SerializeToString() for h in first)
    for secret in (b"C1001", b"C2001", b"T07", b"T01", b"K01", ORDINARY.encode()):
        assert secret not in raw
    again = await access_history(gw, token)
    assert again[0].what == "access history viewed at a self-service kiosk" and again[1:] == first

    # The other subscriber sees only their own counter visit.
    other = await access_history(gw, await gw.sign_in(OTHER))
    assert [(h.channel, h.hall, h.what) for h in other] == [
        ("kiosk", "H001", "sign-in at a self-service kiosk"),
        ("clerk", "H001", "profile viewed at a service hall counter"),
        ("clerk", "H001", "identified at a service hall counter")]


async def test_the_release_sms_arrives_after_the_call_list(gw):
    token = await gw.sign_in(ORDINARY)
    assert [m for m in (await gw.messages(ORDINARY)) if "was shown at" in m] == []
    m = month(-1)
    assert await call_list(gw, token, m) > 0
    [release] = [t for t in (await gw.messages(ORDINARY)) if "was shown at" in t]
    assert f"call list for {m}" in release and "H001/kiosk/K01" in release
    assert rules.local_today(datetime.now(UTC), "Asia/Shanghai").isoformat() in release
    # A refused call list sends nothing.
    await refused(call_list(gw, "A" * 43, m))
    assert len([t for t in (await gw.messages(ORDINARY)) if "was shown at" in t]) == 1
    # Later months of the same session are folded into one notice, told when the session ends.
    assert await call_list(gw, token, month(-2)) > 0
    assert await call_list(gw, token, m) > 0  # the first month again: already told
    assert len([t for t in (await gw.messages(ORDINARY)) if "shown" in t]) == 1
    await gw.stub.EndSession(kiosk_pb2.EndSessionRequest(access_token=token))
    told = [t for t in (await gw.messages(ORDINARY)) if "shown" in t]
    assert len(told) == 2 and f"call lists for {month(-2)} were also shown" in told[1], told


async def test_a_call_list_the_kiosk_stops_reading_midway_is_still_reported_to_the_owner(make_gateway):
    gw = await make_gateway(billing_page_size=200)
    token = await gw.sign_in(HEAVY)
    call = gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month(-1)))
    first = await call.read()
    assert len(first.records) == 200
    call.cancel()
    await asyncio.sleep(0.5)
    released = [e for _, e in await entries(gw) if e["method"] == KIOSK + "ListCallDetails"]
    assert [(e["phase"], e["decision"]) for e in released] == [("open", "allowed"), ("close", "allowed")]
    assert released[1]["code"] == "CANCELLED" and int(released[1]["records"]) >= 200  # what left, not less
    told = [t for t in await gw.messages(HEAVY) if "was shown at" in t]
    assert told, "records left the gateway; the owner was not told"



@pytest.mark.parametrize(("field", "bad"), [
    ("start_time", timestamp_pb2.Timestamp(seconds=10**13)),
    ("end_time", timestamp_pb2.Timestamp(seconds=-(10**13))),
    ("start_time", timestamp_pb2.Timestamp(seconds=0, nanos=2 * 10**9)),
])
async def test_a_malformed_timestamp_in_the_filter_is_invalid_argument(gw, field, bad):
    aud = await auditor(gw)
    f = audit_pb2.EventFilter()
    getattr(f, field).CopyFrom(bad)
    e = await refused(drain(aud.stub.QueryEvents(audit_pb2.QueryEventsRequest(filter=f), metadata=aud.md)))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == [f"filter.{field}"]


async def test_a_start_time_before_1970_is_answered(gw):
    aud = await auditor(gw)
    long_ago = datetime(1960, 1, 1, tzinfo=UTC)
    try:
        found = await aud.query(start_time=long_ago)
    except grpc.aio.AioRpcError as e:
        assert e.code() == Code.INVALID_ARGUMENT, e.details()
    else:
        assert ids(found) == [i for i, _ in await entries(gw)][:len(found)] and found


async def test_a_window_ending_before_the_epoch_answers_nothing_not_unavailable(gw):
    """Found by the request fuzzer: an end time before 1970 became a negative stream id, which Redis
    refuses, and the query ended UNAVAILABLE as if the trail were down. Nothing is that old."""
    await gw.sign_in(ORDINARY)
    a = await auditor(gw)
    long_ago = datetime(1960, 1, 1, tzinfo=UTC)
    assert await a.query(end_time=long_ago) == []
    assert await a.export(end_time=long_ago) == []
    assert await a.query(start_time=datetime(1, 1, 1, tzinfo=UTC), end_time=long_ago) == []
    assert len(await a.query(start_time=long_ago)) > 0  # and a start before it still means "from the first"


# --- incremental verification (issue 13, part 3) -------------------------------------------------


async def verify_with_trailer(aud: Auditor, **kw: int) -> tuple[audit_pb2.VerifyChainResponse, dict[str, str]]:
    """The answer, and where the run started / a rejected position (fields of the answer)."""
    reply = await aud.stub.VerifyChain(audit_pb2.VerifyChainRequest(**kw), metadata=aud.md)
    said = {"hallgate-verify-from": reply.verified_from}
    if reply.verified_position_rejected:
        said["hallgate-verify-rejected"] = reply.verified_position_rejected
    return reply, said


async def test_verify_chain_is_incremental_after_a_verified_position(gw):
    aud = await varied_trail(gw)
    before = await entries(gw)
    first, trailer = await verify_with_trailer(aud)
    assert first.ok and first.checked == len(before) and trailer["hallgate-verify-from"] == "genesis"
    await gw.sign_in(HEAVY)
    now = await entries(gw)
    # only the events after the position: the first verification's own event and the sign-in's
    second, trailer = await verify_with_trailer(aud)
    assert second.ok and second.checked == len(now) - len(before) and trailer["hallgate-verify-from"] == "verified"
    assert "hallgate-verify-rejected" not in trailer
    # an explicit range is exactly that range, as before, and start_seq=1 is the full check
    whole, trailer = await verify_with_trailer(aud, start_seq=1)
    assert whole.ok and whole.checked == len(await entries(gw)) - 1 and trailer["hallgate-verify-from"] == "range"
    # the verdicts say where they started, in the trail itself
    details_ = [e.fields["detail"] for e in await aud.query(method=AUDIT + "VerifyChain")]
    assert [d.split()[-1] for d in details_] == ["from=genesis", "from=verified", "from=range"]


async def test_incremental_verify_chain_names_tampering_after_the_position_and_leaves_older_to_a_full_check(gw):
    aud = await varied_trail(gw)
    assert (await aud.verify()).ok
    before = await entries(gw)
    old_target = before[2][0]
    await gw.sign_in(HEAVY)
    [new_target] = [i for i, f in await entries(gw) if f["method"] == KIOSK + "Authenticate"
                    and i not in dict(before)]
    new_seq = int(dict(await entries(gw))[new_target]["seq"])

    def edit(stored):
        for entry_id, fields in stored:
            if entry_id in (old_target, new_target):
                fields["decision"] = "denied"

    await rewrite(gw, edit)
    broken = await aud.verify()
    assert (broken.ok, broken.first_bad_seq, broken.first_bad_id, broken.reason) == (False, new_seq, new_target,
                                                                                    "edited")
    full = await aud.verify(start_seq=1)  # the full check finds the older edit too
    assert (full.ok, full.first_bad_seq, full.first_bad_id) == (False, int(before[2][1]["seq"]), old_target)


async def test_a_forged_verified_position_is_reported_and_ignored(gw):
    from adapters.audit.checkpoints import verified_key

    aud = await varied_trail(gw)
    assert (await aud.verify()).ok
    await gw.redis.hset(verified_key(gw.settings.audit_chain), "seq", "999999")
    reply, trailer = await verify_with_trailer(aud)
    assert reply.ok and reply.checked == len(await entries(gw)) - 1  # all of it, from the first event
    assert trailer["hallgate-verify-from"] == "genesis"
    assert "signature does not match" in trailer["hallgate-verify-rejected"]
    [*_, last] = [e.fields["detail"] for e in await aud.query(method=AUDIT + "VerifyChain")]
    assert last.endswith("verified-position-rejected")


async def test_the_cli_verifies_incrementally_and_fully_with_progress(gw, clean_redis, monkeypatch, capsys):
    from gateway.cli.main import main as cli_main

    aud = await varied_trail(gw)
    monkeypatch.setenv("HALLGATE_SECRET_KEY", gw.settings.secret_key)
    monkeypatch.setenv("HALLGATE_REDIS_URL", clean_redis)
    base = ["audit", "--target", f"127.0.0.1:{gw.port}", "--data-dir", str(gw.pki.parent), "--cert", AUDIT_CERT,
            "--staff-token", aud.md[0][1].removeprefix("Bearer "), "verify"]
    assert await asyncio.to_thread(cli_main, [*base, "--full", "--progress-every", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    n = len(await entries(gw))
    progress = [line for line in out if line.startswith("verified ")]
    assert len(progress) == n // 5 and progress[0].startswith("verified 5 events (seq 5) in ")
    assert progress[0].endswith("events/s")
    assert f"chain intact: {n:,} events verified from genesis" in out[-1]
    assert f"verified position recorded at seq {n}" in out[-1]
    assert await asyncio.to_thread(cli_main, base) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "chain intact: 0 events verified since the last verified position"
