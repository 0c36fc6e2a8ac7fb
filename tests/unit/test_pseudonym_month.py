"""The pseudonym directory notes each number under the month (UTC) of the event naming it; the
month is formatted only when it changes (adapters/pseudonyms.py), and must change at the exact
instant the month does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters import pseudonyms
from adapters.pseudonyms import RedisPseudonymDirectory, month_of


@pytest.mark.parametrize("edge", [datetime(2026, 11, 30, 23, 59, 59, 999_000, tzinfo=UTC),
                                  datetime(2026, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)])
def test_the_current_month_turns_at_the_first_instant_of_the_next(monkeypatch: pytest.MonkeyPatch,
                                                                   edge: datetime) -> None:
    directory = RedisPseudonymDirectory(None, b"k" * 32)  # type: ignore[arg-type]  # no Redis is asked
    now = [edge - timedelta(days=3)]
    monkeypatch.setattr(pseudonyms.time, "time", lambda: now[0].timestamp())
    for moment in (edge - timedelta(days=3), edge, edge + timedelta(milliseconds=1), edge + timedelta(days=40),
                   edge - timedelta(days=1)):  # the clock stepped back too
        now[0] = moment
        assert directory._this_month() == month_of(moment)
