"""Validation of law-enforcement requests at registration, with field-level errors."""


from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.domain import rules
from gateway.domain.legal.model import ACCEPTED_LEVELS, AVAILABLE_CATEGORIES, AgencyKind, Category, LegalConfig, Officer

# --- validation --------------------------------------------------------------------------------

REQUEST_ID_RE = re.compile(r"LR-[0-9A-F]{16}")
BADGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")
DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
MAX_NAME, MAX_REFERENCE, MAX_BASIS, MAX_REASON = 128, 64, 500, 500
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 200, 50
MEDIA_TYPES: dict[str, tuple[bytes, ...]] = {  # what a scan may be, and how its first bytes look
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}


@dataclass(frozen=True)
class RequestDraft:
    """A registration as received, before validation. Enum-like fields are the domain values
    ("public_security", …); anything else (empty, unknown) is reported by `validate_draft`."""

    agency_kind: str = ""
    agency_name: str = ""
    agency_level: str = ""
    letter_reference: str = ""
    letter_date: str = ""
    letter_media_type: str = ""
    letter_content: bytes = b""
    legal_basis: str = ""
    case_number: str = ""
    officers: Sequence[Officer] = ()
    targets: Sequence[str] = ()
    categories: Sequence[str] = ()
    window_start: datetime | None = None
    window_end: datetime | None = None


def text(v: rules.Violations, field: str, value: str, max_chars: int, what: str, multiline: bool = False) -> str:
    """Required free text: trimmed, at most `max_chars`, no control characters."""
    value = value.strip()
    if not value:
        v.items.append((field, f"is required: {what}"))
    elif len(value) > max_chars:
        v.items.append((field, f"must be at most {max_chars} characters"))
    elif not (value.replace("\n", " ") if multiline else value).isprintable():
        v.items.append((field, "must not contain control characters"))
    return value


def add_months(t: datetime, months: int) -> datetime:
    """The same wall-clock time `months` calendar months later, the day clamped to the month's end."""
    index = t.year * 12 + t.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    days = (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days
    return t.replace(year=year, month=month, day=min(t.day, days))


def months_covering(start: datetime, end: datetime, tz: str) -> list[str]:
    """The calendar months ("YYYY-MM", in the operator's zone) that [start, end) touches, in order."""
    zone = ZoneInfo(tz)
    first, last = start.astimezone(zone), (end - timedelta(microseconds=1)).astimezone(zone)
    out = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def check_window(v: rules.Violations, start: datetime | None, end: datetime | None, now: datetime,
                 max_months: int, field: str = "window") -> None:
    if start is None:
        v.items.append((f"{field}.start", "is required: the first instant of the data asked for"))
    elif start > now:
        v.items.append((f"{field}.start", "must not be in the future"))
    if end is None:
        v.items.append((f"{field}.end", "is required: the end of the data asked for"))
    elif end > now:
        v.items.append((f"{field}.end", "must not be in the future"))
    if start is not None and end is not None:
        if end <= start:
            v.items.append((f"{field}.end", "must be after window.start"))
        elif start <= now and end > add_months(start, max_months):  # (a future start is refused above,
            # and one near year 9999 would have no month to add)
            v.items.append((f"{field}.end", f"the window may be at most {max_months} months long"))


def check_categories(v: rules.Violations, values: Sequence[str], field: str = "categories",
                     required: bool = True) -> list[Category]:
    out: list[Category] = []
    if required and not values:
        v.items.append((field, "is required: subscriber_info and/or call_details"))
    for i, raw in enumerate(values):
        f = f"{field}[{i}]"
        if raw == Category.COMMUNICATION_CONTENT:
            v.items.append((f, "communication content is never available through this gateway (R1)"))
        elif raw not in set(AVAILABLE_CATEGORIES):
            v.items.append((f, "must be subscriber_info or call_details"))
        elif Category(raw) in out:
            v.items.append((f, "is listed twice"))
        else:
            out.append(Category(raw))
    return out


def check_targets(v: rules.Violations, values: Sequence[str], max_targets: int, field: str = "targets",
                  required: bool = True) -> list[str]:
    if required and not values:
        v.items.append((field, "is required: at least one number"))
    if len(values) > max_targets:
        v.items.append((field, f"must list at most {max_targets} numbers"))
    seen: dict[str, int] = {}
    for i, t in enumerate(values):
        rules.check_msisdn(v, t, f"{field}[{i}]")
        if t in seen:
            v.items.append((f"{field}[{i}]", f"repeats {field}[{seen[t]}]"))
        seen.setdefault(t, i)
    return list(values)


def check_letter_date(v: rules.Violations, value: str, today: date) -> str:
    m = DATE_RE.fullmatch(value.strip())
    if not value.strip():
        v.items.append(("letter.date", 'is required: the date on the letter, "YYYY-MM-DD"'))
        return value
    try:
        if not m:
            raise ValueError
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        v.items.append(("letter.date", 'must be a date written "YYYY-MM-DD"'))
        return value
    if day > today:
        v.items.append(("letter.date", "must not be in the future"))
    return day.isoformat()


def check_letter(v: rules.Violations, d: RequestDraft, today: date, max_bytes: int) -> tuple[str, str, str]:
    reference = text(v, "letter.reference", d.letter_reference, MAX_REFERENCE, "the letter's reference number")
    letter_date = check_letter_date(v, d.letter_date, today)
    media = d.letter_media_type.strip().lower()
    if not media:
        v.items.append(("letter.media_type", f"is required: one of {', '.join(MEDIA_TYPES)}"))
    elif media not in MEDIA_TYPES:
        v.items.append(("letter.media_type", f"must be one of {', '.join(MEDIA_TYPES)}"))
    if not d.letter_content:
        v.items.append(("letter.content", "is required: the scanned letter"))
    elif len(d.letter_content) > max_bytes:
        v.items.append(("letter.content", f"must be at most {max_bytes // 2**20} MiB"))
    elif media in MEDIA_TYPES and not d.letter_content.startswith(MEDIA_TYPES[media]):
        v.items.append(("letter.content", f"is not a {media} file"))
    return reference, letter_date, media


def check_officers(v: rules.Violations, officers: Sequence[Officer], max_officers: int) -> list[Officer]:
    if not officers:
        v.items.append(("officers", "is required: at least one requesting officer"))
    if len(officers) > max_officers:
        v.items.append(("officers", f"must list at most {max_officers} officers"))
    out: list[Officer] = []
    badges: dict[str, int] = {}
    for i, o in enumerate(officers):
        name = text(v, f"officers[{i}].name", o.name, 64, "the officer's full name")
        badge = o.badge_number.strip()
        if not badge:
            v.items.append((f"officers[{i}].badge_number", "is required: the officer's badge number"))
        elif not BADGE_RE.fullmatch(badge):
            v.items.append((f"officers[{i}].badge_number", "must be letters, digits and hyphens, at most 32"))
        elif badge.upper() in badges:
            v.items.append((f"officers[{i}].badge_number", f"repeats officers[{badges[badge.upper()]}]"))
        badges.setdefault(badge.upper(), i)
        out.append(Officer(name, badge))
    return out


def validate_draft(d: RequestDraft, now: datetime, config: LegalConfig) -> RequestDraft:
    """Every rule of a registration; raises InvalidArgument naming every bad field at once.
    Returns the draft normalised (trimmed text, canonical values)."""
    v = rules.Violations()
    if not d.agency_kind:
        v.items.append(("agency.kind", "is required: public_security, procuratorate or state_security"))
    elif d.agency_kind not in set(AgencyKind):
        v.items.append(("agency.kind", "must be a public security organ, a procuratorate or a state security "
                                       "organ (R5)"))
    agency_name = text(v, "agency.name", d.agency_name, MAX_NAME, "the agency's full name")
    if not d.agency_level:
        v.items.append(("agency.level", "is required: the agency's administrative level"))
    elif d.agency_level not in {x.value for x in ACCEPTED_LEVELS}:
        v.items.append(("agency.level", "must be prefecture (city) level or above (R5)"))
    today = now.astimezone(ZoneInfo(config.timezone)).date()
    reference, letter_date, media = check_letter(v, d, today, config.max_letter_bytes)
    legal_basis = text(v, "legal_basis", d.legal_basis, MAX_BASIS, "the legal basis the letter cites", True)
    case_number = text(v, "case_number", d.case_number, MAX_REFERENCE, "the agency's case number")
    officers = check_officers(v, d.officers, config.max_officers)
    targets = check_targets(v, d.targets, config.max_targets)
    categories = check_categories(v, d.categories)
    check_window(v, d.window_start, d.window_end, now, config.max_window_months)
    v.raise_if_any()
    return replace(d, agency_name=agency_name, letter_reference=reference, letter_date=letter_date,
                   letter_media_type=media, legal_basis=legal_basis, case_number=case_number,
                   officers=tuple(officers), targets=tuple(targets),
                   categories=tuple(c.value for c in AVAILABLE_CATEGORIES if c in categories))


def check_request_id(v: rules.Violations, value: str, field: str = "request_id") -> str:
    return v.check(field, value, REQUEST_ID_RE, 'a request id, "LR-" and 16 hex digits')


def check_reason(v: rules.Violations, value: str, field: str = "reason") -> str:
    return text(v, field, value, MAX_REASON, "why, in your words", multiline=True)


def index_key(value: str) -> str:
    """How case numbers and agency names are matched: spaces collapsed, case folded."""
    return " ".join(value.split()).casefold()


