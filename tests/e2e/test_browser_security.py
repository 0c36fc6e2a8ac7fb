"""The browser listener as the open internet meets it: cross-origin calls and calls without the CSRF
defence are refused (and on record), every response carries the security headers, API answers are
never cached, the session cookie is HttpOnly/Secure/SameSite=Strict, the bot challenge is enforced,
and the per-address throttles hold behind the trusted proxy (across two gateway processes) and
cannot be dodged by forging the proxy's header."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google.rpc import error_details_pb2

from adapters.redis_server import free_port
from hallgate_pb.v1 import kiosk_pb2
from tests.support.connect_client import Answer, ConnectClient, browser_client, browser_headers, context
from tests.support.processes import Proc
from tests.support.subscribers import ORDINARY
from tests.support.tls import KIOSK_CERT, tls_env
from tests.support.waiting import wait_port

KIOSK = "/hallgate.v1.KioskService/"
EVIL = "https://evil.example"


async def web(make_gateway: Any, **overrides: Any) -> Any:
    settings = {"browser_listen": "127.0.0.1:0", "web_channel": True, "web_challenge": "dev-pass", **overrides}
    return await make_gateway(**settings)


def code_request(gw: Any, headers: dict[str, str] | None = None, client: ConnectClient | None = None) -> Answer:
    client = client or browser_client(gw.browser.port)
    return client.unary(KIOSK + "RequestOneTimeCode", kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY),
                        json_body=True, headers=headers if headers is not None else browser_headers())


async def last_event(gw: Any) -> dict[str, str]:
    return (await gw.audit_events())[-1]


# -- origin, CSRF, challenge -----------------------------------------------------------------------

async def test_a_cross_origin_call_is_refused_on_record_and_sends_nothing(make_gateway):
    gw = await web(make_gateway)
    answer = await asyncio.to_thread(code_request, gw, {**browser_headers(), "Origin": EVIL})
    assert (answer.status, answer.code) == (403, "permission_denied")
    event = await last_event(gw)
    assert (event["channel"], event["reason"], event["decision"]) == ("web", "origin_not_allowed", "denied")
    assert await gw.messages(ORDINARY) == []
    same_site = await asyncio.to_thread(code_request, gw, {**browser_headers(), "Origin": gw.browser_url})
    assert same_site.code == "ok"


async def test_a_preflight_is_answered_only_for_an_allowed_origin(make_gateway):
    gw = await web(make_gateway, web_origins="https://www.operator.example")
    client = browser_client(gw.browser.port)

    def preflight(origin: str) -> tuple[int, dict[str, str]]:
        import http.client
        conn = http.client.HTTPSConnection("127.0.0.1", gw.browser.port, context=client.ctx, timeout=10)
        conn.request("OPTIONS", KIOSK + "RequestOneTimeCode", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-csrf-token"})
        r = conn.getresponse()
        r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}

    status, headers = await asyncio.to_thread(preflight, EVIL)
    assert status == 403 and "access-control-allow-origin" not in headers
    status, headers = await asyncio.to_thread(preflight, "https://www.operator.example")
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://www.operator.example"
    assert headers["access-control-allow-credentials"] == "true"
    assert "x-csrf-token" in headers["access-control-allow-headers"]
    allowed = await asyncio.to_thread(code_request, gw, {**browser_headers(), "Origin": "https://www.operator.example"})
    assert allowed.code == "ok" and allowed.headers["access-control-allow-origin"] == "https://www.operator.example"


@pytest.mark.parametrize("how", ["no header", "no cookie", "different"])
async def test_a_call_without_the_csrf_defence_is_refused_on_record(make_gateway, how):
    gw = await web(make_gateway)
    client = browser_client(gw.browser.port)
    headers = browser_headers()
    if how == "no header":
        del headers["X-CSRF-Token"]
    elif how == "no cookie":
        client.cookies.clear()
    else:
        headers["X-CSRF-Token"] = "forged"
    answer = await asyncio.to_thread(code_request, gw, headers, client)
    assert (answer.status, answer.code) == (403, "permission_denied")
    assert (await last_event(gw))["reason"] == "csrf"
    assert await gw.messages(ORDINARY) == []


async def test_the_kiosk_path_on_a_kiosk_certificate_needs_the_csrf_defence_too(make_gateway):
    gw = await web(make_gateway)
    client = browser_client(gw.browser.port, gw.pki, KIOSK_CERT)
    client.cookies.clear()
    answer = await asyncio.to_thread(code_request, gw, browser_headers(), client)
    assert answer.code == "permission_denied"
    event = await last_event(gw)
    assert (event["channel"], event["terminal"], event["reason"]) == ("kiosk", "H001/kiosk/K01", "csrf")


async def test_a_failed_or_missing_bot_challenge_sends_no_code(make_gateway):
    gw = await web(make_gateway, web_challenge="dev-fail")
    answer = await asyncio.to_thread(code_request, gw)
    assert answer.code == "permission_denied"
    assert (await last_event(gw))["reason"] == "challenge_failed"
    gw2 = await web(make_gateway)
    missing = await asyncio.to_thread(code_request, gw2, {"X-CSRF-Token": browser_headers()["X-CSRF-Token"]})
    assert missing.code == "permission_denied"
    assert await gw.messages(ORDINARY) == []


async def test_without_the_web_channel_a_caller_without_a_certificate_is_nobody(make_gateway):
    gw = await make_gateway(browser_listen="127.0.0.1:0")
    answer = await asyncio.to_thread(code_request, gw)
    assert answer.code == "unauthenticated"
    event = await last_event(gw)
    assert (event["reason"], event["channel"]) == ("no_identity", "unidentified")


# -- headers, caching, cookies ---------------------------------------------------------------------

def get(port: int, path: str) -> tuple[int, dict[str, str], list[str]]:
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(), timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.headers.get_all("set-cookie") or []


def assert_security_headers(headers: dict[str, str]) -> None:
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["strict-transport-security"].startswith("max-age=")


async def test_every_response_carries_the_security_headers_and_api_answers_are_not_cached(make_gateway):
    gw = await web(make_gateway)
    port = gw.browser.port
    for path in ("/page-config.json", "/no-such-file"):
        _, headers, _ = await asyncio.to_thread(get, port, path)
        assert_security_headers(headers)
    client = browser_client(port)
    ok = await asyncio.to_thread(code_request, gw, browser_headers(), client)
    refused = await asyncio.to_thread(code_request, gw, {}, client)
    unknown = await asyncio.to_thread(client.unary, KIOSK + "NoSuchMethod", b"", headers=browser_headers())
    for answer in (ok, refused, unknown):
        assert_security_headers(answer.headers)
        assert answer.headers["cache-control"] == "no-store"
    assert unknown.code == "unimplemented"


async def test_the_page_sets_a_csrf_cookie_and_the_session_cookie_is_http_only(make_gateway):
    gw = await web(make_gateway)
    if "/" in gw.browser.app.static:
        status, headers, cookies = await asyncio.to_thread(get, gw.browser.port, "/")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert_security_headers(headers)
        csrf = [c for c in cookies if c.startswith("__Host-hallgate-csrf=")]
        assert csrf and "Secure" in csrf[0] and "SameSite=Strict" in csrf[0] and "HttpOnly" not in csrf[0]
    client = browser_client(gw.browser.port)
    await asyncio.to_thread(code_request, gw, browser_headers(), client)
    code = await gw.last_code(ORDINARY)
    answer = await asyncio.to_thread(client.unary, KIOSK + "Authenticate", kiosk_pb2.AuthenticateRequest(
        msisdn=ORDINARY, service_password=gw.billing.password_for(ORDINARY), one_time_code=code),
        json_body=True, headers=browser_headers())
    assert answer.code == "ok"
    body = json.loads(answer.messages[0])
    assert "accessToken" not in body and body["idleTimeout"]  # the token never reaches page scripts
    (cookie,) = [c for c in answer.set_cookies if c.startswith("__Host-hallgate-session=")]
    flags = {f.strip() for f in cookie.split(";")[1:]}
    assert {"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} <= flags
    history = await asyncio.to_thread(client.stream, KIOSK + "ListAccessHistory", b"", headers=browser_headers())
    assert history.code == "ok"  # the cookie carried the session
    words = [kiosk_pb2.ListAccessHistoryResponse.FromString(m).record.what for m in history.messages]
    assert "sign-in on the website" in words  # the website's own visits are in the owner's history
    token = client.cookies["__Host-hallgate-session"]
    end = await asyncio.to_thread(client.unary, KIOSK + "EndSession", b"", headers=browser_headers())
    assert end.code == "ok" and any("Max-Age=0" in c for c in end.set_cookies)
    assert "__Host-hallgate-session" not in client.cookies
    again = await asyncio.to_thread(client.stream, KIOSK + "ListAccessHistory", b"", headers=browser_headers())
    assert again.code == "invalid_argument" and [f for f, _ in again.violations()] == ["access_token"]
    client.cookies["__Host-hallgate-session"] = token  # a copy kept of the cookie is worth nothing now
    stale = await asyncio.to_thread(client.stream, KIOSK + "ListAccessHistory", b"", headers=browser_headers())
    assert stale.code == "unauthenticated"


# -- throttles -------------------------------------------------------------------------------------

def history_call(client: ConnectClient, forwarded: str | None = None) -> Answer:
    headers = browser_headers()
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return client.stream(KIOSK + "ListAccessHistory", b"", headers=headers)


async def test_behind_the_trusted_proxy_each_caller_has_its_own_limit(make_gateway):
    gw = await web(make_gateway, web_trusted_proxies="127.0.0.1/32", web_calls_per_minute=5)
    client = browser_client(gw.browser.port)
    first = [await asyncio.to_thread(history_call, client, "198.51.100.7") for _ in range(7)]
    assert [a.code for a in first] == ["invalid_argument"] * 5 + ["resource_exhausted"] * 2
    retry = first[-1].detail(error_details_pb2.RetryInfo)
    assert retry is not None and 0 < retry.retry_delay.seconds <= 60
    event = await last_event(gw)
    assert (event["reason"], event["peer"], event["channel"]) == ("web_throttled", "ipv4:198.51.100.7", "web")
    # Another caller behind the same proxy is not held back by the first ...
    assert (await asyncio.to_thread(history_call, client, "198.51.100.8")).code == "invalid_argument"
    # ... and the first cannot escape by writing addresses of its own to the left of the proxy's entry.
    forged = await asyncio.to_thread(history_call, client, "203.0.113.99, 198.51.100.7")
    assert forged.code == "resource_exhausted"


async def test_without_the_trusted_proxy_a_forged_header_changes_nothing(make_gateway):
    gw = await web(make_gateway, web_calls_per_minute=5)  # no trusted proxies: the header is never read
    client = browser_client(gw.browser.port)
    answers = [await asyncio.to_thread(history_call, client, f"203.0.113.{i}") for i in range(8)]
    assert Counter(a.code for a in answers) == {"invalid_argument": 5, "resource_exhausted": 3}
    assert (await last_event(gw))["peer"].startswith("ipv4:127.0.0.1:")


async def test_code_requests_have_the_tighter_limit(make_gateway):
    gw = await web(make_gateway, web_proofs_per_hour=2, web_calls_per_minute=100)
    client = browser_client(gw.browser.port)
    bad = kiosk_pb2.RequestOneTimeCodeRequest(msisdn="12")
    answers = [await asyncio.to_thread(client.unary, KIOSK + "RequestOneTimeCode", bad, headers=browser_headers())
               for _ in range(4)]
    assert [a.code for a in answers] == ["invalid_argument"] * 2 + ["resource_exhausted"] * 2
    assert (await asyncio.to_thread(history_call, client)).code == "invalid_argument"  # other calls go on


@pytest.fixture
async def two_web_gateways(tmp_path: Path, redis_url: str, clean_redis: str, pki: Path, billing_data: Any):
    """Two `hallgate serve` processes with browser listeners on one Redis (the throttle is shared)."""
    from adapters.billing_sim.server import start_billing_sim

    billing_server, port = await start_billing_sim(billing_data)
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_BILLING_TARGET": f"127.0.0.1:{port}",
           "HALLGATE_SECRET_KEY": "k", "HALLGATE_ANSWER_FLOOR": "0", **tls_env(pki),
           "HALLGATE_WEB_CHANNEL": "1", "HALLGATE_WEB_CHALLENGE": "dev-pass", "HALLGATE_WEB_CALLS_PER_MINUTE": "20",
           "HALLGATE_SMS_URL": f"outbox:{tmp_path / 'phones.jsonl'}"}
    ports = [free_port(), free_port()]
    gws = [Proc(["serve", "--listen", "{address}", "--dev", "--browser-listen", f"127.0.0.1:{ports[i]}"],
                {**env, "HALLGATE_DATA_DIR": str(tmp_path / f"d{i}")}, tmp_path / f"gw{i}.log") for i in (0, 1)]
    try:
        for g in gws:
            await asyncio.to_thread(g.wait_serving, pki)
        for p in ports:
            await asyncio.to_thread(wait_port, p)
        yield ports
    finally:
        slow = []
        for g in gws:  # each stopped whatever happened to the other (a stop that times out kills)
            try:
                await asyncio.to_thread(g.stop)
            except subprocess.TimeoutExpired as err:
                slow.append(err)
        await billing_server.stop(0)
        assert not slow, f"a gateway did not stop on SIGTERM in time: {slow}"


async def test_a_storm_across_two_processes_gets_exactly_the_limit(two_web_gateways):
    ports = two_web_gateways
    def storm() -> list[str]:  # a client (a connection) per call: the test client is not thread-safe
        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(lambda i: history_call(browser_client(ports[i % 2])).code, range(60)))

    codes = await asyncio.to_thread(storm)
    assert Counter(codes) == {"invalid_argument": 20, "resource_exhausted": 40}



async def test_the_page_config_gives_the_month_window_the_server_checks(make_gateway):
    """`today` in the operator's time zone (as rules.check_month uses), not the host's."""
    from datetime import UTC, datetime

    from gateway.domain import rules

    gw = await web(make_gateway, timezone="Pacific/Kiritimati")  # UTC+14: most often another day than UTC
    import http.client

    def config() -> dict[str, Any]:
        conn = http.client.HTTPSConnection("127.0.0.1", gw.browser.port, context=context(), timeout=10)
        conn.request("GET", "/page-config.json")
        body = conn.getresponse().read()
        conn.close()
        return json.loads(body)

    got = await asyncio.to_thread(config)
    assert got["today"] == rules.local_today(datetime.now(UTC), "Pacific/Kiritimati").isoformat()
    assert got["retentionMonths"] == gw.settings.retention_months and got["channel"] == "web"


async def test_the_page_config_names_the_terminal_a_certificate_shows(make_gateway):
    """What a desk shows before any call (the pipeline still decides every call on its own)."""
    import http.client

    gw = await web(make_gateway)

    def config(cert: str | None) -> dict[str, Any]:
        conn = http.client.HTTPSConnection("127.0.0.1", gw.browser.port, context=context(gw.pki, cert), timeout=10)
        conn.request("GET", "/page-config.json")
        body = conn.getresponse().read()
        conn.close()
        return json.loads(body)

    clerk = await asyncio.to_thread(config, "clerk-H001-T07")
    assert (clerk["channel"], clerk["terminal"], clerk["hall"]) == ("clerk", "H001/clerk/T07", "H001")
    assert (await asyncio.to_thread(config, KIOSK_CERT))["channel"] == "kiosk"
    assert (await asyncio.to_thread(config, None))["channel"] == "web"


async def test_only_the_legal_desk_may_frame_a_blob(make_gateway):
    """The legal desk shows the agency's letter from a blob: URL; every other page frames nothing."""
    gw = await web(make_gateway)
    for path in ("/legal/", "/legal/desk.js"):
        _, headers, _ = await asyncio.to_thread(get, gw.browser.port, path)
        assert headers["content-security-policy"].endswith("; frame-src blob:"), path
    for path in ("/", "/counter/", "/audit/", "/legalese"):
        _, headers, _ = await asyncio.to_thread(get, gw.browser.port, path)
        assert "frame-src" not in headers["content-security-policy"], path
