"""R4: the 18-character resident ID number (GB 11643-1999), its ISO 7064 MOD 11-2 check character,
and the birth date and sex on the card agreeing with it (gateway/domain/resident_id.py)."""

from __future__ import annotations

import random
from datetime import date

import pytest

from gateway.domain.resident_id import check_char, problems

TODAY = date(2026, 6, 15)


def mod11_2(first17: str) -> str:
    """The check character computed independently from the standard: weights 2^(17-i) mod 11,
    check value (12 - sum mod 11) mod 11, with 10 written X."""
    total = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def make_id(born: str, seq: int = 123, area: str = "110101") -> str:
    first17 = f"{area}{born}{seq:03d}"
    return first17 + mod11_2(first17)


def fields(found: list[tuple[str, str]]) -> list[str]:
    return [f for f, _ in found]


# --- the check character ---------------------------------------------------------------------------

def test_check_char_agrees_with_the_standard_for_many_numbers():
    rng = random.Random(11643)
    seen = set()
    for _ in range(5000):
        first17 = "".join(rng.choice("0123456789") for _ in range(17))
        assert check_char(first17) == mod11_2(first17), first17
        seen.add(check_char(first17))
    assert seen == set("0123456789X")


@pytest.mark.parametrize(("number", "born", "sex"), [
    ("11010519491231002X", "1949-12-31", "female"),  # the example printed in GB 11643-1999
    ("440524188001010014", "1880-01-01", "male"),
])
def test_published_examples_pass(number, born, sex):
    assert problems(number, born, sex, TODAY) == []


def test_a_check_character_x_is_accepted_in_either_case():
    number = "11010519491231002X"
    assert problems(number.lower(), "1949-12-31", "female", TODAY) == []


def test_every_wrong_check_character_is_refused():
    number = make_id("19900307")
    for c in "0123456789X":
        if c != number[-1]:
            assert problems(number[:-1] + c, "1990-03-07", "male", TODAY) == [
                ("document_number", "fails its check character: re-read the card")], c


def test_a_transposition_of_two_digits_is_caught():
    number = make_id("19900307", seq=451)
    swapped = number[:14] + number[15] + number[14] + number[16:]
    assert swapped != number
    assert fields(problems(swapped, "1990-03-07", "male", TODAY)) == ["document_number"]


@pytest.mark.parametrize("number", [
    "", "11010519491231002", "11010519491231002XX", "1101051949123100X2", "11010519491231002Y",
    "11010519491231002 ", " 11010519491231002X", "110105194912310-2X",
    "".join(chr(0xFF10 + int(c)) for c in "11010519491231002") + "X",  # full-width digits
    "".join(chr(0x0660 + int(c)) for c in "11010519491231002") + "X",  # Arabic-Indic digits
])
def test_malformed_numbers_are_refused_before_anything_else(number):
    assert problems(number, "1949-12-31", "female", TODAY) == [
        ("document_number", "must be 18 characters: 17 digits and a digit or X")]


# --- the birth date ------------------------------------------------------------------------------

def test_february_29_of_a_leap_year_is_a_birth_date():
    assert problems(make_id("20000229"), "2000-02-29", "male", TODAY) == []
    assert problems(make_id("19960229", seq=124), "1996-02-29", "female", TODAY) == []


@pytest.mark.parametrize("born", ["19000229", "20010229", "19991301", "19990001", "19990100", "19990431",
                                  "00000101"])
def test_a_number_holding_no_real_date_is_refused(born):
    assert problems(make_id(born), "1999-01-01", "male", TODAY) == [("document_number", "holds no valid birth date")]


def test_a_birth_date_in_the_future_is_refused():
    found = problems(make_id("20260616"), "2026-06-16", "male", TODAY)
    assert found == [("document_number", "holds a birth date in the future")]


def test_born_today_is_not_in_the_future():
    assert problems(make_id("20260615"), "2026-06-15", "male", TODAY) == []


@pytest.mark.parametrize("printed", ["1990-03-08", "1990-3-7", "19900307", "1990/03/07", "", "1991-03-07"])
def test_the_printed_birth_date_must_agree_with_the_number(printed):
    assert problems(make_id("19900307"), printed, "male", TODAY) == [
        ("birth_date", "does not agree with the ID number")]


# --- the sex digit -------------------------------------------------------------------------------

@pytest.mark.parametrize(("seq", "sex"), [(121, "male"), (123, "male"), (129, "male"), (120, "female"),
                                          (124, "female"), (128, "female"), (1, "male"), (0, "female")])
def test_the_seventeenth_digit_odd_is_male_even_is_female(seq, sex):
    number = make_id("19900307", seq=seq)
    assert problems(number, "1990-03-07", sex, TODAY) == []
    other = "female" if sex == "male" else "male"
    assert problems(number, "1990-03-07", other, TODAY) == [("sex", "does not agree with the ID number")]


@pytest.mark.parametrize("sex", ["", "M", "Male", "unknown"])
def test_an_unreadable_sex_never_agrees(sex):
    assert fields(problems(make_id("19900307", seq=121), "1990-03-07", sex, TODAY)) == ["sex"]


def test_birth_date_and_sex_mismatches_are_reported_together():
    found = problems(make_id("19900307", seq=121), "1990-03-08", "female", TODAY)
    assert fields(found) == ["birth_date", "sex"]


def test_a_future_birth_date_is_reported_with_the_other_mismatches():
    assert fields(problems(make_id("20300101", seq=121), "2030-01-02", "female", TODAY)) == [
        "document_number", "birth_date", "sex"]
