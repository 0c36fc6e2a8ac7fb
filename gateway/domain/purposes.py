"""Why a counter session is opened (R2 purpose limitation, R10 recording why): the fixed list.

Every customer session states a purpose from this list when it is opened. The purpose limits what
the session may do (the `purposes` of each row of the policy table, gateway/domain/policy.py), is
kept in the session record, is written to the audit event of every call made in the session, and
shows in the subscriber's access history.

Some purposes need a short reason in words (the list says which): "other" would otherwise be a way
round the list. The reason is bounded and refused if it holds a run of digits, so that no number,
ID number or account number is typed into it (R1). Where it goes: the session record (dies with the
session) and the audit event of the call that opened the session, once: R10 asks to record why
customer data was accessed, and the trail is what auditors read. It is not repeated on the events
of later calls (the purpose code is) and is never shown in the access history (the purpose is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class SessionPurpose(StrEnum):
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose, not a password
    PLAN_CHANGE = "plan_change"
    BILL_ENQUIRY = "bill_enquiry"
    SIM_REPLACEMENT = "sim_replacement"
    COMPLAINT = "complaint"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class PurposeSpec:
    words: str  # how the subscriber's access history names it
    needs_reason: bool = False


# The list. Adding a purpose: a row here, a value in clerk.proto's SessionPurpose, and the rows of
# the policy table that it may use (tests/unit/test_policy.py fails for a purpose allowed nowhere).
PURPOSES: dict[SessionPurpose, PurposeSpec] = {
    SessionPurpose.PASSWORD_RESET: PurposeSpec("password reset"),
    SessionPurpose.PLAN_CHANGE: PurposeSpec("plan change"),
    SessionPurpose.BILL_ENQUIRY: PurposeSpec("bill enquiry"),
    SessionPurpose.SIM_REPLACEMENT: PurposeSpec("SIM replacement"),
    SessionPurpose.COMPLAINT: PurposeSpec("complaint", needs_reason=True),
    SessionPurpose.OTHER: PurposeSpec("other", needs_reason=True),
}

REASON_MAX = 120
_REASON_RE = re.compile(rf"[^\x00-\x1f\x7f-\x9f\u2028\u2029]{{1,{REASON_MAX}}}")
_DIGIT_RUN_RE = re.compile(r"\d{5,}")


def reason_problem(purpose: SessionPurpose, reason: str) -> str | None:
    """Why `reason` is not acceptable for `purpose` (a field violation's description), or None."""
    if not reason:
        return "is required for this purpose" if PURPOSES[purpose].needs_reason else None
    if reason != reason.strip() or not _REASON_RE.fullmatch(reason):
        return f"1-{REASON_MAX} characters, no control characters, no leading or trailing spaces"
    if _DIGIT_RUN_RE.search(reason):
        return "no run of 5 or more digits: never a number, ID number or account number"
    return None


def words(purpose: str) -> str:
    """The purpose in words, for the access history; "" for none or one this version does not know."""
    try:
        return PURPOSES[SessionPurpose(purpose)].words
    except ValueError:
        return ""
