"""The idle timeout: a kiosk left alone clears its screen (no customer data left in the DOM) and
ends the session, so the next person in the hall finds nothing."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import KIOSK, OpenPage, shot
from tests.browser.pages import SelfService, audit_until, calls, list_calls_with
from tests.support.dates import month
from tests.support.subscribers import ORDINARY

pytestmark = pytest.mark.timeout(120)

IDLE = 120  # seconds: browser_idle_timeout, reached with Playwright's clock (fast_forward), not waited for


async def test_an_idle_kiosk_clears_the_screen_and_ends_the_session(make_gateway: Any, open_page: OpenPage) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0", browser_idle_timeout=IDLE)
    page = await open_page(h, kiosk=True, viewport=KIOSK, clock=True)
    ui = SelfService(page)
    await ui.sign_in(h, ORDINARY)
    which = month(-1)
    count = await ui.choose_month(which)
    assert count > 0 and await ui.rendered_rows() > 0
    token = (await ui.session_cookie() or {}).get("value")
    assert token

    # Nobody touches the screen: first the countdown, then the screen is cleared.
    warning = page.locator("#idle-warning")
    await expect(warning).to_be_hidden()
    await page.clock.fast_forward((IDLE - 10) * 1000)
    await expect(warning).to_be_visible()
    await shot(page, "13-kiosk-idle-warning")
    await page.clock.fast_forward(15 * 1000)
    await expect(page.locator("#step-number")).to_be_visible()
    await expect(page.locator("#notice")).to_be_visible()
    await expect(warning).to_be_hidden()
    await shot(page, "14-kiosk-idle-cleared")

    # Nothing of the customer's is left in the DOM.
    assert await ui.rows() == 0
    await expect(page.locator("#months button")).to_have_count(0)
    for field in ("#msisdn", "#password", "#code"):
        await expect(page.locator(field)).to_have_value("")
    html = await page.content()
    assert ORDINARY not in html
    first = h.billing.records(ORDINARY, which, 0, 1)[0]
    assert first.start_time.ToJsonString() not in html
    assert await page.locator("#calls-status").text_content() == ""

    # And the session is over on the server: EndSession on record, the token dead, the cookie gone.
    events = await audit_until(h, lambda ev: ("EndSession", "OK") in calls(ev, "kiosk"))
    assert ("EndSession", "OK") in calls(events, "kiosk"), calls(events, "kiosk")
    assert await list_calls_with(h, token, which) == "unauthenticated"
    await ui.session_ended()
    assert await ui.session_cookie() is None


async def test_input_keeps_the_page(make_gateway: Any, open_page: OpenPage) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0", browser_idle_timeout=IDLE)
    page = await open_page(h, kiosk=True, viewport=KIOSK, clock=True)
    ui = SelfService(page)
    await ui.sign_in(h, ORDINARY)
    warning = page.locator("#idle-warning")
    await page.clock.fast_forward((IDLE - 10) * 1000)
    await expect(warning).to_be_visible()
    await expect(page.locator("#idle-text")).to_contain_text("秒后将自动退出并清屏")
    await page.click("#idle-stay")  # "continue": the customer is still there
    await expect(warning).to_be_hidden()
    await expect(page.locator("#step-calls")).to_be_visible()
    assert await ui.session_cookie() is not None


async def test_leaving_the_page_ends_the_session(make_gateway: Any, open_page: OpenPage) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0")
    page = await open_page(h, kiosk=True, viewport=KIOSK)
    ui = SelfService(page)
    await ui.sign_in(h, ORDINARY)
    token = (await ui.session_cookie() or {}).get("value")
    assert token
    await page.goto("about:blank")  # pagehide: EndSession, sent so that it outlives the page
    events = await audit_until(h, lambda ev: ("EndSession", "OK") in calls(ev, "kiosk"))
    assert ("EndSession", "OK") in calls(events, "kiosk"), calls(events, "kiosk")
    assert await list_calls_with(h, token, month(-1)) == "unauthenticated"
