"""The retention table (gateway/domain/retention.py, hall rule R8): every kind the gateway keeps has a
rule, a setting and a clock; nothing open is ever due; a disposal's event names what, by which rule,
the cutoff, when and by whom, and nothing of a subscriber or a letter's content."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from adapters.sms.queue import MESSAGE_TTL
from gateway.domain import retention as rt
from gateway.domain.legal import FINAL_STATES, State
from gateway.runtime.settings import HELP, Settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NUMBER = re.compile(r"(?<![0-9a-f])1[3-9]\d{9}(?![0-9a-f])")


def test_every_kind_the_issue_names_has_a_rule_with_a_declared_setting() -> None:
    names = {r.name for r in rt.RULES}
    assert names == {"R8.legal", "R8.sms-dead", "R8.sms-life", "R8.customer-session", "R8.loan", "R8.incident",
                     "R8.pseudonyms", "R8.audit"}
    assert len(names) == len(rt.RULES)
    s = Settings()
    for r in rt.RULES:
        assert r.name.startswith("R8.") and r.kind and r.clock and r.note
        assert isinstance(getattr(s, r.setting), int) and getattr(s, r.setting) > 0, r.setting
        assert r.setting in HELP
        assert rt.BY_NAME[r.name] is r


def test_the_retention_comes_from_the_settings() -> None:
    s = Settings().with_(legal_retention_days=10, sms_record_retention_days=3)
    assert rt.LEGAL.retention(s) == timedelta(days=10)
    assert rt.LEGAL.cutoff(NOW, s) == NOW - timedelta(days=10)
    assert rt.SMS_DEAD.cutoff(NOW, s) == NOW - timedelta(days=3)
    assert rt.AUDIT.retention(s) == timedelta(days=31 * s.audit_retention_months)


def test_a_cutoff_needs_an_aware_time_and_a_positive_retention() -> None:
    with pytest.raises(ValueError):
        rt.cutoff(datetime(2026, 1, 1), timedelta(days=1))  # naive: the point of the test
    with pytest.raises(ValueError):
        rt.cutoff(NOW, timedelta(0))


@pytest.mark.parametrize("state", list(State))
def test_nothing_open_is_ever_due_whatever_its_age(state: State) -> None:
    long_ago = NOW - timedelta(days=10_000)
    assert rt.legal_due(state, long_ago, NOW) == (state in FINAL_STATES)
    assert not rt.legal_due(state, NOW, NOW)  # closed at the cutoff: not before it
    assert not rt.legal_due(state, None, NOW)


def test_the_closed_states_are_the_legal_final_states() -> None:
    assert rt.LEGAL_CLOSED == FINAL_STATES
    assert State.AWAITING_APPROVAL not in rt.LEGAL_CLOSED and State.DISCLOSING not in rt.LEGAL_CLOSED
    assert {State.DISCLOSED, State.DISCLOSURE_NOT_AVAILABLE, State.REJECTED, State.EXPIRED} <= rt.LEGAL_CLOSED


def test_other_records_are_due_only_when_closed_before_the_cutoff() -> None:
    assert rt.closed_due(True, NOW - timedelta(seconds=1), NOW)
    assert not rt.closed_due(False, NOW - timedelta(days=999), NOW)
    assert not rt.closed_due(True, NOW, NOW)
    assert not rt.closed_due(True, None, NOW)


def test_records_that_expire_by_ttl_never_outlive_their_retention() -> None:
    """The SMS life record and the counter session need no disposal run: Redis destroys them sooner."""
    s = Settings()
    assert rt.SMS_LIFE.how is rt.How.TTL and rt.SESSIONS.how is rt.How.TTL
    assert timedelta(seconds=MESSAGE_TTL) <= rt.SMS_LIFE.retention(s)
    assert "TTL" in rt.SMS_LIFE.note and "TTL" in rt.SESSIONS.note
    assert {r.name for r in rt.RULES if r.how is rt.How.DISPOSAL} == {"R8.legal", "R8.sms-dead", "R8.loan",
                                                                      "R8.incident", "R8.pseudonyms"}


def test_a_disposal_id_depends_on_the_rule_and_the_records_only() -> None:
    a = rt.disposal_id("R8.legal", ["LR-2", "LR-1"])
    assert a == rt.disposal_id("R8.legal", ["LR-1", "LR-2"])
    assert a != rt.disposal_id("R8.legal", ["LR-1"])
    assert a != rt.disposal_id("R8.sms-dead", ["LR-1", "LR-2"])
    assert a.startswith("retention:R8.legal:")


def test_the_event_names_what_by_which_rule_when_and_by_whom_and_no_personal_data() -> None:
    letter = "ab" * 32
    batch = rt.Batch("R8.legal", ("LR-00000000000000AA", "LR-00000000000000AB"), "2020-01-01T00:00:00+00:00",
                     {"letters": letter, "letters_kept": "1"})
    cut = NOW - timedelta(days=1825)
    e = rt.disposal_event(batch, cutoff_at=cut, retention_days=1825, at=NOW,
                          actor={"staff_id": "ops1", "role": "admin"}).fields()
    assert e["channel"] == "maintenance" and e["method"] == rt.METHOD and e["decision"] == "allowed"
    assert e["reason"] == "retention" and e["rule"] == "R8.legal" and e["records"] == 2
    assert e["call"] == rt.disposal_id("R8.legal", batch.ids)
    assert e["ids"] == "LR-00000000000000AA,LR-00000000000000AB"
    assert e["letters"] == letter and e["letters_kept"] == "1"
    assert e["older_than"].startswith(cut.isoformat(timespec="seconds")[:19])
    assert e["at"].startswith("2026-11-30T12:00:00") and e["staff_id"] == "ops1" and e["role"] == "admin"
    assert "R8.legal" in e["detail"] and "legal_retention_days" in e["detail"] and "2 legal request" in e["detail"]
    assert not NUMBER.search(str(e))
    assert not e.get("subscriber") and not e.get("subscriber_ref")


def test_a_batch_survives_the_journal_and_batches_are_bounded() -> None:
    b = rt.Batch("R8.sms-dead", ("1-0", "2-0"), "x", {"through": "2-0"})
    assert rt.Batch.from_json(b.as_json()) == b
    assert [len(x) for x in rt.split([str(i) for i in range(250)])] == [100, 100, 50]
    with pytest.raises(ValueError):
        rt.split(["a"], 0)
