"""What the transport-parity tests share: the terminals of each channel with the role that signs in
there, and a public RPC called over gRPC with an empty request, ending in its status."""

from __future__ import annotations

from typing import Any

import grpc

from tests.hostile.fuzz_cases import Rpc

CERTS = {"kiosk-H001-K01": None, "clerk-H001-T07": "clerk", "legal-B01-L01": "legal_officer",
         "audit-B01-A01": "auditor"}
HALLS = {"clerk": "H001", "legal_officer": "B01", "auditor": "B01"}


async def through_grpc(gw: Any, rpc: Rpc, cert: str, md: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    channel = gw.channel_for(cert)
    try:
        if rpc.streaming:
            call = channel.unary_stream(rpc.method)(b"", metadata=md, timeout=10)
            async for _ in call:
                pass
        else:
            await channel.unary_unary(rpc.method)(b"", metadata=md, timeout=10)
    except grpc.aio.AioRpcError as e:
        return e.code()
    return grpc.StatusCode.OK


