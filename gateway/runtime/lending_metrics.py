"""Prometheus series of the archive lending register (R3). No label: no staff id, archive id or
loan id ever becomes a label value."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LOANS_OVERDUE = Gauge("hallgate_loans_overdue", "Archive loans out past their due time (every hall), as of the "
                      "last overdue check.", multiprocess_mode="livemax")
LOAN_OVERDUE_ALERTS = Counter("hallgate_loan_overdue_alerts_total",
                              "Overdue alerts raised for archive loans (at most one per loan per day across "
                              "every gateway process).")

