"""The legal desk (the branch legal department's terminal, R5) in Debian's chromium against a real
gateway, with the legal terminal's client certificate: staff sign-in with TOTP; the request register
and its filters; registration with the scanned letter from a file input; approval by another person
(the registrant's own approval refused in plain words); fulfilment into a signed package that the desk
verifies and that, downloaded, verifies offline; rejection, marking invalid and cancellation; the
request page with the letter inline, its targets, categories, window, history and the approval's
countdown; the API's refusals in plain words; and a clear refusal on any other terminal."""

from __future__ import annotations

import asyncio
import hashlib
import tarfile
from typing import Any

import pytest
from playwright.async_api import expect

from gateway.domain import delivery
from tests.browser.conftest import DESKTOP, KIOSK, OpenPage, shot
from tests.browser.legal_desk import LegalDeskPage, letter_pdf, payload, promote, public_key_pem
from tests.support.legal import desk, register_message
from tests.support.staff import STAFF_PASSWORD, fresh_totp, next_totp
from tests.support.subscribers import ORDINARY
from tests.support.tls import CLERK_CERT, LEGAL_CERT

pytestmark = pytest.mark.timeout(240)

async def legal_gateway(make_gateway: Any) -> Any:
    return await make_gateway(browser_listen="127.0.0.1:0")


async def open_desk(open_page: OpenPage, h: Any, cert: str = LEGAL_CERT) -> LegalDeskPage:
    page = await open_page(h, kiosk=True, cert=cert, viewport=DESKTOP)
    ui = LegalDeskPage(page)
    await ui.open(h)
    return ui


async def test_register_approve_fulfil_download_and_verify(make_gateway, open_page, tmp_path):
    h = await legal_gateway(make_gateway)
    officer_secret = await h.add_staff("L1001", "legal_officer", hall="B01")
    approver_secret = await h.add_staff("A2001", "legal_approver", hall="B01")
    letter = letter_pdf()
    letter_file = tmp_path / "letter.pdf"
    letter_file.write_bytes(letter)

    # The officer signs in with the TOTP code and registers the agency's letter.
    officer = await open_desk(open_page, h)
    await expect(officer.page.locator("body")).to_have_attribute("data-channel", "legal")
    await expect(officer.page.locator("#terminal")).to_contain_text("B01/legal/L01")
    await shot(officer.page, "desks/legal-01-sign-in")
    await officer.sign_in("L1001", officer_secret)
    await officer.signed_in()
    assert await officer.staff_cookie() is not None  # HttpOnly: the page never saw it
    await expect(officer.page.locator("#who")).to_contain_text("L1001")
    await officer.fill_registration(letter=letter_file)
    await shot(officer.page, "desks/legal-03-register")
    rid = await officer.submit_registration()
    assert "已登记" in await officer.notice_text()
    await officer.in_state("REQUEST_STATE_AWAITING_APPROVAL")
    # The request page: the letter inline (the very bytes uploaded), its file details, the rest.
    await officer.letter_shown(letter)
    sha = hashlib.sha256(letter).hexdigest()
    await expect(officer.page.locator("#q-letter [data-fact='sha256']")).to_have_text(sha)
    await expect(officer.page.locator("#q-letter [data-fact='size']")).not_to_be_empty()
    await expect(officer.page.locator("#q-letter-download")).to_have_attribute("download", f"{rid}-letter.pdf")
    await expect(officer.page.locator("#q-targets li")).to_have_text([ORDINARY])
    await expect(officer.page.locator("#q-categories li")).to_have_count(2)
    await expect(officer.page.locator("#q-history li")).to_have_count(1)
    await expect(officer.page.locator("#q-history li").first).to_contain_text("L1001")
    await expect(officer.page.locator("#act-approve")).to_be_hidden()  # an officer never approves
    await expect(officer.page.locator("#act-fulfil")).to_be_hidden()  # not approved yet
    await shot(officer.page, "desks/legal-04-request-registered")

    # Another person, an approver, finds it in the register by state, checks the letter and approves.
    approver = await open_desk(open_page, h)
    await approver.sign_in("A2001", approver_secret)
    await approver.signed_in()
    assert await approver.filter(state="REQUEST_STATE_AWAITING_APPROVAL") == [rid]
    await expect(approver.page.locator("#nav-register")).to_be_hidden()
    await shot(approver.page, "desks/legal-02-register-list")
    await approver.open_request(rid)
    # This browser never had the scan: the desk fetches it (GetLetter), checks it against the
    # registered SHA-256 and shows exactly the registered bytes.
    await approver.letter_shown(letter)
    events = await h.audit_events()
    assert any(e["method"].endswith("/GetLetter") and e["staff_id"] == "A2001" and e["code"] == "OK" for e in events)
    await expect(approver.page.locator("#act-approve")).to_be_visible()
    await shot(approver.page, "desks/legal-05-approver-letter")
    # No reason: the API's field violation, next to the field.
    await approver.decide("approve", "")
    await expect(approver.page.locator("[data-error-for='reason']")).to_be_visible()
    assert "理由" in await approver.error_text()
    await approver.decide("approve", "letter checked with the issuing agency by phone")
    assert rid in await approver.notice_text()
    await approver.in_state("REQUEST_STATE_AWAITING_DISCLOSURE")
    countdown = approver.page.locator("#q-countdown")
    await expect(countdown).to_be_visible()
    await expect(countdown).to_contain_text("29 天 23 小时")  # legal_approval_days: 30
    await expect(approver.page.locator("#q-history li")).to_have_count(2)
    approval = approver.page.locator("#q-history li").nth(1)
    await expect(approval).to_contain_text("A2001")
    await expect(approval).to_contain_text("letter checked with the issuing agency")
    await expect(approver.page.locator("#q-facts [data-fact='approved']")).to_contain_text("A2001")
    await expect(approver.page.locator("#act-fulfil")).to_be_hidden()  # approvers never fulfil
    await shot(approver.page, "desks/legal-06-approved-countdown")

    # The officer sees the deadline in the register and fulfils.
    await officer.page.click("#back")
    await officer.list_loaded()
    assert await officer.filter(deadline="week") == []
    assert await officer.filter(deadline="pending") == [rid]
    deadline = officer.page.locator(f"#requests-body tr[data-request-id='{rid}'] td.deadline")
    await expect(deadline).to_contain_text("29 天")
    await shot(officer.page, "desks/legal-07-register-deadlines")
    await officer.open_request(rid)
    await officer.decide("fulfil", "handed over to officer Chen on an encrypted drive")
    box = officer.page.locator("#q-delivery")
    await expect(box).to_be_visible()
    await expect(officer.page.locator("#d-status")).to_have_attribute("data-state", "done")
    await expect(officer.page.locator("#view-request")).to_have_attribute("data-state", "REQUEST_STATE_DISCLOSED")
    # Without the gateway's public key, everything but the signature is checked.
    await expect(box).to_have_attribute("data-verified", "partly")
    for check in ("content", "counts", "request", "scope"):
        await expect(box.locator(f"li[data-check='{check}']")).to_have_attribute("data-ok", "true")
    await expect(box.locator("li[data-check='signature']")).to_have_attribute("data-ok", "pending")
    await officer.page.set_input_files("#d-key", files=[payload("gateway.pub", public_key_pem(h))])
    await expect(box).to_have_attribute("data-verified", "yes")
    await expect(box.locator("li[data-check='signature']")).to_have_attribute("data-ok", "true")
    await expect(box.locator("li[data-check='key']")).to_have_attribute("data-ok", "true")
    await expect(box.locator("li.verdict")).to_contain_text("核验通过")
    await box.scroll_into_view_if_needed()
    await shot(officer.page, "desks/legal-08-fulfilled-verified")

    # The package downloaded is exactly what `hallgate legal verify` accepts.
    async with officer.page.expect_download() as info:
        await officer.page.click("#d-download")
    download = await info.value
    assert download.suggested_filename.startswith("DL-") and download.suggested_filename.endswith(".tar")
    tar_path = tmp_path / download.suggested_filename
    await download.save_as(tar_path)
    with tarfile.open(tar_path) as tar:
        names = sorted(m.name for m in tar.getmembers())
        tar.extractall(tmp_path / "unpacked", filter="data")
    package = tmp_path / "unpacked" / names[0]
    assert sorted(p.name for p in package.iterdir()) == ["manifest.json", "manifest.sig", "records.bin"]
    doc = delivery.verify_package(package, public_key_pem(h))
    assert doc["request_id"] == rid and doc["totals"]["call_details"] > 0
    assert doc["letter_sha256"] == hashlib.sha256(letter).hexdigest()

    # A wrong key is named as such: the signature does not verify.
    other = delivery.Signer(delivery.Ed25519PrivateKey.generate()).public_pem()
    await officer.page.set_input_files("#d-key", files=[payload("other.pub", other)])
    await expect(box).to_have_attribute("data-verified", "failed")
    await expect(box.locator("li[data-check='signature']")).to_have_attribute("data-ok", "false")

    # Later, on the approver's screen, only the signed manifest is left, and it verifies.
    await approver.page.click("#back")
    await approver.list_loaded()
    assert await approver.filter(state="REQUEST_STATE_DISCLOSED") == [rid]
    await approver.open_request(rid)
    await expect(approver.page.locator("#d-status")).to_have_attribute("data-state", "manifest")
    await approver.page.set_input_files("#d-key", files=[payload("gateway.pub", public_key_pem(h))])
    await expect(approver.page.locator("#q-delivery")).to_have_attribute("data-verified", "yes")
    await approver.page.locator("#q-delivery").scroll_into_view_if_needed()
    await expect(approver.page.locator("#q-history li")).to_have_count(4)  # registered, approved, disclosing, disclosed
    await shot(approver.page, "desks/legal-09-disclosed-history")

    # Signing out clears the screen and the staff cookie.
    await officer.sign_out()
    assert await officer.staff_cookie() is None
    assert rid not in await officer.page.locator("main").inner_text()


async def test_four_eyes_decisions_filters_and_errors_in_plain_words(make_gateway, open_page):
    h = await legal_gateway(make_gateway)
    registrant = await desk(h, "L1001", "legal_officer", hall="B01")
    approver_secret = await h.add_staff("A2001", "legal_approver", hall="B01")
    first = await registrant.register()
    second = await registrant.register(register_message(case_number="BJ-2026-XS-0098"))
    beijing = register_message(case_number="BJ-2026-XS-0099")
    beijing.agency.name = "北京市公安局"
    third = await registrant.register(beijing)

    # A wrong code: the API's one answer for any wrong credential, in plain words.
    ui = await open_desk(open_page, h)
    await ui.sign_in("A2001", approver_secret, code="000000")
    assert "动态码有误" in await ui.error_text()
    await expect(ui.page.locator("#staff-password")).to_have_value("")
    await shot(ui.page, "desks/legal-10-sign-in-refused")

    # The officer who registered it, promoted to approver since: still never its approver.
    await promote(h, "L1001", "legal_approver")
    await ui.sign_in("L1001", registrant.secret)
    await ui.signed_in()
    assert set(await ui.shown()) == {first.request_id, second.request_id, third.request_id}
    await ui.open_request(first.request_id)
    await ui.decide("approve", "I checked it myself")
    text = await ui.error_text()
    assert "双人审核" in text and "另一名法务审批人" in text
    await ui.in_state("REQUEST_STATE_AWAITING_APPROVAL")
    await shot(ui.page, "desks/legal-11-four-eyes-refused")
    await ui.sign_out()

    # Another approver: the filters by agency and case number; reject one, mark one invalid, and
    # cancel the third.
    await ui.sign_in("A2001", approver_secret)
    await ui.signed_in()
    assert await ui.filter(agency="北京市公安局") == [third.request_id]
    assert await ui.filter(case="bj-2026-xs-0098") == [second.request_id]  # case ignored, as the API does
    await ui.open_request(second.request_id)
    await ui.decide("reject", "the letter names no legal basis for call details")
    assert second.request_id in await ui.notice_text()
    await ui.in_state("REQUEST_STATE_REJECTED")
    await expect(ui.page.locator("#q-actions")).to_be_hidden()  # final
    await expect(ui.page.locator("#q-history li").last).to_contain_text("no legal basis")
    await shot(ui.page, "desks/legal-12-rejected")
    await ui.page.click("#back")
    await ui.list_loaded()
    await ui.filter()
    await ui.open_request(first.request_id)
    await ui.decide("invalid", "the badge numbers do not match the agency's register")
    await ui.in_state("REQUEST_STATE_INVALID")
    await ui.page.click("#back")
    await ui.list_loaded()
    await ui.open_request(third.request_id)
    await ui.decide("cancel", "the agency withdrew the request by phone")
    await ui.in_state("REQUEST_STATE_CANCELLED")
    await ui.page.click("#back")
    await ui.list_loaded()
    assert await ui.filter(state="REQUEST_STATE_CANCELLED") == [third.request_id]
    assert await ui.filter(state="REQUEST_STATE_AWAITING_APPROVAL") == []
    assert sorted(await ui.filter()) == sorted([first.request_id, second.request_id, third.request_id])
    await shot(ui.page, "desks/legal-13-register-final-states")

    # In English: the same register.
    await ui.page.click("#lang")
    await expect(ui.page.locator("html")).to_have_attribute("lang", "en")
    await expect(ui.page.locator("#h-list")).to_have_text("Request register")
    rejected = ui.page.locator(f"#requests-body tr[data-request-id='{second.request_id}']")
    await expect(rejected).to_contain_text("rejected")
    await shot(ui.page, "desks/legal-14-english")


async def test_the_deadline_filters_find_an_approval_older_than_the_first_page(make_gateway, open_page):
    """The register shows the newest 50 requests a page. An approval about to lapse may be older than
    all of them; the deadline filters still find it, and only what they name."""
    h = await make_gateway(browser_listen="127.0.0.1:0", legal_approval_days=5)
    registrant = await desk(h, "L1001", "legal_officer", hall="B01")
    approver = await desk(h, "A2001", "legal_approver", hall="B01")
    oldest = await registrant.register()
    await approver.approve(oldest.request_id)  # lapses in 5 days: within the week
    newer = await asyncio.gather(*(registrant.register(register_message(case_number=f"BJ-2026-XS-{i:04d}"))
                                   for i in range(55)))
    ui = await open_desk(open_page, h)
    await ui.sign_in("A2001", approver.secret)
    await ui.signed_in()
    first_page = await ui.shown()
    assert len(first_page) == 50 and oldest.request_id not in first_page
    assert await ui.filter(deadline="week") == [oldest.request_id]
    assert await ui.filter(deadline="pending") == [oldest.request_id]
    await expect(ui.page.locator("#more")).to_be_hidden()  # every page was read
    assert await ui.filter(deadline="lapsed") == []
    # A state filter and a deadline that needs another state: nothing can match both.
    assert await ui.filter(state="REQUEST_STATE_AWAITING_APPROVAL", deadline="week") == []
    assert len(await ui.filter(state="REQUEST_STATE_AWAITING_APPROVAL")) == 50
    assert {r.request_id for r in newer} >= set(await ui.shown())


async def test_a_registration_the_api_refuses_names_every_bad_field(make_gateway, open_page):
    h = await legal_gateway(make_gateway)
    secret = await h.add_staff("L1001", "legal_officer", hall="B01")
    ui = await open_desk(open_page, h)
    await ui.sign_in("L1001", secret)
    await ui.signed_in()
    # A county-level bureau, a number that is no number, no officers' badge: each named at its field.
    await ui.fill_registration(targets=("1380000",), level="AGENCY_LEVEL_COUNTY")
    await ui.page.fill("#r-officers .officer:nth-child(2) .officer-badge", "")
    await ui.page.click("#r-submit")
    await expect(ui.page.locator("#error")).to_be_visible()
    for field in ("agency.level", "targets", "officers"):
        await expect(ui.page.locator(f"[data-error-for='{field}']")).to_be_visible()
    await expect(ui.page.locator("#view-register")).to_be_visible()
    await shot(ui.page, "desks/legal-15-register-refused")


async def test_an_expired_password_is_changed_on_the_desk_then_used(make_gateway, open_page):
    h = await legal_gateway(make_gateway)
    secret = await h.add_staff("L3001", "legal_officer", hall="B01", changed_days_ago=400)
    ui = await open_desk(open_page, h)
    await ui.sign_in("L3001", secret, code=next_totp(secret))
    assert "密码已过期" in await ui.error_text()
    await expect(ui.page.locator("#view-change")).to_be_visible()
    await expect(ui.page.locator("#c-staff-id")).to_have_value("L3001")
    # The new password typed twice, differently: said here, nothing sent.
    await ui.page.fill("#c-current", STAFF_PASSWORD)
    await ui.page.fill("#c-new", "Legal2026desk")
    await ui.page.fill("#c-repeat", "Legal2026desx")
    await ui.page.click("#change")
    assert "不一致" in await ui.error_text()
    # Too short: the API's rule, at its field (checked before the code, which is not used up).
    await ui.page.fill("#c-current", STAFF_PASSWORD)
    await ui.page.fill("#c-new", "short1")
    await ui.page.fill("#c-repeat", "short1")
    await ui.page.fill("#c-totp", "000000")
    await ui.page.click("#change")
    await expect(ui.page.locator("[data-error-for='new_password']")).to_be_visible()
    await shot(ui.page, "desks/legal-17-password-change")
    await ui.page.fill("#c-current", STAFF_PASSWORD)
    await ui.page.fill("#c-new", "Legal2026desk")
    await ui.page.fill("#c-repeat", "Legal2026desk")
    await ui.page.fill("#c-totp", fresh_totp(secret))
    await ui.page.click("#change")
    assert "密码已修改" in await ui.notice_text()
    await expect(ui.page.locator("#staff-id")).to_have_value("L3001")
    await ui.sign_in("L3001", secret, password="Legal2026desk")
    await ui.signed_in()


async def test_another_terminal_gets_a_clear_refusal_and_calls_nothing(make_gateway, open_page):
    h = await legal_gateway(make_gateway)
    page = await open_page(h, kiosk=True, cert=CLERK_CERT, viewport=DESKTOP)
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/hallgate.v1." in r.url else None)
    ui = LegalDeskPage(page)
    await ui.open(h)
    await expect(page.locator("#view-refused")).to_be_visible()
    await expect(page.locator("#refused-text")).to_contain_text("H001/clerk/T07")
    await expect(page.locator("#view-refused")).to_contain_text("法务终端")
    await expect(page.locator("#view-sign-in")).to_be_hidden()
    await expect(page.locator("#nav")).to_be_hidden()
    await asyncio.sleep(0.2)
    assert calls == []
    await shot(page, "desks/legal-16-wrong-terminal")


async def test_the_desk_at_a_kiosk_sized_display(make_gateway: Any, open_page: OpenPage) -> None:
    """1080x1920: the register and a request's page with its letter, nothing wider than the screen."""
    h = await legal_gateway(make_gateway)
    registrant = await desk(h, "L1001", "legal_officer", hall="B01")
    rid = (await registrant.register()).request_id
    secret = await h.add_staff("A2001", "legal_approver", hall="B01")
    page = await open_page(h, kiosk=True, cert=LEGAL_CERT, viewport=KIOSK)
    ui = LegalDeskPage(page)
    await ui.open(h)
    await ui.sign_in("A2001", secret)
    await ui.signed_in()
    assert rid in await ui.filter(state="REQUEST_STATE_AWAITING_APPROVAL")
    assert await page.evaluate("document.documentElement.scrollWidth") <= KIOSK["width"]
    await ui.open_request(rid)
    await expect(page.locator("#act-approve")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= KIOSK["width"]
    await shot(page, "desks/legal-18-kiosk-display")
