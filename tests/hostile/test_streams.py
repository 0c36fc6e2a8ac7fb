"""Streams stopped at every point: the trail says how each ended and exactly what left, the owner's
history shows the true count, and 2,000 cancelled streams leave nothing behind in the gateway."""

from __future__ import annotations

import asyncio
import os
import statistics
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc.aio import AioRpcError

from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.support.dates import month
from tests.support.outbox import code_in as _code
from tests.support.processes import BillingProc, Proc
from tests.support.subscribers import HEAVY, ORDINARY
from tests.support.subscribers import password as _password
from tests.support.tls import KIOSK_CERT, client_credentials, tls_env
from tests.support.trail import trail, trail_sync

Code = grpc.StatusCode
LIST = "/hallgate.v1.KioskService/ListCallDetails"


async def events_of(gw: Any, call_id: str) -> list[dict[str, str]]:
    return [e for e in await trail(gw.redis) if e["call"] == call_id]


async def stream_events(gw: Any) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for e in await trail(gw.redis):
        if e["method"] == LIST:
            found.setdefault(e["call"], []).append(e)
    return found


@pytest.mark.parametrize("after", [0, 1, 2, 5])
async def test_a_stream_cancelled_after_any_message_is_closed_with_what_left(make_gateway, after):
    gw = await make_gateway(billing_page_size=500)
    token = await gw.sign_in(HEAVY)
    call = gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month(-1)))
    got = 0
    for _ in range(after):
        got += len((await call.read()).records)
    call.cancel()
    await asyncio.sleep(0.5)
    found = list((await stream_events(gw)).values())
    if after == 0 and not found:  # cancelled before gRPC ran the handler: nothing ran, nothing left
        return
    [events] = found
    if after == 0 and len(events) == 1:  # stopped before anything left: one event, nothing released
        assert events[0]["code"] == "CANCELLED" and events[0]["records"] == "0" and events[0]["phase"] == ""
        return
    opening, close = events
    assert (opening["phase"], close["phase"]) == ("open", "close") and opening["records"] == "0"
    assert close["code"] == "CANCELLED" and close["decision"] == "allowed"
    assert got <= int(close["records"]) < 21_000  # what the transport took: at least what the kiosk read
    assert int(close["records"]) % 500 == 0  # whole pages, as they left


async def test_a_stream_past_its_deadline_is_closed_as_such(make_gateway):
    gw = await make_gateway(billing_page_size=500)
    token = await gw.sign_in(HEAVY)
    channel = grpc.aio.secure_channel(f"127.0.0.1:{gw.port}", client_credentials(gw.pki, KIOSK_CERT),
                                      options=[("grpc.http2.bdp_probe", 0)])
    gw.closers.insert(0, channel.close)
    call = kiosk_pb2_grpc.KioskServiceStub(channel).ListCallDetails(
        kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month(-1)), timeout=1.0)
    await call.read()
    await asyncio.sleep(1.5)  # a kiosk that stopped reading: the deadline passes mid-stream
    with pytest.raises(AioRpcError) as e:
        while await call.read() is not grpc.aio.EOF:
            pass
    assert e.value.code() == Code.DEADLINE_EXCEEDED
    await asyncio.sleep(0.3)
    [events] = (await stream_events(gw)).values()
    assert [x["phase"] for x in events] == ["open", "close"] and events[1]["code"] == "DEADLINE_EXCEEDED"


async def test_a_whole_heavy_month_is_audited_and_shown_with_its_true_count(make_gateway):
    gw = await make_gateway(billing_page_size=1000)
    token = await gw.sign_in(HEAVY)
    got = 0
    async for chunk in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token,
                                                                                month=month(-1))):
        got += len(chunk.records)
    assert got > 20_000
    [events] = (await stream_events(gw)).values()
    assert [(x["phase"], x["code"], int(x["records"])) for x in events] == [("open", "OK", 0), ("close", "OK", got)]
    history = [h async for h in gw.stub.ListAccessHistory(kiosk_pb2.ListAccessHistoryRequest(access_token=token))]
    assert any(h.record.what == f"call list viewed at a self-service kiosk ({got} records)" for h in history)


async def test_a_failure_after_release_never_says_nothing_was_released(make_gateway):
    gw = await make_gateway(billing_page_size=500)
    token = await gw.sign_in(HEAVY)
    call = gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month(-1)))
    await call.read()
    assert gw.billing_server is not None
    await gw.billing_server.stop(0)  # billing goes away mid-stream
    with pytest.raises(AioRpcError) as e:
        while await call.read() is not grpc.aio.EOF:
            pass
    assert e.value.code() == Code.UNAVAILABLE
    assert "nothing was released" not in (e.value.details() or "") and "incomplete" in (e.value.details() or "")


# --- soak ----------------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def cancel_streams(stub: kiosk_pb2_grpc.KioskServiceStub, token: str, n: int, width: int = 4) -> None:
    """`n` multi-page call lists, each cancelled after its first message, `width` at a time."""
    request = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month(-1))

    async def one() -> None:
        call = stub.ListCallDetails(request, timeout=30)
        await call.read()
        call.cancel()

    for start in range(0, n, width):
        await asyncio.gather(*(one() for _ in range(min(width, n - start))))


@pytest.mark.soak
@pytest.mark.skipif(not os.environ.get("HALLGATE_SOAK"), reason="a soak run (7,500 cancelled streams, 90 s): make soak")
async def test_two_thousand_cancelled_streams_leave_nothing_behind(tmp_path, redis_url, clean_redis, pki):
    billing = await BillingProc(tmp_path / "billing.log").start_async()
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_BILLING_TARGET": billing.address, "HALLGATE_SECRET_KEY": "k",
           "HALLGATE_DATA_DIR": str(tmp_path / "d"), "HALLGATE_BILLING_PAGE_SIZE": "500",
           "HALLGATE_TOKEN_ABSOLUTE": "3600", "HALLGATE_TOKEN_IDLE": "600", "HALLGATE_LEGAL_SIGNING_KEY": "",
           **tls_env(pki)}
    gw = Proc(["serve", "--listen", "{address}", "--dev"], env, tmp_path / "gw.log")
    try:
        await asyncio.to_thread(gw.wait_serving, pki)
        channel = grpc.aio.secure_channel(gw.address, client_credentials(pki, KIOSK_CERT))
        stub = kiosk_pb2_grpc.KioskServiceStub(channel)
        await stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=HEAVY), timeout=10)
        code = await asyncio.to_thread(_code, tmp_path / "d", HEAVY)
        token = (await stub.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=HEAVY, service_password=_password(HEAVY), one_time_code=code), timeout=10)).access_token
        # RSS moves by a few MB either way with what is in flight when it is read (allocator arenas;
        # up to about 4 MB on uvloop, with no trend over 11,500 streams), so the trend is what counts:
        # the median of four readings after the warm-up against the median of the last eight of the
        # 6,000 (a leak of 33 kB a call would show as 198 MB).
        first: list[int] = []
        for _ in range(6):  # warm-up, 1,500 streams: caches, pools, allocator arenas reach their plateau
            await cancel_streams(stub, token, 250)
            first.append(rss_kb(gw.p.pid))
        last: list[int] = []
        for _ in range(24):  # the 6,000 measured
            await cancel_streams(stub, token, 250)
            last.append(rss_kb(gw.p.pid))
        before, after = statistics.median(first[-4:]), statistics.median(last[-8:])
        grown = after - before
        closes = [e for e in trail_sync(redis_url) if e.get("method") == LIST and e.get("phase") == "close"]
        await channel.close()
    finally:
        code_ = gw.stop()
        billing.kill()
    print(f"RSS before {before} kB, grown {grown} kB over 6,000 cancelled streams; samples {first} {last}")
    # 33 kB a stream before (generators never closed); 2-3 kB a stream from cancelling billing calls
    # in flight (grpc/grpc#43360), until the billing client stopped cancelling them (shielded). The
    # allocator alone moves the medians by up to about 2.2 MB on asyncio's loop and 4 MB on uvloop
    # (measured on builds without a leak), so the bound is 1 kB a stream over 6,000: a leak of that
    # size or more still fails it.
    assert grown < 6144, f"the gateway grew {grown} kB over 6,000 cancelled streams"
    assert len(closes) == 7500 and {e["code"] for e in closes} == {"CANCELLED"}  # each one closed on record
    assert code_ == 0
    assert ORDINARY not in gw.log.read_text()


async def test_a_one_page_list_is_on_record_as_ended_before_its_page_leaves_at_two_redis_commands(make_gateway):
    """The page is the last one, so its closing event goes with the opening one in a single append,
    stored before the page leaves: a one-page call list costs the session check and that append."""
    gw = await make_gateway()
    token = await gw.sign_in(ORDINARY)
    request = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month(-1))
    [first] = [m async for m in gw.stub.ListCallDetails(request)]  # the month's release notice is folded
    assert any("call list" in text for text in await gw.messages(ORDINARY))  # and sent: the SMS path is idle
    counts = []
    for _ in range(5):  # the gateway's background work (a sweep, a directory flush) may land in a window
        stats = dict(gw.deps.audit.stats)  # type: ignore[attr-defined]
        before = await gw.redis.info("commandstats")
        call = gw.stub.ListCallDetails(request)
        page = await call.read()
        [*_, opening, closing] = await trail(gw.redis)  # the page has reached us: both are stored
        assert (opening["phase"], closing["phase"]) == ("open", "close") and opening["call"] == closing["call"]
        assert (closing["code"], int(closing["records"])) == ("OK", len(page.records)) and len(page.records) > 0
        assert await call.read() is grpc.aio.EOF and await call.code() == Code.OK
        after = await gw.redis.info("commandstats")
        evalsha = int(after["cmdstat_evalsha"]["calls"]) - int(before["cmdstat_evalsha"]["calls"])
        assert gw.deps.audit.stats["commits"] - stats["commits"] == 1  # type: ignore[attr-defined]
        assert gw.deps.audit.stats["appends"] - stats["appends"] == 2  # type: ignore[attr-defined]
        assert first.records == page.records
        counts.append(evalsha)
        if evalsha == 2:  # the session check and one append: a call never needs fewer, only more is noise
            break
    assert counts[-1] == 2, f"EVALSHA per call list in each window: {counts}"


async def test_the_last_closing_event_of_a_call_is_what_the_owner_is_shown(make_gateway):
    """A last page that fails to leave after its closing event was stored is corrected by a second
    closing event; the access history counts the correction, not the first."""
    gw = await make_gateway()
    token = await gw.sign_in(ORDINARY)
    [page] = [m async for m in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token,
                                                                                       month=month(-1)))]
    *_, closing = await trail(gw.redis)
    correction = {k: v for k, v in closing.items() if k in CORRECTABLE}
    await gw.deps.audit.append({**correction, "code": "CANCELLED", "records": "0", "reason": "cancelled"})
    history = [h.record.what async for h in
               gw.stub.ListAccessHistory(kiosk_pb2.ListAccessHistoryRequest(access_token=token))]
    assert "call list viewed at a self-service kiosk (0 records)" in history
    assert f"call list viewed at a self-service kiosk ({len(page.records)} records)" not in history


CORRECTABLE = ("at", "channel", "hall", "terminal", "staff_id", "role", "proof", "purpose", "purpose_reason", "peer",
               "method", "call", "phase", "subscriber", "subscriber_ref", "decision", "detail", "duration_ms")
