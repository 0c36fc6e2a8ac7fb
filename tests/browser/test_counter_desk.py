"""The counter screen (issue 17, item 1) in chromium with the clerk terminal's certificate, against a
real gateway: staff sign-in with TOTP and the forced password change; a customer session by ID card
(the check character checked as typed) with the guided service password reset; one by PIN-pad
password + SMS code; the masked profile; close; the API's refusals in plain words next to their
fields; 1280x800 and a kiosk-sized display; and a clear refusal on any other terminal."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from gateway.domain import passwords
from tests.browser.conftest import DESKTOP, KIOSK, shot
from tests.browser.counter_screen import (
    CUSTOMER_COOKIE,
    STAFF_COOKIE,
    Counter,
    OpenCounter,
    counter_opener,
    misread_check_character,
)
from tests.browser.pages import audit_until, calls, in_order
from tests.support.staff import STAFF_PASSWORD, fresh_totp, next_totp

pytestmark = pytest.mark.timeout(240)

CUSTOMER = "13800000141"  # this file's own numbers; every reset is undone at teardown
OTHER_CUSTOMER = "13800000142"

@pytest.fixture
def open_counter(open_page: Any) -> OpenCounter:
    return counter_opener(open_page)


@pytest.fixture(autouse=True)
def restore_service_passwords(billing_data: Any) -> Any:
    yield
    for msisdn in (CUSTOMER, OTHER_CUSTOMER):
        billing_data.set_password(msisdn, billing_data.password_for(msisdn))


def good_new_password(h: Any, msisdn: str) -> str:
    owner = h.billing.owner_of(msisdn)
    for candidate in ("480273", "593817", "706294", "815360"):
        if candidate != h.billing.password_for(msisdn) and passwords.trivial_service_password(
                candidate, birth_date=owner.birth_date, document_number=owner.document_number, msisdn=msisdn) is None:
            return candidate
    raise AssertionError("no candidate password")


async def test_a_counter_session_by_id_card_with_a_reset_then_one_by_pin_pad(make_gateway: Any,
                                                                             open_counter: OpenCounter) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0")
    secret = await h.add_staff("C1", "clerk", hall="H001")
    page = await open_counter(h, viewport=DESKTOP)
    ui = Counter(page)
    await ui.at("sign-in")
    await expect(page.locator("#terminal")).to_contain_text("H001/clerk/T07")
    await shot(page, "desks/counter-01-sign-in")

    await ui.sign_in("C1", fresh_totp(secret))
    await ui.at("open")
    await expect(page.locator("#staff-who")).to_contain_text("C1")
    assert await ui.cookie(STAFF_COOKIE)

    # The ID card as printed, the check character checked as the number is typed.
    owner = h.billing.owner_of(CUSTOMER)
    await ui.choose(CUSTOMER, "PASSWORD_RESET")
    await ui.fill_card(owner, document_number=misread_check_character(owner.document_number))
    await expect(page.locator("#doc-check")).to_have_attribute("data-state", "check")
    await shot(page, "desks/counter-02-id-card-misread")
    await ui.open_session()  # a misread number never leaves the screen
    assert "校验位" in await ui.field_error("id_document.document_number")
    await page.fill("#doc-number", owner.document_number)
    await expect(page.locator("#doc-check")).to_have_attribute("data-state", "ok")
    await expect(page.locator("#e-doc-number")).to_be_hidden()
    await shot(page, "desks/counter-03-id-card")
    await ui.open_session()
    await ui.in_session()
    assert await ui.cookie(CUSTOMER_COOKIE)

    # The masked profile: never the full number, name or ID number.
    await expect(page.locator("#p-msisdn")).to_have_text(CUSTOMER[:3] + "****" + CUSTOMER[-4:])
    await expect(page.locator("#p-name")).to_have_text(owner.name[0] + "*" * max(len(owner.name) - 1, 1))
    await expect(page.locator("#p-document")).to_have_text("*" * 14 + owner.document_number[-4:])
    await expect(page.locator("#p-proved")).to_have_attribute("data-proof", "id_document")
    await expect(page.locator("#p-purpose")).to_have_attribute("data-purpose", "SESSION_PURPOSE_PASSWORD_RESET")
    await expect(page.locator("#reset-needs")).to_be_hidden()
    text = await page.locator("main").inner_text()
    assert CUSTOMER not in text and owner.document_number not in text and owner.name not in text
    await shot(page, "desks/counter-04-profile")

    # The guided reset: the customer types the new password twice.
    await page.click("#start-reset")
    await page.fill("#new-pw", "135790")
    await page.fill("#new-pw-2", "135791")
    await page.click("#do-reset")
    assert "不一致" in await ui.field_error("new_service_password_again")
    await page.fill("#new-pw", "123456")  # the API refuses a sequence: said next to the field
    await page.fill("#new-pw-2", "123456")
    await page.click("#do-reset")
    assert "连续" in await ui.field_error("new_service_password")
    await shot(page, "desks/counter-05-reset-refused")
    new = good_new_password(h, CUSTOMER)
    await page.fill("#new-pw", new)
    await page.fill("#new-pw-2", new)
    await page.click("#do-reset")
    await expect(page.locator("#reset-done")).to_be_visible()
    await expect(page.locator("#form-reset")).to_be_hidden()
    await shot(page, "desks/counter-06-reset-done")

    await page.click("#close-session")
    await ui.at("open")
    await expect(page.locator("#notice")).to_be_visible()
    assert await page.locator("#p-msisdn").text_content() == ""
    await ui.cookie_gone(CUSTOMER_COOKIE)
    await shot(page, "desks/counter-07-session-closed")

    # A session by PIN pad: the new password works, with the SMS code the phone got.
    await ui.choose(CUSTOMER, "BILL_ENQUIRY")
    await page.check("#proof-pin")
    await page.click("#send-code")
    await expect(page.locator("#code-sent")).to_be_visible()
    await page.fill("#pin-password", new)
    await page.fill("#pin-code", await h.last_code(CUSTOMER))
    await shot(page, "desks/counter-08-pin-pad")
    await ui.open_session()
    await ui.in_session()
    await expect(page.locator("#p-proved")).to_have_attribute("data-proof", "password_and_code")
    await expect(page.locator("#reset-needs")).to_be_visible()
    await page.click("#check-delivery")
    await expect(page.locator("#delivery")).to_be_visible()
    await shot(page, "desks/counter-09-profile-pin-pad")

    # A reset outside a password-reset session: the API's refusal, in plain words.
    await page.click("#start-reset")
    other = good_new_password(h, CUSTOMER)
    await page.fill("#new-pw", other)
    await page.fill("#new-pw-2", other)
    await page.click("#do-reset")
    assert await ui.error_key() == "errPurposeMismatch"
    assert "账单咨询" in await ui.error_text()
    await shot(page, "desks/counter-10-purpose-mismatch")

    await page.click("#sign-out")
    await ui.at("sign-in")
    await expect(page.locator("#notice")).to_be_visible()
    await ui.cookie_gone(STAFF_COOKIE)
    await ui.cookie_gone(CUSTOMER_COOKIE)
    await shot(page, "desks/counter-11-signed-out")

    flow = [("SignIn", "OK"), ("OpenCustomerSession", "OK"), ("GetCustomerProfile", "OK"),
            ("ResetServicePassword", "INVALID_ARGUMENT"), ("ResetServicePassword", "OK"),
            ("CloseCustomerSession", "OK"), ("RequestCustomerCode", "OK"), ("OpenCustomerSession", "OK"),
            ("GetCodeDelivery", "OK"), ("ResetServicePassword", "PERMISSION_DENIED"),
            ("CloseCustomerSession", "OK"), ("SignOut", "OK")]
    events = await audit_until(h, lambda ev: ("SignOut", "OK") in calls(ev, "clerk"))
    assert in_order(calls(events, "clerk"), flow), calls(events, "clerk")
    assert not any("ListCallDetails" in e["method"] for e in events)


async def test_refusals_in_plain_words(make_gateway: Any, open_counter: OpenCounter) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0")
    secret = await h.add_staff("C2", "clerk", hall="H001")
    other_hall = await h.add_staff("C3", "clerk", hall="H002")
    page = await open_counter(h)
    ui = Counter(page)

    await ui.sign_in("C2", fresh_totp(secret), password="wrong-password-1")
    assert await ui.error_key() == "errStaffCredentials"
    await expect(page.locator("#staff-password")).to_have_value("")
    await expect(page.locator("#totp")).to_have_value("")
    await shot(page, "desks/counter-12-wrong-credentials")

    await ui.sign_in("C2", "12ab")  # a field the API names: said next to it
    assert "动态码" in await ui.field_error("totp_code")

    await ui.sign_in("C3", fresh_totp(other_hall))
    assert await ui.error_key() == "errWrongTerminal"

    await ui.sign_in("C2", fresh_totp(secret))
    await ui.at("open")

    owner = h.billing.owner_of(OTHER_CUSTOMER)
    await ui.choose(OTHER_CUSTOMER, "COMPLAINT")  # a complaint needs a reason
    await ui.fill_card(owner)
    await ui.open_session()
    assert "事由说明" in await ui.field_error("reason")
    await shot(page, "desks/counter-13-reason-required")

    await ui.choose(OTHER_CUSTOMER, "COMPLAINT", reason="billing dispute")
    await ui.fill_card(owner, name=owner.name[0] + "某某")  # not the owner: one answer for any mismatch
    await ui.open_session()
    assert await ui.error_key() == "errCustomerMismatch"
    await shot(page, "desks/counter-14-not-verified")

    other_day = ("1990-01-02" if owner.birth_date != "1990-01-02" else "1990-01-03")
    await page.fill("#doc-name", owner.name)
    await ui.birth_date(other_day)  # disagrees with the number: said as typed, and by the API
    assert "不符" in await ui.field_error("id_document.birth_date")
    await ui.open_session()
    assert "出生日期" in await ui.field_error("id_document.birth_date")

    # English, on request.
    await page.click("#lang")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    assert "Birth date" in await ui.field_error("id_document.birth_date")
    await shot(page, "desks/counter-15-english")
    await page.click("#lang")

    # Five wrong sign-ins lock the account: the wait is said.
    await page.click("#sign-out")
    await ui.at("sign-in")
    for _ in range(5):
        await ui.sign_in("C2", "000000", password="wrong-password-1")
        await expect(page.locator("#error")).to_be_visible()
    assert await ui.error_key() == "errStaffLocked"
    assert "分钟" in await ui.error_text()
    await shot(page, "desks/counter-16-locked")
    events = await audit_until(h, lambda ev: ("OpenCustomerSession", "UNAUTHENTICATED") in calls(ev, "clerk"))
    assert ("OpenCustomerSession", "INVALID_ARGUMENT") in calls(events, "clerk")


async def test_forced_password_change_on_a_kiosk_sized_display(make_gateway: Any, open_counter: OpenCounter) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0")
    secret = await h.add_staff("C4", "clerk", hall="H001", changed_days_ago=400)
    page = await open_counter(h, viewport=KIOSK)
    ui = Counter(page)
    box = await page.locator("#sign-in").bounding_box()
    assert box and box["height"] >= 48  # touch targets
    await shot(page, "desks/counter-17-kiosk-size-sign-in")

    await ui.sign_in("C4", next_totp(secret))
    await ui.at("change")
    assert await ui.error_key() == "errPasswordExpired"
    await page.fill("#new-password", "short1")
    await page.fill("#new-password-2", "short1")
    await page.fill("#change-totp", "000000")
    await page.click("#change-password")
    assert "8" in await ui.field_error("new_password")  # the API's rule, next to the field
    await shot(page, "desks/counter-18-password-change")
    new = "Counter2027x"
    await page.fill("#new-password", new)
    await page.fill("#new-password-2", new)
    await page.fill("#change-totp", next_totp(secret))
    await page.click("#change-password")
    await ui.at("sign-in")
    await expect(page.locator("#notice")).to_be_visible()
    await expect(page.locator("#staff-id")).to_have_value("C4")

    await ui.sign_in("C4", next_totp(secret), password=new)
    await ui.at("open")
    owner = h.billing.owner_of(OTHER_CUSTOMER)
    await ui.choose(OTHER_CUSTOMER, "SIM_REPLACEMENT")
    await ui.fill_card(owner)
    await ui.open_session()
    await ui.in_session()
    await shot(page, "desks/counter-19-kiosk-size-profile")
    await page.click("#close-session")
    await ui.at("open")
    events = await audit_until(h, lambda ev: ("CloseCustomerSession", "OK") in calls(ev, "clerk"))
    assert in_order(calls(events, "clerk"), [("SignIn", "FAILED_PRECONDITION"), ("ChangePassword", "OK"),
                                             ("SignIn", "OK"), ("OpenCustomerSession", "OK")])
    assert STAFF_PASSWORD != new


async def test_another_terminal_gets_a_clear_refusal(make_gateway: Any, open_counter: OpenCounter) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0")
    seen = {"kiosk-H001-K01": "自助终端", "legal-B01-L01": "法务终端", None: "未提供终端证书"}
    for cert, what in seen.items():
        page = await open_counter(h, cert=cert)
        await expect(page.locator("#refusal")).to_be_visible()
        await expect(page.locator("#refusal")).to_contain_text("柜台终端")
        await expect(page.locator("#refusal-text")).to_contain_text(what)
        assert await page.locator("main form").count() == 0  # nothing to type into
        assert await page.locator("main input").count() == 0
        if cert == "kiosk-H001-K01":
            await shot(page, "desks/counter-20-refused-kiosk")
        if cert == "legal-B01-L01":
            await page.click("#lang")
            await expect(page.locator("#refusal")).to_contain_text("works only on a hall clerk terminal")
            await shot(page, "desks/counter-21-refused-legal-english")
            await page.click("#lang")
    assert not [e for e in await h.audit_events() if e.get("method", "").startswith("/hallgate.v1.StaffService")]


async def test_idle_clears_the_customer_then_signs_the_clerk_out(make_gateway: Any, open_counter: OpenCounter) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0")
    secret = await h.add_staff("C5", "clerk", hall="H001")
    page = await open_counter(h, clock=True)
    ui = Counter(page)
    await ui.sign_in("C5", fresh_totp(secret))
    await ui.at("open")
    owner = h.billing.owner_of(OTHER_CUSTOMER)
    await ui.choose(OTHER_CUSTOMER, "PLAN_CHANGE")
    await ui.fill_card(owner)
    await ui.open_session()
    await ui.in_session()

    await page.clock.fast_forward("10:01")  # the customer session's idle time (600 s) has passed
    await ui.at("open")
    await expect(page.locator("#notice")).to_be_visible()
    assert await page.locator("#p-msisdn").text_content() == ""
    await ui.cookie_gone(CUSTOMER_COOKIE)

    await page.clock.fast_forward("05:00")  # and the staff session's (900 s)
    await ui.at("sign-in")
    await ui.cookie_gone(STAFF_COOKIE)
    events = await audit_until(h, lambda ev: ("SignOut", "OK") in calls(ev, "clerk"))
    assert in_order(calls(events, "clerk"), [("OpenCustomerSession", "OK"), ("CloseCustomerSession", "OK"),
                                             ("SignOut", "OK")])
