"""The counter screen (gateway/transport/browser/static/counter/) as its tests use it: opening it
with a terminal's client certificate, and its steps by element id (the ids are the screen's contract
with these tests; the texts change with the language).

The screen calls StaffService and ClerkService, whose refusals chromium logs as failed resource
loads; conftest's watch excuses those for KioskService only, so the counter's pages are opened here,
with the same watch widened to the counter's two services (tests/browser/test_counter_desk.py
makes it its fixture `open_counter`). Anything else logged still fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import BrowserContext, Page, expect

from tests.browser.conftest import DESKTOP
from tests.support.staff import STAFF_PASSWORD

CLERK = "clerk-H001-T07"
STAFF_COOKIE = "__Host-hallgate-staff"
CUSTOMER_COOKIE = "__Host-hallgate-customer"
OpenCounter = Callable[..., Awaitable[Page]]


def counter_opener(open_page: Any) -> OpenCounter:
    """`page = await open_counter(h, cert=CLERK, viewport=DESKTOP)`: /counter/ through conftest's
    open_page, presenting that terminal certificate (None: none)."""
    async def factory(h: Any, cert: str | None = CLERK, viewport: dict[str, int] | None = None,
                      lang: str = "zh-CN", clock: bool = False) -> Page:
        return await open_page(h, kiosk=cert is not None, cert=cert or CLERK, viewport=viewport or DESKTOP,
                               clock=clock, path="/counter/", lang=lang)

    return factory


class Counter:
    def __init__(self, page: Page) -> None:
        self.page = page

    @property
    def context(self) -> BrowserContext:
        return self.page.context

    async def at(self, step: str) -> None:
        await expect(self.page.locator("body")).to_have_attribute("data-step", step)

    async def sign_in(self, staff_id: str, code: str, password: str = STAFF_PASSWORD) -> None:
        await self.page.fill("#staff-id", staff_id)
        await self.page.fill("#staff-password", password)
        await self.page.fill("#totp", code)
        await self.page.click("#sign-in")

    async def error_text(self) -> str:
        error = self.page.locator("#error")
        await expect(error).to_be_visible()
        return (await error.text_content() or "").strip()

    async def error_key(self) -> str:
        await expect(self.page.locator("#error")).to_be_visible()
        return await self.page.locator("#error").get_attribute("data-key") or ""

    async def field_error(self, field: str) -> str:
        el = self.page.locator(f"form:visible .field-error[data-for='{field}']")
        await expect(el).to_be_visible()
        return (await el.text_content() or "").strip()

    async def choose(self, msisdn: str, purpose: str, reason: str = "") -> None:
        await self.page.fill("#msisdn", msisdn)
        await self.page.select_option("#purpose", f"SESSION_PURPOSE_{purpose}")
        await self.page.fill("#reason", reason)

    async def fill_card(self, owner: Any, **misread: str) -> None:
        """The owner's ID card as the clerk reads it off the card, with `misread` fields."""
        card = {"name": owner.name, "birth_date": owner.birth_date, "sex": owner.sex,
                "document_number": owner.document_number, **misread}
        await self.page.check("#proof-id")
        await self.page.fill("#doc-name", card["name"])
        await self.page.check(f"#doc-sex-{card['sex']}")
        await self.birth_date(card["birth_date"])
        await self.page.fill("#doc-number", card["document_number"])

    async def birth_date(self, iso: str) -> None:
        """Typed as printed: 年 月 日 (1986年5月6日)."""
        y, m, d = iso.split("-")
        await self.page.fill("#doc-birth-y", y)
        await self.page.fill("#doc-birth-m", str(int(m)))
        await self.page.fill("#doc-birth-d", str(int(d)))

    async def open_session(self) -> None:
        await self.page.click("#open-session")

    async def in_session(self) -> None:
        await self.at("session")
        await expect(self.page.locator("#p-msisdn")).not_to_be_empty()

    async def cookie(self, name: str) -> Any:
        return next((c for c in await self.context.cookies() if c["name"] == name), None)

    async def cookie_gone(self, name: str, seconds: float = 10.0) -> None:
        """Wait (bounded) until the cookie is gone: the screen clears itself first and calls the
        API after, whose answer clears the cookie."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while await self.cookie(name) is not None:
            assert loop.time() < deadline, f"{name} is still set"
            await asyncio.sleep(0.05)


def misread_check_character(number: str) -> str:
    """The number with a digit before the check character changed: its check character no longer fits."""
    i = 15
    return number[:i] + str((int(number[i]) + 1) % 10) + number[i + 1:]
