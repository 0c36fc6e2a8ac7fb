"""Domain errors to canonical codes, in one table, with google.rpc details for clients to act on.

Messages are fixed per error (and per reason for throttling) so they never carry an oracle. The
details are google.rpc messages, which gRPC carries in its status trailer and Connect in its
error details: the same Status either way.
"""

from __future__ import annotations

import asyncio
import math

from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.domain.errors import (
    DependencyUnavailable,
    DomainError,
    FailedPrecondition,
    Interrupted,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TooManyRequests,
    Unauthenticated,
    Unimplemented,
)
from gateway.pipeline.codes import Code
from gateway.pipeline.facts import CallFacts

DOMAIN = "hallgate.v1"

TABLE: dict[type[DomainError], tuple[Code, str]] = {
    InvalidArgument: (Code.INVALID_ARGUMENT, "the request has invalid fields; see the field violations"),
    Unauthenticated: (Code.UNAUTHENTICATED, "the credentials were not accepted"),
    PermissionDenied: (Code.PERMISSION_DENIED, "this terminal or role may not make this call"),
    TooManyRequests: (Code.RESOURCE_EXHAUSTED, "too many requests; try again later"),
    FailedPrecondition: (Code.FAILED_PRECONDITION, "not possible in the current state"),
    NotFound: (Code.NOT_FOUND, "not found"),
    Unimplemented: (Code.UNIMPLEMENTED, "no such method"),
    Interrupted: (Code.UNAVAILABLE, ("the service became unavailable part-way: the records already sent are "
                                         "an incomplete list, and nothing more was released")),
    DependencyUnavailable: (Code.UNAVAILABLE, "the service is temporarily unavailable; nothing was released"),
}

# Messages chosen by reason where the class's message would not tell the caller what to do.
REASON_MESSAGES = {
    "wrong_channel": "this terminal's channel may not make this call",
    "legal_via_hall": ("law-enforcement requests are not handled through hall channels: refer the officer "
                       "to the branch office's legal department"),
    "revoked_terminal": "this terminal's certificate has been revoked",
    "no_identity": "a client certificate issued by the hall CA is required",
    "staff_sign_in_required": "sign in first",
    "role": "your role may not make this call",
    "customer_session_required": "open a customer session first; the customer must prove ownership",
    "id_document_required": "only possible in a session opened with the owner's ID document",
    "password_expired": "your password has expired: change it, then sign in again",
    "wrong_terminal_for_role": "your role may not sign in on this terminal",
    "trivial_password": "the new password is too easy to guess",
    "four_eyes": "a request must be approved by someone other than the officer who registered it",
    "staff_locked": "too many failed sign-ins: this account is locked; try again later",
    "staff_locked_now": "too many failed sign-ins: this account is locked; try again later",
    "outside_approved_targets": "only the approved targets may be disclosed",
    "outside_approved_categories": "only the approved data categories may be disclosed",
    "outside_approved_window": "only the approved time window may be disclosed",
    "request_changed": "the request changed meanwhile; reload it and try again",
    "letter_missing": "the agency's letter is not on file: nothing can be disclosed for this request",
    "letter_corrupt": "the letter on file is not the one registered: nothing can be disclosed for this request",
    "request_expired": "the approval has lapsed; a new approval is needed",
    "send_throttled": "a code was requested for this number recently; try again later",
    "locked": "too many failed attempts: this number is locked for self-service; try again later",
    "locked_now": "too many failed attempts: this number is locked for self-service; try again later",
    # the browser listener (gateway/pipeline/web_gate.py)
    "origin_not_allowed": "requests from this origin are not accepted",
    "csrf": "the request lacks its CSRF token: reload the page and try again",
    "web_throttled": "too many requests from this address; try again later",
    "challenge_failed": "the anti-robot check was not passed; try again",
    # breach response (gateway/domain/incidents.py)
    "no_such_incident": "no such incident",
    "incident_closed": "the incident is closed",
    "incident_transition_not_allowed": "incidents go reported, contained, notified, closed (or reported to closed)",
    "incident_not_determined": "mark the incident contained, with the breach's determination time, first",
    "law_enforcement_not_notified": "record the law-enforcement notification first",
    "customers_not_notified": "record the customer notification first",
    "law_enforcement_first": "law enforcement is notified before the customers",
    "customers_too_early": "customers may be notified only from the incident's customers_from time",
    "already_notified": "that notification is already recorded",
    "not_affected_by_incident": "only subscribers this incident affects (ListAffected) may be revealed",
    "incident_changed": "the incident changed meanwhile; reload it and try again",
    "too_many_steps": "this incident has the most remediation steps it can hold",
    "window_too_large": "the suspect's window holds too many events to list at once; report a narrower one",
}

INTERNAL = status_pb2.Status(code=Code.INTERNAL, message="internal error; nothing was released")


# The details travel in a trailer; clients refuse trailers over 8 KiB by default (and would see
# RESOURCE_EXHAUSTED instead of the violations), so only so many are sent, each of bounded length.
MAX_VIOLATIONS = 20
MAX_TEXT = 160


def _shown(violations: list[tuple[str, str]]) -> list[tuple[str, str]]:
    shown = [(f[:MAX_TEXT], d[:MAX_TEXT]) for f, d in violations[:MAX_VIOLATIONS]]
    if len(violations) > MAX_VIOLATIONS:
        shown.append(("", f"and {len(violations) - MAX_VIOLATIONS} more fields are invalid"))
    return shown


def _entry(err: DomainError) -> tuple[Code, str]:
    return next(v for k, v in TABLE.items() if isinstance(err, k))


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_status_proto(err: DomainError) -> status_pb2.Status:
    code, message = _entry(err)
    details = [_pack(error_details_pb2.ErrorInfo(reason=err.reason.upper(), domain=DOMAIN))]
    if isinstance(err, InvalidArgument):
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in _shown(err.violations)])))
    message = REASON_MESSAGES.get(err.reason, message)
    if isinstance(err, FailedPrecondition) and err.reason.startswith("request_") and err.reason not in REASON_MESSAGES:
        state = err.reason.removeprefix("request_").replace("_", " ")
        message = f"not possible now: the request is {state} (a new approval is needed to disclose again)"
    if isinstance(err, TooManyRequests):
        delay = duration_pb2.Duration(seconds=max(1, math.ceil(err.retry_after)))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(code=code, message=message, details=details)




# Deadline timers fire a little before the clock the time left is read from says the deadline came
# (gRPC core's timers, which grpc's time_remaining() reads against the wall clock; libuv's, in
# milliseconds): a call stopped this close to its deadline was stopped by it.
DEADLINE_SLACK = 0.01


def ended_by_caller(facts: CallFacts) -> Code:
    """How a call that was stopped from outside (cancelled, or its deadline passed) ended."""
    left = facts.time_left()
    return Code.DEADLINE_EXCEEDED if left is not None and left <= DEADLINE_SLACK else Code.CANCELLED


def code_of(err: BaseException, facts: CallFacts) -> Code:
    """The code a call that raised `err` ends with."""
    if isinstance(err, asyncio.CancelledError | GeneratorExit):
        return ended_by_caller(facts)
    if isinstance(err, DomainError):
        return _entry(err)[0]
    return Code.INTERNAL


def status_of(err: BaseException) -> status_pb2.Status:
    """The Status a caller gets for `err`: the table's for a domain error, INTERNAL (and nothing
    of the error) for anything else."""
    return to_status_proto(err) if isinstance(err, DomainError) else INTERNAL
