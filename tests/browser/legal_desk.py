"""The legal desk (gateway/transport/browser/static/legal/) as its tests use it: its steps by element
id (the ids are the desk's contract with these tests; the texts change with the language)."""

from __future__ import annotations

import base64
import dataclasses
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import FilePayload, Page, expect

from gateway.domain import delivery
from tests.browser.fields import fill
from tests.support.dates import ZONE
from tests.support.legal import window
from tests.support.staff import STAFF_PASSWORD, fresh_totp
from tests.support.subscribers import ORDINARY

LETTER = Path(__file__).parents[2] / "docs" / "examples" / "letter.pdf"
DESK = "/legal/"
STAFF_COOKIE = "__Host-hallgate-staff"
# Page scripts never see the blobs the desk makes; this records them (injected by Playwright, so it
# needs no exception in the page's CSP) for a test to read back what the letter's frame shows.
RECORD_BLOBS = """(() => {
  const make = URL.createObjectURL.bind(URL);
  const blobs = new Map();
  Object.defineProperty(window, "__deskBlobs", { value: blobs });
  URL.createObjectURL = (blob) => { const url = make(blob); blobs.set(url, blob); return url; };
})();"""
READ_BLOB = """async (url) => {
  const blob = window.__deskBlobs.get(url);
  if (!blob) return null;
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return { type: blob.type, base64: btoa(s) };
}"""


def letter_pdf(lines: tuple[str, ...] = (
        "Shanghai Municipal Public Security Bureau, Criminal Investigation Division",
        "Ref. Hu Gong (Xing) Diao Zi [2026] 0113",
        "To: the branch legal department",
        "Request for subscriber data under the Criminal Procedure Law, art. 54",
        "Case SH-2026-0113. Number 13800000001: subscriber information and call details,",
        "3rd to 10th of last month. Officers: Chen Jing (310-044721), Wang Lei (310-051190).",
        "[seal]")) -> bytes:
    """A one-page PDF letter (text in Helvetica) that a PDF viewer renders."""
    text = "BT /F1 13 Tf 60 760 Td 18 TL " + " ".join(
        "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '" for line in lines) + " ET"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(text) + text.encode() + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def payload(name: str, data: bytes, mime: str = "text/plain") -> FilePayload:
    """A file for a file input, from bytes."""
    return {"name": name, "mimeType": mime, "buffer": data}


def public_key_pem(h: Any) -> bytes:
    """The gateway's delivery public key, from the signing key in its data directory."""
    return delivery.Signer(delivery.load_private_key(Path(h.settings.data_dir) / "legal-signing.pem")).public_pem()


async def promote(h: Any, staff_id: str, role: str) -> None:
    """Give a staff member another role (as the staff directory would after a promotion)."""
    record = await h.deps.staff.get(staff_id)
    assert record is not None
    await h.deps.staff.put(dataclasses.replace(record, role=role))


def letter_date() -> str:
    return (datetime.now(ZONE).date() - timedelta(days=2)).isoformat()


def window_days() -> tuple[str, str]:
    """The first and the last day (included) of tests.support.legal.window()."""
    start, end = window()
    return start.date().isoformat(), (end - timedelta(days=1)).date().isoformat()


class LegalDeskPage:
    def __init__(self, page: Page) -> None:
        self.page = page

    csp = ""

    async def open(self, h: Any) -> None:
        await self.page.add_init_script(RECORD_BLOBS)
        response = await self.page.goto(h.browser_url + DESK, wait_until="load")
        assert response is not None
        self.csp = (await response.all_headers()).get("content-security-policy", "")
        await expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    @property
    def may_frame_blobs(self) -> bool:
        """Whether the server's CSP for the desk lets it frame a blob: (the letter inline)."""
        return any(d.split()[:1] == ["frame-src"] and "blob:" in d.split() for d in self.csp.split(";"))

    async def sign_in(self, staff_id: str, secret: str, code: str | None = None,
                      password: str = STAFF_PASSWORD) -> None:
        await expect(self.page.locator("#view-sign-in")).to_be_visible()
        await self.page.fill("#staff-id", staff_id)
        await self.page.fill("#staff-password", password)
        await self.page.fill("#totp", code if code is not None else fresh_totp(secret))
        await self.page.click("#sign-in")

    async def signed_in(self) -> None:
        await expect(self.page.locator("#view-list")).to_be_visible()
        await self.list_loaded()

    async def list_loaded(self) -> None:
        await expect(self.page.locator("#list-status")).to_have_attribute("data-state", "done")
        error = self.page.locator("#error")
        assert not await error.is_visible(), f"the register did not load: {(await error.inner_text()).strip()}"

    async def sign_out(self) -> None:
        await self.page.click("#sign-out")
        await expect(self.page.locator("#view-sign-in")).to_be_visible()

    async def filter(self, state: str = "", agency: str = "", case: str = "", deadline: str = "any") -> list[str]:
        """Apply the register's filters; the request ids shown."""
        await self.page.select_option("#f-state", state)
        await fill(self.page, "#f-agency", agency)
        await fill(self.page, "#f-case", case)
        await self.page.select_option("#f-deadline", deadline)
        await self.page.click("#apply-filters")
        await self.list_loaded()
        return await self.shown()

    async def shown(self) -> list[str]:
        return [x or "" for x in await self.page.locator("#requests-body tr").evaluate_all(
            "rows => rows.map(r => r.dataset.requestId)")]

    async def fill_registration(self, targets: tuple[str, ...] = (ORDINARY,), level: str = "AGENCY_LEVEL_PREFECTURE",
                                case: str = "SH-2026-0113", letter: Path = LETTER) -> None:
        p = self.page
        await p.click("#nav-register")
        await expect(p.locator("#view-register")).to_be_visible()
        await p.select_option("#r-agency-kind", "AGENCY_KIND_PUBLIC_SECURITY")
        await p.fill("#r-agency-name", "上海市公安局刑事侦查总队")
        await p.select_option("#r-agency-level", level)
        await p.fill("#r-letter-reference", "沪公(刑)调字[2026]0113号")
        await p.fill("#r-letter-date", letter_date())
        await p.set_input_files("#r-letter-file", letter)
        await p.fill("#r-case-number", case)
        await p.fill("#r-legal-basis", "Criminal Procedure Law of the PRC, art. 54")
        await p.fill("#r-officers .officer:nth-child(1) .officer-name", "Chen Jing")
        await p.fill("#r-officers .officer:nth-child(1) .officer-badge", "310-044721")
        await p.click("#r-add-officer")
        await p.fill("#r-officers .officer:nth-child(2) .officer-name", "Wang Lei")
        await p.fill("#r-officers .officer:nth-child(2) .officer-badge", "310-051190")
        await p.fill("#r-targets", "\n".join(targets))
        first, last = window_days()
        await p.fill("#r-window-start", first)
        await p.fill("#r-window-last", last)

    async def submit_registration(self) -> str:
        """Register; the new request's id (its page is shown)."""
        await self.page.click("#r-submit")
        view = self.page.locator("#view-request")
        await expect(view).to_be_visible()
        rid = await view.get_attribute("data-request-id") or ""
        assert re.fullmatch(r"LR-[0-9A-Fa-f]{16}", rid), rid
        return rid

    async def open_request(self, request_id: str) -> None:
        row = self.page.locator(f"#requests-body button[data-request-id='{request_id}']")
        await expect(row, f"{request_id} is not in the register: {await self.shown()}").to_be_visible()
        await row.click()
        await expect(self.page.locator("#view-request")).to_have_attribute("data-request-id", request_id)

    async def in_state(self, state: str) -> None:
        await expect(self.page.locator("#view-request")).to_have_attribute("data-state", state)

    async def decide(self, action: str, reason: str) -> None:
        await self.page.fill("#q-reason", reason)
        await self.page.click(f"#act-{action}")

    async def error_text(self) -> str:
        error = self.page.locator("#error")
        await expect(error).to_be_visible()
        return (await error.inner_text()).strip()

    async def notice_text(self) -> str:
        notice = self.page.locator("#notice")
        await expect(notice).to_be_visible()
        return (await notice.inner_text()).strip()

    async def frame_blob(self, selector: str = "#q-letter-frame", attribute: str = "src") -> tuple[str, bytes]:
        """The media type and bytes of the blob the letter's frame shows (or a link offers)."""
        src = await self.page.locator(selector).get_attribute(attribute)
        assert src and src.startswith("blob:"), src
        got = await self.page.evaluate(READ_BLOB, src)
        assert got is not None, "the frame's blob was not made by the desk"
        return got["type"], base64.b64decode(got["base64"])

    async def letter_shown(self, letter: bytes) -> None:
        """The letter's scan on the request page: inline in a frame of exactly its bytes when the
        server's CSP allows framing blobs; a download link of exactly its bytes either way."""
        await expect(self.page.locator("#q-letter-download")).to_have_attribute("href", re.compile(r"^blob:"))
        assert await self.frame_blob("#q-letter-download", "href") == ("application/pdf", letter)
        if self.may_frame_blobs:
            await expect(self.page.locator("#q-letter-view")).to_be_visible()
            assert await self.frame_blob() == ("application/pdf", letter)
        else:
            await expect(self.page.locator("#q-letter-view")).to_be_hidden()
            await expect(self.page.locator("#q-letter-note")).to_contain_text("安全策略")

    async def staff_cookie(self) -> Any:
        return next((c for c in await self.page.context.cookies() if c["name"] == STAFF_COOKIE), None)
