"""Hall rule R8 (disposal): the retention table, in one place. Pure: no I/O.

Everything the gateway keeps has a retention. A record is disposed of (destroyed, by a recorded
disposal: docs/retention.md) once its clock started more than its retention ago; the clock starts
when the record is closed, never before, so **nothing open is ever disposed**: an open legal request,
a queued SMS, an open counter session, a loan not returned, an incident not closed.

Some records never outlive their retention at all: Redis expires them (TTL) or deletes them when they
close. Their rule says so (`how = TTL`) and no disposal runs for them; `hallgate retention status`
shows why. The audit trail's own retention is `hallgate audit trim` / `hallgate audit dispose`
(docs/audit.md), listed here so the table is complete.

A disposal is recorded BEFORE anything is destroyed, as an audit event naming what (kind, ids,
count: never personal data or a letter's content), by which rule, the cutoff, when and by whom
(`disposal_event`); its `call` is the disposal's own id (`disposal_id`), deterministic in what it
destroys, so a run interrupted between the event and the destruction is completed by the next
run under the same event instead of a second one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from gateway.domain.audit_chain import AuditEvent
from gateway.domain.legal.model import FINAL_STATES, State

METHOD = "maintenance/retention"
IDS_PER_EVENT = 100  # a disposal event names at most this many records (a batch)


class How(StrEnum):
    DISPOSAL = "disposal"  # found when due and destroyed by `hallgate retention run`
    TTL = "ttl"  # Redis destroys it itself (expiry, or deletion when it closes): nothing to run
    AUDIT = "audit"  # the audit trail's own retention: `hallgate audit trim` / `hallgate audit dispose`


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the retention table."""

    name: str  # e.g. "R8.legal": what a disposal event names as its rule
    kind: str  # what is destroyed
    setting: str  # the setting (gateway/runtime/settings.py) giving the retention, in days
    clock: str  # what starts the clock
    how: How
    note: str = ""  # how it is destroyed, in a sentence (TTL rules: why nothing runs)

    def retention(self, settings: Any) -> timedelta:
        """The retention period from the settings (days; audit: months, as 31-day months for display)."""
        value = getattr(settings, self.setting)
        return timedelta(days=31 * value) if self.setting.endswith("_months") else timedelta(days=value)

    def cutoff(self, now: datetime, settings: Any) -> datetime:
        """Records whose clock started before this are due."""
        return cutoff(now, self.retention(settings))


def cutoff(now: datetime, retention: timedelta) -> datetime:
    if now.tzinfo is None:
        raise ValueError("retention times must be timezone-aware")
    if retention <= timedelta(0):
        raise ValueError("a retention must be positive")
    return now - retention


# The states a legal request is closed in: fulfilled (disclosed, or nothing to disclose), rejected,
# invalid, cancelled, expired. Its clock starts at the transition into one of them (the last entry
# of its history: nothing leaves a final state).
LEGAL_CLOSED: frozenset[State] = FINAL_STATES

LEGAL = Rule("R8.legal", "legal request (the request, its history, its signed delivery manifest, its index entries) "
             "and its scanned letter", "legal_retention_days",
             "the request closed: disclosed, disclosure not available, rejected, invalid, cancelled or expired",
             How.DISPOSAL,
             "one Lua script per request (request, history, indexes together); then its letter, unless a request "
             "still kept references the same letter (by SHA-256)")
SMS_DEAD = Rule("R8.sms-dead", "SMS dead letter (message id, kind, error, time: never number or text)",
                "sms_record_retention_days", "the message settled as failed (dead-lettered)", How.DISPOSAL,
                "XTRIM MINID of the dead-letter stream up to the last entry named")
SMS_LIFE = Rule("R8.sms-life", "SMS life record (kind, state, times, SMSC id: never number or text)",
                "sms_record_retention_days", "the message queued", How.TTL,
                "expires by TTL: 2 days after queueing (adapters/sms/queue.py MESSAGE_TTL), and the queue entry "
                "with the sealed text is deleted when the message settles")
SESSIONS = Rule("R8.customer-session", "counter (customer) session", "customer_session_retention_days",
                "the session closed", How.TTL,
                "expires by TTL: deleted when the clerk closes it, else by its idle TTL (adapters/redis_staff.py); "
                "a closed session leaves no record")
LOANS = Rule("R8.loan", "archive loan record", "loan_retention_days", "the loan returned", How.DISPOSAL,
             "the lending register's dispose_returned (adapters/redis_lending.py)")
INCIDENTS = Rule("R8.incident", "breach incident record", "incident_retention_days", "the incident closed",
                 How.DISPOSAL, "the incident register's dispose_closed (adapters/redis_incidents.py)")
PSEUDONYMS = Rule("R8.pseudonyms", "pseudonym directory month (pseudonym -> the number, sealed; for breach "
                  "response's reveal)", "audit_retention_months", "the month the pseudonyms were seen",
                  How.DISPOSAL, "whole months, with the audit events that name them (adapters/pseudonyms.py "
                  "dispose_before)")
AUDIT = Rule("R8.audit", "audit trail events", "audit_retention_months", "the event appended", How.AUDIT,
             "`hallgate audit trim` (Redis only) or `hallgate audit dispose` (whole archive months), docs/audit.md")

RULES: tuple[Rule, ...] = (LEGAL, SMS_DEAD, SMS_LIFE, SESSIONS, LOANS, INCIDENTS, PSEUDONYMS, AUDIT)
BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}


def legal_due(state: State | str, closed_at: datetime | None, before: datetime) -> bool:
    """A legal request may be disposed of: closed, and closed before the cutoff. Open: never."""
    return State(state) in LEGAL_CLOSED and closed_at is not None and closed_at < before


def closed_due(closed: bool, closed_at: datetime | None, before: datetime) -> bool:
    """Any other record: closed (returned, settled, ...) before the cutoff. Open: never."""
    return closed and closed_at is not None and closed_at < before


@dataclass(frozen=True, slots=True)
class Batch:
    """What one disposal destroys: the records of one rule (at most IDS_PER_EVENT), and the details
    its event names (letters to destroy, a stream range). JSON-able, for the disposal journal."""

    rule: str
    ids: tuple[str, ...]
    oldest: str  # ISO time of the oldest record's clock start
    details: Mapping[str, str]

    @property
    def records(self) -> int:
        """How many records it destroys: its ids, or for a disposal by cutoff (one id naming the
        cutoff) the count its store gave."""
        due = self.details.get("count_due", "")
        return int(due) if due.isdigit() else len(self.ids)

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "ids": list(self.ids), "oldest": self.oldest, "details": dict(self.details)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Batch:
        return cls(str(d["rule"]), tuple(str(i) for i in d["ids"]), str(d.get("oldest", "")),
                   {str(k): str(v) for k, v in dict(d.get("details") or {}).items()})


def disposal_id(rule: str, ids: Iterable[str]) -> str:
    """The disposal's own id (its event's `call`): the same records give the same id."""
    digest = hashlib.sha256("\n".join([rule, *sorted(ids)]).encode()).hexdigest()[:24]
    return f"retention:{rule}:{digest}"


def disposal_event(batch: Batch, *, cutoff_at: datetime, retention_days: float, at: datetime,
                   actor: Mapping[str, str]) -> AuditEvent:
    """The audit event recorded before `batch` is destroyed: what (kind, ids, count), the rule, the
    cutoff, when, by whom. Nothing of a subscriber, nothing of a letter but its SHA-256."""
    rule = BY_NAME[batch.rule]
    who = dict(actor)
    when = at.isoformat(timespec="milliseconds")
    details = dict(batch.details)
    what = ", ".join(f"{k} {v}" for k, v in sorted(details.items()) if k != "letters")
    letters = [x for x in details.get("letters", "").split(",") if x]
    return AuditEvent(
        at=when, channel="maintenance", method=METHOD, decision="allowed", reason="retention", code="OK",
        staff_id=who.pop("staff_id", ""), role=who.pop("role", ""), call=disposal_id(batch.rule, batch.ids),
        records=batch.records,
        detail=(f"{batch.records} {rule.kind} destroyed by rule {rule.name} ({rule.setting} = {retention_days:g} days "
                f"after {rule.clock}): closed before {cutoff_at.isoformat(timespec='seconds')}, the oldest at "
                f"{batch.oldest or '-'}" + (f"; {len(letters)} letter(s) with them" if letters else "")
                + (f"; {what}" if what else "") + f"; at {when}"),
        extra={"rule": rule.name, "kind": rule.kind.split(" (")[0], "ids": ",".join(batch.ids),
               "older_than": cutoff_at.isoformat(timespec="milliseconds"), "retention_days": f"{retention_days:g}",
               "oldest": batch.oldest, **details, **who})


def split(ids: Sequence[str], size: int = IDS_PER_EVENT) -> list[tuple[str, ...]]:
    """Bounded batches of ids, in order."""
    if size < 1:
        raise ValueError("a batch holds at least one record")
    return [tuple(ids[i:i + size]) for i in range(0, len(ids), size)]
