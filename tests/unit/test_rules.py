"""gateway/domain/rules.py: input formats, the retention window, masking, the SIM-swap guard, codes and tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.domain import rules
from gateway.domain.errors import InvalidArgument

FULLWIDTH = "\uff11\uff13\uff18\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff11"  # "13800000001" in fullwidth digits
ARABIC_INDIC = "\u0661\u0663\u0668\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0661"


def one(check, value, *args):
    """The violations a single check reports for `value`."""
    v = rules.Violations()
    assert check(v, value, *args) == value
    return v.items


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["13800000001", "19999999999", "13000000000"])
def test_msisdn_accepts_11_ascii_digits_starting_1_3_to_9(value):
    assert one(rules.check_msisdn, value) == []


@pytest.mark.parametrize("value", [
    "1380000000", "138000000011", "12800000001", "10800000001", "23800000001", "+8613800000001",
    "1380000000a", " 13800000001", "13800000001\n", "138 0000 0001", FULLWIDTH, ARABIC_INDIC,
    "1380000000\uff11",
])
def test_msisdn_refuses_anything_else(value):
    assert one(rules.check_msisdn, value) == [
        ("msisdn", "must be an 11-digit mobile number starting with 1, digits only")]


def test_empty_is_required_and_too_long_is_refused_before_the_pattern():
    assert one(rules.check_msisdn, "") == [
        ("msisdn", "is required: an 11-digit mobile number starting with 1, digits only")]
    assert one(rules.check_msisdn, "1" * 65) == [("msisdn", "must be at most 64 characters")]
    assert one(rules.check_msisdn, "1" * 64) == [
        ("msisdn", "must be an 11-digit mobile number starting with 1, digits only")]
    assert one(rules.check_code, "\uff11" * 65) == [("one_time_code", "must be at most 64 characters")]


@pytest.mark.parametrize("check", [rules.check_code, rules.check_service_password])
@pytest.mark.parametrize(("value", "ok"), [
    ("000000", True), ("123456", True), ("12345", False), ("1234567", False), ("12345a", False),
    (" 123456", False), ("123456\n", False), ("\uff11\uff12\uff13\uff14\uff15\uff16", False),
    ("\u0661\u0662\u0663\u0664\u0665\u0666", False), ("-12345", False),
])
def test_six_digit_fields(check, value, ok):
    assert (one(check, value) == []) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("A" * 43, True), ("aZ09_-" * 7 + "x", True), ("A" * 42, False), ("A" * 44, False),
    ("A" * 42 + "+", False), ("A" * 42 + "/", False), ("A" * 42 + "=", False), ("A" * 42 + "\uff21", False),
    ("", False),
])
def test_token_format(value, ok):
    assert (one(rules.check_token, value) == []) is ok


def test_violations_report_every_bad_field_in_order_and_raise_once():
    v = rules.Violations()
    rules.check_msisdn(v, "")
    rules.check_service_password(v, "12")
    rules.check_code(v, "123456")
    rules.check_token(v, "x", field="request.access_token")
    with pytest.raises(InvalidArgument) as e:
        v.raise_if_any()
    assert [f for f, _ in e.value.violations] == ["msisdn", "service_password", "request.access_token"]
    rules.Violations().raise_if_any()  # nothing bad: no raise


# --- months --------------------------------------------------------------------------------------


def month_violations(value, today, window=6):
    return one(rules.check_month, value, today, window)


@pytest.mark.parametrize(("today", "inside", "outside"), [
    (date(2025, 6, 15), ["2025-06", "2025-01"], ["2024-12", "2025-07"]),
    # Across a year boundary: January's window reaches back into August of the year before.
    (date(2025, 1, 1), ["2025-01", "2024-12", "2024-08"], ["2024-07", "2025-02", "2026-01", "2024-01"]),
    (date(2025, 3, 31), ["2024-10", "2025-03"], ["2024-09", "2025-04"]),
    (date(2024, 12, 31), ["2024-07", "2024-12"], ["2024-06", "2025-01"]),
])
def test_month_window_edges(today, inside, outside):
    for m in inside:
        assert month_violations(m, today) == [], m
    oldest = rules.month_add(today, -5)
    for m in outside:
        assert month_violations(m, today) == [
            ("month", f"must be between {oldest} and {today:%Y-%m} (the retention window)")], m


def test_month_window_message_names_the_range_across_the_year():
    assert month_violations("2024-07", date(2025, 1, 20)) == [
        ("month", "must be between 2024-08 and 2025-01 (the retention window)")]


def test_month_window_of_one_is_this_month_only():
    today = date(2025, 1, 10)
    assert month_violations("2025-01", today, 1) == []
    assert month_violations("2024-12", today, 1) != []


@pytest.mark.parametrize("value", ["2025-00", "2025-13", "2025-99", "0000-00"])
def test_month_00_and_13_are_not_months(value):
    assert month_violations(value, date(2025, 6, 1)) == [("month", 'must be a calendar month written "YYYY-MM"')]


@pytest.mark.parametrize("value", ["2025-6", "25-06", "2025/06", "2025-06-01", "202506", " 2025-06", "2025-06\n",
                                   "\uff12\uff10\uff12\uff15-\uff10\uff16", "x" * 65, ""])
def test_month_format(value):
    items = month_violations(value, date(2025, 6, 1))
    assert len(items) == 1 and items[0][0] == "month"


def test_month_reports_one_violation_even_if_another_field_failed_first():
    v = rules.Violations()
    rules.check_token(v, "")
    rules.check_month(v, "2025-13", date(2025, 6, 1), 6)
    assert [f for f, _ in v.items] == ["access_token", "month"]


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2025, 1, 31), 0, "2025-01"), (date(2025, 1, 1), -1, "2024-12"), (date(2024, 12, 31), 1, "2025-01"),
    (date(2025, 1, 15), -13, "2023-12"), (date(2025, 6, 1), 12, "2026-06"), (date(2025, 6, 1), -5, "2025-01"),
    (date(2025, 6, 1), -6, "2024-12"), (date(1, 1, 1), 0, "0001-01"),
])
def test_month_add(day, months, expected):
    assert rules.month_add(day, months) == expected


def test_local_today_uses_the_operators_zone():
    late = datetime(2025, 1, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 February in Shanghai
    assert rules.local_today(late, "Asia/Shanghai") == date(2025, 2, 1)
    assert rules.local_today(late, "UTC") == date(2025, 1, 31)


# --- masking -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "masked"), [
    ("13800000001", "138****0001"), ("19912345678", "199****5678"), ("", "invalid"), ("1380000000", "invalid"),
    (FULLWIDTH, "invalid"), ("+8613800000001", "invalid"), ("13800000001\n", "invalid"),
])
def test_mask_msisdn(value, masked):
    assert rules.mask_msisdn(value) == masked


def test_mask_hides_the_middle_four_digits():
    masked = rules.mask_msisdn("13812345678")
    assert "1234" not in masked and masked.count("*") == 4 and len(masked) == 11


# --- SIM-swap guard ------------------------------------------------------------------------------

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
HOUR = rules.SimSwapGuard(3600)


@pytest.mark.parametrize(("sim_age", "port_age", "holds"), [
    (None, None, False),
    (3599.999, None, True), (3600, None, False), (3601, None, False),
    (None, 0, True), (None, 3599, True), (None, 3600, False),
    (7200, 10, True), (10, 7200, True), (7200, 7200, False),
    (-60, None, True),  # a change dated in the future (clock skew) holds: fail closed
])
def test_sim_swap_guard_edges(sim_age, port_age, holds):
    def ago(s):
        return None if s is None else NOW - timedelta(seconds=s)

    assert HOUR.holds(NOW, ago(sim_age), ago(port_age)) is holds


def test_sim_swap_guard_of_zero_never_holds():
    assert not rules.SimSwapGuard(0).holds(NOW, NOW, NOW)


# --- codes and tokens ----------------------------------------------------------------------------

KEY = b"k" * 32


def by_hand(key: bytes, msisdn: str, purpose: str, code: str) -> str:
    return hmac.new(key, f"{msisdn}|{purpose}|{code}".encode(), hashlib.sha256).hexdigest()


def test_code_digest_is_the_keyed_hash_of_number_purpose_and_code():
    d = rules.code_digest(KEY, "13800000001", rules.Purpose.CALL_LIST, "123456")
    assert d == by_hand(KEY, "13800000001", "call_list", "123456")
    assert re.fullmatch(r"[0-9a-f]{64}", d)
    assert d != hashlib.sha256(b"13800000001|call_list|123456").hexdigest()  # keyed, not a plain hash


def test_code_digest_binds_number_purpose_code_and_key():
    base = rules.code_digest(KEY, "13800000001", rules.Purpose.CALL_LIST, "123456")
    assert len({
        base,
        rules.code_digest(KEY, "13800000002", rules.Purpose.CALL_LIST, "123456"),
        rules.code_digest(KEY, "13800000001", rules.Purpose.CALL_LIST, "123457"),
        rules.code_digest(b"K" * 32, "13800000001", rules.Purpose.CALL_LIST, "123456"),
        by_hand(KEY, "13800000001", "bill_copy", "123456"),  # Purpose has one member: another by hand
    }) == 5
    assert rules.code_digest(KEY, "13800000001", rules.Purpose.CALL_LIST, "123456") == base  # deterministic


def test_purpose_values_are_distinct_and_stable():
    assert rules.Purpose.CALL_LIST.value == "call_list"
    assert len({p.value for p in rules.Purpose}) == len(rules.Purpose)


def test_new_code_is_six_ascii_digits_with_leading_zeros(monkeypatch):
    codes = {rules.new_code() for _ in range(300)}
    assert all(rules.SIX_DIGITS_RE.fullmatch(c) for c in codes) and len(codes) > 290
    monkeypatch.setattr(rules.secrets, "randbelow", lambda n: 42)
    assert rules.new_code() == "000042"


def test_new_token_is_43_url_safe_chars_of_256_random_bits():
    tokens = [rules.new_token() for _ in range(1000)]
    assert len(set(tokens)) == 1000
    for t in tokens[:50]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", t)
        assert one(rules.check_token, t) == []
        assert len(base64.urlsafe_b64decode(t + "=")) == 32
    # Every position varies: no fixed prefix or padding.
    assert all(len({t[i] for t in tokens}) > 10 for i in range(42))
    # None starts with a dash, which a command line would read as an option (1 in 64 would).
    assert not any(t.startswith("-") for t in tokens)


def test_token_digest_is_sha256_and_not_the_token():
    t = rules.new_token()
    assert rules.token_digest(t) == hashlib.sha256(t.encode()).hexdigest() != t
    assert rules.token_digest(t) != rules.token_digest(rules.new_token())
