"""The whole self-service flow in a real browser: number → SMS code → password + code → month →
call list → sign out, on the website channel and on a hall kiosk (client certificate)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import KIOSK, PHONE, OpenPage, shot
from tests.browser.pages import SESSION_COOKIE, SelfService, audit_until, calls, in_order, list_calls_with, web_gateway
from tests.support.dates import month
from tests.support.subscribers import ORDINARY

pytestmark = pytest.mark.timeout(180)

FLOW = [("RequestOneTimeCode", "OK"), ("Authenticate", "OK"), ("ListCallDetails", "OK"), ("EndSession", "OK")]


async def whole_flow(h: Any, page: Page, channel: str, shots: list[str]) -> None:
    ui = SelfService(page)
    await expect(page.locator("body")).to_have_attribute("data-channel", channel)
    await shot(page, shots[0])

    await ui.request_code(ORDINARY)
    await ui.code_requested()
    # The answer for a number that is ours is the answer for any number: it never says "sent".
    await expect(page.locator("#code-sent")).to_contain_text("如果")
    await shot(page, shots[1])

    await ui.enter_proof(h.billing.password_for(ORDINARY), await h.last_code(ORDINARY))
    await ui.signed_in()
    await shot(page, shots[2])

    which = month(-1)
    count = await ui.choose_month(which)
    assert count == h.billing.record_count(ORDINARY, which) > 0
    first, last = h.billing.records(ORDINARY, which, 0, 1)[0], h.billing.records(ORDINARY, which, count - 1, 1)[0]
    row = page.locator("#calls-spacer .row[data-index='0']")
    await expect(row.locator("time")).to_have_attribute("datetime", first.start_time.ToJsonString())
    if first.other_party:
        await expect(row.locator(".c-party")).to_have_text(first.other_party)
    await expect(row.locator(".c-charge")).to_have_text(f"¥{first.charge_fen / 100:.2f}")
    assert await ui.rendered_rows() < count  # only the rows in view are in the DOM
    await shot(page, shots[3])
    await page.locator("#calls-viewport").evaluate("v => { v.scrollTop = v.scrollHeight; }")
    end = page.locator(f"#calls-spacer .row[data-index='{count - 1}']")
    await expect(end.locator("time")).to_have_attribute("datetime", last.start_time.ToJsonString())

    token = (await ui.session_cookie() or {}).get("value")
    assert token
    await ui.sign_out()
    await shot(page, shots[4])
    assert await ui.session_cookie() is None
    assert await page.locator("#calls-spacer .row").count() == 0
    assert ORDINARY not in (await page.locator("main").inner_text())
    assert await list_calls_with(h, token, which) == "unauthenticated"  # the token itself is dead

    events = await audit_until(h, lambda ev: ("EndSession", "OK") in calls(ev, channel))
    assert in_order(calls(events, channel), FLOW), calls(events, channel)


async def test_whole_flow_on_the_website(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway)
    page = await open_page(h)
    await whole_flow(h, page, "web", ["01-start", "02-code-sent", "03-choose-month", "04-call-list", "05-signed-out"])


async def test_whole_flow_on_a_hall_kiosk(make_gateway: Any, open_page: OpenPage) -> None:
    # The kiosk needs no website channel: its client certificate makes it a hall terminal.
    h = await make_gateway(browser_listen="127.0.0.1:0")
    page = await open_page(h, kiosk=True, viewport=KIOSK)
    await expect(page.locator("body.kiosk")).to_be_visible()
    box = await page.locator("#send-code").bounding_box()
    assert box and box["height"] >= 48  # touch targets
    await whole_flow(h, page, "kiosk", ["20-kiosk-start", "21-kiosk-code-sent", "22-kiosk-choose-month",
                                        "23-kiosk-call-list", "24-kiosk-signed-out"])


async def test_page_scripts_cannot_read_the_session_cookie(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway)
    page = await open_page(h, viewport=PHONE)
    ui = SelfService(page)
    await ui.sign_in(h, ORDINARY)
    await shot(page, "30-phone-signed-in")
    cookie = await ui.session_cookie()
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["secure"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    visible = await page.evaluate("document.cookie")
    assert SESSION_COOKIE not in visible and cookie["value"] not in visible
    assert "__Host-hallgate-csrf=" in visible  # the one the page must read (CSRF double submit)
    # Nor is it anywhere else a script could reach.
    stored = await page.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert cookie["value"] not in stored and ORDINARY not in stored
    assert cookie["value"] not in await page.content()

    which = month(-1)
    assert await ui.choose_month(which) == h.billing.record_count(ORDINARY, which)
    assert await ui.rendered_rows() > 0
    await shot(page, "31-phone-call-list")


async def test_the_access_history(make_gateway: Any, open_page: OpenPage) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0")
    page = await open_page(h, kiosk=True, viewport=KIOSK)
    ui = SelfService(page)
    await ui.sign_in(h, ORDINARY)
    await ui.choose_month(month(-1))
    await page.click("#show-history")
    status = page.locator("#history-status")
    await expect(status).to_have_attribute("data-state", "done")
    shown = int(await status.get_attribute("data-count") or "0")
    assert shown >= 1  # at least this very sign-in and call list
    await expect(page.locator("#history-list li")).to_have_count(shown)
    await expect(page.locator("#history-list li").first.locator("time")).not_to_have_text("")
    listed = page.locator("#history-list li[data-what^='call list viewed']")
    await expect(listed.locator(".h-what")).to_have_text(re.compile(r"^在自助终端查看通话详单\uff08\d+ 条\uff09$"))
    await expect(listed.locator(".h-where")).to_have_text("H001 · 自助终端")
    await shot(page, "25-kiosk-access-history")
    await page.click("#history-back")
    await expect(page.locator("#step-calls")).to_be_visible()
    await expect(page.locator("#calls-spacer .row[data-index='0']")).to_be_visible()
    await page.click("#step-calls #sign-out")
    await expect(page.locator("#history-list li")).to_have_count(0)
    events = await audit_until(h, lambda ev: ("EndSession", "OK") in calls(ev, "kiosk"))
    assert in_order(calls(events, "kiosk"), [("ListAccessHistory", "OK"), ("EndSession", "OK")]), calls(events, "kiosk")
