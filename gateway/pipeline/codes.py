"""Canonical status codes (google.rpc.Code, shared by gRPC and Connect) and what each means for
the audit trail: allowed, invalid, denied or failed."""

from __future__ import annotations

from enum import IntEnum

from google.rpc import code_pb2


class Code(IntEnum):
    """google.rpc.Code, as an enum the pipeline can use without any transport."""

    OK = code_pb2.OK
    CANCELLED = code_pb2.CANCELLED
    UNKNOWN = code_pb2.UNKNOWN
    INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT
    DEADLINE_EXCEEDED = code_pb2.DEADLINE_EXCEEDED
    NOT_FOUND = code_pb2.NOT_FOUND
    ALREADY_EXISTS = code_pb2.ALREADY_EXISTS
    PERMISSION_DENIED = code_pb2.PERMISSION_DENIED
    RESOURCE_EXHAUSTED = code_pb2.RESOURCE_EXHAUSTED
    FAILED_PRECONDITION = code_pb2.FAILED_PRECONDITION
    ABORTED = code_pb2.ABORTED
    OUT_OF_RANGE = code_pb2.OUT_OF_RANGE
    UNIMPLEMENTED = code_pb2.UNIMPLEMENTED
    INTERNAL = code_pb2.INTERNAL
    UNAVAILABLE = code_pb2.UNAVAILABLE
    DATA_LOSS = code_pb2.DATA_LOSS
    UNAUTHENTICATED = code_pb2.UNAUTHENTICATED


# What each status means for the audit trail and the counters: anything not listed is a failure.
DECISIONS = {
    Code.OK: "allowed",
    Code.INVALID_ARGUMENT: "invalid",
    Code.UNIMPLEMENTED: "invalid",
    Code.UNAUTHENTICATED: "denied",
    Code.PERMISSION_DENIED: "denied",
    Code.RESOURCE_EXHAUSTED: "denied",
    Code.FAILED_PRECONDITION: "denied",
    Code.NOT_FOUND: "denied",
}


def decision_of(code: Code) -> str:
    """allowed, invalid, denied or failed."""
    return DECISIONS.get(code, "failed")
