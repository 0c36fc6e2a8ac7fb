"""Breach response at run time (R10): the information supervisor's alerts and the periodic check of
notification deadlines, run in every gateway process.

An alert is three things at once: an audit event (`incident_reported`, `incident_le_notice_overdue`,
`incident_customer_notice_due`; channel maintenance, actor `gateway`), one JSON warning line on the
log `hallgate.incidents` and the counter `hallgate_incident_alerts_total{kind}`. A report is alerted
at once, inside the ReportIncident call. Every `incident_check_every` seconds (default one hour) each
process checks the open incidents' deadlines and alerts each overdue one at most once per incident,
kind and local day across every process (an atomic SET NX claim in Redis; a claim whose event could
not be stored is given back, so the next check tries again).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter

from gateway.domain.audit_chain import AuditEvent
from gateway.domain.incidents import AlertKind, Incident, IncidentConfig, IncidentDesk, deadlines
from gateway.domain.ports import AuditSink
from gateway.runtime.periodic import Periodic

log = structlog.get_logger("hallgate.incidents")
METHOD = "maintenance/incidents"
ACTOR = "gateway"
CHECK_EVERY = 3600.0

INCIDENT_ALERTS = Counter("hallgate_incident_alerts_total",
                          "Alerts to the information supervisor: incidents reported, law-enforcement notices "
                          "overdue, customer notices due (at most one per incident, kind and day).", ["kind"])



def alert_event(inc: Incident, kind: AlertKind, now: datetime, config: IncidentConfig) -> AuditEvent:
    """The audit event of one alert: the incident, the suspect, the due times; no subscriber data."""
    d = deadlines(inc, config, now)
    due = d.law_enforcement_due if kind == AlertKind.LE_OVERDUE else d.customers_from
    day = now.astimezone(UTC).strftime("%Y-%m-%d")
    return AuditEvent(
        at=now.astimezone(UTC).isoformat(timespec="milliseconds"), channel="maintenance", method=METHOD,
        decision="allowed", reason=str(kind), code="OK", staff_id=ACTOR, role="system",
        call=f"{kind}:{inc.incident_id}" + ("" if kind == AlertKind.REPORTED else f":{day}"),
        detail=f"incident {inc.incident_id} ({inc.state}): {kind}",
        extra={"incident_id": inc.incident_id, "suspect_kind": str(inc.suspect.kind), "suspect": inc.suspect.actor,
               "reported_by": inc.reported_by,
               "due_at": due.astimezone(UTC).isoformat(timespec="seconds") if due is not None else ""})


@dataclass
class IncidentAlerts:
    """The desk's `alert`: audit event, warning line, metric."""

    audit: AuditSink
    config: IncidentConfig = field(default_factory=IncidentConfig)

    async def __call__(self, inc: Incident, kind: AlertKind, now: datetime) -> None:
        event = alert_event(inc, kind, now, self.config)
        await self.audit.append(event.fields())
        log.warning(str(kind), incident_id=inc.incident_id, state=str(inc.state), suspect_kind=str(inc.suspect.kind),
                    suspect=inc.suspect.actor, reported_by=inc.reported_by, due_at=event.extra["due_at"])
        INCIDENT_ALERTS.labels(kind=str(kind)).inc()


class IncidentCheck(Periodic):
    """The periodic deadline check of one process."""

    check_name = "incident_check"

    def __init__(self, desk: IncidentDesk, every: float = CHECK_EVERY) -> None:
        self.desk = desk
        self.every = every
        self.task: asyncio.Task[Any] | None = None


    async def once(self) -> Any:
        return await self.desk.check_overdue()
