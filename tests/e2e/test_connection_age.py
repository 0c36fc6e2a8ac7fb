"""A client connection lives `max_connection_age` seconds, then the server sends GOAWAY and the
client reconnects on its own (to whichever pod the balancer picks); calls in flight get
`max_connection_age_grace` more seconds to finish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc.aio import AioRpcError

from gateway.runtime.bootstrap import connection_age_options
from gateway.runtime.settings import Settings
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.support.dates import month
from tests.support.subscribers import HEAVY, ORDINARY, OTHER
from tests.support.tls import KIOSK_CERT, client_credentials

AGE = 1.0
SLOW = 0.03  # seconds between reads: the 105 chunks of HEAVY take about three connection ages
ANSWERED = {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}  # throttled is an answer too


def peers(events: list[dict[str, str]], method: str) -> list[str]:
    """The client address (one per connection) of each call to `method`, in order."""
    return [e["peer"] for e in events if e["method"].endswith(method)]


async def test_an_aged_connection_is_replaced_and_every_call_on_the_channel_succeeds(
        make_gateway: Callable[..., Awaitable[Any]]) -> None:
    gw = await make_gateway(max_connection_age=AGE, max_connection_age_grace=5, send_min_interval=0.01)
    codes: list[grpc.StatusCode] = []
    started = time.monotonic()
    while time.monotonic() - started < 3 * AGE:  # one channel, calls for three connection ages
        try:
            await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=5)
            codes.append(grpc.StatusCode.OK)
        except AioRpcError as e:
            codes.append(e.code())
        await asyncio.sleep(0.05)
    assert set(codes) <= ANSWERED, [c for c in codes if c not in ANSWERED]
    seen = peers(await gw.audit_events(), "RequestOneTimeCode")
    assert len(seen) == len(codes)
    assert len(set(seen)) >= 2, set(seen)  # the connection was replaced at least once


async def test_a_long_stream_in_flight_finishes_within_the_grace(make_gateway: Callable[..., Awaitable[Any]]) -> None:
    gw = await make_gateway(max_connection_age=AGE, max_connection_age_grace=10, billing_page_size=200)
    token = await gw.sign_in(HEAVY)
    # A small receive window, so the server really is still sending while the client reads slowly
    # (else the whole list would sit in the client's buffers within a moment).
    channel = grpc.aio.secure_channel(f"127.0.0.1:{gw.port}", client_credentials(gw.pki, KIOSK_CERT), options=[
        ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16 * 1024),
        ("grpc.use_local_subchannel_pool", 1)])
    gw.closers.insert(0, channel.close)
    stub = kiosk_pb2_grpc.KioskServiceStub(channel)
    call = stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month()), timeout=30)
    started, records, chunks = time.monotonic(), 0, 0
    async for chunk in call:  # a slow reader: the stream outlives its connection's age
        records += len(chunk.records)
        chunks += 1
        await asyncio.sleep(SLOW)
    assert await call.code() == grpc.StatusCode.OK
    assert time.monotonic() - started > 2 * AGE and records > 1000, (chunks, records)
    # the channel has moved on to a new connection meanwhile, and calls on it work
    await stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=OTHER), timeout=5)
    events = await gw.audit_events()
    stream_peer = peers(events, "ListCallDetails")[-1]
    assert peers(events, "RequestOneTimeCode")[-1] != stream_peer


def test_the_options_follow_the_settings() -> None:
    assert connection_age_options(Settings(max_connection_age=300, max_connection_age_grace=600)) == [
        ("grpc.max_connection_age_ms", 300_000), ("grpc.max_connection_age_grace_ms", 600_000)]
    assert connection_age_options(Settings(max_connection_age=2, max_connection_age_grace=0)) == [
        ("grpc.max_connection_age_ms", 2000)]
    assert connection_age_options(Settings(max_connection_age=0, max_connection_age_grace=600)) == []
