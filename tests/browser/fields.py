"""Filling a form field, checked: what the browser tests type is what the page then reads."""

from __future__ import annotations

from playwright.async_api import Page, expect


async def fill(page: Page, selector: str, value: str, attempts: int = 3) -> None:
    """`page.fill`, then read back. Playwright clears a field by selecting its text and sending one
    Delete key press, and under load a headless Chromium has lost that press: CI at 1c7872e applied
    the legal desk's filters with the previous case number still in its field, and the test then
    looked for a request the stale filter hid. Filling again is harmless; a field that still holds
    something else after that fails here, at the field, not later as a missing row."""
    field = page.locator(selector)
    for _ in range(attempts):
        await field.fill(value)
        if await field.input_value() == value:
            return
    await expect(field).to_have_value(value)
