"""Breach response (R10) end to end over mutual TLS with real Redis: any staff member reports, the
information supervisor is alerted at once and works the incident; the subscribers a staff member
touched in a window are listed exactly as the trail has them (checked against the stored stream);
numbers are revealed to the supervisor only, as an audited disclosure; auditors read and never
write; deadlines are computed in business days; an overdue deadline is alerted once; and every
IncidentService RPC x channel x role answers as the policy table says."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from adapters.audit.keys import stream_key
from gateway.domain import audit_chain as ac
from gateway.domain import rules
from gateway.domain.identity import Channel
from gateway.domain.incidents import add_business_days
from gateway.domain.policy import POLICY, SIGN_IN_CHANNELS, Role
from gateway.runtime.bootstrap import incident_desk
from hallgate_pb.v1 import incident_pb2, incident_pb2_grpc
from tests.support.audit_calls import counter
from tests.support.dates import ts
from tests.support.status import refused, violations
from tests.support.subscribers import ORDINARY, OTHER
from tests.support.tls import AUDIT_CERT, CLERK_CERT, KIOSK_CERT, LEGAL_CERT

Code = grpc.StatusCode
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
pb = incident_pb2
SERVICE = "/hallgate.v1.IncidentService/"
H002_CERT = "clerk-H002-T01"
THIRD, FOURTH, FIFTH = "13800000003", "13800000004", "13800000005"
CERT_OF = {Channel.CLERK: CLERK_CERT, Channel.LEGAL: LEGAL_CERT, Channel.AUDIT: AUDIT_CERT, Channel.KIOSK: KIOSK_CERT}
HALL_OF = {Channel.CLERK: "H001", Channel.LEGAL: "B01", Channel.AUDIT: "B01"}


class Desk:
    """A staff member signed in on a terminal, calling the IncidentService."""

    def __init__(self, gw: Any, md: Any, cert: str) -> None:
        self.md = md
        self.stub = incident_pb2_grpc.IncidentServiceStub(gw.channel_for(cert))

    async def report(self, actor: str, start: datetime, end: datetime, kind: int = pb.ACTOR_KIND_STAFF,
                     summary: str = "a customer says a clerk read out their profile") -> str:
        reply = await self.stub.ReportIncident(pb.ReportIncidentRequest(
            summary=summary, suspect=pb.Suspect(kind=kind, id=actor, start=ts(start), end=ts(end))), metadata=self.md)
        return str(reply.incident_id)

    async def get(self, incident_id: str) -> pb.Incident:
        return await self.stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id), metadata=self.md)

    async def affected(self, incident_id: str, page_size: int = 0, page_token: str = "") -> pb.ListAffectedResponse:
        return await self.stub.ListAffected(pb.ListAffectedRequest(incident_id=incident_id, page_size=page_size,
                                                                   page_token=page_token), metadata=self.md)

    async def contain(self, incident_id: str, determined: datetime) -> pb.Incident:
        return await self.stub.Transition(pb.TransitionRequest(
            incident_id=incident_id, to_state=pb.INCIDENT_STATE_CONTAINED, determined_at=ts(determined),
            reason="confirmed from the trail"), metadata=self.md)


async def desk(gw: Any, staff_id: str, role: str, cert: str = AUDIT_CERT, hall: str = "B01") -> Desk:
    secret = await gw.add_staff(staff_id, role, hall=hall)
    return Desk(gw, await gw.staff_sign_in(cert, staff_id, secret), cert)


async def supervisor(gw: Any) -> Desk:
    return await desk(gw, "IS01", "information_supervisor")


async def stored(gw: Any) -> list[tuple[str, dict[str, str]]]:
    raw = await gw.redis.xrange(stream_key(gw.settings.audit_chain))
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in raw]


def touched(events: list[tuple[str, dict[str, str]]], staff_id: str, start: datetime, end: datetime) -> set[str]:
    """The pseudonyms the trail names in `staff_id`'s events from start to end (inclusive), read
    straight from the stored stream, not through any query of the gateway."""
    found: set[str] = set()
    for entry_id, f in events:
        at = ac.time_of(entry_id)
        if f.get("staff_id") == staff_id and start.replace(microsecond=start.microsecond // 1000 * 1000) <= at <= end:
            found |= {r for r in f.get("subscriber_ref", "").split(",") if r}
    return found


async def pause() -> datetime:
    await asyncio.sleep(0.05)
    t = datetime.now(UTC)
    await asyncio.sleep(0.05)
    return t


# --- the acceptance: exactly the subscribers the staff member touched ------------------------------


async def test_an_incident_for_a_staff_id_lists_exactly_the_subscribers_that_staff_member_touched(gw):
    sup = await supervisor(gw)
    first = await counter(gw)  # C1001 at H001
    second = await counter(gw, "C2001", H002_CERT, "H002")
    await first.serve_by_id(FIFTH)  # before the window
    start = await pause()
    for msisdn in (ORDINARY, OTHER, THIRD):
        await first.serve_by_id(msisdn)
    await second.serve_by_id(FOURTH)  # in the window, but another clerk
    end = await pause()
    await first.serve_by_id(FOURTH)  # after the window
    reporter = await desk(gw, "C3001", "clerk", CLERK_CERT, "H001")
    incident_id = await reporter.report("C1001", start, end)

    reply = await sup.affected(incident_id)
    key = gw.settings.key_bytes()
    expected = {rules.subscriber_ref(key, m) for m in (ORDINARY, OTHER, THIRD)}
    trail = touched(await stored(gw), "C1001", start, end)
    assert trail == expected  # the trail itself says so
    assert {s.subscriber_ref for s in reply.subscribers} == trail
    assert reply.total == 3 and not reply.next_page_token
    by_ref = {s.subscriber_ref: s for s in reply.subscribers}
    for m in (ORDINARY, OTHER, THIRD):
        s = by_ref[rules.subscriber_ref(key, m)]
        assert s.masked == rules.mask_msisdn(m)
        assert s.events == 3  # open, profile, close
        assert start <= s.first_touch.ToDatetime(tzinfo=UTC) <= s.last_touch.ToDatetime(tzinfo=UTC) <= end
    assert [s.subscriber_ref for s in reply.subscribers] == [rules.subscriber_ref(key, m)
                                                             for m in (ORDINARY, OTHER, THIRD)]  # oldest first
    assert reply.events_read == sum(1 for i, f in await stored(gw) if f.get("staff_id") == "C1001"
                                    and start <= ac.time_of(i) <= end)
    # Pages: 2 + 1, the same set.
    one = await sup.affected(incident_id, page_size=2)
    two = await sup.affected(incident_id, page_size=2, page_token=one.next_page_token)
    assert [s.subscriber_ref for s in [*one.subscribers, *two.subscribers]] == [s.subscriber_ref
                                                                                for s in reply.subscribers]
    assert not two.next_page_token
    # The same for the terminal and the hall: H001's counter touched exactly these three in the window.
    by_terminal = await reporter.report("H001/clerk/T07", start, end, kind=pb.ACTOR_KIND_TERMINAL)
    assert {s.subscriber_ref for s in (await sup.affected(by_terminal)).subscribers} == expected
    by_hall = await reporter.report("H002", start, end, kind=pb.ACTOR_KIND_HALL)
    assert {s.subscriber_ref for s in (await sup.affected(by_hall)).subscribers} == {
        rules.subscriber_ref(key, FOURTH)}
    # Nothing in any answer or event is a full number.
    for _, f in await stored(gw):
        assert not any(m in v for v in f.values() for m in (ORDINARY, OTHER, THIRD, FOURTH, FIFTH))


# --- reveal: the supervisor only, audited as a disclosure ------------------------------------------


async def test_numbers_are_revealed_to_the_supervisor_only_and_the_reveal_is_audited(gw):
    sup = await supervisor(gw)
    auditor = await desk(gw, "X001", "auditor")
    clerk = await counter(gw)
    start = await pause()
    await clerk.serve_by_id(ORDINARY)
    await clerk.serve_by_id(OTHER)
    end = await pause()
    incident_id = await sup.report("C1001", start, end)
    await gw.deps.pseudonyms.drain()  # the directory is written off the call path
    refs = [s.subscriber_ref for s in (await sup.affected(incident_id)).subscribers]
    assert len(refs) == 2

    e = await refused(auditor.stub.RevealNumbers(pb.RevealNumbersRequest(incident_id=incident_id,
                                                                         subscriber_refs=refs), metadata=auditor.md))
    assert e.code() == Code.PERMISSION_DENIED
    reply = await sup.stub.RevealNumbers(pb.RevealNumbersRequest(incident_id=incident_id, subscriber_refs=refs),
                                         metadata=sup.md)
    assert [(n.subscriber_ref, n.msisdn) for n in reply.numbers] == list(zip(refs, (ORDINARY, OTHER), strict=True))
    event = [f for _, f in await stored(gw) if f["method"] == SERVICE + "RevealNumbers"][-1]
    assert (event["decision"], event["reason"], event["staff_id"], event["role"]) == (
        "allowed", "incident_reveal_disclosure", "IS01", "information_supervisor")
    assert event["subscriber_ref"].split(",") == refs
    assert event["subscriber"] == "138****0001,138****0002" and event["records"] == "2"
    assert incident_id in event["detail"]
    assert not any(m in v for v in event.values() for m in (ORDINARY, OTHER))
    # A pseudonym the incident does not affect is not revealed.
    stranger = rules.subscriber_ref(gw.settings.key_bytes(), THIRD)
    e = await refused(sup.stub.RevealNumbers(pb.RevealNumbersRequest(incident_id=incident_id,
                                                                     subscriber_refs=[stranger]), metadata=sup.md))
    assert e.code() == Code.FAILED_PRECONDITION
    e = await refused(sup.stub.RevealNumbers(pb.RevealNumbersRequest(incident_id=incident_id,
                                                                     subscriber_refs=["13800000001"]), metadata=sup.md))
    assert violations(e) == ["subscriber_refs"]
    # The directory holds nothing in the clear.
    stored_months = [k async for k in gw.redis.scan_iter("hg:{pseudonyms}:dir:*")]
    assert stored_months
    for key in stored_months:
        for value in (await gw.redis.hgetall(key)).values():
            assert value.startswith(b"hgbox1.") and ORDINARY.encode() not in value


# --- the workflow, the auditor and the deadlines ---------------------------------------------------


async def test_the_supervisor_works_an_incident_and_an_auditor_reads_but_never_writes(gw):
    sup = await supervisor(gw)
    auditor = await desk(gw, "X001", "auditor")
    now = datetime.now(UTC)
    reporter = await desk(gw, "L001", "legal_officer", LEGAL_CERT)
    incident_id = await reporter.report("C1001", now - timedelta(days=2), now)
    # Reported: the supervisor was alerted at once (event, and it lists).
    alert = [f for _, f in await stored(gw) if f.get("reason") == "incident_reported"]
    assert [(f["channel"], f["incident_id"], f["reported_by"], f["suspect"]) for f in alert] == [
        ("maintenance", incident_id, "L001", "C1001")]
    listed = await sup.stub.ListIncidents(pb.ListIncidentsRequest(), metadata=sup.md)
    assert [i.incident_id for i in listed.incidents] == [incident_id]
    assert listed.incidents[0].state == pb.INCIDENT_STATE_REPORTED and listed.incidents[0].reported_by == "L001"

    step = await sup.stub.AddRemediationStep(pb.AddRemediationStepRequest(
        incident_id=incident_id, text="disabled C1001; revoked H001/clerk/T07"), metadata=sup.md)
    assert [(s.text, s.by) for s in step.steps] == [("disabled C1001; revoked H001/clerk/T07", "IS01")]
    determined = datetime(2026, 11, 27, 8, tzinfo=UTC)  # Friday 16:00 in Shanghai
    if determined > now:
        determined = now - timedelta(days=1)
    contained = await sup.contain(incident_id, determined)
    le_due = add_business_days(determined, 7, gw.settings.timezone)
    assert contained.state == pb.INCIDENT_STATE_CONTAINED
    assert contained.deadlines.law_enforcement_due.ToDatetime(tzinfo=UTC) == le_due
    le_at = max(determined, now - timedelta(hours=1))
    noticed = await sup.stub.RecordNotification(pb.RecordNotificationRequest(
        incident_id=incident_id, kind=pb.NOTIFICATION_KIND_LAW_ENFORCEMENT, at=ts(le_at), reference="USSS-2026-1"),
        metadata=sup.md)
    customers_from = add_business_days(le_at, 7, gw.settings.timezone)
    assert noticed.deadlines.customers_from.ToDatetime(tzinfo=UTC) == customers_from
    e = await refused(sup.stub.RecordNotification(pb.RecordNotificationRequest(
        incident_id=incident_id, kind=pb.NOTIFICATION_KIND_CUSTOMERS, at=ts(now), reference="letters"),
        metadata=sup.md))
    assert e.code() == Code.FAILED_PRECONDITION  # customers wait 7 business days after law enforcement
    notified = await sup.stub.Transition(pb.TransitionRequest(incident_id=incident_id,
                                                              to_state=pb.INCIDENT_STATE_NOTIFIED), metadata=sup.md)
    assert [(h.from_state, h.to_state, h.by) for h in notified.history][1:] == [
        (pb.INCIDENT_STATE_REPORTED, pb.INCIDENT_STATE_CONTAINED, "IS01"),
        (pb.INCIDENT_STATE_CONTAINED, pb.INCIDENT_STATE_NOTIFIED, "IS01")]

    # The auditor reads everything, changes nothing.
    seen = await auditor.get(incident_id)
    assert seen.state == pb.INCIDENT_STATE_NOTIFIED and len(seen.steps) == 1 and len(seen.notifications) == 1
    await auditor.affected(incident_id)
    await auditor.stub.ListIncidents(pb.ListIncidentsRequest(), metadata=auditor.md)
    writes = [
        auditor.stub.AddRemediationStep(pb.AddRemediationStepRequest(incident_id=incident_id, text="x"),
                                        metadata=auditor.md),
        auditor.stub.Transition(pb.TransitionRequest(incident_id=incident_id, to_state=pb.INCIDENT_STATE_CLOSED),
                                metadata=auditor.md),
        auditor.stub.RecordNotification(pb.RecordNotificationRequest(
            incident_id=incident_id, kind=pb.NOTIFICATION_KIND_CUSTOMERS, at=ts(now), reference="r"),
            metadata=auditor.md),
    ]
    for call in writes:
        assert (await refused(call)).code() == Code.PERMISSION_DENIED
    assert (await sup.get(incident_id)) == seen  # unchanged
    # Bad input names its fields.
    e = await refused(sup.stub.ReportIncident(pb.ReportIncidentRequest(), metadata=sup.md))
    assert violations(e) == ["summary", "suspect.kind", "suspect.id", "suspect.start", "suspect.end"]
    e = await refused(sup.get("nope"))
    assert violations(e) == ["incident_id"]
    e = await refused(sup.get("INC-20260101-00000000"))
    assert e.code() == Code.NOT_FOUND


async def test_an_overdue_deadline_is_alerted_once_across_processes(gw):
    sup = await supervisor(gw)
    now = datetime.now(UTC)
    incident_id = await sup.report("H001/clerk/T07", now - timedelta(days=40), now - timedelta(days=30),
                                   kind=pb.ACTOR_KIND_TERMINAL)
    fine_id = await sup.report("C1001", now - timedelta(days=2), now - timedelta(days=1))
    await sup.contain(incident_id, now - timedelta(days=30))  # 7 business days long past
    await sup.contain(fine_id, now - timedelta(hours=1))
    overdue = await sup.get(incident_id)
    assert overdue.deadlines.law_enforcement_overdue and not (await sup.get(fine_id)).deadlines.law_enforcement_overdue
    listed = await sup.stub.ListIncidents(pb.ListIncidentsRequest(overdue_only=True), metadata=sup.md)
    assert [i.incident_id for i in listed.incidents] == [incident_id]
    # Two processes' checks, twice each: one alert.
    one, two = gw.services.incident.desk, incident_desk(gw.settings, gw.deps)
    results = await asyncio.gather(one.check_overdue(), two.check_overdue())
    results += [await one.check_overdue(), await two.check_overdue()]
    assert sorted(r for found in results for r in found) == [(incident_id, "incident_le_notice_overdue")]
    alerts = [f for _, f in await stored(gw) if f.get("reason") == "incident_le_notice_overdue"]
    assert len(alerts) == 1
    assert (alerts[0]["incident_id"], alerts[0]["suspect"], alerts[0]["channel"]) == (
        incident_id, "H001/clerk/T07", "maintenance")
    assert alerts[0]["due_at"] == add_business_days(now - timedelta(days=30), 7, gw.settings.timezone).isoformat(
        timespec="seconds")


# --- every RPC x channel x role --------------------------------------------------------------------

WHO = [(Channel.KIOSK, None)] + [(channel, None) for channel in (Channel.CLERK, Channel.LEGAL, Channel.AUDIT)] + [
    (channel, role) for role in Role for channel in sorted(SIGN_IN_CHANNELS[role])]


def every_incident_rpc(stub: Any, md: Any, incident_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "ReportIncident": lambda: stub.ReportIncident(pb.ReportIncidentRequest(
            summary="seen", suspect=pb.Suspect(kind=pb.ACTOR_KIND_HALL, id="H001", start=ts(now - timedelta(hours=1)),
                                               end=ts(now))), metadata=md),
        "GetIncident": lambda: stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id), metadata=md),
        "ListIncidents": lambda: stub.ListIncidents(pb.ListIncidentsRequest(), metadata=md),
        "AddRemediationStep": lambda: stub.AddRemediationStep(pb.AddRemediationStepRequest(
            incident_id=incident_id, text="step"), metadata=md),
        "Transition": lambda: stub.Transition(pb.TransitionRequest(
            incident_id=incident_id, to_state=pb.INCIDENT_STATE_CONTAINED, determined_at=ts(now)), metadata=md),
        "RecordNotification": lambda: stub.RecordNotification(pb.RecordNotificationRequest(
            incident_id=incident_id, kind=pb.NOTIFICATION_KIND_LAW_ENFORCEMENT, at=ts(now), reference="r"),
            metadata=md),
        "ListAffected": lambda: stub.ListAffected(pb.ListAffectedRequest(incident_id=incident_id), metadata=md),
        "RevealNumbers": lambda: stub.RevealNumbers(pb.RevealNumbersRequest(
            incident_id=incident_id, subscriber_refs=["a" * 24]), metadata=md),
    }


@pytest.mark.parametrize(("channel", "role"), WHO, ids=[f"{c}-{r or 'no-sign-in'}" for c, r in WHO])
async def test_every_rpc_answers_every_channel_and_role_as_the_policy_says(gw, channel, role):
    sup = await supervisor(gw)
    now = datetime.now(UTC)
    incident_id = await sup.report("C1001", now - timedelta(hours=2), now - timedelta(hours=1))
    md: Any = ()
    if role is not None:
        secret = await gw.add_staff("S01", str(role), hall=HALL_OF[channel])
        md = await gw.staff_sign_in(CERT_OF[channel], "S01", secret)
    stub = incident_pb2_grpc.IncidentServiceStub(gw.channel_for(CERT_OF[channel]))
    calls = every_incident_rpc(stub, md, incident_id)
    assert set(calls) == {m.name for m in pb.DESCRIPTOR.services_by_name["IncidentService"].methods}
    for name, start_call in calls.items():
        rule = POLICY[SERVICE + name]
        before = len(await stored(gw))
        try:
            await start_call()
            code = Code.OK
        except grpc.aio.AioRpcError as e:
            code = e.code()
        event = (await stored(gw))[before:][-1][1]
        assert event["method"] == SERVICE + name
        if channel not in rule.channels:
            assert code == Code.PERMISSION_DENIED, name
            assert event["decision"] == "denied" and event["reason"] == "wrong_channel", name
        elif role is None:
            assert code == Code.UNAUTHENTICATED, name
        elif role not in rule.roles:
            assert code == Code.PERMISSION_DENIED, name
            assert (event["decision"], event["reason"], event["staff_id"]) == ("denied", "role", "S01"), name
        else:  # admitted: the answer is the desk's (OK, or a rule of the incident such as not yet determined)
            assert code in (Code.OK, Code.FAILED_PRECONDITION), (name, code)
            assert event["reason"] not in ("role", "wrong_channel", "staff_sign_in_required"), name
            assert event["decision"] == ("allowed" if code == Code.OK else "denied"), name
            assert event["staff_id"] == "S01" and event["role"] == role, name


# --- the CLI -------------------------------------------------------------------------------------


async def test_the_cli_reports_works_and_lists_an_incident(gw, capsys):
    from gateway.cli.main import main as cli

    secret = await gw.add_staff("IS01", "information_supervisor", hall="B01")
    md = await gw.staff_sign_in(AUDIT_CERT, "IS01", secret)
    token = md[0][1].removeprefix("Bearer ")
    clerk = await counter(gw)
    start = await pause()
    await clerk.serve_by_id(ORDINARY)
    end = await pause()
    base = ["incident", "--target", f"127.0.0.1:{gw.port}", "--cert", str(gw.pki / f"{AUDIT_CERT}.crt"),
            "--ca", str(gw.pki / "ca.crt"), "--staff-token", token]

    async def run(*argv: str) -> str:
        capsys.readouterr()
        assert await asyncio.to_thread(cli, [*base, *argv]) == 0
        # the gateway's own log lines share stdout in this process: keep the CLI's
        return "\n".join(line for line in capsys.readouterr().out.splitlines() if not LOG_LINE.match(line))

    incident_id = (await run("report", "--summary", "profile read out loud", "--actor-kind", "staff",
                             "--actor", "C1001", "--from", start.isoformat(), "--to", end.isoformat())).strip()
    assert incident_id.startswith("INC-")
    out = await run("affected", incident_id)
    ref = rules.subscriber_ref(gw.settings.key_bytes(), ORDINARY)
    assert ref in out and "138****0001" in out and "1 subscriber(s)" in out and ORDINARY not in out
    await run("step", incident_id, "--text", "disabled C1001")
    out = await run("transition", incident_id, "--to", "contained", "--determined-at", "now")
    assert "contained" in out and "law enforcement by" in out
    await gw.deps.pseudonyms.drain()
    assert ORDINARY in await run("reveal", incident_id, ref)
    assert incident_id in await run("list", "--state", "contained")
    assert '"disabled C1001"' in await run("get", incident_id, "--json")
