"""The legal channel over real gRPC: a valid RegisterRequest and its parts, and a desk (a staff
member signed in on a legal terminal of a served gateway, the conftest Harness)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hallgate_pb.v1 import legal_pb2, legal_pb2_grpc
from tests.support.dates import ZONE, month, ts
from tests.support.status import drain
from tests.support.subscribers import ORDINARY
from tests.support.tls import LEGAL_CERT

S = legal_pb2  # enum values, shorter
PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
       b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")


def window(first_day: int = 3, last_day: int = 10) -> tuple[datetime, datetime]:
    """[first_day, last_day) of last month (complete), in the operator's zone."""
    y, m = (int(x) for x in month(-1).split("-"))
    return datetime(y, m, first_day, tzinfo=ZONE), datetime(y, m, last_day, tzinfo=ZONE)


def data_window(start: datetime | None, end: datetime | None) -> legal_pb2.DataWindow:
    w = legal_pb2.DataWindow()
    if start is not None:
        w.start.CopyFrom(ts(start))
    if end is not None:
        w.end.CopyFrom(ts(end))
    return w


def letter(**changes: object) -> legal_pb2.Letter:
    fields: dict[str, object] = {
        "reference": "沪公(刑)调字[2026]0113号",
        "date": (datetime.now(ZONE).date() - timedelta(days=2)).isoformat(),
        "media_type": "application/pdf", "content": PDF}
    fields.update(changes)
    return legal_pb2.Letter(**fields)  # type: ignore[arg-type]


def register_message(targets: tuple[str, ...] = (ORDINARY,),
                     categories: tuple[int, ...] = (S.DATA_CATEGORY_SUBSCRIBER_INFO, S.DATA_CATEGORY_CALL_DETAILS),
                     start: datetime | None = None, end: datetime | None = None,
                     **changes: object) -> legal_pb2.RegisterRequestRequest:
    """A request that registers: a public security bureau at prefecture level, its letter, two
    officers, last month's [3rd, 10th) for `targets`; `changes` replace fields."""
    w_start, w_end = window()
    fields: dict[str, object] = {
        "agency": legal_pb2.Agency(kind=S.AGENCY_KIND_PUBLIC_SECURITY, name="上海市公安局刑事侦查总队",
                                   level=S.AGENCY_LEVEL_PREFECTURE),
        "letter": letter(),
        "legal_basis": "Criminal Procedure Law of the PRC, art. 54",
        "case_number": "SH-2026-0113",
        "officers": [legal_pb2.Officer(name="Chen Jing", badge_number="310-044721"),
                     legal_pb2.Officer(name="Wang Lei", badge_number="310-051190")],
        "targets": list(targets), "categories": list(categories),
        "window": data_window(start or w_start, end or w_end)}
    fields.update(changes)
    return legal_pb2.RegisterRequestRequest(**fields)  # type: ignore[arg-type]


class Desk:
    """A staff member signed in on the branch's legal terminal (or any other, given `cert`)."""

    def __init__(self, gw: Any, staff_id: str, md: Any, cert: str = LEGAL_CERT, secret: str = "") -> None:
        self.gw, self.staff_id, self.md, self.secret = gw, staff_id, md, secret
        self.stub = legal_pb2_grpc.LegalServiceStub(gw.channel_for(cert))

    async def register(self, message: legal_pb2.RegisterRequestRequest | None = None) -> legal_pb2.LegalRequest:
        reply = await self.stub.RegisterRequest(message or register_message(), metadata=self.md)
        return reply.request

    async def approve(self, request_id: str, why: str = "letter checked with the issuing agency by phone"
                      ) -> legal_pb2.LegalRequest:
        reply = await self.stub.ApproveRequest(legal_pb2.ApproveRequestRequest(request_id=request_id, reason=why),
                                               metadata=self.md)
        return reply.request

    def fulfil_call(self, request_id: str, why: str = "handed over to officer Chen on an encrypted drive",
                    targets: tuple[str, ...] = (), categories: tuple[int, ...] = (),
                    start: datetime | None = None, end: datetime | None = None) -> Any:
        m = legal_pb2.FulfilRequestRequest(request_id=request_id, reason=why, targets=list(targets),
                                           categories=list(categories))
        if start is not None or end is not None:
            m.window.CopyFrom(data_window(start, end))
        return drain(self.stub.FulfilRequest(m, metadata=self.md))

    async def fulfil(self, request_id: str, **kw: Any) -> list[legal_pb2.FulfilRequestResponse]:
        return await self.fulfil_call(request_id, **kw)

    async def get(self, request_id: str) -> legal_pb2.LegalRequest:
        return (await self.stub.GetRequest(legal_pb2.GetRequestRequest(request_id=request_id),
                                           metadata=self.md)).request


async def desk(gw: Any, staff_id: str, role: str, cert: str = LEGAL_CERT, hall: str = "B01") -> Desk:
    """A new staff member `staff_id` of `role`, signed in on `cert`."""
    secret = await gw.add_staff(staff_id, role, hall=hall)
    return Desk(gw, staff_id, await gw.staff_sign_in(cert, staff_id, secret), cert, secret)
