"""The audit desk in a real browser with the audit terminal's certificate, against a real gateway:
sign-in with TOTP; queries by subscriber, staff id, terminal, hall, channel, decision, method and
time that find the trail made earlier in the test, as a table with paging and a chart of events per
day; an export that verifies offline; chain status with a tampered event named at its seq;
incidents and the archive-loan calls; the API's errors in plain words; 1280x800 and a kiosk-sized
display; a clear refusal on any other terminal."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from gateway.domain import audit_chain as ac
from tests.browser.audit_desk import (
    AuditDesk,
    seed_trail,
    stored,
    tamper_denied,
    verify_export,
)
from tests.browser.conftest import DESKTOP, KIOSK, OpenPage, shot
from tests.browser.fields import fill
from tests.support.staff import STAFF_PASSWORD, next_totp
from tests.support.subscribers import ORDINARY
from tests.support.tls import AUDIT_CERT, CLERK_CERT, KIOSK_CERT

pytestmark = pytest.mark.timeout(240)

STAFF_COOKIE = "__Host-hallgate-staff"


async def desk_gateway(make_gateway: Any) -> Any:
    return await make_gateway(browser_listen="127.0.0.1:0")


async def staff_cookie(page: Page) -> dict[str, Any] | None:
    return next((c for c in await page.context.cookies() if c["name"] == STAFF_COOKIE), None)


def local(dt: datetime) -> str:
    """A datetime-local input's value in the page's zone (the context runs in Asia/Shanghai)."""
    from zoneinfo import ZoneInfo
    return dt.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M:%S")


async def test_an_auditor_finds_the_trail_exports_it_and_sees_a_tampered_event_as_a_break(
        make_gateway: Any, open_page: OpenPage) -> None:
    h = await desk_gateway(make_gateway)
    trail = await seed_trail(h)
    secret = await h.add_staff("A1", "auditor", hall="B01")
    page = await open_page(h, kiosk=True, cert=AUDIT_CERT, viewport=DESKTOP)
    desk = AuditDesk(page)
    await desk.open(h)
    await expect(page.locator("body")).to_have_attribute("data-channel", "audit")
    await expect(page.locator("#terminal")).to_have_text("B01/audit/A01")
    await expect(page.locator("#step-sign-in")).to_be_visible()
    await shot(page, "desks/audit-01-sign-in")

    await desk.sign_in("A1", secret)
    await desk.signed_in()
    assert await staff_cookie(page) is not None  # HttpOnly: the page's scripts never see it
    assert await page.evaluate("document.cookie.includes('hallgate-staff')") is False
    await expect(page.locator("#who")).to_contain_text("A1")

    # Who touched this number: the kiosk sign-in and the call list.
    n = await desk.query(msisdn=ORDINARY)
    methods = await desk.column(5)
    assert n == len(methods) >= 4
    assert {"RequestOneTimeCode", "Authenticate"} <= set(methods)
    assert any(m.startswith("ListCallDetails") for m in methods)
    subscribers = set(await desk.column(6))
    assert subscribers == {ORDINARY[:3] + "****" + ORDINARY[-4:]}, subscribers  # masked, never the number
    bars = page.locator("#chart .bar")
    await expect(bars).to_have_count(7)  # a week at least, ending on the last day with events: today
    await expect(bars.last).to_have_attribute("data-total", str(n))
    await expect(page.locator("#chart .seg.s-kiosk")).to_have_count(1)
    await shot(page, "desks/audit-02-query-subscriber")

    # The other filters, each against the stored trail.
    events = await h.audit_events()
    clerk_at_t07 = [e for e in events if e.get("terminal") == "H001/clerk/T07"]
    assert await desk.query(staff="C1001") == len([e for e in events if e.get("staff_id") == "C1001"])
    assert set(await desk.column(4)) == {"C1001 · 营业员"}
    assert await desk.query(terminal="H001/clerk/T07") == len(clerk_at_t07)
    assert await desk.query(hall="H001") == len([e for e in events if e.get("hall") == "H001"])
    assert await desk.query(channel="kiosk") == len([e for e in events if e.get("channel") == "kiosk"])
    assert set(await desk.column(2)) == {"自助终端"}
    denied = [e for e in events if e.get("decision") == "denied"]
    assert await desk.query(decision="denied") == len(denied) >= 1
    assert set(await desk.column(7)) == {"拒绝"}
    assert await desk.query(method="RequestLoan") == 1
    now = datetime.now().astimezone()
    # A query about a number is itself on record about it: each one adds its opening and closing events.
    before = await desk.query(msisdn=ORDINARY)
    assert before == n + 2
    assert await desk.query(msisdn=ORDINARY, start=local(now - timedelta(hours=1)),
                            end=local(now + timedelta(minutes=5))) == before + 2
    assert await desk.query(msisdn=ORDINARY, end=local(now - timedelta(hours=1))) == 0
    await expect(page.locator("#query-status")).to_have_text("没有符合条件的事件。")
    await expect(page.locator("#results")).to_be_hidden()

    # Everything: paging and the chart by channel and by decision.
    total = await desk.query()
    assert total > 25
    await page.select_option("#page-size", "10")
    label = page.locator("#page-label")
    pages = -(-total // 10)
    await expect(label).to_have_attribute("data-pages", str(pages))
    first = await desk.seqs()
    assert len(first) == 10 and first == sorted(first)
    await page.click("#page-next")
    await expect(label).to_have_attribute("data-page", "2")
    second = await desk.seqs()
    assert second[0] > first[-1] and len(second) == 10
    await page.click("#page-last")
    await expect(label).to_have_attribute("data-page", str(pages))
    assert len(await desk.seqs()) == total - 10 * (pages - 1)
    await page.click("#page-first")
    await expect(label).to_have_attribute("data-page", "1")
    for channel in ("kiosk", "clerk", "audit"):
        await expect(page.locator(f"#chart .seg.s-{channel}")).to_have_count(1)
    await expect(page.locator("#chart .bar").last).to_have_attribute("data-total", str(total))
    await page.locator("#results").evaluate("e => e.scrollIntoView()")
    await shot(page, "desks/audit-03-all-events-paged")
    await page.locator("#events-body tr.d-denied").first.click()  # the refusal: every stored field, seal included
    await expect(page.locator("#detail")).to_be_visible()
    await expect(page.locator("#detail-fields")).to_contain_text("wrong_channel")
    await expect(page.locator("#detail-fields")).to_contain_text("mac")
    await page.locator("#detail").scroll_into_view_if_needed()
    await shot(page, "desks/audit-04-event-detail")
    await page.click("#by-decision")
    await expect(page.locator("#chart .seg.s-denied")).to_have_count(1)
    await expect(page.locator("#chart .seg.s-allowed")).to_have_count(1)
    await page.locator("#chart").scroll_into_view_if_needed()
    await shot(page, "desks/audit-05-chart-by-decision")

    # Export the kiosk's events: the downloaded file verifies offline, and holds exactly them.
    kiosk_ids = [i for i, f in await stored(h) if f.get("channel") == "kiosk"]
    assert await desk.query(channel="kiosk") == len(kiosk_ids)
    await page.click("#export")
    link = page.locator("#export-link")
    await expect(link).to_be_visible()
    await expect(page.locator("#export-status")).to_have_attribute("data-state", "done")
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename.startswith("audit-export-") and download.suggested_filename.endswith(".jsonl")
    data = (await download.path()).read_bytes()
    lines = verify_export(h, data)
    assert [i for i, _ in lines] == kiosk_ids
    import hashlib
    await expect(page.locator("#export-facts dd[data-sha]")).to_have_text(hashlib.sha256(data).hexdigest())
    await expect(page.locator("#export-facts dd[data-count]")).to_have_attribute("data-count", str(len(kiosk_ids)))
    await shot(page, "desks/audit-06-export")
    # The whole trail, unfiltered: it verifies as the chain itself.
    await desk.query()
    await page.click("#export")
    await expect(page.locator("#export-status")).to_have_attribute("data-state", "done")
    async with page.expect_download() as info:
        await page.locator("#export-link").click()
    whole = (await (await info.value).path()).read_bytes()
    entries = verify_export(h, whole)
    keys, _ = h.settings.audit_keys()
    offline = ac.verify_entries(h.settings.audit_chain, keys, entries)
    assert offline.ok and offline.checked == len(entries)
    await expect(page.locator("#export-facts")).to_contain_text(f"{len(entries) - 1} / {len(entries) - 1}")

    # Chain status: intact; then an event edited in Redis is named at its seq.
    await desk.tab("chain")
    await page.click("#verify-new")
    verdict = page.locator("#chain-result")
    await expect(verdict).to_have_attribute("data-ok", "true")
    await expect(page.locator("#chain-verdict")).to_have_text("链完整")
    assert int(await page.locator("#chain-facts dd[data-checked]").get_attribute("data-checked") or 0) > 0
    await expect(page.locator("#chain-facts dd[data-from]")).to_have_attribute("data-from", "genesis")
    first_through = await page.locator("#chain-facts dd[data-verified-through]").get_attribute("data-verified-through")
    assert first_through == await page.locator("#chain-facts dd[data-last-checked]").get_attribute("data-last-checked")
    assert int(first_through or 0) > 0  # a verified position recorded at the newest event checked
    await expect(page.locator("#chain-facts dd[data-checkpoint]")).to_have_attribute("data-checkpoint", "—")
    await shot(page, "desks/audit-07-chain-intact")
    await page.click("#verify-new")  # the next run starts from the signed verified position
    await expect(page.locator("#chain-facts dd[data-from]")).to_have_attribute("data-from", "verified")
    # The positions: this run started after the last verified position, and recorded a newer one.
    after = int(await page.locator("#chain-facts dd[data-started-after]").get_attribute("data-started-after") or 0)
    through = await page.locator("#chain-facts dd[data-verified-through]").get_attribute("data-verified-through")
    last = await page.locator("#chain-facts dd[data-last-checked]").get_attribute("data-last-checked")
    assert after > 0 and through is not None and through != "—" and int(through) >= after
    assert last is not None and (last == "—" or int(last) == int(through))
    seq = await tamper_denied(h)
    await page.click("#verify-all")
    await expect(verdict).to_have_attribute("data-ok", "false")
    await expect(page.locator("#chain-verdict")).to_contain_text(f"序号 {seq} 处")
    await expect(page.locator("#chain-facts dd[data-seq]")).to_have_text(str(seq))
    await expect(page.locator("#chain-facts dd[data-reason]")).to_have_text("事件内容被修改")
    await expect(page.locator("#chain-facts dd[data-from]")).to_contain_text("整条链")
    await shot(page, "desks/audit-08-chain-broken")
    await page.click("#show-break")
    await expect(page.locator(f"#events-body tr[data-seq='{seq}']")).to_have_class(re.compile("selected"))
    await expect(page.locator("#detail-title")).to_have_text(f"事件 {seq}")

    # Incidents: auditors read them.
    await desk.tab("incidents")
    await page.click("#load-incidents")
    row = page.locator(f"#incidents-body tr[data-id='{trail.incident_id}']")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("已报告")
    await expect(row).to_contain_text("员工 C1001")
    await shot(page, "desks/audit-09-incidents")

    # Archive loans: from the trail (the register itself is the hall's).
    await desk.tab("loans")
    await page.fill("#l-hall", "H001")
    await page.click("#load-loans")
    await expect(page.locator("#loans-status")).to_have_attribute("data-state", "done")
    rows = page.locator("#loans-body tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("RegisterDocument")
    await expect(rows.nth(0)).to_contain_text(trail.archive_id)
    await expect(rows.nth(1)).to_contain_text("RequestLoan")
    await expect(rows.nth(1)).to_contain_text(trail.loan_id)
    await shot(page, "desks/audit-10-loans")

    # English.
    await page.click("#lang")
    await expect(page.locator("h1")).to_have_text("Audit desk")
    await expect(page.locator("#loans-status")).to_have_text("2 loan calls")
    await desk.tab("chain")
    await expect(page.locator("#chain-verdict")).to_have_text(f"The chain is broken at seq {seq}")
    await shot(page, "desks/audit-11-english")
    await page.click("#lang")

    # Sign out: the screen is cleared and the session cookie is gone.
    await page.click("#sign-out")
    await expect(page.locator("#step-sign-in")).to_be_visible()
    await expect(page.locator("#notice")).to_be_visible()
    assert await page.locator("#events-body tr").count() == 0
    assert ORDINARY[-4:] not in await page.locator("main").inner_text()
    for _ in range(100):
        if await staff_cookie(page) is None:
            break
        await page.wait_for_timeout(50)
    assert await staff_cookie(page) is None
    await shot(page, "desks/audit-12-signed-out")


async def test_a_kiosk_sized_display(make_gateway: Any, open_page: OpenPage) -> None:
    h = await desk_gateway(make_gateway)
    await seed_trail(h)
    secret = await h.add_staff("A1", "auditor", hall="B01")
    page = await open_page(h, kiosk=True, cert=AUDIT_CERT, viewport=KIOSK)
    desk = AuditDesk(page)
    await desk.open(h)
    await expect(page.locator("body")).to_have_class(re.compile("kiosk"))
    await desk.sign_in("A1", secret)
    await desk.signed_in()
    assert await desk.query(msisdn=ORDINARY) >= 4
    # Nothing wider than the screen: the table scrolls inside its own box if it must.
    assert await page.evaluate("document.documentElement.scrollWidth") <= KIOSK["width"]
    await shot(page, "desks/audit-13-kiosk-display")


@pytest.mark.parametrize("cert", [CLERK_CERT, KIOSK_CERT])
async def test_another_terminal_is_refused_clearly(make_gateway: Any, open_page: OpenPage, cert: str) -> None:
    h = await desk_gateway(make_gateway)
    page = await open_page(h, kiosk=True, cert=cert, viewport=DESKTOP)
    api: list[str] = []
    page.on("request", lambda r: api.append(r.url) if "/hallgate.v1." in r.url else None)
    await AuditDesk(page).open(h)
    refusal = page.locator("#refusal")
    await expect(refusal).to_be_visible()
    terminal = "H001/clerk/T07" if cert == CLERK_CERT else "H001/kiosk/K01"
    await expect(page.locator("#refusal-text")).to_contain_text(terminal)
    await expect(page.locator("#refusal-text")).to_contain_text("柜台" if cert == CLERK_CERT else "自助终端")
    for hidden in ("#step-sign-in", "#desk"):
        await expect(page.locator(hidden)).to_be_hidden()
    assert api == []  # the desk makes no call at all
    if cert == CLERK_CERT:
        await shot(page, "desks/audit-14-wrong-terminal")


async def test_the_apis_errors_in_plain_words(make_gateway: Any, open_page: OpenPage) -> None:
    h = await desk_gateway(make_gateway)
    secret = await h.add_staff("A1", "auditor", hall="B01")
    clerk_secret = await h.add_staff("C9", "clerk", hall="H001")
    old_secret = await h.add_staff("A2", "auditor", hall="B01", changed_days_ago=400)
    page = await open_page(h, kiosk=True, cert=AUDIT_CERT, viewport=DESKTOP, path="/audit/")
    desk = AuditDesk(page)
    await desk.open(h)
    # A wrong code: the API does not say which credential failed; the desk says what to do.
    await desk.sign_in("A1", secret, code="000000")
    assert "动态码只能使用一次" in await desk.error_text()
    await shot(page, "desks/audit-15-sign-in-refused")
    # A clerk on the audit terminal.
    await desk.sign_in("C9", clerk_secret)
    await expect(page.locator("#error")).to_have_text("您的角色不能在此终端登录。")
    # An expired password: the change form, then sign-in with the new one.
    await desk.sign_in("A2", old_secret, code=next_totp(old_secret))  # three codes: previous, current, next step
    await expect(page.locator("#step-change")).to_be_visible()
    await expect(page.locator("#error")).to_have_attribute("data-key", "errPasswordExpired")
    await expect(page.locator("#error")).to_contain_text("您的密码已过期")
    await expect(page.locator("#c-staff-id")).to_have_value("A2")
    await shot(page, "desks/audit-16-password-expired")
    await page.fill("#c-current", STAFF_PASSWORD)
    await page.fill("#c-new", "audit2027x")
    await page.fill("#c-new2", "audit2027y")
    await page.click("#change")
    await expect(page.locator("#new_password2-error")).to_be_visible()
    await page.fill("#c-new2", "audit2027x")
    await page.fill("#c-totp", next_totp(old_secret))
    await page.click("#change")
    await expect(page.locator("#notice")).to_have_attribute("data-key", "passwordChanged")
    await expect(page.locator("#notice")).to_contain_text("密码已修改")
    await desk.sign_in("A2", old_secret, password="audit2027x", code=next_totp(old_secret))
    await desk.signed_in()
    # Fields the server refuses are named at the field.
    await page.fill("#f-msisdn", "12345")
    await page.click("#run-query")
    await expect(page.locator("#msisdn-error")).to_have_text("须为 11 位手机号码")
    await expect(page.locator("#f-msisdn")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#error")).to_contain_text("用户号码")
    now = datetime.now().astimezone()
    await fill(page, "#f-msisdn", "")
    await page.fill("#f-start", local(now))
    await page.fill("#f-end", local(now - timedelta(days=1)))
    await page.fill("#f-terminal", "H001 clerk")
    await page.click("#run-query")
    await expect(page.locator("#end_time-error")).to_have_text("不能早于开始时间")
    await expect(page.locator("#terminal-error")).to_be_visible()
    await shot(page, "desks/audit-17-query-refused")
    # The session ended elsewhere (here: its cookie is gone): back to sign-in, said plainly.
    await page.context.clear_cookies(name="__Host-hallgate-staff")
    await page.click("#clear-query")
    await page.click("#run-query")
    await expect(page.locator("#step-sign-in")).to_be_visible()
    await expect(page.locator("#error")).to_have_attribute("data-key", "errSignInFirst")
    await expect(page.locator("#error")).to_contain_text("登录已失效")
