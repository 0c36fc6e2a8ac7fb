"""Small helpers the servicers share."""

from __future__ import annotations

from google.protobuf import duration_pb2

from gateway.domain import request_context
from gateway.domain.errors import Unauthenticated
from gateway.domain.identity import Channel, Identity


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def caller() -> Identity:
    """The verified identity of the running call, as the authorization interceptor found it."""
    call = request_context.current()
    if not call.channel or not call.terminal:
        raise Unauthenticated("no_identity")
    return Identity(Channel(call.channel), call.hall, call.terminal, "")
