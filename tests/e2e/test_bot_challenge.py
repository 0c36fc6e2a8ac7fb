"""The website's bot challenge against a vendor's siteverify (adapters/siteverify.py), end to end:
a real gateway's browser listener, Connect calls as the page makes them, and a stand-in vendor in
its own process (tests/support/challenge_vendor.py) speaking the vendors' protocol. A token is good
once; a vendor that is away, slow or talks nonsense refuses the call UNAVAILABLE (fail closed); the
secret travels only to the vendor, never to the page, the trail or a log."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.rpc import error_details_pb2

from adapters.siteverify import PROVIDERS
from gateway.runtime import startup
from gateway.runtime.settings import Settings
from hallgate_pb.v1 import kiosk_pb2
from tests.support.challenge_vendor import Vendor, running_vendor
from tests.support.connect_client import Answer, browser_client, browser_headers, context
from tests.support.subscribers import ORDINARY

pytestmark = pytest.mark.asyncio

KIOSK = "/hallgate.v1.KioskService/"
SECRET = "0x4AAAAAAA-stand-in-secret-Zq7"
SITE_KEY = "0x4AAAAAAA-site-key"


@pytest.fixture
async def vendor(tmp_path: Path, pki: Path) -> AsyncIterator[Vendor]:
    async with running_vendor(tmp_path, SECRET, pki) as started:
        yield started


async def website(make_gateway: Any, vendor: Vendor, **overrides: Any) -> Any:
    return await make_gateway(**({
        "browser_listen": "127.0.0.1:0", "web_channel": True, "web_challenge": "turnstile",
        "web_challenge_site_key": SITE_KEY, "web_challenge_secret": SECRET,
        "web_challenge_verify_url": vendor.verify_url, "web_challenge_script": vendor.script,
        "web_challenge_timeout": 1.0} | overrides))


async def request_code(gw: Any, token: str, msisdn: str = ORDINARY) -> Any:
    """RequestOneTimeCode from the website (no client certificate), with this challenge token."""
    client = browser_client(gw.browser.port)
    headers = {k: v for k, v in browser_headers(token).items() if v}  # "": no X-Hallgate-Challenge at all
    return await asyncio.to_thread(client.unary, KIOSK + "RequestOneTimeCode",
                                   kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), headers=headers)


def refusal(answer: Answer) -> tuple[str, str]:
    info = answer.detail(error_details_pb2.ErrorInfo)
    return answer.code, info.reason if info is not None else ""


def page_config(port: int) -> bytes:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(), timeout=10)
    try:
        conn.request("GET", "/page-config.json")
        return conn.getresponse().read()
    finally:
        conn.close()


async def test_a_solved_token_passes_once_with_the_callers_address(make_gateway, vendor) -> None:
    gw = await website(make_gateway, vendor)
    assert (await request_code(gw, "pass.0001")).code == "ok"
    assert await gw.last_code(ORDINARY)  # the code reached the phone
    denied = ("permission_denied", "CHALLENGE_FAILED")
    assert refusal(await request_code(gw, "pass.0001", "13800000002")) == denied  # used once already
    assert refusal(await request_code(gw, "fail.0002", "13800000002")) == denied  # never solved
    assert refusal(await request_code(gw, "", "13800000002")) == denied  # none sent
    assert await gw.messages("13800000002") == []
    seen = vendor.verifications()
    assert [(v["token"], v["success"]) for v in seen] == [("pass.0001", True), ("pass.0001", False),
                                                          ("fail.0002", False)]  # no token: the vendor is not asked
    assert {v["remoteip"] for v in seen} == {"127.0.0.1"} and all(v["secret_ok"] for v in seen)
    events = [e for e in await gw.audit_events() if e["channel"] == "web"]
    assert [(e["code"], e["reason"]) for e in events] == [
        ("OK", "code_sent"), *[("PERMISSION_DENIED", "challenge_failed")] * 3]


async def test_a_wrong_secret_fails_closed_loudly_and_the_secret_goes_nowhere_else(make_gateway, vendor,
                                                                                   capfd) -> None:
    """The vendor's invalid-input-secret is the gateway's fault, not the caller's: UNAVAILABLE, and
    an error line for the operator."""
    gw = await website(make_gateway, vendor, web_challenge_secret="not-the-secret")
    assert (await request_code(gw, "pass.0003")).code == "unavailable"
    assert [v["secret_ok"] for v in vendor.verifications()] == [False]
    page = await asyncio.to_thread(page_config, gw.browser.port)
    config = json.loads(page)
    assert (config["challenge"], config["challengeSiteKey"], config["challengeScript"], config["challengeGlobal"]) == (
        "turnstile", SITE_KEY, vendor.script, "turnstile")
    events = json.dumps(await gw.audit_events())
    out, err = capfd.readouterr()
    assert "challenge_misconfigured" in out + err
    for where in (page.decode(), events, out, err):
        assert "not-the-secret" not in where and SECRET not in where


@pytest.mark.parametrize("name", ["turnstile", "hcaptcha"])
async def test_hcaptcha_is_also_told_the_site_key(make_gateway, vendor, name: str) -> None:
    """hCaptcha checks that a token was solved for this site key; Turnstile has no such field."""
    gw = await website(make_gateway, vendor, web_challenge=name)
    assert (await request_code(gw, "pass.0005")).code == "ok"
    (seen,) = vendor.verifications()
    assert seen["sitekey"] == (SITE_KEY if name == "hcaptcha" else "")


@pytest.mark.parametrize("mode", ["hang", "garbage", "away"])
async def test_a_vendor_away_slow_or_talking_nonsense_fails_closed(make_gateway, vendor, mode: str) -> None:
    gw = await website(make_gateway, vendor)
    if mode == "away":
        vendor.stop()
    else:
        await asyncio.to_thread(vendor.mode, mode)
    started = time.monotonic()
    answer = await request_code(gw, "pass.0004")
    assert answer.code == "unavailable", answer.error
    assert time.monotonic() - started < 1.0 + 2.0  # the timeout (1 s) and the answer floor, not the vendor's hang
    assert await gw.messages(ORDINARY) == []
    (event,) = [e for e in await gw.audit_events() if e["channel"] == "web"]
    assert (event["code"], event["reason"]) == ("UNAVAILABLE", "challenge_unavailable")


async def test_each_vendor_and_each_mistake_is_checked_before_anything_starts() -> None:
    base = Settings(dev=True, browser_listen="127.0.0.1:8443", web_channel=True, web_challenge="turnstile",
                    web_challenge_site_key=SITE_KEY, web_challenge_secret=SECRET)
    for name in PROVIDERS:
        startup.check(base.with_(web_challenge=name))
    for wrong, says in [({"web_challenge": "recaptcha"}, "one of turnstile, hcaptcha"),
                        ({"web_challenge_secret": ""}, "SECRET_FILE"),
                        ({"web_challenge_site_key": ""}, "SITE_KEY"),
                        ({"web_challenge_verify_url": "http://vendor.example/siteverify"}, "plain http"),
                        ({"web_challenge_script": "http://127.0.0.1:1/api.js"}, "not an https"),
                        ({"web_challenge_script": "https://a.example/api.js; script-src *"}, "cannot be named"),
                        ({"web_challenge_script": "https://user:pw@a.example/api.js"}, "cannot be named"),
                        ({"web_challenge": "dev-pass", "dev": False}, "development")]:
        with pytest.raises(startup.StartupRefused, match=says):
            startup.check(base.with_(**wrong))
