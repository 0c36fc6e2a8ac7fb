"""Dependencies killed (SIGKILL) or frozen (SIGSTOP) in the middle of calls: nothing leaves without
its record, a stream stops at the page in flight and says its list is incomplete, a fault spends no
slot, try or code, readiness follows within a second, and the gateway recovers without a restart."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc.aio import AioRpcError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapters.audit.keys import stream_key
from adapters.redis_server import RedisServerProcess
from gateway.runtime.bootstrap import SERVICES
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.conftest import Harness
from tests.support.dates import month
from tests.support.processes import BillingProc
from tests.support.subscribers import HEAVY, ORDINARY, OTHER
from tests.support.tls import KIOSK_CERT, client_credentials
from tests.support.trail import trail
from tests.support.waiting import wait_for

Code = grpc.StatusCode
PAGE = 1000


@pytest.fixture
async def billing(tmp_path: Path) -> AsyncIterator[BillingProc]:
    proc = await BillingProc(tmp_path / "billing.log").start_async()
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture
async def gw(make_gateway: Any, own_redis: RedisServerProcess, billing: BillingProc) -> Harness:
    return await make_gateway(redis_url=own_redis.url, billing_target=billing.address, readiness=True,
                              billing_page_size=PAGE, billing_timeout=1.0, redis_timeout=0.5)


async def calls_work(gw: Harness, msisdn: str = OTHER) -> bool:
    try:
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), timeout=3)
        return True
    except AioRpcError as e:
        return e.code() == Code.RESOURCE_EXHAUSTED  # answered: throttled from an earlier try


async def read_until_failure(call: Any, before: int) -> tuple[int, AioRpcError]:
    """Read a stream to its end; the records received and the error it ended with."""
    got = before
    with pytest.raises(AioRpcError) as e:
        while (chunk := await call.read()) is not grpc.aio.EOF:
            got += len(chunk.records)
    return got, e.value


async def closing(gw: Harness) -> list[dict[str, str]]:
    return [e for e in await trail(gw.redis) if e["method"].endswith("ListCallDetails") and e["phase"] == "close"]


def slow_reader(gw: Harness) -> kiosk_pb2_grpc.KioskServiceStub:
    """A kiosk channel without HTTP/2 window growth (BDP probing): the gateway can be only about a
    page ahead of what the kiosk has read, as with a slow kiosk on a slow line."""
    channel = grpc.aio.secure_channel(f"127.0.0.1:{gw.port}", client_credentials(gw.pki, KIOSK_CERT),
                                      options=[("grpc.http2.bdp_probe", 0)])
    gw.closers.insert(0, channel.close)
    return kiosk_pb2_grpc.KioskServiceStub(channel)


async def half_read_stream(gw: Harness) -> tuple[Any, int]:
    token = await gw.sign_in(HEAVY)
    call = slow_reader(gw).ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month(-1)))
    got = sum([len((await call.read()).records) for _ in range(2)])
    await asyncio.sleep(0.3)  # the gateway fills the flow-control window and waits in write
    return call, got


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_redis_lost_mid_stream_stops_it_at_the_page_in_flight(gw, own_redis, how):
    call, got = await half_read_stream(gw)
    assert own_redis.proc is not None
    if how == "kill":
        own_redis.kill()
    else:
        own_redis.proc.send_signal(signal.SIGSTOP)
    total, err = await read_until_failure(call, got)
    assert err.code() == Code.UNAVAILABLE
    assert "incomplete" in (err.details() or "") and "nothing was released" not in (err.details() or "")
    assert total - got <= 3 * PAGE, "pages kept leaving after the trail was lost"  # window + the page in flight
    assert total < 15_000  # the month has over 20,000: it did not run on without its trail
    if how == "kill":
        await asyncio.to_thread(own_redis.start)
    else:
        own_redis.proc.send_signal(signal.SIGCONT)
    await wait_for(lambda: calls_work(gw), limit=10)  # recovered without restarting the gateway

    async def closed() -> bool:
        return bool(await closing(gw))

    await wait_for(closed, limit=10)  # the closing event waited for the trail and followed its opening
    [close] = await closing(gw)
    assert close["code"] == "UNAVAILABLE" and int(close["records"]) == total
    opens = [e for e in await trail(gw.redis) if e["call"] == close["call"]]
    assert [e["phase"] for e in opens] == ["open", "close"]


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_billing_lost_mid_stream_ends_unavailable_with_the_true_count(gw, billing, how):
    call, got = await half_read_stream(gw)
    if how == "kill":
        billing.kill()
    else:
        billing.signal(signal.SIGSTOP)
    total, err = await read_until_failure(call, got)
    assert err.code() == Code.UNAVAILABLE and "incomplete" in (err.details() or "")
    [close] = await closing(gw)
    assert close["code"] == "UNAVAILABLE" and close["reason"] == "interrupted_billing"
    assert int(close["records"]) == total  # exactly what left, not the first page, not nothing
    billing.kill()


async def test_a_code_request_during_a_billing_outage_spends_no_slot(gw, billing):
    billing.kill()
    with pytest.raises(AioRpcError) as e:
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=5)
    assert e.value.code() == Code.UNAVAILABLE
    assert await gw.messages(ORDINARY) == []
    assert await gw.redis.exists(f"hg:{{{ORDINARY}}}:send:last", f"hg:{{{ORDINARY}}}:send:hour") == 0
    await billing.start_async()
    await wait_for(lambda: calls_work(gw, "13800000003"), limit=10)
    code = await gw.request_code(ORDINARY)  # at once: no minute to wait for a slot the outage took
    assert len(code) == 6 and int(await gw.redis.get(f"hg:{{{ORDINARY}}}:send:hour")) == 1


async def test_a_sign_in_during_a_billing_outage_costs_no_try_and_keeps_the_code(gw, billing):
    code = await gw.request_code(ORDINARY)
    billing.kill()
    request = kiosk_pb2.AuthenticateRequest(msisdn=ORDINARY, service_password=gw.billing.password_for(ORDINARY),
                                            one_time_code=code)
    for _ in range(3):
        with pytest.raises(AioRpcError) as e:
            await gw.stub.Authenticate(request, timeout=5)
        assert e.value.code() == Code.UNAVAILABLE
    assert int(await gw.redis.get(f"hg:{{{ORDINARY}}}:fails") or 0) == 0
    await billing.start_async()
    await wait_for(lambda: calls_work(gw, "13800000003"), limit=10)
    assert (await gw.stub.Authenticate(request, timeout=5)).access_token  # the same code still works


async def test_nothing_leaves_for_a_call_whose_event_cannot_be_stored(gw):
    # The trail alone breaks (its stream key holds the wrong type): sign-in state still works, so the
    # code is made and stored, but the call's event cannot be, and its SMS must never go.
    await gw.redis.delete(stream_key(gw.settings.audit_chain))
    await gw.redis.set(stream_key(gw.settings.audit_chain), "not a stream")
    with pytest.raises(AioRpcError) as e:
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=5)
    assert e.value.code() == Code.UNAVAILABLE
    await asyncio.sleep(0.3)
    assert await gw.messages(ORDINARY) == []


async def test_redis_killed_during_code_requests_sends_nothing(gw, own_redis):
    own_redis.kill()
    for msisdn in (ORDINARY, OTHER):
        with pytest.raises(AioRpcError) as e:
            await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), timeout=5)
        assert e.value.code() == Code.UNAVAILABLE
    assert await gw.messages(ORDINARY) == [] and await gw.messages(OTHER) == []
    await asyncio.to_thread(own_redis.start)
    await wait_for(lambda: calls_work(gw), limit=10)


async def health_status(gw: Harness) -> int:
    stub = health_pb2_grpc.HealthStub(gw.channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service="hallgate.v1.KioskService"), timeout=1)
    except AioRpcError:
        return -1
    return int(reply.status)


async def seconds_until(gw: Harness, status: int, limit: float = 5.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if await health_status(gw) == status:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"health not {status} after {limit}s")


async def test_readiness_follows_billing_within_a_second_both_ways(gw, billing):
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    await seconds_until(gw, serving)
    billing.kill()
    assert await seconds_until(gw, not_serving) < 1.0
    await billing.start_async()
    assert await seconds_until(gw, serving) < 1.0
    assert await calls_work(gw, ORDINARY)  # SERVING means calls work, at once
    billing.signal(signal.SIGSTOP)  # alive but silent
    try:
        assert await seconds_until(gw, not_serving) < 1.0
    finally:
        billing.signal(signal.SIGCONT)
    assert await seconds_until(gw, serving) < 1.0
    assert await calls_work(gw, "13800000003")


async def service_statuses(gw: Harness) -> dict[str, int]:
    stub = health_pb2_grpc.HealthStub(gw.channel)
    return {s.rsplit(".", 1)[-1]: int((await stub.Check(health_pb2.HealthCheckRequest(service=s), timeout=1)).status)
            for s in SERVICES}


async def test_a_billing_outage_takes_out_only_the_services_that_need_billing(gw, billing):
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    await seconds_until(gw, serving)
    assert set((await service_statuses(gw)).values()) == {serving}
    billing.kill()
    await seconds_until(gw, not_serving)
    assert await service_statuses(gw) == {"KioskService": not_serving, "ClerkService": not_serving,
                                          "LegalService": not_serving, "StaffService": serving,
                                          "AuditService": serving, "LendingService": serving,
                                          "IncidentService": serving}
    await billing.start_async()
    assert await seconds_until(gw, serving) < 1.0
    assert set((await service_statuses(gw)).values()) == {serving}


async def test_readiness_follows_redis_within_a_second_both_ways(gw, own_redis):
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    await seconds_until(gw, serving)
    own_redis.kill()
    assert await seconds_until(gw, not_serving) < 1.0
    assert set((await service_statuses(gw)).values()) == {not_serving}  # every service needs Redis
    await asyncio.to_thread(own_redis.start)
    assert await seconds_until(gw, serving) < 1.0
    assert await calls_work(gw, ORDINARY)


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_a_sign_in_while_billing_is_lost_fails_closed_and_costs_nothing(gw, billing, how):
    code = await gw.request_code(ORDINARY)
    if how == "kill":
        billing.kill()
    else:
        billing.signal(signal.SIGSTOP)
    request = kiosk_pb2.AuthenticateRequest(msisdn=ORDINARY, service_password=gw.billing.password_for(ORDINARY),
                                            one_time_code=code)
    try:
        started = time.monotonic()
        with pytest.raises(AioRpcError) as e:
            await gw.stub.Authenticate(request, timeout=10)
        assert e.value.code() == Code.UNAVAILABLE and time.monotonic() - started < 3  # the billing deadline
        assert int(await gw.redis.get(f"hg:{{{ORDINARY}}}:fails") or 0) == 0
        assert await gw.redis.hget(f"hg:{{{ORDINARY}}}:code:call_list", "tries") == b"0"  # the code put back
    finally:
        if how == "stop":
            billing.signal(signal.SIGCONT)
    if how == "kill":
        await billing.start_async()
    await wait_for(lambda: calls_work(gw, "13800000003"), limit=10)
    assert (await gw.stub.Authenticate(request, timeout=5)).access_token


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_a_code_request_while_redis_is_lost_fails_closed_and_sends_nothing(gw, own_redis, how):
    assert own_redis.proc is not None
    if how == "kill":
        own_redis.kill()
    else:
        own_redis.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(AioRpcError) as e:
            await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=10)
        assert e.value.code() == Code.UNAVAILABLE and time.monotonic() - started < 3  # the Redis timeout
        await asyncio.sleep(0.3)
        assert await gw.messages(ORDINARY) == []
    finally:
        if how == "stop" and own_redis.proc is not None:
            own_redis.proc.send_signal(signal.SIGCONT)
    if how == "kill":
        await asyncio.to_thread(own_redis.start)
    await wait_for(lambda: calls_work(gw), limit=10)
    assert len(await gw.request_code(ORDINARY)) == 6  # the lost request spent no slot
