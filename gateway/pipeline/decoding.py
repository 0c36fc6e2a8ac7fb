"""Undecodable or oversized request bytes become INVALID_ARGUMENT inside the call, where the audit
trail sees them, instead of failing inside the transport's deserializer where nothing would.

gRPC's own receive limit is server-wide and must admit the one large message (a scanned agency
letter); the per-method limits here keep every other request small. A request over its limit that
gRPC still admitted is decoded all the same (its bytes are already in memory, and decoding is
linear), only to name the fields that make it large (gateway/pipeline/oversized.py): the caller learns what
to shorten. Bytes that do not decode keep the whole-message violation (field "")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from gateway.domain.errors import InvalidArgument
from gateway.pipeline.oversized import large_fields


class Malformed:
    """Stands for a request whose bytes did not decode, or were too many."""

    def __init__(self, why: str, violations: list[tuple[str, str]] | None = None) -> None:
        self.violations = violations or [("", why)]


MALFORMED = Malformed("the request is not a valid protobuf message of this method's type")
MALFORMED_ERROR = MALFORMED.violations


def oversized(deserializer: Callable[[bytes], Any], data: bytes, limit: int, ceiling: int) -> Malformed:
    """The answer to `data` larger than `limit`: its large fields named when the bytes decode and
    are at most `ceiling` (gRPC's receive limit), else one violation for the whole request."""
    whole = Malformed(f"the request is larger than {limit} bytes")
    if len(data) > ceiling:
        return whole
    try:
        message = deserializer(data)
        named = large_fields(message, limit)
    except (DecodeError, RecursionError, ValueError, TypeError):
        return whole
    if not named:
        return whole
    return Malformed("", [(path, f"holds {size} bytes, making the request larger than {limit} bytes")
                          for path, size in named])


def tolerant(limit: int, ceiling: int | None = None
             ) -> Callable[[Callable[[bytes], Any] | None], Callable[[bytes], Any] | None]:
    """A deserializer factory: within `limit`, the message or MALFORMED; beyond, `oversized`."""
    ceiling = limit if ceiling is None else ceiling

    def make(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        if deserializer is None:
            return None

        def decode(data: bytes) -> Any:
            if len(data) > limit:
                return oversized(deserializer, data, limit, ceiling)
            try:
                return deserializer(data)
            except DecodeError:
                return MALFORMED

        return decode

    return make


def check_decoded(request: Any) -> None:
    """INVALID_ARGUMENT naming what was wrong, if the transport could not decode the request."""
    if isinstance(request, Malformed):
        raise InvalidArgument(request.violations)
