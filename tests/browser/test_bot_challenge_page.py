"""The self-service page with a bot-challenge vendor's widget (web_challenge=turnstile), in
chromium: the widget is drawn in each form from the vendor's script (a stand-in vendor, its own
process: tests/support/challenge_vendor.py), the page's CSP admits that vendor on the self-service
page and nowhere else, each solved token goes with one call and is spent by it, and a call sent
unsolved is refused in plain words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.pages import SelfService
from tests.support.challenge_vendor import Vendor, running_vendor
from tests.support.subscribers import ORDINARY

SECRET = "stand-in-secret-for-the-page"


@pytest.fixture
async def vendor(tmp_path: Path, pki: Path) -> AsyncIterator[Vendor]:
    async with running_vendor(tmp_path, SECRET, pki) as started:
        yield started


async def website(make_gateway: Any, vendor: Vendor) -> Any:
    return await make_gateway(browser_listen="127.0.0.1:0", web_channel=True, web_challenge="turnstile",
                              web_challenge_site_key="site-key-1", web_challenge_secret=SECRET,
                              web_challenge_verify_url=vendor.verify_url, web_challenge_script=vendor.script)


async def test_each_call_carries_a_freshly_solved_token(make_gateway: Any, open_page: OpenPage,
                                                        vendor: Vendor) -> None:
    h = await website(make_gateway, vendor)
    page = await open_page(h)
    ui = SelfService(page)
    number = page.locator("#form-number .stand-in-challenge")
    await expect(number).to_have_attribute("data-sitekey", "site-key-1")
    await number.click()
    await ui.request_code(ORDINARY)
    await ui.code_requested()
    await expect(number).not_to_have_attribute("data-solved", "true")  # spent: the widget asks again
    proof = page.locator("#form-proof .stand-in-challenge")
    await proof.click()
    await ui.enter_proof(h.billing.password_for(ORDINARY), await h.last_code(ORDINARY))
    await ui.signed_in()
    seen = vendor.verifications()
    assert [v["success"] for v in seen] == [True, True] and len({v["token"] for v in seen}) == 2
    assert {v["remoteip"] for v in seen} == {"127.0.0.1"}


async def test_a_call_sent_unsolved_is_refused_in_plain_words(make_gateway: Any, open_page: OpenPage,
                                                             vendor: Vendor) -> None:
    h = await website(make_gateway, vendor)
    page = await open_page(h)
    await expect(page.locator("#form-number .stand-in-challenge")).to_be_visible()
    await SelfService(page).request_code(ORDINARY)
    await expect(page.locator("#error")).to_contain_text("安全验证未通过")
    await expect(page.locator("#step-number")).to_be_visible()
    assert vendor.verifications() == []  # no token, nothing to ask the vendor


async def test_only_the_self_service_page_admits_the_vendor(make_gateway: Any, open_page: OpenPage,
                                                           vendor: Vendor) -> None:
    h = await website(make_gateway, vendor)
    page = await open_page(h)
    origin = vendor.script.rsplit("/", 1)[0]
    policies = {}
    for path in ("/", "/index.html", "/legal/", "/audit/", "/counter/", "/app.js"):
        answer = await page.request.get(h.browser_url + path)
        assert answer.status == 200, path
        policies[path] = dict(d.strip().split(" ", 1) for d in answer.headers["content-security-policy"].split(";"))
    for path in ("/", "/index.html"):
        for directive in ("script-src", "frame-src"):  # the mirror's origin beside the vendor's own
            assert {origin, "https://challenges.cloudflare.com"} <= set(policies[path][directive].split())
        assert policies[path]["connect-src"] == "'self'" and policies[path]["default-src"] == "'none'"
    for path in ("/legal/", "/audit/", "/counter/", "/app.js"):
        assert origin not in " ".join(policies[path].values()), path


async def test_a_hall_kiosk_never_runs_the_vendors_script(make_gateway: Any, open_page: OpenPage,
                                                          vendor: Vendor) -> None:
    """A browser presenting a kiosk's certificate is no website visitor: no widget, no vendor in its
    page's policy, and its calls need no challenge."""
    h = await website(make_gateway, vendor)
    page = await open_page(h, kiosk=True)
    answer = await page.request.get(h.browser_url + "/")
    assert "127.0.0.1:" + str(vendor.https_port) not in answer.headers["content-security-policy"]
    assert "challenges.cloudflare.com" not in answer.headers["content-security-policy"]
    config = await (await page.request.get(h.browser_url + "/page-config.json")).json()
    assert config["channel"] == "kiosk" and "challengeScript" not in config
    ui = SelfService(page)
    await ui.sign_in(h, ORDINARY)
    assert await page.locator(".stand-in-challenge").count() == 0
    assert not any(s.endswith("/api.js") for s in await page.evaluate(
        "Array.from(document.scripts, (s) => s.src)"))
    assert vendor.verifications() == []
