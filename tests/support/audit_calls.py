"""The audited calls the audit services' e2e tests share: an auditor's QueryEvents, a counter clerk
serving a customer by ID card, a subscriber's ListAccessHistory, a varied trail, and the query cases."""

from __future__ import annotations

from datetime import datetime

from gateway.domain import audit_chain as ac
from hallgate_pb.v1 import audit_pb2, audit_pb2_grpc, clerk_pb2, clerk_pb2_grpc, kiosk_pb2
from tests.support.clerk import id_card
from tests.support.dates import ts
from tests.support.status import refused
from tests.support.subscribers import ORDINARY, OTHER
from tests.support.tls import AUDIT_CERT, CLERK_CERT

CLERK = "/hallgate.v1.ClerkService/"
H002_CERT = "clerk-H002-T01"
THIRD = "13800000003"


def event_filter(**kw: object) -> audit_pb2.EventFilter:
    f = audit_pb2.EventFilter()
    for k, v in kw.items():
        if isinstance(v, datetime):
            getattr(f, k).CopyFrom(ts(v))
        else:
            setattr(f, k, v)
    return f


class Auditor:
    """A staff member signed in on a terminal, calling the AuditService from `cert`."""

    def __init__(self, gw, md, cert: str = AUDIT_CERT) -> None:
        self.md = md
        self.stub = audit_pb2_grpc.AuditServiceStub(gw.channel_for(cert))

    async def query(self, limit: int = 0, **kw: object) -> list[audit_pb2.AuditEvent]:
        request = audit_pb2.QueryEventsRequest(filter=event_filter(**kw), limit=limit)
        return [m.event async for m in self.stub.QueryEvents(request, metadata=self.md)]

    async def verify(self, start_seq: int = 0, end_seq: int = 0) -> audit_pb2.VerifyChainResponse:
        return await self.stub.VerifyChain(audit_pb2.VerifyChainRequest(start_seq=start_seq, end_seq=end_seq),
                                           metadata=self.md)

    async def export_chunks(self, **kw: object) -> list[bytes]:
        request = audit_pb2.ExportEventsRequest(filter=event_filter(**kw))
        return [m.jsonl async for m in self.stub.ExportEvents(request, metadata=self.md)]

    async def export(self, **kw: object) -> list[tuple[str, str, dict[str, str]]]:
        text = b"".join(await self.export_chunks(**kw)).decode()
        return [ac.from_json_line(line) for line in text.splitlines()]


async def auditor(gw, staff_id: str = "X001") -> Auditor:
    secret = await gw.add_staff(staff_id, "auditor", hall="B01")
    return Auditor(gw, await gw.staff_sign_in(AUDIT_CERT, staff_id, secret))


class Counter:
    """A clerk signed in on a clerk terminal."""

    def __init__(self, gw, md, cert: str) -> None:
        self.gw, self.md = gw, md
        self.stub = clerk_pb2_grpc.ClerkServiceStub(gw.channel_for(cert))

    async def serve_by_id(self, msisdn: str) -> None:
        """Identify the owner by their ID card, view the profile, close the session."""
        doc = id_card(self.gw.billing.owner_of(msisdn))
        session = (await self.stub.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
            msisdn=msisdn, id_document=doc, purpose=clerk_pb2.SESSION_PURPOSE_BILL_ENQUIRY),
            metadata=self.md)).customer_session
        await self.stub.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(customer_session=session),
                                           metadata=self.md)
        await self.stub.CloseCustomerSession(clerk_pb2.CloseCustomerSessionRequest(customer_session=session),
                                             metadata=self.md)


async def counter(gw, staff_id: str = "C1001", cert: str = CLERK_CERT, hall: str = "H001") -> Counter:
    secret = await gw.add_staff(staff_id, "clerk", hall=hall)
    return Counter(gw, await gw.staff_sign_in(cert, staff_id, secret), cert)


async def access_history(gw, token: str) -> list[kiosk_pb2.AccessRecord]:
    return [m.record async for m in gw.stub.ListAccessHistory(kiosk_pb2.ListAccessHistoryRequest(
        access_token=token))]


def ids(events: list[audit_pb2.AuditEvent]) -> list[str]:
    return [e.id for e in events]


async def varied_trail(gw) -> Auditor:
    """Kiosk, two halls' counters, a refusal and an invalid call (as in test_audit_service.py)."""
    aud = await auditor(gw)
    await gw.sign_in(ORDINARY)
    await (await counter(gw)).serve_by_id(OTHER)
    await (await counter(gw, "C2001", H002_CERT, "H002")).serve_by_id(THIRD)
    kiosk_as_clerk = clerk_pb2_grpc.ClerkServiceStub(gw.channel)
    await refused(kiosk_as_clerk.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(customer_session="x")))
    await refused(gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn="1380000000")))
    return aud


CASES = [
    {"msisdn": ORDINARY}, {"msisdn": OTHER}, {"staff_id": "C1001"}, {"staff_id": "C2001"}, {"staff_id": "X001"},
    {"terminal": "H002/clerk/T01"}, {"terminal": "H001/kiosk/K01"}, {"hall": "H002"}, {"hall": "H001"},
    {"staff_id": "C1001", "method": CLERK + "GetCustomerProfile"}, {"hall": "H001", "channel": "kiosk"},
    {"staff_id": "C1001", "hall": "H002"},
]
