"""The self-service page (gateway/transport/browser/static/) in Debian's chromium, driven by
Playwright against a real gateway (make_gateway: real Redis, the gRPC billing simulator, the SMS
path) serving the browser listener.

Each test gets its own browser (Playwright's async objects belong to one event loop, and the
gateway fixtures run in the test's own loop), its own contexts, and a watch on every page: a
console error, an uncaught exception or a CSP violation fails the test at teardown.

HALLGATE_SCREENSHOTS=DIR: the tests save screenshots of the steps there (DIR/NN-name.png).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page, async_playwright, expect

from tests.support.tls import KIOSK_CERT

CHROMIUM = Path(os.environ.get("HALLGATE_CHROMIUM", "/usr/bin/chromium"))
HAVE_CHROMIUM = CHROMIUM.exists()
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
KIOSK = {"width": 1080, "height": 1920}
PHONE = {"width": 390, "height": 844}
# An API call answered with an error status is logged by chromium as a failed resource load; the
# tests that provoke such answers expect them. Anything else in the console is a failure.
API_LOAD_ERROR = re.compile(
    r"^Failed to load resource: the server responded with a status of (400|401|403|404|409|412|429|501|503|504)")

expect.set_options(timeout=15_000)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the self-service page in chromium (tests/browser)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


@dataclass
class Watch:
    """What went wrong on a page: console errors, uncaught exceptions, CSP violations."""

    problems: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        where = message.location.get("url", "") if message.location else ""
        if message.type == "error" and API_LOAD_ERROR.match(message.text) and "/hallgate.v1." in where:
            return
        if message.type == "warning" and "Content Security Policy" not in message.text:
            return
        self.problems.append(f"console {message.type}: {message.text} ({where})")

    def page_error(self, error: Error) -> None:
        self.problems.append(f"uncaught: {error}")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"no chromium at {CHROMIUM}: `make chromium` installs Debian's")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True, timeout=30_000)
        try:
            yield b
        finally:
            await bounded(b.close(), "closing chromium")


async def bounded(step: Awaitable[Any], what: str, seconds: float = 30.0) -> None:
    """A teardown step that may not hang the run: past `seconds` it fails, naming itself."""
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        raise AssertionError(f"{what} took over {seconds:g} s") from None


OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """Factory: `page = await open_page(h, kiosk=False, viewport=DESKTOP)` opens the page in a new
    context (with the hall kiosk's client certificate when `kiosk`), ready to use. At teardown
    every page opened must have logged no error and no CSP violation."""
    contexts: list[BrowserContext] = []
    watches: list[Watch] = []

    async def factory(h: Any, kiosk: bool = False, viewport: dict[str, int] | None = None,
                      cert: str = KIOSK_CERT, clock: bool = False, path: str = "/", lang: str = "zh-CN") -> Page:
        """`kiosk`: present the terminal certificate `cert` (a kiosk's unless named); `path`: the page
        (the desks: /counter/, /legal/, /audit/); `clock`: the page's timers and Date under Playwright's
        clock (page.clock.fast_forward), so an idle timeout is reached without waiting for it."""
        options: dict[str, Any] = {"ignore_https_errors": True, "viewport": viewport or (KIOSK if kiosk else DESKTOP),
                                   "locale": lang, "timezone_id": "Asia/Shanghai", "service_workers": "block"}
        if kiosk:
            options["client_certificates"] = [{"origin": h.browser_url, "certPath": str(h.pki / f"{cert}.crt"),
                                               "keyPath": str(h.pki / f"{cert}.key")}]
        context = await browser.new_context(**options)
        contexts.append(context)
        page = await context.new_page()
        watch = Watch()
        watches.append(watch)
        page.on("console", watch.console)
        page.on("pageerror", watch.page_error)
        if clock:
            await page.clock.install()
        await page.goto(h.browser_url + path, wait_until="load")
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        return page

    yield factory
    for context in contexts:
        await bounded(context.close(), "closing a browser context")
    problems = [p for w in watches for p in w.problems]
    assert not problems, "the page logged errors:\n" + "\n".join(problems)


async def shot(page: Page, name: str) -> None:
    """Save a screenshot as $HALLGATE_SCREENSHOTS/<name>.png when that is set."""
    where = os.environ.get("HALLGATE_SCREENSHOTS")
    if not where:
        return
    await asyncio.to_thread(Path(where).mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(Path(where) / f"{name}.png"), animations="disabled", caret="initial")
