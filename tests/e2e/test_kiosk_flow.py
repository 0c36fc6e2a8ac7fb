"""The kiosk call-list path end to end: real gateway, real Redis, real billing simulator, real channels."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.support.dates import month
from tests.support.status import details
from tests.support.subscribers import HEAVY, ORDINARY, OTHER, PORTED, SIM_SWAPPED, UNKNOWN

pytestmark = pytest.mark.asyncio
Code = grpc.StatusCode


async def auth(gw, msisdn, password, code):
    return await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=msisdn, service_password=password, one_time_code=code))


async def calls(gw, token, m=None):
    records = []
    request = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=m or month())
    async for chunk in gw.stub.ListCallDetails(request):
        records.extend(chunk.records)
    return records


def wrong(secret: str) -> str:
    return f"{(int(secret) + 1) % 1_000_000:06d}"


async def test_happy_path_lists_the_owners_month_then_end_session_kills_the_token(gw):
    token = await gw.sign_in(ORDINARY)
    records = await calls(gw, token)
    expected = gw.billing.records(ORDINARY, month(), 0, gw.billing.record_count(ORDINARY, month()))
    assert len(records) == len(expected) >= 100
    assert [r.SerializeToString() for r in records] == [e.SerializeToString() for e in expected]
    assert all(r.kind != kiosk_pb2.CALL_KIND_UNSPECIFIED and r.start_time.seconds > 0 for r in records)
    await gw.stub.EndSession(kiosk_pb2.EndSessionRequest(access_token=token))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await calls(gw, token)
    assert e.value.code() == Code.UNAUTHENTICATED


async def test_wrong_password_and_wrong_code_give_the_same_answer(gw):
    code = await gw.request_code(ORDINARY)
    with pytest.raises(grpc.aio.AioRpcError) as bad_password:
        await auth(gw, ORDINARY, wrong(gw.billing.password_for(ORDINARY)), code)
    code = await _fresh_code(gw, ORDINARY)
    with pytest.raises(grpc.aio.AioRpcError) as bad_code:
        await auth(gw, ORDINARY, gw.billing.password_for(ORDINARY), wrong(code))
    for e in (bad_password, bad_code):
        assert e.value.code() == Code.UNAUTHENTICATED
    assert bad_password.value.details() == bad_code.value.details()
    assert details(bad_password.value) == details(bad_code.value)


async def _fresh_code(gw, msisdn):
    await gw.redis.delete(f"hg:{{{msisdn}}}:send:last")  # let the test skip the 60 s resend wait
    return await gw.request_code(msisdn)


async def test_a_code_works_once(gw):
    code = await gw.request_code(ORDINARY)
    password = gw.billing.password_for(ORDINARY)
    assert (await auth(gw, ORDINARY, password, code)).access_token
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await auth(gw, ORDINARY, password, code)
    assert e.value.code() == Code.UNAUTHENTICATED


async def test_a_code_expires(make_gateway):
    gw = await make_gateway(code_ttl=0.5)
    code = await gw.request_code(ORDINARY)
    await asyncio.sleep(0.8)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await auth(gw, ORDINARY, gw.billing.password_for(ORDINARY), code)
    assert e.value.code() == Code.UNAUTHENTICATED


async def test_a_code_dies_after_too_many_wrong_tries(make_gateway):
    gw = await make_gateway(code_max_tries=3, lock_threshold=10)
    code = await gw.request_code(ORDINARY)
    password = gw.billing.password_for(ORDINARY)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError):
            await auth(gw, ORDINARY, password, wrong(code))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await auth(gw, ORDINARY, password, code)
    assert e.value.code() == Code.UNAUTHENTICATED


async def test_a_code_is_bound_to_its_number(gw):
    code = await gw.request_code(ORDINARY)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await auth(gw, OTHER, gw.billing.password_for(OTHER), code)
    assert e.value.code() == Code.UNAUTHENTICATED


@pytest.mark.parametrize("msisdn", [ORDINARY, UNKNOWN])
async def test_sends_are_throttled_per_number_alike_for_known_and_unknown(make_gateway, msisdn):
    gw = await make_gateway(send_min_interval=1.0, send_max_per_hour=2)
    req = kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn)
    first = await gw.stub.RequestOneTimeCode(req)
    with pytest.raises(grpc.aio.AioRpcError) as too_soon:
        await gw.stub.RequestOneTimeCode(req)
    assert too_soon.value.code() == Code.RESOURCE_EXHAUSTED
    assert details(too_soon.value)["RetryInfo"].retry_delay.seconds >= 1
    await asyncio.sleep(1.1)
    assert await gw.stub.RequestOneTimeCode(req) == first
    await asyncio.sleep(1.1)
    with pytest.raises(grpc.aio.AioRpcError) as hourly:
        await gw.stub.RequestOneTimeCode(req)
    assert hourly.value.code() == Code.RESOURCE_EXHAUSTED
    assert details(hourly.value)["RetryInfo"].retry_delay.seconds > 3000
    # Other numbers are not affected.
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=OTHER))


async def test_lockout_after_consecutive_failures_tells_the_owner_and_expires(make_gateway):
    gw = await make_gateway(lock_threshold=3, lock_duration=1.5, send_min_interval=0.01)
    password = gw.billing.password_for(ORDINARY)
    code = await gw.request_code(ORDINARY)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await auth(gw, ORDINARY, wrong(password), code)
        assert e.value.code() == Code.UNAUTHENTICATED
        await asyncio.sleep(0.02)
        code = await gw.request_code(ORDINARY)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await auth(gw, ORDINARY, wrong(password), code)
    assert e.value.code() == Code.RESOURCE_EXHAUSTED
    assert details(e.value)["RetryInfo"].retry_delay.seconds >= 1
    assert "locked" in (await gw.messages(ORDINARY))[-1]
    # While locked, even the right password and a fresh code are refused, and no code is sent.
    sent = len(await gw.messages(ORDINARY))
    await asyncio.sleep(0.02)
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY))
    assert len(await gw.messages(ORDINARY)) == sent
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await auth(gw, ORDINARY, password, code)
    assert e.value.code() == Code.RESOURCE_EXHAUSTED
    await asyncio.sleep(1.6)
    assert (await gw.sign_in(ORDINARY))


async def test_success_resets_the_failure_count(make_gateway):
    gw = await make_gateway(lock_threshold=3, send_min_interval=0.01)
    password = gw.billing.password_for(ORDINARY)
    for _ in range(2):
        code = await gw.request_code(ORDINARY)
        with pytest.raises(grpc.aio.AioRpcError):
            await auth(gw, ORDINARY, wrong(password), code)
        await asyncio.sleep(0.02)
    await gw.sign_in(ORDINARY)
    await asyncio.sleep(0.02)
    code = await gw.request_code(ORDINARY)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await auth(gw, ORDINARY, wrong(password), code)
    assert e.value.code() == Code.UNAUTHENTICATED


async def test_unknown_numbers_lock_exactly_like_known_ones(make_gateway):
    gw = await make_gateway(lock_threshold=2)
    answers = {}
    for msisdn in (ORDINARY, UNKNOWN):
        seen = []
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await auth(gw, msisdn, "123456", "654321")
            seen.append((e.value.code(), e.value.details(), sorted(details(e.value))))
        answers[msisdn] = seen
    assert answers[ORDINARY] == answers[UNKNOWN]
    assert [c for c, _, _ in answers[UNKNOWN]] == [Code.UNAUTHENTICATED, Code.RESOURCE_EXHAUSTED,
                                                  Code.RESOURCE_EXHAUSTED]


async def test_request_code_answers_the_same_for_every_kind_of_number(gw):
    answers = [await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=m))
               for m in (ORDINARY, UNKNOWN, SIM_SWAPPED, PORTED)]
    assert all(a == answers[0] for a in answers)
    assert (await gw.messages(UNKNOWN)) == []


@pytest.mark.parametrize("msisdn", [SIM_SWAPPED, PORTED])
async def test_sim_swap_guard_sends_no_code_and_asks_the_owner_to_come_in(gw, msisdn):
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn))
    [text] = (await gw.messages(msisdn))
    assert "ID card" in text and "code is" not in text
    events = await gw.audit_events()
    assert events[-1]["reason"] == "sim_swap_hold"


async def test_sim_swap_window_is_a_setting(make_gateway):
    gw = await make_gateway(sim_swap_window=3600)  # SIM changed a day ago: outside a 1-hour window
    assert await gw.request_code(SIM_SWAPPED)


async def test_idle_token_expires(make_gateway):
    gw = await make_gateway(token_idle=0.5)
    token = await gw.sign_in(ORDINARY)
    await asyncio.sleep(0.7)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await calls(gw, token)
    assert e.value.code() == Code.UNAUTHENTICATED


async def test_token_dies_at_its_absolute_deadline_even_when_used(make_gateway):
    gw = await make_gateway(token_idle=1.0, token_absolute=2.5)
    token = await gw.sign_in(ORDINARY)
    started = time.monotonic()
    uses = 0
    while time.monotonic() - started < 1.6:  # used every 0.5 s: idle never runs out
        await asyncio.sleep(0.5)
        await calls(gw, token)
        uses += 1
    assert uses >= 2
    await asyncio.sleep(max(0.0, started + 2.7 - time.monotonic()))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await calls(gw, token)
    assert e.value.code() == Code.UNAUTHENTICATED


async def test_month_outside_the_retention_window_is_refused(gw):
    token = await gw.sign_in(ORDINARY)
    for m in (month(-6), month(+1)):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await calls(gw, token, m)
        assert e.value.code() == Code.INVALID_ARGUMENT
    assert await calls(gw, token, month(-5))


async def test_a_heavy_month_of_20000_records_streams_whole_in_bounded_chunks(gw):
    token = await gw.sign_in(HEAVY)
    expected = gw.billing.record_count(HEAVY, month())
    assert expected >= 20_000
    chunks = 0
    total = 0
    async for chunk in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month())):
        chunks += 1
        total += len(chunk.records)
        assert len(chunk.records) <= gw.settings.billing_page_size
    assert total == expected
    assert chunks >= expected // gw.settings.billing_page_size
    events = await gw.audit_events()
    assert events[-1]["method"].endswith("ListCallDetails") and events[-1]["decision"] == "allowed"


async def test_end_session_from_another_kiosk_ends_nothing(gw):
    token = await gw.sign_in(ORDINARY)
    other = kiosk_pb2_grpc.KioskServiceStub(gw.channel_for("kiosk-H001-K02"))
    await other.EndSession(kiosk_pb2.EndSessionRequest(access_token=token))  # the same answer as for any token
    chunks = [c async for c in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(
        access_token=token, month=month(-1)))]
    assert chunks  # still alive on the kiosk it was issued to
    await gw.stub.EndSession(kiosk_pb2.EndSessionRequest(access_token=token))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month(-1))).read()
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
