"""R4: an 18-character PRC resident ID number must pass its ISO 7064 MOD 11-2 check character,
and the birth date and sex printed on the card must agree with it."""

from __future__ import annotations

import re
from datetime import date

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK_CHARS = "10X98765432"
ID_RE = re.compile(r"[0-9]{17}[0-9X]")


def check_char(first17: str) -> str:
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def problems(number: str, birth_date: str, sex: str, today: date) -> list[tuple[str, str]]:
    """Field violations, empty when the number, the birth date and the sex agree."""
    number = number.upper()
    if not ID_RE.fullmatch(number):
        return [("document_number", "must be 18 characters: 17 digits and a digit or X")]
    if check_char(number[:17]) != number[17]:
        return [("document_number", "fails its check character: re-read the card")]
    found: list[tuple[str, str]] = []
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return [("document_number", "holds no valid birth date")]
    if born > today:
        found.append(("document_number", "holds a birth date in the future"))
    if birth_date != born.isoformat():
        found.append(("birth_date", "does not agree with the ID number"))
    if sex != ("male" if int(number[16]) % 2 else "female"):
        found.append(("sex", "does not agree with the ID number"))
    return found
