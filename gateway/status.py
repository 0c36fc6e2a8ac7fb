"""Domain errors to gRPC statuses, in one table, with google.rpc details for clients to act on.

Messages are fixed per error (and per reason for throttling) so they never carry an oracle.
"""

from __future__ import annotations

import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.errors import (
    DependencyUnavailable,
    DomainError,
    InvalidArgument,
    PermissionDenied,
    TooManyRequests,
    Unauthenticated,
)

DOMAIN = "hallgate.v1"

TABLE: dict[type[DomainError], tuple[int, str]] = {
    InvalidArgument: (code_pb2.INVALID_ARGUMENT, "the request has invalid fields; see the field violations"),
    Unauthenticated: (code_pb2.UNAUTHENTICATED, "the credentials were not accepted"),
    PermissionDenied: (code_pb2.PERMISSION_DENIED, "this terminal or role may not make this call"),
    TooManyRequests: (code_pb2.RESOURCE_EXHAUSTED, "too many requests; try again later"),
    DependencyUnavailable: (code_pb2.UNAVAILABLE, "the service is temporarily unavailable; nothing was released"),
}

THROTTLE_MESSAGES = {
    "send_throttled": "a code was requested for this number recently; try again later",
    "locked": "too many failed attempts: this number is locked for self-service; try again later",
    "locked_now": "too many failed attempts: this number is locked for self-service; try again later",
}

INTERNAL = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; nothing was released")


def _entry(err: DomainError) -> tuple[int, str]:
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
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in err.violations])))
    if isinstance(err, TooManyRequests):
        message = THROTTLE_MESSAGES.get(err.reason, message)
        delay = duration_pb2.Duration(seconds=max(1, math.ceil(err.retry_after)))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(code=code, message=message, details=details)


def code_of(err: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """The status a failure will end the call with, once the error interceptor has mapped it."""
    if isinstance(err, DomainError):
        return grpc.StatusCode[code_pb2.Code.Name(_entry(err)[0])]
    code = context.code()
    if isinstance(err, grpc.aio.AbortError) and isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.INTERNAL


def to_status(err: DomainError) -> grpc.Status:
    return rpc_status.to_status(to_status_proto(err))


def internal_status() -> grpc.Status:
    return rpc_status.to_status(INTERNAL)
