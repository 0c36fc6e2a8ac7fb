"""The purposes a counter session is opened for (R2, gateway/domain/purposes.py): the list, the
wire's enum one to one with it, and the reason's rules."""

from __future__ import annotations

import pytest

from gateway.api.clerk import PURPOSES as WIRE
from gateway.api.clerk import purpose_value
from gateway.cli.clerk import PURPOSE_CHOICES
from gateway.domain.purposes import PURPOSES, REASON_MAX, SessionPurpose, reason_problem, words
from hallgate_pb.v1 import clerk_pb2


def test_the_list_names_every_purpose_once_with_words():
    assert set(PURPOSES) == set(SessionPurpose)
    assert len({spec.words for spec in PURPOSES.values()}) == len(PURPOSES)
    assert {p for p, spec in PURPOSES.items() if spec.needs_reason} == {SessionPurpose.COMPLAINT,
                                                                         SessionPurpose.OTHER}


def test_the_wire_enum_is_the_list_one_to_one():
    names = {v.name for v in clerk_pb2.SessionPurpose.DESCRIPTOR.values} - {"SESSION_PURPOSE_UNSPECIFIED"}
    assert names == {f"SESSION_PURPOSE_{p.name}" for p in SessionPurpose}
    assert set(WIRE.values()) == set(SessionPurpose) and clerk_pb2.SESSION_PURPOSE_UNSPECIFIED not in WIRE
    for value, purpose in WIRE.items():
        assert purpose_value(purpose.value) == value
    assert purpose_value("") == purpose_value("retired_purpose") == clerk_pb2.SESSION_PURPOSE_UNSPECIFIED


def test_the_cli_offers_every_purpose():
    assert sorted(PURPOSE_CHOICES.values()) == sorted(WIRE)
    assert "password-reset" in PURPOSE_CHOICES and "sim-replacement" in PURPOSE_CHOICES


@pytest.mark.parametrize("purpose", [p for p, spec in PURPOSES.items() if spec.needs_reason])
def test_a_reason_is_required_where_the_list_says(purpose):
    assert reason_problem(purpose, "") == "is required for this purpose"
    assert reason_problem(purpose, "billing dispute over roaming charges") is None


@pytest.mark.parametrize("purpose", [p for p, spec in PURPOSES.items() if not spec.needs_reason])
def test_a_reason_is_optional_elsewhere_but_checked_when_given(purpose):
    assert reason_problem(purpose, "") is None
    assert reason_problem(purpose, "customer lost the old card") is None
    assert reason_problem(purpose, "x" * (REASON_MAX + 1)) is not None


@pytest.mark.parametrize("bad", [
    "x" * (REASON_MAX + 1),
    " leading space", "trailing space ",
    "two\nlines", "tab\there", "nul\x00", "line\u2028separator", "c1 control \x85",
    "calls from 13800000001",  # a number
    "ID 110101198605064335",  # an ID number
    "account 12345",  # five digits in a row
    "全角１２３４５",  # digits of any script
])
def test_a_reason_never_holds_control_characters_or_numbers(bad):
    assert reason_problem(SessionPurpose.OTHER, bad) is not None


@pytest.mark.parametrize("good", ["x" * REASON_MAX, "收费有误 客户投诉", "fee of 30 yuan charged twice in 2026",
                                  "ticket 1234"])
def test_short_reasons_in_words_pass(good):
    assert reason_problem(SessionPurpose.COMPLAINT, good) is None


def test_words_for_the_access_history():
    assert words("password_reset") == "password reset"
    assert words("sim_replacement") == "SIM replacement"
    assert words("") == words("unknown") == ""
