"""What the page says when the API says no: one message per error, never more than the API gave
(a wrong password and a wrong code read the same), field violations next to their field, waiting
times from RetryInfo; and the English switch."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import KIOSK, OpenPage, shot
from tests.browser.pages import SelfService, audit_until, calls, web_gateway
from tests.support.dates import month
from tests.support.processes import BillingProc
from tests.support.subscribers import ORDINARY, UNKNOWN

pytestmark = pytest.mark.timeout(180)

WRONG = "000000"


def other_than(value: str) -> str:
    return WRONG if value != WRONG else "111111"


async def test_a_wrong_password_and_a_wrong_code_read_the_same(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway)
    page = await open_page(h)
    ui = SelfService(page)
    await ui.request_code(ORDINARY)
    await ui.code_requested()
    code, password = await h.last_code(ORDINARY), h.billing.password_for(ORDINARY)

    await ui.enter_proof(other_than(password), code)
    wrong_password = await ui.error_text()
    await shot(page, "06-wrong-credentials")
    await expect(page.locator("#password")).to_have_value("")  # nothing left to read off the screen
    await expect(page.locator("#code")).to_have_value("")

    await page.locator("#error").evaluate("e => { e.hidden = true; e.textContent = ''; }")
    await ui.enter_proof(password, other_than(code))
    wrong_code = await ui.error_text()

    assert wrong_password == wrong_code
    assert "服务密码" in wrong_password and "验证码" in wrong_password  # names every part, so none
    for field in ("#msisdn-error", "#service_password-error", "#one_time_code-error"):
        await expect(page.locator(field)).to_be_hidden()
    await expect(page.locator("#step-proof")).to_be_visible()
    events = await audit_until(h, lambda ev: calls(ev, "web").count(("Authenticate", "UNAUTHENTICATED")) >= 2)
    assert calls(events, "web").count(("Authenticate", "UNAUTHENTICATED")) == 2


async def test_an_unknown_number_reads_like_a_known_one(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway)
    page = await open_page(h)
    ui = SelfService(page)
    await ui.request_code(UNKNOWN)
    await ui.code_requested()
    unknown = (await page.locator("#code-sent").text_content() or "").replace(UNKNOWN, "N")
    await page.click("#change-number")
    await ui.request_code(ORDINARY)
    await ui.code_requested()
    known = (await page.locator("#code-sent").text_content() or "").replace(ORDINARY, "N")
    assert unknown == known


async def test_enough_failures_lock_the_number_with_the_wait(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway, lock_threshold=3, lock_duration=900)
    page = await open_page(h)
    ui = SelfService(page)
    await ui.request_code(ORDINARY)
    await ui.code_requested()
    code, password = await h.last_code(ORDINARY), h.billing.password_for(ORDINARY)
    error = page.locator("#error")
    for _ in range(2):
        await ui.enter_proof(other_than(password), code)
        await expect(error).to_contain_text("服务密码")
        await page.locator("#error").evaluate("e => { e.hidden = true; }")
    await ui.enter_proof(other_than(password), code)  # the third failure locks
    await expect(error).to_contain_text("锁定")
    await expect(error).to_contain_text("15 分钟")  # RetryInfo: lock_duration
    await shot(page, "07-locked")
    await ui.enter_proof(password, code)  # now even the right proof is refused, with the wait
    await expect(error).to_contain_text("锁定")
    await expect(error).to_contain_text("15 分钟")
    await expect(page.locator("#step-calls")).to_be_hidden()
    await page.click("#lang")
    await expect(error).to_contain_text("try again in 15 min")


async def test_a_second_code_too_soon_is_throttled_with_the_wait(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway, send_min_interval=60)
    page = await open_page(h)
    ui = SelfService(page)
    await ui.request_code(ORDINARY)
    await ui.code_requested()
    await expect(page.locator("#resend")).to_be_disabled()  # the page waits resendAfter itself
    await page.click("#change-number")
    await ui.request_code(ORDINARY)
    error = page.locator("#error")
    await expect(error).to_contain_text("频繁")
    await expect(error).to_have_text(re.compile(r"请在 (\d+ 秒|1 分钟)后再试"))  # RetryInfo: at most a minute
    await shot(page, "08-throttled")


async def test_bad_input_names_the_field_and_the_english_switch(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway)
    page = await open_page(h)
    ui = SelfService(page)
    await ui.request_code("12345")
    field = page.locator("#msisdn-error")
    await expect(field).to_be_visible()
    await expect(field).to_contain_text("手机号码")
    await expect(page.locator("#msisdn")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#error")).to_be_hidden()
    await expect(page.locator("#step-number")).to_be_visible()
    await shot(page, "09-bad-number")

    await page.click("#lang")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("h1")).to_have_text("Call list self-service")
    await expect(field).to_contain_text("Mobile number is not valid")
    await expect(page.locator("#send-code")).to_have_text("Send code")
    await expect(page.locator("#lang")).to_have_text("中文")
    await shot(page, "10-english")

    await page.reload()  # the choice is remembered (the language only: nothing of the customer's)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.locator("#send-code")).to_have_text("Send code")
    await page.click("#lang")
    await expect(page.locator("#send-code")).to_have_text("获取验证码")


async def test_an_expired_session_goes_back_to_the_start(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway, token_idle=1)
    page = await open_page(h)
    ui = SelfService(page)
    await ui.sign_in(h, ORDINARY)
    await asyncio.sleep(1.5)  # the token's idle limit passes (the page's own is longer)
    await page.click(f"#months button[data-month='{month(-1)}']")
    await expect(page.locator("#step-number")).to_be_visible()
    await expect(page.locator("#error")).to_contain_text("会话已过期")
    assert await ui.rows() == 0
    await expect(page.locator("#months button")).to_have_count(0)


async def test_a_failed_bot_challenge(make_gateway: Any, open_page: OpenPage) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0", web_channel=True, web_challenge="dev-fail")
    page = await open_page(h)
    await SelfService(page).request_code(ORDINARY)
    await expect(page.locator("#error")).to_contain_text("安全验证未通过")
    await expect(page.locator("#step-number")).to_be_visible()


async def test_a_clerk_terminal_is_refused(make_gateway: Any, open_page: OpenPage) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0")
    page = await open_page(h, kiosk=True, viewport=KIOSK, cert="clerk-H001-T07")
    await SelfService(page).request_code(ORDINARY)
    await expect(page.locator("#error")).to_contain_text("无权")


@pytest.fixture
async def billing_proc(tmp_path: Path) -> AsyncIterator[BillingProc]:
    """A billing simulator in its own process, which the test may kill."""
    proc = await BillingProc(tmp_path / "billing.log").start_async()
    try:
        yield proc
    finally:
        proc.kill()


async def test_a_billing_outage_reads_unavailable(make_gateway: Any, open_page: OpenPage,
                                                  billing_proc: BillingProc) -> None:
    h = await web_gateway(make_gateway, billing_target=billing_proc.address, billing_timeout=1.0)
    page = await open_page(h)
    ui = SelfService(page)
    await ui.sign_in(h, ORDINARY)
    billing_proc.kill()
    await page.click(f"#months button[data-month='{month(-1)}']")
    await expect(page.locator("#calls-status")).to_have_attribute("data-state", "stopped")
    await expect(page.locator("#error")).to_contain_text("服务暂时不可用")
    await expect(page.locator("#step-calls")).to_be_visible()  # still signed in: the customer may try again
    await shot(page, "12-unavailable")


async def test_a_lost_csrf_cookie_asks_for_a_reload(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway)
    page = await open_page(h)
    await page.context.clear_cookies(name="__Host-hallgate-csrf")
    await SelfService(page).request_code(ORDINARY)
    await expect(page.locator("#error")).to_contain_text("请刷新页面")
    await page.reload()  # the page sets a new one: the call goes through again
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await SelfService(page).request_code(ORDINARY)
    await expect(page.locator("#step-proof")).to_be_visible()
