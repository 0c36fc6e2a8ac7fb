"""Breach response (R10), with US CPNI 47 CFR 64.2011 as the anchor for the timelines.

Any staff member reports a suspected leak; the information supervisor works it: remediation steps
(what, by whom, when), its state (reported → contained → notified → closed), the notifications, and
who may be affected, worked out from the gateway's own audit trail (subscribers by keyed pseudonym;
their numbers only for the supervisor, each reveal an audited disclosure).

Deadlines (64.2011(b)), all in business days (Monday to Friday in the operator's timezone; public
holidays are NOT counted out: the gateway has no holiday calendar, so a deadline over a holiday is
a day early, never late):

- law enforcement: within `incident_le_notice_business_days` (7) of the reasonable determination of
  the breach (the `determined_at` given when the incident is marked contained);
- customers: not before `incident_customer_wait_business_days` (7) after law enforcement was
  notified, or later if the agency asked for a delay (`delay_customers_until`); from then they are
  due. Recording a customer notification earlier is refused.

`add_business_days` keeps the local clock time and moves n weekdays on; a start on a Saturday or
Sunday counts from the following Monday 00:00 local.

State rules: reported → contained (needs `determined_at`: not in the future, at most a year
before the report) or reported → closed (no breach determined: nothing to notify);
contained → notified once law enforcement was notified;
notified → closed once the customers were notified. Nothing leaves closed.

Free text (summary, steps, reasons, references) refuses a run of 11 or more digits, so no phone or
ID number typed by mistake lands in the register at rest; subscribers are named by pseudonym.

Pure rules and the use case (`IncidentDesk`) over ports; no gRPC, no Redis.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from gateway.domain import audit_chain as ac
from gateway.domain.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_SUMMARY = 2000
MAX_STEP = 2000
MAX_REFERENCE = 200
MAX_STEPS = 500
MAX_REVEAL = 100
MAX_EVENTS_READ = 1_000_000  # bound on the trail read for one ListAffected
ID_RE = re.compile(r"INC-[0-9]{8}-[0-9a-f]{8}")
ACTOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:-]{0,127}")
REF_RE = re.compile(r"[0-9a-f]{24}")
NUMBER_RUN_RE = re.compile(r"\d{11,}")  # a mobile number (11) or an ID number (18): never stored in free text


class State(StrEnum):
    REPORTED = "reported"
    CONTAINED = "contained"
    NOTIFIED = "notified"
    CLOSED = "closed"


class ActorKind(StrEnum):
    STAFF = "staff"
    TERMINAL = "terminal"
    HALL = "hall"


class NoticeKind(StrEnum):
    LAW_ENFORCEMENT = "law_enforcement"
    CUSTOMERS = "customers"


class AlertKind(StrEnum):
    REPORTED = "incident_reported"
    LE_OVERDUE = "incident_le_notice_overdue"
    CUSTOMERS_DUE = "incident_customer_notice_due"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.REPORTED: frozenset({State.CONTAINED, State.CLOSED}),
    State.CONTAINED: frozenset({State.NOTIFIED}),
    State.NOTIFIED: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class IncidentConfig:
    le_days: int = 7
    customer_wait_days: int = 7
    tz: str = "Asia/Shanghai"

    @classmethod
    def from_settings(cls, s: Any) -> IncidentConfig:
        return cls(le_days=s.incident_le_notice_business_days,
                   customer_wait_days=s.incident_customer_wait_business_days, tz=s.timezone)


# --- business days ---------------------------------------------------------------------------


def add_business_days(start: datetime, days: int, tz: str) -> datetime:
    """`start` moved `days` business days (Mon-Fri, local to `tz`) on, at the same local clock time;
    a weekend start counts from the next Monday 00:00. Holidays are not known (module docstring)."""
    if start.tzinfo is None:
        raise ValueError("business days need a timezone-aware time")
    if days < 0:
        raise ValueError("days must not be negative")
    local = start.astimezone(ZoneInfo(tz))
    if local.weekday() >= 5:
        local = (local + timedelta(days=7 - local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    left = days
    while left > 0:  # at most days + 2 * (days // 5 + 1) steps
        local += timedelta(days=1)
        if local.weekday() < 5:
            left -= 1
    # the same wall-clock time on that day (a DST change in between moves the instant, not the clock)
    naive = local.replace(tzinfo=None)
    return naive.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


# --- the record ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    text: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    at: datetime
    reference: str
    recorded_by: str
    delay_customers_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Change:
    from_state: State
    to_state: State
    by: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Suspect:
    kind: ActorKind
    actor: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: str
    state: State
    summary: str
    suspect: Suspect
    reported_by: str
    reporter_role: str
    reported_at: datetime
    version: int = 1
    determined_at: datetime | None = None
    closed_at: datetime | None = None
    steps: tuple[Step, ...] = ()
    notices: tuple[Notice, ...] = ()
    history: tuple[Change, ...] = ()

    def notice(self, kind: NoticeKind) -> Notice | None:
        found = [n for n in self.notices if n.kind == kind]
        return found[-1] if found else None

    def to_json(self) -> str:
        return json.dumps(_plain(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Incident:
        d = json.loads(text)
        s = d["suspect"]
        return cls(
            incident_id=d["incident_id"], state=State(d["state"]), summary=d["summary"],
            suspect=Suspect(ActorKind(s["kind"]), s["actor"], _dt(s["start"]), _dt(s["end"])),
            reported_by=d["reported_by"], reporter_role=d["reporter_role"], reported_at=_dt(d["reported_at"]),
            version=int(d["version"]), determined_at=_opt(d.get("determined_at")), closed_at=_opt(d.get("closed_at")),
            steps=tuple(Step(x["text"], x["by"], _dt(x["at"])) for x in d.get("steps", [])),
            notices=tuple(Notice(NoticeKind(x["kind"]), _dt(x["at"]), x["reference"], x["recorded_by"],
                                 _opt(x.get("delay_customers_until"))) for x in d.get("notices", [])),
            history=tuple(Change(State(x["from_state"]), State(x["to_state"]), x["by"], _dt(x["at"]),
                                 x.get("reason", "")) for x in d.get("history", [])))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, StrEnum):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def new_id(now: datetime) -> str:
    return f"INC-{now.astimezone(UTC):%Y%m%d}-{secrets.token_hex(4)}"


# --- deadlines -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deadlines:
    law_enforcement_due: datetime | None = None
    customers_from: datetime | None = None
    law_enforcement_overdue: bool = False
    customers_overdue: bool = False

    @property
    def overdue(self) -> bool:
        return self.law_enforcement_overdue or self.customers_overdue


def deadlines(inc: Incident, config: IncidentConfig, now: datetime) -> Deadlines:
    """What is due and whether it is overdue now. Nothing is due before a breach is determined."""
    if inc.determined_at is None:
        return Deadlines()
    le_due = add_business_days(inc.determined_at, config.le_days, config.tz)
    le = inc.notice(NoticeKind.LAW_ENFORCEMENT)
    customers = inc.notice(NoticeKind.CUSTOMERS)
    customers_from = customers_from_of(le, config) if le is not None else None
    open_ = inc.state != State.CLOSED
    return Deadlines(
        law_enforcement_due=le_due, customers_from=customers_from,
        law_enforcement_overdue=open_ and le is None and now > le_due,
        customers_overdue=open_ and customers is None and customers_from is not None and now > customers_from)


def customers_from_of(le: Notice, config: IncidentConfig) -> datetime:
    earliest = add_business_days(le.at, config.customer_wait_days, config.tz)
    if le.delay_customers_until is not None and le.delay_customers_until > earliest:
        return le.delay_customers_until
    return earliest


def due_alerts(inc: Incident, config: IncidentConfig, now: datetime) -> list[AlertKind]:
    d = deadlines(inc, config, now)
    return ([AlertKind.LE_OVERDUE] if d.law_enforcement_overdue else []) + (
        [AlertKind.CUSTOMERS_DUE] if d.customers_overdue else [])


# --- the rules of each step ------------------------------------------------------------------


def _text(v: list[tuple[str, str]], name: str, value: str, limit: int) -> str:
    value = value.strip()
    if not value:
        v.append((name, "is required"))
    elif len(value) > limit:
        v.append((name, f"must be at most {limit} characters"))
    elif any(ord(c) < 32 and c not in "\n\t" for c in value):
        v.append((name, "must not hold control characters"))
    elif NUMBER_RUN_RE.search(value):
        v.append((name, "must not hold a run of 11 or more digits: never a phone or ID number (name the "
                        "subscriber by the pseudonym ListAffected shows)"))
    return value


def _raise(v: list[tuple[str, str]]) -> None:
    if v:
        raise InvalidArgument(v)


def check_id(incident_id: str, field_: str = "incident_id") -> str:
    if not ID_RE.fullmatch(incident_id):
        raise InvalidArgument([(field_, "must be an incident id (INC-YYYYMMDD-xxxxxxxx)")])
    return incident_id


def report(summary: str, kind: str, actor: str, start: datetime | None, end: datetime | None, by: str, role: str,
           now: datetime) -> Incident:
    v: list[tuple[str, str]] = []
    summary = _text(v, "summary", summary, MAX_SUMMARY)
    if kind not in set(ActorKind):
        v.append(("suspect.kind", "must be staff, terminal or hall"))
    if not ACTOR_RE.fullmatch(actor):
        v.append(("suspect.id", "is required: letters, digits and ._/:- (at most 128)"))
    if start is None:
        v.append(("suspect.start", "is required"))
    if end is None:
        v.append(("suspect.end", "is required"))
    if start is not None and end is not None and end <= start:
        v.append(("suspect.end", "must be after suspect.start"))
    if start is not None and start > now:
        v.append(("suspect.start", "must not be in the future"))
    _raise(v)
    assert start is not None and end is not None
    return Incident(new_id(now), State.REPORTED, summary, Suspect(ActorKind(kind), actor, start, end), by, role, now,
                    history=(Change(State.REPORTED, State.REPORTED, by, now, "reported"),))


def add_step(inc: Incident, text: str, by: str, now: datetime) -> Incident:
    v: list[tuple[str, str]] = []
    text = _text(v, "text", text, MAX_STEP)
    _raise(v)
    if inc.state == State.CLOSED:
        raise FailedPrecondition("incident_closed")
    if len(inc.steps) >= MAX_STEPS:
        raise FailedPrecondition("too_many_steps")
    return replace(inc, steps=(*inc.steps, Step(text, by, now)), version=inc.version + 1)


def transition(inc: Incident, to: str, by: str, now: datetime, determined_at: datetime | None = None,
               reason: str = "") -> Incident:
    v: list[tuple[str, str]] = []
    if to not in set(State) or to == State.REPORTED:
        v.append(("to_state", "must be contained, notified or closed"))
    if reason.strip():
        _text(v, "reason", reason, MAX_STEP)
    if to == State.CONTAINED:
        if determined_at is None:
            v.append(("determined_at", "is required to mark an incident contained (the breach determination)"))
        elif determined_at > now:
            v.append(("determined_at", "must not be in the future"))
        elif determined_at < inc.reported_at - timedelta(days=365):
            v.append(("determined_at", "must not be more than a year before the report"))
    elif determined_at is not None:
        v.append(("determined_at", "is given only when marking an incident contained"))
    _raise(v)
    target = State(to)
    if target not in TRANSITIONS[inc.state]:
        raise FailedPrecondition("incident_transition_not_allowed")
    if target == State.NOTIFIED and inc.notice(NoticeKind.LAW_ENFORCEMENT) is None:
        raise FailedPrecondition("law_enforcement_not_notified")
    if target == State.CLOSED and inc.state == State.NOTIFIED and inc.notice(NoticeKind.CUSTOMERS) is None:
        raise FailedPrecondition("customers_not_notified")
    return replace(inc, state=target, version=inc.version + 1,
                   determined_at=determined_at if target == State.CONTAINED else inc.determined_at,
                   closed_at=now if target == State.CLOSED else inc.closed_at,
                   history=(*inc.history, Change(inc.state, target, by, now, reason.strip())))


def record_notice(inc: Incident, kind: str, at: datetime | None, reference: str, by: str, now: datetime,
                  config: IncidentConfig, delay_customers_until: datetime | None = None) -> Incident:
    v: list[tuple[str, str]] = []
    if kind not in set(NoticeKind):
        v.append(("kind", "must be law_enforcement or customers"))
    if at is None:
        v.append(("at", "is required"))
    elif at > now + timedelta(minutes=5):
        v.append(("at", "must not be in the future"))
    reference = _text(v, "reference", reference, MAX_REFERENCE)
    if delay_customers_until is not None and kind != NoticeKind.LAW_ENFORCEMENT:
        v.append(("delay_customers_until", "is given with a law-enforcement notification only"))
    _raise(v)
    assert at is not None
    if inc.state not in (State.CONTAINED, State.NOTIFIED) or inc.determined_at is None:
        raise FailedPrecondition("incident_not_determined" if inc.state == State.REPORTED else "incident_closed")
    if at < inc.determined_at:
        raise InvalidArgument([("at", "must not be before the breach was determined")])
    if inc.notice(NoticeKind(kind)) is not None:
        raise FailedPrecondition("already_notified")
    if kind == NoticeKind.CUSTOMERS:
        le = inc.notice(NoticeKind.LAW_ENFORCEMENT)
        if le is None:
            raise FailedPrecondition("law_enforcement_first")
        if at < customers_from_of(le, config):
            raise FailedPrecondition("customers_too_early")
    notice = Notice(NoticeKind(kind), at, reference, by, delay_customers_until)
    return replace(inc, notices=(*inc.notices, notice), version=inc.version + 1)


# --- who may be affected, from the trail -----------------------------------------------------


@dataclass(slots=True)
class Affected:
    subscriber_ref: str
    masked: str
    first: datetime
    last: datetime
    events: int = 0


def actor_filter(s: Suspect) -> ac.AuditFilter:
    """The trail's indexed query for the suspect's actor in its window (end inclusive to the ms)."""
    end = s.end + timedelta(milliseconds=1)
    if s.kind == ActorKind.STAFF:
        return ac.AuditFilter(staff_id=s.actor, start=s.start, end=end)
    if s.kind == ActorKind.TERMINAL:
        return ac.AuditFilter(terminal=s.actor, start=s.start, end=end)
    return ac.AuditFilter(hall=s.actor, start=s.start, end=end)


class AffectedGrouper:
    """Groups trail records as they stream past, in memory bounded by the subscribers found."""

    def __init__(self) -> None:
        self.found: dict[str, Affected] = {}
        self.read = 0

    def add(self, rec: Mapping[str, str]) -> None:
        self.read += 1
        refs = [r for r in rec.get("subscriber_ref", "").split(",") if r]
        if not refs:
            return
        masks = rec.get("subscriber", "").split(",")
        at = ac.time_of(rec["id"])
        for i, ref in enumerate(refs):
            mask = masks[i].strip() if len(masks) == len(refs) else ""
            a = self.found.get(ref)
            if a is None:
                self.found[ref] = Affected(ref, mask, at, at, 1)
            else:
                a.events += 1
                a.last = max(a.last, at)
                a.first = min(a.first, at)
                a.masked = a.masked or mask

    def result(self) -> list[Affected]:
        return sorted(self.found.values(), key=lambda a: (a.first, a.subscriber_ref))


def group_affected(records: Iterable[Mapping[str, str]]) -> tuple[list[Affected], int]:
    """Every subscriber pseudonym the records name, with the masked number the trail shows for it,
    its first and last event (the stream id's time) and how many events name it; oldest first.
    Returns (subscribers, events read)."""
    g = AffectedGrouper()
    for rec in records:
        g.add(rec)
    return g.result(), g.read


# --- ports -----------------------------------------------------------------------------------


class IncidentStore(Protocol):
    async def create(self, inc: Incident) -> None: ...

    async def get(self, incident_id: str) -> Incident | None: ...

    async def update(self, inc: Incident, expected_version: int) -> bool:
        """Store `inc` if the stored one still has `expected_version`; False if it moved on."""
        ...

    async def page(self, offset: int, count: int) -> tuple[list[Incident], int]:
        """Newest first; (a page, the total)."""
        ...

    async def open_ids(self) -> list[str]: ...

    async def claim_alert(self, incident_id: str, kind: str, day: str) -> bool:
        """True for the first claim of (incident, kind, day) across every process."""
        ...

    async def release_alert(self, incident_id: str, kind: str, day: str) -> None: ...


class PseudonymDirectory(Protocol):
    """ref → number, sealed at rest (adapters/pseudonyms.py)."""

    def note(self, ref: str, msisdn: str) -> None: ...

    async def reveal(self, refs: Sequence[str]) -> dict[str, str]: ...


class TrailReader(Protocol):
    def query(self, where: Any, limit: int | None = None) -> AsyncIterator[dict[str, str]]: ...


Alert = Callable[[Incident, AlertKind, datetime], Awaitable[None]]


@dataclass
class IncidentDesk:
    """The use cases. Concurrency: every change is computed from a version and stored only if that
    version is still the stored one (else FailedPrecondition `concurrent_change`: read and retry)."""

    store: IncidentStore
    trail: TrailReader
    directory: PseudonymDirectory | None
    alert: Alert
    config: IncidentConfig = field(default_factory=IncidentConfig)

    async def report(self, summary: str, kind: str, actor: str, start: datetime | None, end: datetime | None,
                     by: str, role: str, now: datetime | None = None) -> Incident:
        now = now or datetime.now(UTC)
        inc = report(summary, kind, actor, start, end, by, role, now)
        await self.store.create(inc)
        await self.alert(inc, AlertKind.REPORTED, now)
        return inc

    async def get(self, incident_id: str) -> Incident:
        inc = await self.store.get(check_id(incident_id))
        if inc is None:
            raise NotFound("no_such_incident")
        return inc

    async def incidents(self, state: str = "", overdue_only: bool = False, offset: int = 0, count: int = 50,
                   now: datetime | None = None) -> tuple[list[Incident], int]:
        """A page of incidents, newest first. With filters the whole register is read (it is small:
        a branch's incidents over the retention period) and filtered; `total` counts what matched."""
        now = now or datetime.now(UTC)
        if not state and not overdue_only:
            return await self.store.page(offset, count)
        page, _ = await self.store.page(0, 100_000)
        hits = [i for i in page if (not state or i.state == state)
                and (not overdue_only or deadlines(i, self.config, now).overdue)]
        return hits[offset:offset + count], len(hits)

    async def _change(self, incident_id: str, make: Callable[[Incident], Incident]) -> Incident:
        inc = await self.get(incident_id)
        changed = make(inc)
        if not await self.store.update(changed, inc.version):
            raise FailedPrecondition("incident_changed")
        return changed

    async def add_step(self, incident_id: str, text: str, by: str) -> Incident:
        return await self._change(incident_id, lambda i: add_step(i, text, by, datetime.now(UTC)))

    async def transition(self, incident_id: str, to: str, by: str, determined_at: datetime | None,
                         reason: str = "") -> Incident:
        return await self._change(incident_id,
                                  lambda i: transition(i, to, by, datetime.now(UTC), determined_at, reason))

    async def notify(self, incident_id: str, kind: str, at: datetime | None, reference: str, by: str,
                     delay_customers_until: datetime | None = None) -> Incident:
        return await self._change(incident_id, lambda i: record_notice(
            i, kind, at, reference, by, datetime.now(UTC), self.config, delay_customers_until))

    async def affected(self, incident_id: str) -> tuple[Incident, list[Affected], int]:
        """Who the suspect's events in the window name, read from the trail as it streams. A window
        with more than MAX_EVENTS_READ events is refused (`window_too_large`), never answered in part."""
        inc = await self.get(incident_id)
        g = AffectedGrouper()
        async for rec in self.trail.query(actor_filter(inc.suspect), limit=MAX_EVENTS_READ + 1):
            g.add(rec)
            if g.read > MAX_EVENTS_READ:
                raise FailedPrecondition("window_too_large")
        return inc, g.result(), g.read

    async def reveal(self, incident_id: str, refs: Sequence[str]) -> dict[str, str]:
        """The numbers behind `refs`, each of which must be a subscriber this incident affects."""
        v: list[tuple[str, str]] = []
        if not refs:
            v.append(("subscriber_refs", "name at least one pseudonym"))
        elif len(refs) > MAX_REVEAL:
            v.append(("subscriber_refs", f"at most {MAX_REVEAL} at a time"))
        elif not all(REF_RE.fullmatch(r) for r in refs):
            v.append(("subscriber_refs", "must be subscriber pseudonyms (24 hex digits)"))
        _raise(v)
        _, found, _ = await self.affected(incident_id)
        ours = {a.subscriber_ref for a in found}
        if not set(refs) <= ours:
            raise FailedPrecondition("not_affected_by_incident")
        if self.directory is None:
            return {}
        return await self.directory.reveal(list(dict.fromkeys(refs)))

    async def check_overdue(self, now: datetime | None = None) -> list[tuple[str, AlertKind]]:
        """Alert each overdue deadline of each open incident at most once per local day across every
        process (the store's claim). Returns what this process alerted."""
        now = now or datetime.now(UTC)
        day = now.astimezone(ZoneInfo(self.config.tz)).strftime("%Y-%m-%d")
        alerted = []
        for incident_id in await self.store.open_ids():
            inc = await self.store.get(incident_id)
            if inc is None:
                continue
            for kind in due_alerts(inc, self.config, now):
                if not await self.store.claim_alert(inc.incident_id, kind, day):
                    continue  # another process (or an earlier check) alerted it today
                try:
                    await self.alert(inc, kind, now)
                except BaseException:  # not on record: give the claim back, the next check tries again
                    with contextlib.suppress(Exception):
                        await self.store.release_alert(inc.incident_id, kind, day)
                    raise
                alerted.append((inc.incident_id, kind))
        return alerted
