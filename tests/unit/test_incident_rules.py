"""Breach response rules (gateway/domain/incidents.py): business days across weekends and a DST
change, the state machine, the notification deadlines of 47 CFR 64.2011, who was affected grouped
from trail records, the overdue check alerting once per incident and day, and the policy rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.domain import audit_chain as ac
from gateway.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from gateway.domain.identity import Channel
from gateway.domain.incidents import (
    AlertKind,
    Incident,
    IncidentConfig,
    IncidentDesk,
    State,
    add_business_days,
    add_step,
    deadlines,
    due_alerts,
    group_affected,
    record_notice,
    report,
    transition,
)
from gateway.domain.policy import POLICY, SIGN_IN_CHANNELS, Role

SH = "Asia/Shanghai"
CFG = IncidentConfig(7, 7, SH)


def local(*args: int, tz: str = SH) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))  # type: ignore[misc]


# --- business days ---------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "days", "expected"), [
    (local(2026, 11, 30, 10), 7, local(2026, 12, 9, 10)),    # Monday → Wednesday of the next week
    (local(2026, 11, 27, 10), 7, local(2026, 12, 8, 10)),    # Friday → Tuesday, two weekends crossed
    (local(2026, 11, 27, 10), 1, local(2026, 11, 30, 10)),   # Friday + 1 → Monday
    (local(2026, 11, 28, 15), 7, local(2026, 12, 9, 0)),     # Saturday: counts from Monday 00:00
    (local(2026, 11, 29, 23, 59), 0, local(2026, 11, 30, 0)),  # Sunday + 0 → Monday 00:00
    (local(2026, 12, 2, 9), 0, local(2026, 12, 2, 9)),       # a weekday + 0 is itself
    (local(2026, 12, 2, 9), 5, local(2026, 12, 9, 9)),       # five business days: one calendar week
    (local(2026, 12, 2, 9), 10, local(2026, 12, 16, 9)),
])
def test_business_days_skip_weekends(start, days, expected):
    got = add_business_days(start, days, SH)
    assert got == expected
    assert got.astimezone(ZoneInfo(SH)).weekday() < 5


def test_business_days_keep_the_local_clock_across_a_dst_change():
    ny = "America/New_York"
    start = local(2026, 3, 6, 10, tz=ny)  # Friday, EST; DST starts Sunday 8 March
    got = add_business_days(start, 7, ny)
    assert got.astimezone(ZoneInfo(ny)).replace(tzinfo=None) == datetime(2026, 3, 17, 10)
    assert got == datetime(2026, 3, 17, 14, tzinfo=UTC)  # EDT: UTC-4


def test_business_days_are_counted_in_the_operators_zone_not_utc():
    # Friday 23:30 UTC is already Saturday in Shanghai: counting starts on Monday there.
    start = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    assert add_business_days(start, 1, SH) == local(2026, 12, 1, 0)
    assert add_business_days(start, 1, "UTC") == datetime(2026, 11, 30, 23, 30, tzinfo=UTC)


def test_business_days_refuse_naive_times_and_negative_counts():
    with pytest.raises(ValueError):
        add_business_days(datetime(2026, 1, 1), 1, SH)
    with pytest.raises(ValueError):
        add_business_days(local(2026, 1, 1), -1, SH)


# --- the state machine -----------------------------------------------------------------------

NOW = local(2026, 11, 30, 10)


def fresh(now: datetime = NOW) -> Incident:
    return report("a clerk photographed profiles", "staff", "C1001", now - timedelta(days=2), now - timedelta(hours=1),
                  "C2001", "clerk", now)


def test_a_report_is_reported_and_validated():
    inc = fresh()
    assert inc.state == State.REPORTED and inc.reported_by == "C2001" and inc.version == 1
    assert inc.incident_id.startswith("INC-20261130-")
    with pytest.raises(InvalidArgument) as e:
        report(" ", "person", "", None, None, "C2001", "clerk", NOW)
    assert [f for f, _ in e.value.violations] == ["summary", "suspect.kind", "suspect.id", "suspect.start",
                                                  "suspect.end"]
    with pytest.raises(InvalidArgument) as e:
        report("x", "hall", "H001", NOW, NOW - timedelta(hours=1), "C2001", "clerk", NOW)
    assert [f for f, _ in e.value.violations] == ["suspect.end"]


def test_the_states_follow_reported_contained_notified_closed():
    inc = fresh()
    with pytest.raises(FailedPrecondition):
        transition(inc, State.NOTIFIED, "S1", NOW)
    with pytest.raises(InvalidArgument):  # contained needs the determination time
        transition(inc, State.CONTAINED, "S1", NOW)
    with pytest.raises(InvalidArgument):
        transition(inc, State.CONTAINED, "S1", NOW, determined_at=NOW + timedelta(hours=1))
    inc = transition(inc, State.CONTAINED, "S1", NOW, determined_at=NOW - timedelta(hours=1), reason="confirmed")
    assert inc.state == State.CONTAINED and inc.determined_at == NOW - timedelta(hours=1) and inc.version == 2
    with pytest.raises(FailedPrecondition) as e:  # law enforcement first
        transition(inc, State.NOTIFIED, "S1", NOW)
    assert e.value.reason == "law_enforcement_not_notified"
    with pytest.raises(FailedPrecondition):  # a determined breach is not closed before the notices
        transition(inc, State.CLOSED, "S1", NOW)
    inc = record_notice(inc, "law_enforcement", NOW, "USSS-1", "S1", NOW, CFG)
    inc = transition(inc, State.NOTIFIED, "S1", NOW)
    with pytest.raises(FailedPrecondition) as e:
        transition(inc, State.CLOSED, "S1", NOW)
    assert e.value.reason == "customers_not_notified"
    later = add_business_days(NOW, 7, SH) + timedelta(minutes=1)
    inc = record_notice(inc, "customers", later, "letter-7", "S1", later, CFG)
    inc = transition(inc, State.CLOSED, "S1", later)
    assert inc.state == State.CLOSED and inc.closed_at == later
    assert [(c.from_state, c.to_state) for c in inc.history] == [
        (State.REPORTED, State.REPORTED), (State.REPORTED, State.CONTAINED), (State.CONTAINED, State.NOTIFIED),
        (State.NOTIFIED, State.CLOSED)]
    for to in (State.CONTAINED, State.NOTIFIED, State.CLOSED):
        with pytest.raises((FailedPrecondition, InvalidArgument)):
            transition(inc, to, "S1", later, determined_at=later if to == State.CONTAINED else None)
    with pytest.raises(FailedPrecondition):
        add_step(inc, "too late", "S1", later)


def test_an_unfounded_report_is_closed_without_notices():
    inc = transition(fresh(), State.CLOSED, "S1", NOW, reason="no breach: the photos were of a test account")
    assert inc.state == State.CLOSED and deadlines(inc, CFG, NOW + timedelta(days=60)) == deadlines(inc, CFG, NOW)
    assert not due_alerts(inc, CFG, NOW + timedelta(days=60))


def test_steps_name_who_took_them_and_are_validated():
    inc = add_step(fresh(), "revoked C1001's terminal session", "S1", NOW)
    assert [(s.text, s.by) for s in inc.steps] == [("revoked C1001's terminal session", "S1")]
    with pytest.raises(InvalidArgument):
        add_step(inc, "", "S1", NOW)
    with pytest.raises(InvalidArgument):
        add_step(inc, "x\x00y", "S1", NOW)
    fullwidth = "\uff11\uff13\uff18" + "\uff10" * 7 + "\uff11"  # 13800000001 in full-width digits
    for text in ("called 13800000001 back", "ID 110101198605064335 seen", fullwidth):
        with pytest.raises(InvalidArgument) as e:
            add_step(inc, text, "S1", NOW)
        assert "never a phone or ID number" in e.value.violations[0][1]
    with pytest.raises(InvalidArgument):
        report("leak of 13800000001", "staff", "C1001", NOW - timedelta(days=1), NOW, "C2001", "clerk", NOW)
    with pytest.raises(InvalidArgument):
        transition(inc, State.CLOSED, "S1", NOW, reason="13800000001 was fine")
    assert add_step(inc, "on 2026-11-30 at 09:00, case USSS-2026-0042", "S1", NOW).steps[-1].by == "S1"


def test_the_record_survives_json():
    inc = transition(add_step(fresh(), "step", "S1", NOW), State.CONTAINED, "S1", NOW, determined_at=NOW)
    inc = record_notice(inc, "law_enforcement", NOW, "ref", "S1", NOW, CFG, delay_customers_until=NOW + timedelta(30))
    assert Incident.from_json(inc.to_json()) == inc


# --- deadlines (64.2011(b)) ------------------------------------------------------------------


def contained(determined: datetime) -> Incident:
    return transition(fresh(determined), State.CONTAINED, "S1", determined, determined_at=determined)


def test_law_enforcement_is_due_seven_business_days_after_the_determination():
    determined = local(2026, 11, 27, 16)  # a Friday
    inc = contained(determined)
    d = deadlines(inc, CFG, determined)
    assert d.law_enforcement_due == local(2026, 12, 8, 16) and d.customers_from is None
    assert not d.overdue
    assert not deadlines(inc, CFG, local(2026, 12, 8, 16)).law_enforcement_overdue
    assert deadlines(inc, CFG, local(2026, 12, 8, 16, 1)).law_enforcement_overdue
    assert due_alerts(inc, CFG, local(2026, 12, 9)) == [AlertKind.LE_OVERDUE]
    assert deadlines(inc, IncidentConfig(3, 7, SH), determined).law_enforcement_due == local(2026, 12, 2, 16)


def test_customers_wait_seven_business_days_after_law_enforcement_or_the_agencys_delay():
    determined = local(2026, 11, 30, 9)
    inc = contained(determined)
    le_at = local(2026, 12, 2, 11)
    noticed = record_notice(inc, "law_enforcement", le_at, "FBI-42", "S1", le_at, CFG)
    d = deadlines(noticed, CFG, le_at)
    assert d.customers_from == local(2026, 12, 11, 11) and not d.law_enforcement_overdue
    with pytest.raises(FailedPrecondition) as e:
        record_notice(noticed, "customers", local(2026, 12, 11, 10), "letters", "S1", local(2026, 12, 11, 10), CFG)
    assert e.value.reason == "customers_too_early"
    assert due_alerts(noticed, CFG, local(2026, 12, 11, 12)) == [AlertKind.CUSTOMERS_DUE]
    delayed = record_notice(inc, "law_enforcement", le_at, "FBI-42", "S1", le_at, CFG,
                            delay_customers_until=local(2027, 1, 15))
    assert deadlines(delayed, CFG, le_at).customers_from == local(2027, 1, 15)
    assert not due_alerts(delayed, CFG, local(2026, 12, 20))
    # A delay earlier than the wait does not shorten it.
    short = record_notice(inc, "law_enforcement", le_at, "x", "S1", le_at, CFG, delay_customers_until=le_at)
    assert deadlines(short, CFG, le_at).customers_from == local(2026, 12, 11, 11)
    done = record_notice(noticed, "customers", local(2026, 12, 11, 12), "letters", "S1", local(2026, 12, 11, 12), CFG)
    assert not due_alerts(done, CFG, local(2027, 2, 1))


def test_notices_are_validated():
    inc = contained(NOW - timedelta(days=1))
    with pytest.raises(FailedPrecondition):  # not determined yet
        record_notice(fresh(), "law_enforcement", NOW, "x", "S1", NOW, CFG)
    with pytest.raises(FailedPrecondition) as e:
        record_notice(inc, "customers", NOW, "x", "S1", NOW, CFG)
    assert e.value.reason == "law_enforcement_first"
    with pytest.raises(InvalidArgument) as e:
        record_notice(inc, "press", None, "", "S1", NOW, CFG, delay_customers_until=NOW)
    assert [f for f, _ in e.value.violations] == ["kind", "at", "reference", "delay_customers_until"]
    with pytest.raises(InvalidArgument):
        record_notice(inc, "law_enforcement", NOW + timedelta(hours=1), "x", "S1", NOW, CFG)
    with pytest.raises(InvalidArgument):  # before the determination
        record_notice(inc, "law_enforcement", NOW - timedelta(days=2), "x", "S1", NOW, CFG)
    once = record_notice(inc, "law_enforcement", NOW, "x", "S1", NOW, CFG)
    with pytest.raises(FailedPrecondition):
        record_notice(once, "law_enforcement", NOW, "y", "S1", NOW, CFG)


# --- affected subscribers --------------------------------------------------------------------


def rec(ms: int, refs: str, masks: str) -> dict[str, str]:
    return {"id": f"{ms}-0", "subscriber_ref": refs, "subscriber": masks}


def test_affected_subscribers_are_grouped_by_pseudonym_with_first_last_and_count():
    records = [rec(1000, "a" * 24, "138****0001"), rec(2000, "", ""), rec(3000, "b" * 24, "138****0002"),
               rec(4000, "a" * 24, "138****0001"), rec(5000, f"{'c' * 24},{'a' * 24}", "139****0003,138****0001")]
    found, n = group_affected(records)
    assert n == 5
    assert [(a.subscriber_ref[0], a.masked, a.events, a.first, a.last) for a in found] == [
        ("a", "138****0001", 3, ac.time_of("1000-0"), ac.time_of("5000-0")),
        ("b", "138****0002", 1, ac.time_of("3000-0"), ac.time_of("3000-0")),
        ("c", "139****0003", 1, ac.time_of("5000-0"), ac.time_of("5000-0"))]


# --- the desk: concurrency and the overdue check once a day ------------------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.items: dict[str, Incident] = {}
        self.claims: set[tuple[str, str, str]] = set()

    async def create(self, inc: Incident) -> None:
        self.items[inc.incident_id] = inc

    async def get(self, incident_id: str) -> Incident | None:
        return self.items.get(incident_id)

    async def update(self, inc: Incident, expected_version: int) -> bool:
        if self.items[inc.incident_id].version != expected_version:
            return False
        self.items[inc.incident_id] = inc
        return True

    async def page(self, offset: int, count: int) -> tuple[list[Incident], int]:
        found = sorted(self.items.values(), key=lambda i: i.reported_at, reverse=True)
        return found[offset:offset + count], len(found)

    async def open_ids(self) -> list[str]:
        return sorted(i for i, v in self.items.items() if v.state != State.CLOSED)

    async def claim_alert(self, incident_id: str, kind: str, day: str) -> bool:
        if (incident_id, kind, day) in self.claims:
            return False
        self.claims.add((incident_id, kind, day))
        return True

    async def release_alert(self, incident_id: str, kind: str, day: str) -> None:
        self.claims.discard((incident_id, kind, day))


class NoTrail:
    async def query(self, where, limit=None):  # pragma: no cover - not read here
        for _ in ():
            yield {}


def desks(store: MemoryStore, alerts: list[tuple[str, AlertKind]], n: int = 2) -> list[IncidentDesk]:
    async def alert(inc: Incident, kind: AlertKind, now: datetime) -> None:
        alerts.append((inc.incident_id, kind))

    return [IncidentDesk(store, NoTrail(), None, alert, CFG) for _ in range(n)]


async def test_a_report_alerts_at_once_and_overdue_deadlines_once_a_day_across_processes():
    store, alerts = MemoryStore(), []
    one, two = desks(store, alerts)
    determined = local(2026, 11, 27, 16)
    inc = await one.report("leak", "staff", "C1001", determined - timedelta(days=1), determined, "C2001", "clerk",
                           now=determined)
    assert alerts == [(inc.incident_id, AlertKind.REPORTED)]
    store.items[inc.incident_id] = transition(inc, State.CONTAINED, "S1", determined, determined_at=determined)
    assert await one.check_overdue(local(2026, 12, 8, 12)) == []  # not yet due
    late = local(2026, 12, 9, 9)
    assert await one.check_overdue(late) == [(inc.incident_id, AlertKind.LE_OVERDUE)]
    assert await two.check_overdue(late + timedelta(hours=1)) == []  # the same day: the other process stays quiet
    assert await one.check_overdue(late + timedelta(hours=5)) == []
    assert await two.check_overdue(late + timedelta(days=1)) == [(inc.incident_id, AlertKind.LE_OVERDUE)]
    assert alerts.count((inc.incident_id, AlertKind.LE_OVERDUE)) == 2


async def test_an_alert_that_cannot_be_recorded_gives_its_claim_back():
    store = MemoryStore()
    failing = True

    async def alert(inc: Incident, kind: AlertKind, now: datetime) -> None:
        if failing and kind != AlertKind.REPORTED:
            raise RuntimeError("trail away")

    desk = IncidentDesk(store, NoTrail(), None, alert, CFG)
    determined = local(2026, 11, 27, 16)
    inc = await desk.report("leak", "hall", "H001", determined - timedelta(days=1), determined, "C2001", "clerk",
                            now=determined)
    store.items[inc.incident_id] = transition(inc, State.CONTAINED, "S1", determined, determined_at=determined)
    with pytest.raises(RuntimeError):
        await desk.check_overdue(local(2026, 12, 9, 9))
    failing = False
    assert await desk.check_overdue(local(2026, 12, 9, 10)) == [(inc.incident_id, AlertKind.LE_OVERDUE)]


async def test_a_change_computed_from_an_old_version_is_refused():
    store, alerts = MemoryStore(), []
    desk, = desks(store, alerts, 1)
    inc = await desk.report("leak", "terminal", "H001/clerk/T07", NOW - timedelta(days=1), NOW, "C2001", "clerk",
                            now=NOW)
    real_get = store.get

    async def stale_get(incident_id: str) -> Incident | None:
        found = await real_get(incident_id)
        store.items[incident_id] = replace(found, version=found.version + 1)  # someone else changed it meanwhile
        return found

    store.get = stale_get  # type: ignore[method-assign]
    with pytest.raises(FailedPrecondition) as e:
        await desk.add_step(inc.incident_id, "step", "S1")
    assert e.value.reason == "incident_changed"
    store.get = real_get  # type: ignore[method-assign]
    with pytest.raises(NotFound):
        await desk.get("INC-20260101-00000000")
    with pytest.raises(InvalidArgument):
        await desk.get("../etc")


# --- the policy rows -------------------------------------------------------------------------

INCIDENT = "/hallgate.v1.IncidentService/"


def test_any_staff_member_reports_and_only_the_supervisor_changes_auditors_read():
    report_rule = POLICY[INCIDENT + "ReportIncident"]
    assert report_rule.roles == set(Role) and Channel.KIOSK not in report_rule.channels
    assert report_rule.channels == {Channel.CLERK, Channel.LEGAL, Channel.AUDIT}
    for role, channels in SIGN_IN_CHANNELS.items():
        assert channels & report_rule.channels, role  # every role can reach it from where it signs in
    for name in ("GetIncident", "ListIncidents", "ListAffected"):
        assert POLICY[INCIDENT + name].channels == {Channel.AUDIT}
        assert POLICY[INCIDENT + name].roles == {Role.INFORMATION_SUPERVISOR, Role.AUDITOR}
    for name in ("AddRemediationStep", "Transition", "RecordNotification", "RevealNumbers"):
        assert POLICY[INCIDENT + name].channels == {Channel.AUDIT}
        assert POLICY[INCIDENT + name].roles == {Role.INFORMATION_SUPERVISOR}


class ListTrail:
    def __init__(self, records: list[dict[str, str]]) -> None:
        self.records = records
        self.asked: list[tuple[object, object]] = []

    async def query(self, where, limit=None):
        self.asked.append((where, limit))
        for rec in self.records[:limit]:
            yield rec


async def test_affected_reads_the_suspects_window_and_refuses_a_window_too_large_to_answer_whole(monkeypatch):
    import gateway.domain.incidents as mod

    store = MemoryStore()
    trail = ListTrail([rec(1000 + i, f"{i % 3:024x}", "138****0001") for i in range(5)])

    async def alert(inc: Incident, kind: AlertKind, now: datetime) -> None:
        return None

    desk = IncidentDesk(store, trail, None, alert, CFG)
    inc = await desk.report("leak", "terminal", "H001/clerk/T07", NOW - timedelta(days=1), NOW, "C2001", "clerk",
                            now=NOW)
    _, found, read = await desk.affected(inc.incident_id)
    assert read == 5 and [a.events for a in found] == [2, 2, 1]
    where, _ = trail.asked[-1]
    assert (where.terminal, where.staff_id, where.start, where.end) == (
        "H001/clerk/T07", None, NOW - timedelta(days=1), NOW + timedelta(milliseconds=1))
    monkeypatch.setattr(mod, "MAX_EVENTS_READ", 4)
    with pytest.raises(FailedPrecondition) as e:
        await desk.affected(inc.incident_id)
    assert e.value.reason == "window_too_large"
