"""Password rules and slow salted hashing (stdlib scrypt), for staff and service passwords."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import secrets

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def hash_password(password: str, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    enc = base64.urlsafe_b64encode
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${enc(salt).decode().rstrip('=')}${enc(digest).decode().rstrip('=')}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant work whether or not `stored` exists (a dummy hash stands in), so timing does not
    tell whether a staff id exists."""
    _, n, r, p, salt, digest = (stored or _DUMMY).split("$")

    def dec(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    got = hashlib.scrypt(password.encode(), salt=dec(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return stored is not None and hmac.compare_digest(got, dec(digest))


def staff_password_problems(password: str) -> list[str]:
    """R6: letters and digits, at least 8 characters."""
    problems = []
    if len(password) < 8:
        problems.append("must be at least 8 characters")
    if len(password) > 128:
        problems.append("must be at most 128 characters")
    if not re.search(r"[A-Za-z]", password) or not re.search(r"[0-9]", password):
        problems.append("must contain both letters and digits")
    return problems


def trivial_service_password(password: str, *, birth_date: str, document_number: str, msisdn: str) -> str | None:
    """Why a new 6-digit service password is too easy to guess, or None. Refuses repeats and
    sequences, and digits of readily available biographical data (US CPNI rules): the birth date,
    the ID number and the phone number."""
    digits = [int(c) for c in password]
    steps = {(b - a) % 10 for a, b in itertools.pairwise(digits)}
    if len(set(password)) <= 2:
        return "repeats the same digits"
    if steps in ({1}, {9}):  # 123456, 654321, and wrapping ones such as 890123
        return "is a sequence"
    halves, pairs = {password[:3], password[3:]}, {password[i:i + 2] for i in range(0, 6, 2)}
    if len(password) == 6 and (len(halves) == 1 or all(p[0] == p[1] for p in pairs)):
        return "repeats a pattern"  # 123123, 112233
    birth = birth_date.replace("-", "")
    birth_forms = {birth[2:], birth[4:] + birth[2:4], birth[:4] + birth[4:6], birth[4:] + birth[:2],
                   birth[6:] + birth[4:6] + birth[2:4]}
    if password in birth_forms or password in birth:
        return "is the owner's birth date"
    if password in document_number:
        return "is part of the owner's ID number"
    if password in msisdn:
        return "is part of the phone number"
    return None
