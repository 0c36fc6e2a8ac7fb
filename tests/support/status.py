"""What a call answered: the status code, the google.rpc details of a refusal (BadRequest field
violations, ErrorInfo reason, RetryInfo), and small ways to await a call that must fail."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

Code = grpc.StatusCode


def details(err: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The google.rpc details of a failed call, unpacked by type name."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    found: dict[str, Any] = {}
    for d in status.details if status else []:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo, error_details_pb2.ErrorInfo):
            if d.Is(kind.DESCRIPTOR):
                msg = kind()
                d.Unpack(msg)
                found[kind.__name__] = msg
    return found


def violations(err: grpc.aio.AioRpcError) -> list[str]:
    """The fields a BadRequest names, in order."""
    bad = details(err).get("BadRequest")
    assert isinstance(bad, error_details_pb2.BadRequest), f"no BadRequest in {err}"
    return [v.field for v in bad.field_violations]


def reason(err: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a refusal."""
    return str(details(err)["ErrorInfo"].reason)


def shape(err: grpc.aio.AioRpcError) -> tuple[object, ...]:
    """Everything a caller can see of a refusal: two refusals that must not be told apart have one shape."""
    return err.code(), err.details(), sorted(details(err)), str(details(err).get("ErrorInfo"))


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error a call must end with (the test fails if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    return e.value


async def outcome(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status a call ended with, OK included, never raising (for tallies of many calls)."""
    try:
        await call
    except grpc.aio.AioRpcError as e:
        return e.code()
    return Code.OK


async def drain(call: AsyncIterable[Any]) -> list[Any]:
    """Every message of a server stream."""
    return [m async for m in call]
