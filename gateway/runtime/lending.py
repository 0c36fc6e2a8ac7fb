"""The overdue check of the archive lending register (R3), run in every gateway process.

Every `loan_overdue_check` seconds each process looks at the loans OUT past their due time (a
range of one sorted set: O(answer)), sets `hallgate_loans_overdue`, and raises the alert of each
overdue loan at most once per calendar day (the operator's zone) across all processes: the first
process to claim (loan, day) in Redis (SET NX) records the audit event `loan_overdue` (actor: the
gateway), logs one warning line `loan_overdue` and counts `hallgate_loan_overdue_alerts_total`.
A claim whose event cannot be stored is given back, so the next check tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog

from adapters.redis_lending import RedisLendingStore
from gateway.domain.audit_chain import AuditEvent
from gateway.domain.lending import LendingConfig, Loan, day_of, overdue_detail
from gateway.domain.ports import AuditSink
from gateway.runtime.lending_metrics import LOAN_OVERDUE_ALERTS, LOANS_OVERDUE
from gateway.runtime.periodic import Periodic

log = structlog.get_logger("hallgate.lending")
METHOD = "maintenance/lending"
ACTOR = "gateway"


def overdue_event(loan: Loan, now: datetime, day: str) -> AuditEvent:
    """The audit event of one overdue alert: the loan, the document, the borrower's staff id, the
    due time; no customer data and no secret."""
    return AuditEvent(
        at=now.astimezone(UTC).isoformat(timespec="milliseconds"), channel="maintenance", method=METHOD,
        decision="allowed", reason="loan_overdue", code="OK", hall=loan.hall, staff_id=ACTOR, role="system",
        call=f"loan_overdue:{loan.loan_id}:{day}", detail=overdue_detail(loan, now),
        extra={"loan_id": loan.loan_id, "archive_id": loan.archive_id, "holder": loan.borrower,
               "due_at": loan.due_at.astimezone(UTC).isoformat(timespec="seconds"), "day": day})


@dataclass
class OverdueSweep(Periodic):
    store: RedisLendingStore
    audit: AuditSink
    config: LendingConfig = field(default_factory=LendingConfig)
    every: float = 3600.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    task: asyncio.Task[Any] | None = None
    check_name: ClassVar[str] = "loan_overdue_check"

    async def once(self) -> list[str]:
        return await self.sweep_once()

    async def sweep_once(self) -> list[str]:
        """One check; returns the loans this process alerted now."""
        now = self.clock()
        day = day_of(now, self.config.timezone)
        LOANS_OVERDUE.set(await self.store.count_overdue(now))
        alerted: list[str] = []
        for loan in await self.store.overdue(now):
            if not await self.store.claim_alert(loan.loan_id, day):
                continue  # another process (or an earlier check) alerted it today
            event = overdue_event(loan, now, day)
            try:
                await self.audit.append(event.fields())
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.store.release_alert(loan.loan_id, day)
                raise
            log.warning("loan_overdue", loan_id=loan.loan_id, archive_id=loan.archive_id, hall=loan.hall,
                        holder=loan.borrower, due_at=loan.due_at.isoformat(timespec="seconds"), day=day)
            LOAN_OVERDUE_ALERTS.inc()
            alerted.append(loan.loan_id)
        return alerted

