"""Password rules and hashing (gateway/domain/passwords.py): the staff password rule (R6), the trivial
service-password rules, and the slow salted hash with constant work for unknown accounts."""

from __future__ import annotations

import hashlib

import pytest

from gateway.domain import passwords
from gateway.domain.passwords import hash_password, staff_password_problems, trivial_service_password, verify_password

FAST = 2**10

# An owner for the trivial-password rules: born 1984-02-01, ID 440106198402016788, number 13800000121.
BIRTH = "1984-02-01"
ID_NUMBER = "440106198402016788"
MSISDN = "13800000121"


def trivial(password: str) -> str | None:
    return trivial_service_password(password, birth_date=BIRTH, document_number=ID_NUMBER, msisdn=MSISDN)


# --- staff passwords (R6: letters and digits, at least 8 characters) ------------------------------

@pytest.mark.parametrize("password", ["counter26", "abcdefg1", "1234567a", "Counter2026", "a1" * 64,
                                      "pass word 12", "P@ssw0rd!"])
def test_acceptable_staff_passwords(password):
    assert staff_password_problems(password) == []


@pytest.mark.parametrize(("password", "problem"), [
    ("abcdef1", "must be at least 8 characters"),
    ("", "must be at least 8 characters"),
    ("abcdefgh", "must contain both letters and digits"),
    ("12345678", "must contain both letters and digits"),
    ("!@#$%^&*()", "must contain both letters and digits"),
    ("a1" * 64 + "b", "must be at most 128 characters"),
])
def test_staff_password_problems(password, problem):
    assert problem in staff_password_problems(password)


def test_every_staff_password_problem_is_reported_at_once():
    assert staff_password_problems("abc") == ["must be at least 8 characters", "must contain both letters and digits"]


# --- trivial service passwords --------------------------------------------------------------------

@pytest.mark.parametrize(("password", "why"), [
    ("123456", "is a sequence"),
    ("234567", "is a sequence"),
    ("012345", "is a sequence"),
    ("987654", "is a sequence"),
    ("543210", "is a sequence"),
    ("111111", "repeats the same digits"),
    ("000000", "repeats the same digits"),
    ("121212", "repeats the same digits"),
    ("112211", "repeats the same digits"),
    ("520520", "repeats a pattern"),
    ("147147", "repeats a pattern"),
])
def test_sequences_and_repeats_are_trivial(password, why):
    assert trivial(password) == why


@pytest.mark.parametrize("password", [
    "840201",  # YYMMDD
    "020184",  # MMDDYY
    "010284",  # DDMMYY
    "198402",  # YYYYMM
    "020119",  # MMDD + century
    "840201",
    "984020",  # any six consecutive digits of YYYYMMDD
])
def test_the_owners_birth_date_is_trivial(password):
    assert trivial(password) == "is the owner's birth date"


@pytest.mark.parametrize("password", ["440106", "016788", "201678", "061984", ID_NUMBER[7:13]])
def test_six_digits_of_the_owners_id_number_are_trivial(password):
    assert trivial(password) in ("is part of the owner's ID number", "is the owner's birth date")


def test_id_number_digits_outside_the_birth_date_are_trivial_as_id_digits():
    assert trivial("440106") == "is part of the owner's ID number"
    assert trivial("016788") == "is part of the owner's ID number"


@pytest.mark.parametrize("password", ["000121", "138000", "380000", "000012", "800000"])
def test_digits_of_the_phone_number_are_trivial(password):
    assert trivial(password) is not None
    if len(set(password)) > 2:
        assert trivial(password) == "is part of the phone number"


def test_an_id_number_ending_in_x_only_matches_its_digits():
    assert trivial_service_password("480273", birth_date="1949-12-31", document_number="11010519491231002X",
                                    msisdn="13800000001") is None
    assert trivial_service_password("231002", birth_date="1949-12-31", document_number="11010519491231002X",
                                    msisdn="13800000001") == "is part of the owner's ID number"


@pytest.mark.parametrize("password", ["480273", "593817", "706294", "815360", "927451", "135790", "246809"])
def test_acceptable_service_passwords(password):
    assert trivial(password) is None


def test_the_same_password_is_fine_for_another_owner():
    assert trivial("840201") is not None
    assert trivial_service_password("840201", birth_date="1990-03-07", document_number="110101199003071234",
                                    msisdn="13912345678") is None


# --- hashing -------------------------------------------------------------------------------------

def test_hash_and_verify_roundtrip():
    stored = hash_password("counter2026", FAST)
    assert stored.startswith(f"scrypt${FAST}$8$1$")
    assert "counter2026" not in stored
    assert verify_password("counter2026", stored) is True
    assert verify_password("counter2027", stored) is False
    assert verify_password("", stored) is False
    assert verify_password("Counter2026", stored) is False


def test_hashes_are_salted():
    a, b = hash_password("counter2026", FAST), hash_password("counter2026", FAST)
    assert a != b
    assert verify_password("counter2026", a) and verify_password("counter2026", b)


def test_verify_reads_the_cost_from_the_stored_hash():
    assert verify_password("s3cret-pass", hash_password("s3cret-pass", 2**11))


def test_the_default_cost_is_slow_enough():
    assert passwords.SCRYPT_N >= 2**14
    assert hash_password("x").split("$")[1] == str(passwords.SCRYPT_N)


def test_non_ascii_passwords_roundtrip():
    stored = hash_password("口令mima2026", FAST)
    assert verify_password("口令mima2026", stored)
    assert not verify_password("口令mima2027", stored)


def test_verify_with_no_stored_hash_does_the_same_work_and_returns_false(monkeypatch):
    calls: list[dict[str, object]] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kw: object) -> bytes:
        calls.append(kw)
        return real(password, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "scrypt", counting)
    real_hash = hash_password("counter2026")  # the default cost, as the directory stores it
    calls.clear()
    assert verify_password("counter2026", None) is False
    assert verify_password("", None) is False
    assert len(calls) == 2
    assert {(c["n"], c["r"], c["p"]) for c in calls} == {(passwords.SCRYPT_N, passwords.SCRYPT_R, passwords.SCRYPT_P)}
    calls.clear()
    assert verify_password("counter2026", real_hash) is True
    assert len(calls) == 1 and calls[0]["n"] == passwords.SCRYPT_N
