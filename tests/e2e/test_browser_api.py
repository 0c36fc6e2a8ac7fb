"""The public API on the browser listener, as integrators use it: curl with JSON (what docs/browser.md
shows), Connect streams of a 20,000-record month with the release audited as on gRPC, gRPC-Web,
a kiosk certificate presented to the listener identifying the kiosk (revocation included), and
failing closed when Redis goes away."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
from pathlib import Path
from typing import Any

from hallgate_pb.v1 import kiosk_pb2
from tests.support.connect_client import CSRF, browser_client, browser_headers, context
from tests.support.dates import month
from tests.support.subscribers import HEAVY, ORDINARY
from tests.support.tls import KIOSK_CERT

KIOSK = "/hallgate.v1.KioskService/"


async def web(make_gateway: Any, **overrides: Any) -> Any:
    return await make_gateway(browser_listen="127.0.0.1:0", web_channel=True, web_challenge="dev-pass", **overrides)


def curl(url: str, body: str, jar: Path, *headers: str) -> tuple[int, dict[str, Any]]:
    """`curl` as docs/browser.md has it: JSON in, JSON out, cookies in a jar."""
    args = ["curl", "-sS", "-k", "-o", "-", "-w", "\n%{http_code}", "-b", str(jar), "-c", str(jar),
            "-H", "Content-Type: application/json", "-H", f"X-CSRF-Token: {CSRF}", "-H", "X-Hallgate-Challenge: dev",
            *[a for h in headers for a in ("-H", h)], "--data", body, url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
    text, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(text) if text.strip() else {}


async def test_curl_with_json_gets_a_code_signs_in_and_signs_out(make_gateway, tmp_path):
    gw = await web(make_gateway)
    jar = tmp_path / "cookies.txt"
    jar.write_text(f"#HttpOnly_127.0.0.1\tFALSE\t/\tTRUE\t0\t__Host-hallgate-csrf\t{CSRF}\n")
    base = gw.browser_url + KIOSK
    status, body = await asyncio.to_thread(curl, base + "RequestOneTimeCode", json.dumps({"msisdn": ORDINARY}), jar)
    assert (status, body) == (200, {"codeValidFor": "300s", "resendAfter": "60s"})
    code = await gw.last_code(ORDINARY)
    status, body = await asyncio.to_thread(curl, base + "Authenticate", json.dumps(
        {"msisdn": ORDINARY, "servicePassword": gw.billing.password_for(ORDINARY), "oneTimeCode": code}), jar)
    assert status == 200 and set(body) == {"idleTimeout", "expiresAt"}
    assert "__Host-hallgate-session" in jar.read_text()
    status, body = await asyncio.to_thread(curl, base + "Authenticate", json.dumps({"msisdn": "1380000", "x": 1}), jar)
    assert status == 400 and body["code"] == "invalid_argument"
    assert {d["type"] for d in body["details"]} == {"google.rpc.ErrorInfo", "google.rpc.BadRequest"}
    status, body = await asyncio.to_thread(curl, base + "EndSession", "{}", jar)
    assert (status, body) == (200, {})
    events = [e for e in await gw.audit_events() if e["channel"] == "web"]
    assert [(e["method"].rsplit("/", 1)[1], e["code"]) for e in events] == [
        ("RequestOneTimeCode", "OK"), ("Authenticate", "OK"), ("Authenticate", "INVALID_ARGUMENT"),
        ("EndSession", "OK")]


async def test_a_bad_field_is_named_without_repeating_what_was_sent(make_gateway):
    gw = await web(make_gateway)
    client = browser_client(gw.browser.port)
    answer = await asyncio.to_thread(client.unary, KIOSK + "Authenticate",
                                     b'{"msisdn": "13800000001", "servicePassword": 123456, "oneTimeCode": "1"}',
                                     json_body=True, headers=browser_headers())
    assert answer.code == "invalid_argument"
    assert answer.violations() == [("service_password", "has the wrong type or format")]
    garbage = await asyncio.to_thread(client.unary, KIOSK + "Authenticate", b"\xff{secret-password",
                                      json_body=True, headers=browser_headers())
    assert garbage.code == "invalid_argument" and "secret-password" not in json.dumps(garbage.error)
    events = await gw.audit_events()
    assert [e["code"] for e in events[-2:]] == ["INVALID_ARGUMENT"] * 2
    assert not any("123456" in json.dumps(e) or "secret-password" in json.dumps(e) for e in events)


async def test_a_20000_record_month_streams_over_connect_and_the_release_is_audited(make_gateway):
    gw = await web(make_gateway)
    token = await gw.sign_in(HEAVY)  # a kiosk session over gRPC: the same session works on either transport
    client = browser_client(gw.browser.port, gw.pki, KIOSK_CERT)
    request = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month())
    answer = await asyncio.to_thread(client.stream, KIOSK + "ListCallDetails", request, headers=browser_headers())
    assert answer.code == "ok"
    total = sum(len(kiosk_pb2.ListCallDetailsResponse.FromString(m).records) for m in answer.messages)
    assert total == gw.billing.record_count(HEAVY, month()) >= 20_000
    events = [e for e in await gw.audit_events() if e["method"].endswith("ListCallDetails")]
    assert [(e["phase"], e["channel"], e["terminal"]) for e in events] == [
        ("open", "kiosk", "H001/kiosk/K01"), ("close", "kiosk", "H001/kiosk/K01")]
    assert events[-1]["records"] == str(total)
    as_json = await asyncio.to_thread(client.stream, KIOSK + "ListCallDetails", request, json_body=True,
                                      headers=browser_headers())
    assert sum(len(json.loads(m).get("records", [])) for m in as_json.messages) == total


def grpc_web(port: int, pki: Path, method: str, message: bytes) -> tuple[int, list[bytes], dict[str, str]]:
    """One gRPC-Web call (binary): the messages and the trailers, which gRPC-Web sends in the body."""
    import http.client

    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(pki, KIOSK_CERT), timeout=20)
    conn.request("POST", method, body=struct.pack(">BI", 0, len(message)) + message, headers={
        "Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1", "Cookie": f"__Host-hallgate-csrf={CSRF}",
        **browser_headers()})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    messages, trailers, i = [], {}, 0
    while i + 5 <= len(body):
        flags, n = struct.unpack(">BI", body[i:i + 5])
        payload = body[i + 5:i + 5 + n]
        i += 5 + n
        if flags & 0x80:
            for line in payload.decode().split("\r\n"):
                if ":" in line:
                    k, _, v = line.partition(":")
                    trailers[k.strip().lower()] = v.strip()
        else:
            messages.append(payload)
    return r.status, messages, trailers


async def test_grpc_web_carries_the_same_calls(make_gateway):
    gw = await web(make_gateway)
    token = await gw.sign_in(ORDINARY)
    request = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month()).SerializeToString()
    status, messages, trailers = await asyncio.to_thread(grpc_web, gw.browser.port, gw.pki,
                                                         KIOSK + "ListCallDetails", request)
    assert status == 200 and trailers["grpc-status"] == "0"
    total = sum(len(kiosk_pb2.ListCallDetailsResponse.FromString(m).records) for m in messages)
    assert total == gw.billing.record_count(ORDINARY, month()) > 0
    _, _, refused = await asyncio.to_thread(grpc_web, gw.browser.port, gw.pki, KIOSK + "ListCallDetails",
                                            kiosk_pb2.ListCallDetailsRequest(access_token="x" * 43,
                                                                             month=month()).SerializeToString())
    assert refused["grpc-status"] == "16"  # UNAUTHENTICATED


async def test_a_revoked_kiosk_certificate_is_refused_on_the_browser_listener_too(make_gateway):
    gw = await web(make_gateway, revocation_refresh=0.05)
    client = browser_client(gw.browser.port, gw.pki, KIOSK_CERT)
    request = kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY)
    assert (await asyncio.to_thread(client.unary, KIOSK + "RequestOneTimeCode", request,
                                    headers=browser_headers())).code == "ok"
    await gw.deps.revocations.add("H001/kiosk/K01")
    for _ in range(100):
        answer = await asyncio.to_thread(client.unary, KIOSK + "RequestOneTimeCode", request,
                                         headers=browser_headers())
        if answer.code == "unauthenticated":
            break
        await asyncio.sleep(0.05)
    assert answer.code == "unauthenticated"
    event = (await gw.audit_events())[-1]
    assert (event["channel"], event["terminal"], event["reason"]) == ("kiosk", "H001/kiosk/K01", "revoked_terminal")


async def test_with_redis_gone_nothing_is_released_and_the_answer_says_unavailable(make_gateway, own_redis):
    gw = await web(make_gateway, redis_url=own_redis.url, redis_timeout=0.5)
    token = await gw.sign_in(ORDINARY)
    own_redis.kill()
    client = browser_client(gw.browser.port, gw.pki, KIOSK_CERT)
    answer = await asyncio.to_thread(client.stream, KIOSK + "ListCallDetails",
                                     kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month()),
                                     headers=browser_headers())
    assert answer.code == "unavailable" and answer.messages == []
    web_call = await asyncio.to_thread(browser_client(gw.browser.port).unary, KIOSK + "RequestOneTimeCode",
                                       kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY),
                                       headers=browser_headers())
    assert web_call.code == "unavailable"  # the website's throttle cannot count: refused, not waved through


async def test_the_listener_sends_small_writes_at_once(make_gateway):
    """TCP_NODELAY on the browser listener's connections: a response's head and body are written apart,
    and without it each would wait out the client's delayed ACK (measured: 45 ms a call instead of 2)."""
    import socket

    gw = await web(make_gateway)
    (listening,) = gw.browser.server.sockets
    assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    _, writer = await asyncio.open_connection("127.0.0.1", gw.browser.port, ssl=context())
    try:
        for _ in range(200):  # the connection is the listener's once the TLS handshake is done
            if gw.browser.connections:
                break
            await asyncio.sleep(0.01)
        served = [w.get_extra_info("socket") for w in gw.browser.connections.values()]
        assert served and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1 for s in served)
    finally:
        writer.close()


async def test_a_browser_that_goes_away_mid_stream_leaves_a_closing_event_with_what_left(make_gateway):
    """The caller drops the connection after the first chunks of a 20,000-record month: the stream
    stops, and its closing event says CANCELLED with the records that had left, not the whole month."""
    import http.client

    gw = await web(make_gateway)
    token = await gw.sign_in(HEAVY)
    total = gw.billing.record_count(HEAVY, month())
    payload = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month()).SerializeToString()

    def read_a_little_and_leave() -> int:
        conn = http.client.HTTPSConnection("127.0.0.1", gw.browser.port, context=context(gw.pki, KIOSK_CERT),
                                           timeout=20)
        conn.request("POST", KIOSK + "ListCallDetails", body=struct.pack(">BI", 0, len(payload)) + payload,
                     headers={"Content-Type": "application/connect+proto", "Cookie": f"__Host-hallgate-csrf={CSRF}",
                              **browser_headers()})
        r = conn.getresponse()
        got = len(r.read(64 * 1024))
        conn.sock.close()  # gone: no more reading, the socket closed under the server
        conn.close()
        return got

    assert await asyncio.to_thread(read_a_little_and_leave) > 0

    async def closing() -> dict[str, str] | None:
        found = [e for e in await gw.audit_events()
                 if e["method"].endswith("ListCallDetails") and e["phase"] == "close"]
        return found[0] if found else None

    for _ in range(200):
        event = await closing()
        if event is not None:
            break
        await asyncio.sleep(0.05)
    assert event is not None, "no closing event"
    assert event["code"] == "CANCELLED"
    assert 0 < int(event["records"]) < total


async def test_a_connect_deadline_ends_the_stream_as_deadline_exceeded_on_record(make_gateway):
    """The transport applies the caller's deadline itself, around the pipeline: a call whose time runs
    out mid-stream ends DEADLINE_EXCEEDED on record; however soon it passes (even at once), the call is
    on record, never ended unlogged inside the library."""
    gw = await web(make_gateway)
    token = await gw.sign_in(HEAVY)
    client = browser_client(gw.browser.port, gw.pki, KIOSK_CERT)
    request = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month())

    async def call(limit_ms: str) -> tuple[str, list[dict[str, str]]]:
        seen = len(await gw.audit_events())
        answer = await asyncio.to_thread(client.stream, KIOSK + "ListCallDetails", request,
                                         headers={**browser_headers(), "Connect-Timeout-Ms": limit_ms})
        for _ in range(100):
            events = (await gw.audit_events())[seen:]
            if events and events[-1]["phase"] in ("close", ""):
                break
            await asyncio.sleep(0.05)
        return answer.code, events

    code, events = await call("20")  # 20,000 records take longer than that
    assert code == "deadline_exceeded" and events[-1]["code"] == "DEADLINE_EXCEEDED", events
    for timeout in ("0", "1"):
        # Python 3.11's wait_for (inside redis-py) can swallow a cancellation that lands as its own
        # wait completes, so a deadline passed at once may still be served: on record either way.
        code, events = await call(timeout)
        expected = {"ok": "OK", "deadline_exceeded": "DEADLINE_EXCEEDED"}[code]
        assert events and events[-1]["code"] == expected, events
