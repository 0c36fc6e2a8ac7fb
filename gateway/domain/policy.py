"""The authorisation policy: for every RPC, which channel, which staff roles and which customer
proof it needs. One table, deny by default; tests/unit/test_policy.py fails if an RPC lacks a row.

R2/R9: no clerk RPC returns customer data without a customer session the customer opened and
proved; R5: LegalService is reachable from the legal channel only. R2 purpose limitation: a row that
needs a customer session names the purposes (gateway/domain/purposes.py) that session must have
been opened for (`ANY_PURPOSE` deliberately for calls every errand needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.domain.identity import Channel
from gateway.domain.purposes import SessionPurpose


class Role(StrEnum):
    CLERK = "clerk"
    HALL_MANAGER = "hall_manager"
    LEGAL_OFFICER = "legal_officer"
    LEGAL_APPROVER = "legal_approver"
    AUDITOR = "auditor"
    ADMIN = "admin"
    CUSTODIAN = "custodian"  # R3: keeps the hall's archive of original documents, lends and takes back
    INFORMATION_SUPERVISOR = "information_supervisor"  # R10: owns breach response


class Proof(StrEnum):
    """What the customer must have proved before the call may touch their data."""

    NONE = "none"
    OWNER_TOKEN = "owner_token"  # noqa: S105 - kiosk: service password + SMS code, checked by the kiosk rules
    CUSTOMER_SESSION = "customer_session"  # clerk: a session the customer opened and proved
    ID_DOCUMENT_SESSION = "id_document_session"  # clerk: a session proved by the owner's ID document


@dataclass(frozen=True, slots=True)
class Rule:
    channels: frozenset[Channel]
    roles: frozenset[Role] = frozenset()  # empty: no staff session needed (kiosks, sign-in itself)
    proof: Proof = Proof.NONE
    # The purposes a customer session must have been opened for: ANY_PURPOSE (empty) for any; None
    # on rows that need no customer session. A customer-session row with None is refused, whatever
    # the session (deny by default; tests/unit/test_policy.py wants every such row to say).
    purposes: frozenset[SessionPurpose] | None = None
    # On the website (no certificate: anyone on the internet) the call costs an SMS or tests a
    # password: it needs the bot challenge and counts against the tighter per-address limit.
    bot_check: bool = False


ANY_PURPOSE: frozenset[SessionPurpose] = frozenset()


def rule(channels: set[Channel], roles: set[Role] | None = None, proof: Proof = Proof.NONE,
         purposes: set[SessionPurpose] | frozenset[SessionPurpose] | None = None, bot_check: bool = False) -> Rule:
    return Rule(frozenset(channels), frozenset(roles or ()), proof,
                None if purposes is None else frozenset(purposes), bot_check)


# R9: the call-list path serves a subscriber at a self-service kiosk or on the operator's website.
KIOSK = {Channel.KIOSK, Channel.WEB}
CLERK = {Channel.CLERK}
STAFF_CHANNELS = {Channel.CLERK, Channel.LEGAL, Channel.AUDIT}
COUNTER = {Role.CLERK, Role.HALL_MANAGER}
LEGAL = {Channel.LEGAL}
AUDIT = {Channel.AUDIT}
LEGAL_WRITERS = {Role.LEGAL_OFFICER, Role.LEGAL_APPROVER}
LEGAL_READERS = {Role.LEGAL_OFFICER, Role.LEGAL_APPROVER, Role.AUDITOR}
AUDITORS = {Role.AUDITOR}
SUPERVISORS = {Role.INFORMATION_SUPERVISOR}
INCIDENT_READERS = {Role.INFORMATION_SUPERVISOR, Role.AUDITOR}
# R3: the archive lending register, at the hall's own terminals. The desk (gateway/domain/lending.py)
# narrows each step: custodians register, hand out and take back; clerks and hall managers ask;
# hall managers approve, never their own loan (four eyes per person); all within their hall.
ARCHIVE = {Role.CLERK, Role.HALL_MANAGER, Role.CUSTODIAN}
BORROWERS = {Role.CLERK, Role.HALL_MANAGER}
HALL_MANAGERS = {Role.HALL_MANAGER}
CUSTODIANS = {Role.CUSTODIAN}

POLICY: dict[str, Rule] = {
    "/hallgate.v1.KioskService/RequestOneTimeCode": rule(KIOSK, bot_check=True),
    "/hallgate.v1.KioskService/Authenticate": rule(KIOSK, bot_check=True),
    "/hallgate.v1.KioskService/ListCallDetails": rule(KIOSK, proof=Proof.OWNER_TOKEN),
    "/hallgate.v1.KioskService/EndSession": rule(KIOSK, proof=Proof.OWNER_TOKEN),
    "/hallgate.v1.KioskService/ListAccessHistory": rule(KIOSK, proof=Proof.OWNER_TOKEN),
    "/hallgate.v1.StaffService/SignIn": rule(STAFF_CHANNELS),
    "/hallgate.v1.StaffService/ChangePassword": rule(STAFF_CHANNELS),
    "/hallgate.v1.StaffService/SignOut": rule(STAFF_CHANNELS, set(Role)),
    "/hallgate.v1.ClerkService/RequestCustomerCode": rule(CLERK, COUNTER),
    "/hallgate.v1.ClerkService/OpenCustomerSession": rule(CLERK, COUNTER),
    # R2: the profile (every errand starts by checking whom it serves), closing, and whether the last
    # code reached the phone (any errand may hinge on the PIN-pad code) serve every purpose.
    "/hallgate.v1.ClerkService/GetCustomerProfile": rule(CLERK, COUNTER, Proof.CUSTOMER_SESSION, ANY_PURPOSE),
    # A reset only in a session opened for one (R2, R9 way 2). Not SIM_REPLACEMENT: a new SIM needs
    # no new service password, and a reset changes who can release the call list (R9); a customer who
    # wants both states it, and the clerk opens a second session (the customer is present) for it.
    "/hallgate.v1.ClerkService/ResetServicePassword": rule(CLERK, COUNTER, Proof.ID_DOCUMENT_SESSION,
                                                           {SessionPurpose.PASSWORD_RESET}),
    "/hallgate.v1.ClerkService/CloseCustomerSession": rule(CLERK, COUNTER, Proof.CUSTOMER_SESSION, ANY_PURPOSE),
    "/hallgate.v1.ClerkService/GetCodeDelivery": rule(CLERK, COUNTER, Proof.CUSTOMER_SESSION, ANY_PURPOSE),
    # R5: the legal channel only. The desk (gateway/domain/legal.py) narrows each step further: only
    # officers register and fulfil, only approvers approve, never the registering officer (four eyes).
    "/hallgate.v1.LegalService/RegisterRequest": rule(LEGAL, LEGAL_WRITERS),
    "/hallgate.v1.LegalService/ApproveRequest": rule(LEGAL, LEGAL_WRITERS),
    "/hallgate.v1.LegalService/RejectRequest": rule(LEGAL, LEGAL_WRITERS),
    "/hallgate.v1.LegalService/MarkInvalid": rule(LEGAL, LEGAL_WRITERS),
    "/hallgate.v1.LegalService/CancelRequest": rule(LEGAL, LEGAL_WRITERS),
    "/hallgate.v1.LegalService/FulfilRequest": rule(LEGAL, LEGAL_WRITERS),
    "/hallgate.v1.LegalService/ListRequests": rule(LEGAL, LEGAL_READERS),
    "/hallgate.v1.LegalService/GetRequest": rule(LEGAL, LEGAL_READERS),
    "/hallgate.v1.LegalService/GetLetter": rule(LEGAL, LEGAL_READERS),
    "/hallgate.v1.AuditService/QueryEvents": rule(AUDIT, AUDITORS),
    "/hallgate.v1.AuditService/VerifyChain": rule(AUDIT, AUDITORS),
    "/hallgate.v1.AuditService/ExportEvents": rule(AUDIT, AUDITORS),
    "/hallgate.v1.LendingService/RegisterDocument": rule(CLERK, CUSTODIANS),
    "/hallgate.v1.LendingService/RequestLoan": rule(CLERK, BORROWERS),
    "/hallgate.v1.LendingService/ApproveLoan": rule(CLERK, HALL_MANAGERS),
    "/hallgate.v1.LendingService/RejectLoan": rule(CLERK, HALL_MANAGERS),
    "/hallgate.v1.LendingService/CancelLoan": rule(CLERK, BORROWERS),
    "/hallgate.v1.LendingService/HandOut": rule(CLERK, CUSTODIANS),
    "/hallgate.v1.LendingService/RecordReturn": rule(CLERK, CUSTODIANS),
    "/hallgate.v1.LendingService/GetDocument": rule(CLERK, ARCHIVE),
    "/hallgate.v1.LendingService/ListLoans": rule(CLERK, ARCHIVE),
    # R10 breach response: any staff member, wherever signed in, reports a suspected leak; the
    # information supervisor works it on the audit channel, auditors read it (never change it).
    "/hallgate.v1.IncidentService/ReportIncident": rule(STAFF_CHANNELS, set(Role)),
    "/hallgate.v1.IncidentService/GetIncident": rule(AUDIT, INCIDENT_READERS),
    "/hallgate.v1.IncidentService/ListIncidents": rule(AUDIT, INCIDENT_READERS),
    "/hallgate.v1.IncidentService/ListAffected": rule(AUDIT, INCIDENT_READERS),
    "/hallgate.v1.IncidentService/AddRemediationStep": rule(AUDIT, SUPERVISORS),
    "/hallgate.v1.IncidentService/Transition": rule(AUDIT, SUPERVISORS),
    "/hallgate.v1.IncidentService/RecordNotification": rule(AUDIT, SUPERVISORS),
    "/hallgate.v1.IncidentService/RevealNumbers": rule(AUDIT, SUPERVISORS),
}

# Which channel a staff member of each role signs in on (R6: staff act only within their role).
SIGN_IN_CHANNELS: dict[Role, frozenset[Channel]] = {
    Role.CLERK: frozenset({Channel.CLERK}),
    Role.HALL_MANAGER: frozenset({Channel.CLERK}),
    Role.LEGAL_OFFICER: frozenset({Channel.LEGAL}),
    Role.LEGAL_APPROVER: frozenset({Channel.LEGAL}),
    Role.AUDITOR: frozenset({Channel.AUDIT, Channel.LEGAL}),
    Role.ADMIN: frozenset({Channel.AUDIT}),
    Role.CUSTODIAN: frozenset({Channel.CLERK}),
    Role.INFORMATION_SUPERVISOR: frozenset({Channel.AUDIT}),
}
