"""A heavy user's month (20,000+ records) in the browser: every record arrives and is counted, the
list is virtual (a few dozen rows in the DOM, whatever the month holds), and scrolling reaches the
last record."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import OpenPage, shot
from tests.browser.pages import SelfService, web_gateway
from tests.support.dates import month
from tests.support.subscribers import HEAVY

pytestmark = pytest.mark.timeout(180)

MAX_DOM_ROWS = 200

# Records seen by the page while the month was still arriving (the list grows as they come).
WATCH_LOADING = """() => {
  window.__seen = [];
  const status = document.getElementById('calls-status');
  new MutationObserver(() => {
    if (status.dataset.state === 'loading') {
      window.__seen.push([Number(status.dataset.count), document.querySelectorAll('#calls-spacer .row').length]);
    }
  }).observe(status, {attributes: true, childList: true, characterData: true, subtree: true});
}"""


async def test_a_heavy_month_is_all_there_and_stays_light(make_gateway: Any, open_page: OpenPage) -> None:
    h = await web_gateway(make_gateway)
    page = await open_page(h)
    ui = SelfService(page)
    await ui.sign_in(h, HEAVY)
    which = month(-1)
    expected = h.billing.record_count(HEAVY, which)
    assert expected >= 20_000

    await page.evaluate(WATCH_LOADING)
    count = await ui.choose_month(which, wait_ms=90_000)
    assert count == expected
    seen = await page.evaluate("window.__seen")
    # Shown while arriving: the list had rows before the last record came.
    assert any(0 < n < expected and rows > 0 for n, rows in seen), seen[:5]
    assert await ui.rendered_rows() < MAX_DOM_ROWS
    spacer = await page.locator("#calls-spacer").evaluate("s => s.getBoundingClientRect().height")
    row_h = await page.locator("#calls-spacer .row").first.evaluate("r => r.getBoundingClientRect().height")
    assert spacer == pytest.approx(expected * row_h, abs=1)

    viewport = page.locator("#calls-viewport")
    for fraction in (0.25, 0.5, 0.75):
        at = int(expected * fraction)
        await viewport.evaluate("(v, y) => { v.scrollTop = y; }", at * row_h)
        await expect(page.locator(f"#calls-spacer .row[data-index='{at}']")).to_be_attached()
        assert await ui.rendered_rows() < MAX_DOM_ROWS

    await viewport.evaluate("v => { v.scrollTop = v.scrollHeight; }")
    last = h.billing.records(HEAVY, which, expected - 1, 1)[0]
    row = page.locator(f"#calls-spacer .row[data-index='{expected - 1}']")
    await expect(row).to_be_in_viewport()
    await expect(row.locator("time")).to_have_attribute("datetime", last.start_time.ToJsonString())
    if last.other_party:
        await expect(row.locator(".c-party")).to_have_text(last.other_party)
    assert await ui.rendered_rows() < MAX_DOM_ROWS
    await shot(page, "11-heavy-month-end")

    # Wheel scrolling (as a person would) keeps the DOM small too.
    await viewport.hover()
    for _ in range(20):
        await page.mouse.wheel(0, -2000)
    assert await ui.rendered_rows() < MAX_DOM_ROWS
