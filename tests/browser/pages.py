"""The self-service page as the tests use it: its steps by element id (the ids are the page's
contract with these tests; the texts change with the language)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from playwright.async_api import BrowserContext, Page, expect

from tests.support.connect_client import browser_client, browser_headers

SESSION_COOKIE = "__Host-hallgate-session"


class SelfService:
    def __init__(self, page: Page) -> None:
        self.page = page

    @property
    def context(self) -> BrowserContext:
        return self.page.context

    async def request_code(self, msisdn: str) -> None:
        await self.page.fill("#msisdn", msisdn)
        await self.page.click("#send-code")

    async def code_requested(self) -> None:
        await expect(self.page.locator("#step-proof")).to_be_visible()

    async def enter_proof(self, password: str, code: str) -> None:
        await self.page.fill("#password", password)
        await self.page.fill("#code", code)
        await self.page.click("#sign-in")

    async def signed_in(self) -> None:
        await expect(self.page.locator("#step-calls")).to_be_visible()

    async def sign_in(self, h: Any, msisdn: str) -> None:
        """The whole proof: number, the code from the phone's SMS, the service password."""
        await self.request_code(msisdn)
        await self.code_requested()
        await self.enter_proof(h.billing.password_for(msisdn), await h.last_code(msisdn))
        await self.signed_in()

    async def choose_month(self, month: str, wait_ms: float = 30_000) -> int:
        """Show `month`; wait until all of it has arrived; the record count the page shows."""
        await self.page.click(f"#months button[data-month='{month}']")
        status = self.page.locator("#calls-status")
        await expect(status).to_have_attribute("data-month", month)
        await expect(status).to_have_attribute("data-state", "done", timeout=wait_ms)
        return int(await status.get_attribute("data-count") or "-1")

    async def rows(self) -> int:
        """Rows in the DOM now (for "none": a cleared or refused list)."""
        return await self.page.locator("#calls-spacer .row").count()

    async def rendered_rows(self) -> int:
        """Rows in the DOM once the list has drawn its first one (it draws on the next frame, which
        a busy machine can put after the status says done)."""
        await expect(self.page.locator("#calls-spacer .row").first).to_be_attached()
        return await self.rows()

    async def error_text(self) -> str:
        error = self.page.locator("#error")
        await expect(error).to_be_visible()
        return (await error.text_content() or "").strip()

    async def session_cookie(self) -> dict[str, Any] | None:
        return next((c for c in await self.context.cookies() if c["name"] == SESSION_COOKIE), None)

    async def sign_out(self) -> None:
        """Sign out; returns once the screen is cleared and EndSession's answer has cleared the cookie."""
        await self.page.click("#step-calls:not([hidden]) #sign-out")
        await expect(self.page.locator("#step-number")).to_be_visible()
        await expect(self.page.locator("#notice")).to_be_visible()
        await self.session_ended()

    async def session_ended(self, seconds: float = 10.0) -> None:
        """Wait (bounded) until the session cookie is gone: the page clears the screen first and
        calls EndSession after, whose answer clears the cookie."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            if await self.session_cookie() is None:
                return
            await asyncio.sleep(0.05)


async def audit_until(h: Any, want: Any, seconds: float = 10.0) -> list[dict[str, str]]:
    """The audit trail once `want(events)` holds (bounded wait: events are stored off the request
    path); the last trail read if it never does (the caller's assertion then shows it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        events = await h.audit_events()
        if want(events) or loop.time() > deadline:
            return events
        await asyncio.sleep(0.05)


def calls(events: list[dict[str, str]], channel: str) -> list[tuple[str, str]]:
    """(method name, code) of the channel's audit events, in order."""
    return [(e["method"].rsplit("/", 1)[-1], e["code"]) for e in events if e.get("channel") == channel]


def in_order(seen: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> bool:
    """`wanted` occurs in `seen` in this order (other events between allowed)."""
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)


async def web_gateway(make_gateway: Any, **overrides: Any) -> Any:
    return await make_gateway(browser_listen="127.0.0.1:0", web_channel=True, web_challenge="dev-pass", **overrides)


async def list_calls_with(h: Any, token: str, which: str) -> str:
    """ListCallDetails outside the browser with this session token: its Connect code."""
    client = browser_client(h.browser.port)
    client.cookies[SESSION_COOKIE] = token
    answer = await asyncio.to_thread(client.stream, "/hallgate.v1.KioskService/ListCallDetails",
                                     json.dumps({"month": which}).encode(), json_body=True, headers=browser_headers())
    return answer.code
