"""The page keeps to the strict Content-Security-Policy the listener sends: no inline code, no
inline styles, nothing from another origin, no HTML built from strings. Checked twice: in the
files themselves, and in chromium, where a violation is refused and reported (and the tests'
console watch would fail any test that caused one)."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, expect

from tests.browser.conftest import DESKTOP

STATIC = Path(__file__).parents[2] / "gateway" / "transport" / "browser" / "static"
# Ways to run or style text as code, or to build DOM from strings, none of which the page needs.
FORBIDDEN_JS = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                          r"setAttribute\(\s*[\"']style|setTimeout\(\s*[\"'`]|cssText|https?://")


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=...>")
            if name in ("src", "href", "action") and value and not (value.startswith("/") or value.startswith("#")):
                self.problems.append(f"<{tag} {name}={value}>: not this origin")
        if tag == "script" and not names.get("src"):
            self.problems.append("an inline <script>")
        if tag == "style":
            self.problems.append("a <style> element")


# The one URL the pages' code holds: an XML namespace name (the audit desk's SVG chart), never fetched.
SVG_NS = '"http://www.w3.org/2000/svg"'
PAGES = {"index.html": "/app.js", "counter/index.html": "/counter/counter.js", "legal/index.html": "/legal/desk.js",
         "audit/index.html": "/audit/desk.js"}


def test_the_files_have_no_inline_code_or_styles() -> None:
    """Every page, module and stylesheet served from static/ (the self-service page and the desks)."""
    assert sorted(str(p.relative_to(STATIC)) for p in STATIC.rglob("*.html")) == sorted(PAGES)
    for page, module in PAGES.items():
        html = (STATIC / page).read_text()
        parser = Markup()
        parser.feed(html)
        assert parser.problems == [], page
        assert f'<script type="module" src="{module}"></script>' in html, page
    for js in sorted(STATIC.rglob("*.js")):
        found = FORBIDDEN_JS.findall(js.read_text().replace(SVG_NS, '""'))
        assert not found, f"{js.relative_to(STATIC)}: {found}"
    for css in sorted(STATIC.rglob("*.css")):
        text = css.read_text()
        assert "@import" not in text and "url(" not in text, css.relative_to(STATIC)


async def test_chromium_enforces_the_policy_and_the_page_keeps_to_it(make_gateway: Any, browser: Browser) -> None:
    h = await make_gateway(browser_listen="127.0.0.1:0", web_channel=True, web_challenge="dev-pass")
    context = await browser.new_context(ignore_https_errors=True, viewport=DESKTOP)
    try:
        page = await context.new_page()
        messages: list[str] = []

        def console(m: ConsoleMessage) -> None:
            if m.type in ("error", "warning"):
                messages.append(m.text)

        page.on("console", console)
        response = await page.goto(h.browser_url + "/")
        assert response is not None and response.ok
        csp = response.headers["content-security-policy"]
        for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "form-action 'none'"):
            assert directive in csp
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        assert messages == []  # the page itself: nothing refused

        # What an injected inline script or style would meet: refused, and reported to the console
        # (which the other tests' watch turns into a failure).
        await page.evaluate("""() => {
            const s = document.createElement('script');
            s.textContent = 'window.__ran = true';
            document.body.appendChild(s);
            const st = document.createElement('style');
            st.textContent = 'body { display: none }';
            document.head.appendChild(st);
        }""")
        for _ in range(50):
            if sum("Content Security Policy" in m for m in messages) >= 2:
                break
            await asyncio.sleep(0.05)
        assert await page.evaluate("window.__ran === undefined")
        assert await page.locator("body").is_visible()
        assert sum("Content Security Policy" in m for m in messages) >= 2, messages
    finally:
        await context.close()
