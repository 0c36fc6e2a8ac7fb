"""The audit desk (gateway/transport/browser/static/audit/) as its tests use it: a trail to find
(kiosk sign-ins and a call list, a counter session, a refusal, archive loans, an incident), the
desk's steps by element id, and the offline check of an exported file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import timestamp_pb2
from playwright.async_api import Page, expect

from adapters.audit.keys import stream_key
from gateway.domain import audit_chain as ac
from hallgate_pb.v1 import (
    clerk_pb2,
    clerk_pb2_grpc,
    incident_pb2,
    incident_pb2_grpc,
    kiosk_pb2,
    lending_pb2,
    lending_pb2_grpc,
)
from tests.browser.fields import fill
from tests.support.audit_calls import counter
from tests.support.dates import month
from tests.support.staff import STAFF_PASSWORD, fresh_totp
from tests.support.status import refused
from tests.support.subscribers import ORDINARY, OTHER
from tests.support.tls import CLERK_CERT

DESK = "/audit/"
# Chromium logs an API call answered with an error status as a failed load; the error tests
# provoke such answers on the desk's services (conftest's watch expects them on KioskService only).


@dataclass
class Trail:
    """What the seeded trail holds that the desk must find."""

    loan_id: str
    archive_id: str
    incident_id: str
    calls: int  # records of ORDINARY's call list


def ts(when: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(when)
    return t


async def seed_trail(h: Any) -> Trail:
    """Kiosk: ORDINARY signs in and lists a month's calls. Counter C1001 (H001/clerk/T07) serves OTHER
    by ID card; a kiosk calling a clerk method is refused (a denied event). Archive: custodian K1
    registers a contract, clerk C1001 asks to borrow it. C1001 reports an incident about a clerk."""
    token = await h.sign_in(ORDINARY)
    calls = 0
    async for chunk in h.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month(-1))):
        calls += len(chunk.records)
    clerk = await counter(h)
    await clerk.serve_by_id(OTHER)
    await refused(clerk_pb2_grpc.ClerkServiceStub(h.channel).GetCustomerProfile(
        clerk_pb2.GetCustomerProfileRequest(customer_session="x")))
    custodian_secret = await h.add_staff("K1", "custodian", hall="H001")
    custodian = lending_pb2_grpc.LendingServiceStub(h.channel_for(CLERK_CERT))
    k1 = await h.staff_sign_in(CLERK_CERT, "K1", custodian_secret)
    archive_id = "H001-CT-2024-0001"
    await custodian.RegisterDocument(lending_pb2.RegisterDocumentRequest(
        archive_id=archive_id, kind=lending_pb2.DOCUMENT_KIND_CONTRACT, description="service contract"), metadata=k1)
    loan = (await custodian.RequestLoan(lending_pb2.RequestLoanRequest(
        archive_id=archive_id, reason="customer disputes the contract date"), metadata=clerk.md)).loan
    now = datetime.now(UTC)
    incident = await incident_pb2_grpc.IncidentServiceStub(h.channel_for(CLERK_CERT)).ReportIncident(
        incident_pb2.ReportIncidentRequest(
            summary="a customer says a clerk read out their profile on the phone",
            suspect=incident_pb2.Suspect(kind=incident_pb2.ACTOR_KIND_STAFF, id="C1001",
                                         start=ts(now - timedelta(hours=1)), end=ts(now))), metadata=clerk.md)
    return Trail(loan.loan_id, archive_id, incident.incident_id, calls)


async def stored(h: Any) -> list[tuple[str, dict[str, str]]]:
    """The chain as (stream id, fields), straight from Redis."""
    raw = await h.redis.xrange(stream_key(h.settings.audit_chain))
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in raw]


async def tamper_denied(h: Any) -> int:
    """Turn the first refusal into an allowed call, as someone covering their tracks with write
    access to Redis would (every stream id kept); returns the edited event's seq."""
    entries = await stored(h)
    target = next(f for _, f in entries if f["decision"] == "denied")
    seq = int(target["seq"])
    target["decision"] = "allowed"
    key = stream_key(h.settings.audit_chain)
    await h.redis.delete(key)
    for entry_id, fields in entries:
        await h.redis.xadd(key, fields, id=entry_id)
    return seq


def verify_export(h: Any, data: bytes) -> list[tuple[str, dict[str, str]]]:
    """The offline check of an exported file: every line is an event of this chain whose seal
    (HMAC under the audit key) holds; events with consecutive seqs link (prev = the previous mac).
    Returns (stream id, fields) per line. Raises AssertionError naming the first bad line."""
    keys, _ = h.settings.audit_keys()
    out = []
    previous: dict[str, str] | None = None
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        chain, entry_id, fields = ac.from_json_line(line)
        assert chain == h.settings.audit_chain, f"line {n}: another chain"
        assert ac.mac_ok(chain, keys, fields), f"line {n}: the seal does not hold"
        if previous is not None and int(fields["seq"]) == int(previous["seq"]) + 1:
            assert fields["prev"] == previous["mac"], f"line {n}: not linked to the line before"
        previous = fields
        out.append((entry_id, fields))
    return out


class AuditDesk:
    def __init__(self, page: Page) -> None:
        self.page = page

    async def open(self, h: Any) -> None:
        await self.page.goto(h.browser_url + DESK, wait_until="load")
        await expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    async def sign_in(self, staff_id: str, secret: str, password: str = STAFF_PASSWORD,
                      code: str | None = None) -> None:
        await self.page.fill("#staff-id", staff_id)
        await self.page.fill("#password", password)
        await self.page.fill("#totp", code or fresh_totp(secret))
        await self.page.click("#sign-in")

    async def signed_in(self) -> None:
        await expect(self.page.locator("#desk")).to_be_visible()

    async def tab(self, name: str) -> None:
        await self.page.click(f"#tab-{name}")
        await expect(self.page.locator(f"#panel-{name}")).to_be_visible()

    async def query(self, **filters: str) -> int:
        """Fill the query form (fields by input id suffix: msisdn, staff, terminal, hall, channel,
        decision, method, start, end), run it, wait for its end; the count the desk shows."""
        await self.page.click("#clear-query")
        for name, value in filters.items():
            target = self.page.locator(f"#f-{name}")
            if name in ("channel", "decision"):
                await target.select_option(value)
            else:
                await fill(self.page, f"#f-{name}", value)
        status = self.page.locator("#query-status")
        await self.page.click("#run-query")
        await expect(status).to_have_attribute("data-state", re.compile("done|stopped"))
        await expect(self.page.locator("#run-query")).to_be_enabled()
        assert await status.get_attribute("data-state") == "done"
        return int(await status.get_attribute("data-count") or "-1")

    async def column(self, index: int) -> list[str]:
        """The texts of one column of the results page shown (0: seq)."""
        cells = self.page.locator(f"#events-body tr td:nth-child({index + 1})")
        return [t.strip() for t in await cells.all_text_contents()]

    async def seqs(self) -> list[int]:
        return [int(s) for s in await self.page.locator("#events-body tr").evaluate_all(
            "rows => rows.map(r => r.dataset.seq)")]

    async def error_text(self) -> str:
        error = self.page.locator("#error")
        await expect(error).to_be_visible()
        return (await error.text_content() or "").strip()


