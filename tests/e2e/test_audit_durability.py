"""An acknowledged call's audit event survives a Redis crash (SIGKILL) right after the call."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from adapters.audit.queries import verify
from hallgate_pb.v1 import kiosk_pb2

pytestmark = pytest.mark.asyncio


async def test_sigkill_right_after_a_burst_of_acknowledged_calls_loses_no_event(make_gateway, own_redis):
    gw = await make_gateway(redis_url=own_redis.url, send_min_interval=0.001, send_max_per_hour=10_000)
    numbers = [f"1390000{i:04d}" for i in range(60)]
    replies = await asyncio.gather(*(gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=m))
                                     for m in numbers), return_exceptions=True)
    assert all(isinstance(r, kiosk_pb2.RequestOneTimeCodeResponse) for r in replies)  # all acknowledged
    own_redis.kill()  # SIGKILL: no shutdown, no final fsync
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=numbers[0]))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # nothing acknowledged while Redis is gone
    own_redis.start()
    events = await gw.audit_events()
    acknowledged = [e for e in events if e["method"].endswith("RequestOneTimeCode") and e["decision"] == "allowed"]
    assert len(acknowledged) == len(numbers)
    keys, _ = gw.settings.audit_keys()
    result = await verify(gw.redis, gw.settings.audit_chain, keys)
    assert result.ok and result.checked == len(events)
