"""Oversized requests name the field that is too large (gateway/pipeline/oversized.py, wired in by
gateway/pipeline/decoding.py): over a real mutual-TLS channel, and as pure walks of messages.
Bytes that do not decode, or whose bulk lies in fields the method does not know, keep the
whole-message violation (field "")."""

from __future__ import annotations

import grpc
import pytest

from gateway.pipeline.oversized import large_fields
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc, kiosk_pb2, legal_pb2
from tests.hostile.fuzz_cases import _varint
from tests.support.status import details, violations
from tests.support.subscribers import ORDINARY

Code = grpc.StatusCode
LIMIT = 16384  # Settings.max_message_bytes, the limit of every method but RegisterRequest


def descriptions(err: grpc.aio.AioRpcError) -> list[str]:
    return [v.description for v in details(err)["BadRequest"].field_violations]


async def test_a_20_kb_msisdn_is_named_and_the_call_is_audited_as_invalid(gw):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn="1" * 20_000, service_password="123456", one_time_code="123456"))
    assert e.value.code() == Code.INVALID_ARGUMENT
    assert violations(e.value) == ["msisdn"]
    assert descriptions(e.value) == [f"holds 20004 bytes, making the request larger than {LIMIT} bytes"]
    event = (await gw.audit_events())[-1]
    assert event["method"] == "/hallgate.v1.KioskService/Authenticate"
    assert (event["decision"], event["code"]) == ("invalid", "INVALID_ARGUMENT")
    assert "1" * 64 not in str(event)  # the oversized value itself is not copied into the trail


async def test_every_large_field_is_named(gw):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=ORDINARY, service_password="7" * 10_000, one_time_code="8" * 9_000))
    assert e.value.code() == Code.INVALID_ARGUMENT
    assert violations(e.value) == ["service_password", "one_time_code"]


async def test_a_streaming_rpc_names_the_field_too(gw):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token="A" * 43,
                                                                              month="m" * 30_000)):
            pass
    assert e.value.code() == Code.INVALID_ARGUMENT and violations(e.value) == ["month"]


async def test_undecodable_or_unknown_bulk_keeps_the_whole_message_violation(gw):
    raw = gw.channel.unary_unary("/hallgate.v1.KioskService/Authenticate")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await raw(b"\xff" * 20_000)  # not protobuf at all
    assert e.value.code() == Code.INVALID_ARGUMENT and violations(e.value) == [""]
    assert "larger than" in descriptions(e.value)[0]
    body = b"x" * 19_000  # field 999, which AuthenticateRequest does not have: an unknown field
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await raw(kiosk_pb2.AuthenticateRequest(msisdn=ORDINARY).SerializeToString()
                  + _varint(999 << 3 | 2) + _varint(len(body)) + body)
    assert e.value.code() == Code.INVALID_ARGUMENT and violations(e.value) == [""]
    assert [ev["decision"] for ev in (await gw.audit_events())[-2:]] == ["invalid", "invalid"]


async def test_an_oversized_customer_session_is_named_before_the_session_is_looked_up(gw):
    secret = await gw.add_staff("C7001", "clerk")
    md = await gw.staff_sign_in("clerk-H001-T07", "C7001", secret)
    stub = clerk_pb2_grpc.ClerkServiceStub(gw.channel_for("clerk-H001-T07"))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(customer_session="S" * 20_000),
                                      metadata=md)
    assert e.value.code() == Code.INVALID_ARGUMENT and violations(e.value) == ["customer_session"]


# --- the walk itself ---------------------------------------------------------------------------


def test_nested_and_repeated_fields_are_named_by_path():
    r = legal_pb2.RegisterRequestRequest(targets=["13800000001"] * 3 + ["9" * 30_000])
    r.officers.add(name="x" * 20_000, badge_number="B-1")
    assert [p for p, _ in large_fields(r, LIMIT)] == ["targets[3]", "officers[0].name"]
    letter = legal_pb2.RegisterRequestRequest()
    letter.letter.content = b"%PDF" + b"x" * 100_000
    assert large_fields(letter, LIMIT) == [("letter.content", 100_008)]  # 100,004 bytes, a tag byte and a 3-byte length


def test_bulk_spread_over_many_small_entries_names_the_container():
    r = legal_pb2.RegisterRequestRequest(targets=["13800000001"] * 2_000)
    assert [p for p, _ in large_fields(r, LIMIT)] == ["targets"]


def test_a_request_within_the_limit_names_nothing():
    assert large_fields(kiosk_pb2.AuthenticateRequest(msisdn="1" * 1000), LIMIT) == []
