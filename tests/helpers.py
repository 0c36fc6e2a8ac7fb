"""Small helpers shared by the test rings: status details and months."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway import rules

ORDINARY = "13800000001"
OTHER = "13800000002"
HEAVY = "13800000500"
SIM_SWAPPED = "13800000007"
PORTED = "13800000008"
UNKNOWN = "13900000001"


def month(offset: int = -1) -> str:
    """A month relative to this one in the operator's zone; -1 is last month (complete)."""
    return rules.month_add(rules.local_today(datetime.now(UTC), "Asia/Shanghai"), offset)


def details(err: grpc.aio.AioRpcError) -> dict[str, object]:
    """The google.rpc details of a failed call, unpacked by type name."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    found: dict[str, object] = {}
    for d in status.details if status else []:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo, error_details_pb2.ErrorInfo):
            if d.Is(kind.DESCRIPTOR):
                msg = kind()
                d.Unpack(msg)
                found[kind.__name__] = msg
    return found


def violations(err: grpc.aio.AioRpcError) -> list[str]:
    bad = details(err).get("BadRequest")
    assert isinstance(bad, error_details_pb2.BadRequest), f"no BadRequest in {err}"
    return [v.field for v in bad.field_violations]
