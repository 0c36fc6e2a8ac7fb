"""Bad input, the audit trail, secrets in logs, and failing closed when a dependency is down."""

from __future__ import annotations

import grpc
import pytest
import structlog

from adapters.audit.keys import stream_key
from hallgate_pb.v1 import kiosk_pb2
from tests.support.dates import month
from tests.support.status import details, violations
from tests.support.subscribers import HEAVY, ORDINARY, UNKNOWN


def violations_text(err):
    return " ".join(v.description for v in details(err)["BadRequest"].field_violations)

pytestmark = pytest.mark.asyncio
Code = grpc.StatusCode
TOKEN = "A" * 43

BAD_MSISDN = ["", "1380000000", "138000000011", "23800000001", "1380000000a", "+8613800000001", "1" * 65]
BAD_SIX = ["", "12345", "1234567", "12345a", "\uff11\uff12\uff13\uff14\uff15\uff16", " 123456"]
BAD_MONTH = ["", "2026", "2026-13", "2026-00", "26-01", "2026/01", "2026-1", "x" * 100]
BAD_TOKEN = ["", "short", "A" * 42 + "!", "A" * 44]


@pytest.mark.parametrize("value", BAD_MSISDN)
async def test_bad_msisdn_is_invalid_argument_with_the_field(gw, value):
    for call in (lambda: gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=value)),
                 lambda: gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                     msisdn=value, service_password="123456", one_time_code="123456"))):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call()
        assert e.value.code() == Code.INVALID_ARGUMENT
        assert violations(e.value) == ["msisdn"]


@pytest.mark.parametrize("value", BAD_SIX)
@pytest.mark.parametrize("field", ["service_password", "one_time_code"])
async def test_bad_password_or_code_format_is_invalid_argument(gw, field, value):
    fields = {"msisdn": ORDINARY, "service_password": "123456", "one_time_code": "123456", field: value}
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(**fields))
    assert e.value.code() == Code.INVALID_ARGUMENT
    assert violations(e.value) == [field]


async def test_every_bad_field_is_reported_at_once(gw):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest())
    assert violations(e.value) == ["msisdn", "service_password", "one_time_code"]


@pytest.mark.parametrize("value", BAD_MONTH)
async def test_bad_month_is_invalid_argument(gw, value):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=TOKEN, month=value)):
            pass
    assert e.value.code() == Code.INVALID_ARGUMENT
    assert violations(e.value) == ["month"]


@pytest.mark.parametrize("value", BAD_TOKEN)
async def test_bad_token_format_is_invalid_argument(gw, value):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.EndSession(kiosk_pb2.EndSessionRequest(access_token=value))
    assert violations(e.value) == ["access_token"]
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=value, month=month())):
            pass
    assert violations(e.value) == ["access_token"]


async def test_unknown_but_well_formed_token_is_unauthenticated(gw):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=TOKEN, month=month())):
            pass
    assert e.value.code() == Code.UNAUTHENTICATED


async def test_undecodable_request_bytes_are_invalid_argument_and_audited(gw):
    raw = gw.channel.unary_unary("/hallgate.v1.KioskService/RequestOneTimeCode")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await raw(b"\xff\xff\xff")
    assert e.value.code() == Code.INVALID_ARGUMENT
    assert (await gw.audit_events())[-1]["decision"] == "invalid"


async def test_oversized_request_is_refused(gw):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn="1" * 100_000))
    assert e.value.code() == Code.INVALID_ARGUMENT
    assert "larger than" in violations_text(e.value)
    with pytest.raises(grpc.aio.AioRpcError) as e:  # beyond even the legal letter limit: gRPC refuses
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn="1" * 10_000_000))
    assert e.value.code() == Code.RESOURCE_EXHAUSTED


async def test_unknown_method_is_unimplemented_and_audited(gw):
    raw = gw.channel.unary_unary("/hallgate.v1.KioskService/ExportEverything")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await raw(b"")
    assert e.value.code() == Code.UNIMPLEMENTED
    event = (await gw.audit_events())[-1]
    assert event["method"] == "/hallgate.v1.KioskService/ExportEverything" and event["decision"] == "invalid"


async def test_one_audit_event_per_call_allowed_denied_and_invalid(gw):
    token = await gw.sign_in(ORDINARY)  # RequestOneTimeCode + Authenticate
    async for _ in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month())):
        pass
    with pytest.raises(grpc.aio.AioRpcError):
        await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=UNKNOWN, service_password="123456", one_time_code="123456"))
    with pytest.raises(grpc.aio.AioRpcError):
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn="nope"))
    await gw.stub.EndSession(kiosk_pb2.EndSessionRequest(access_token=token))
    events = await gw.audit_events()
    assert [(e["method"].rsplit("/", 1)[1], e["phase"], e["decision"], e["code"]) for e in events] == [
        ("RequestOneTimeCode", "", "allowed", "OK"),
        ("Authenticate", "", "allowed", "OK"),
        ("ListCallDetails", "open", "allowed", "OK"),  # stored before the first record left
        ("ListCallDetails", "close", "allowed", "OK"),  # how it ended and what left
        ("Authenticate", "", "denied", "UNAUTHENTICATED"),
        ("RequestOneTimeCode", "", "invalid", "INVALID_ARGUMENT"),
        ("EndSession", "", "allowed", "OK"),
    ]
    assert events[0]["reason"] == "code_sent" and events[4]["reason"] == "bad_credentials"
    assert events[0]["subscriber"] == events[2]["subscriber"] == events[3]["subscriber"] == "138****0001"
    assert events[4]["subscriber"] == "139****0001"
    assert events[2]["call"] == events[3]["call"] and len({e["call"] for e in events}) == 6
    assert int(events[2]["records"]) == 0 and int(events[3]["records"]) > 0
    assert all(e["channel"] == "kiosk" and e["peer"] and float(e["duration_ms"]) >= 0 and e["at"] for e in events)


async def test_no_secret_reaches_any_log_line_or_audit_event(gw):
    password = gw.billing.password_for(ORDINARY)
    with structlog.testing.capture_logs() as logs:
        code = await gw.request_code(ORDINARY)
        reply = await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=ORDINARY, service_password=password, one_time_code=code))
        records = [r async for chunk in gw.stub.ListCallDetails(
            kiosk_pb2.ListCallDetailsRequest(access_token=reply.access_token, month=month())) for r in chunk.records]
        with pytest.raises(grpc.aio.AioRpcError):
            await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=ORDINARY, service_password=password, one_time_code=code))
        await gw.stub.EndSession(kiosk_pb2.EndSessionRequest(access_token=reply.access_token))
    assert len(logs) >= 5
    stored = [str(e) for e in await gw.audit_events()]
    keys = [k.decode() for k in await gw.redis.keys("*")]
    logged = [str(line) for line in logs] + stored
    for secret in (password, code, reply.access_token, ORDINARY, records[0].other_party):
        leaks = [h for h in logged if secret in h]
        assert not leaks, f"{secret!r} found in {leaks[:2]}"
    # Redis keys name the number (its hash tag) but never a password, code or token.
    for secret in (password, code, reply.access_token):
        assert not [k for k in keys if secret in k]


async def test_redis_stopped_mid_session_fails_closed(make_gateway, own_redis):
    gw = await make_gateway(redis_url=own_redis.url)
    token = await gw.sign_in(ORDINARY)
    own_redis.kill()
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for chunk in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month())):
            received.append(chunk)
    assert e.value.code() == Code.UNAVAILABLE and received == []
    for call in (gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY)),
                 gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
                     msisdn=ORDINARY, service_password="123456", one_time_code="123456"))):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call
        assert e.value.code() == Code.UNAVAILABLE
    # Recovers by itself once Redis is back (AOF kept the session).
    own_redis.start()
    assert [c async for c in gw.stub.ListCallDetails(
        kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month()))]


async def test_billing_down_fails_closed(gw):
    token = await gw.sign_in(HEAVY)
    await gw.billing_server.stop(0)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for chunk in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month())):
            received.append(chunk)
    assert e.value.code() == Code.UNAVAILABLE and received == []
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY))
    assert e.value.code() == Code.UNAVAILABLE
    assert "Traceback" not in (e.value.details() or "")


async def test_audit_log_unavailable_releases_nothing(gw):
    token = await gw.sign_in(ORDINARY)
    stream = stream_key(gw.settings.audit_chain)
    await gw.redis.delete(stream)
    await gw.redis.set(stream, "not a stream")  # every append now fails
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for chunk in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month())):
            received.append(chunk)
    assert e.value.code() == Code.UNAVAILABLE and received == []
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=ORDINARY, service_password="123456", one_time_code="123456"))
    assert e.value.code() == Code.UNAVAILABLE
