"""The legal desk (gateway/domain/legal.py) over in-memory fakes: a fixed clock at NOW, a store and a
document store in dicts, billing with two subscribers' calls in and around the window, and a valid
draft to register. Shared by the unit rules, the Redis store's tests and the four-eyes ring."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.domain import delivery, legal
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.legal import Actor, LegalConfig, LegalDesk, LegalRequest, Officer, RequestDraft, State, Transition
from gateway.domain.ports import CustomerProfile, Subscriber
from hallgate_pb.billing.v1 import billing_pb2
from tests.unit.fakes import FakeClock

NOW = datetime(2025, 6, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
CST = timedelta(hours=8)
A, B, UNKNOWN = "13800000001", "13800000002", "13900000009"
PDF = b"%PDF-1.7\n% a scanned letter\n" + bytes(range(256))
OFFICER = Actor("L001", "legal_officer")
OFFICER2 = Actor("L002", "legal_officer")
APPROVER = Actor("A001", "legal_approver")
APPROVER2 = Actor("A002", "legal_approver")
AUDITOR = Actor("U001", "auditor")
WINDOW_START = datetime(2025, 3, 1, tzinfo=UTC) - CST  # 2025-03-01 00:00 local
WINDOW_END = datetime(2025, 5, 1, tzinfo=UTC) - CST    # 2025-05-01 00:00 local


def local(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC) - CST


# --- fakes ---------------------------------------------------------------------------------------


@dataclass
class FakeLegalStore:
    """The LegalStore port in dicts, with the same version check as the Redis script."""

    requests: dict[str, LegalRequest] = field(default_factory=dict)
    histories: dict[str, list[Transition]] = field(default_factory=dict)
    down: bool = False

    def _up(self) -> None:
        if self.down:
            raise DependencyUnavailable("redis")

    async def create(self, request: LegalRequest, first: Transition) -> bool:
        self._up()
        if request.request_id in self.requests:
            return False
        self.requests[request.request_id] = request
        self.histories[request.request_id] = [first]
        return True

    async def transition(self, after: LegalRequest, t: Transition) -> bool:
        self._up()
        cur = self.requests.get(after.request_id)
        if cur is None or cur.version != after.version - 1 or cur.state != t.from_state:
            return False
        assert after.state == t.to_state
        self.requests[after.request_id] = after
        self.histories[after.request_id].append(t)
        return True

    async def get(self, request_id: str) -> LegalRequest | None:
        self._up()
        return self.requests.get(request_id)

    async def history(self, request_id: str) -> list[Transition]:
        self._up()
        return list(self.histories.get(request_id, []))

    async def list(self, *, state: State | None = None, case_number: str = "", agency_name: str = "",
                   offset: int = 0, limit: int = 50) -> list[LegalRequest]:
        self._up()
        found = [r for r in self.requests.values()
                 if (state is None or r.state == state)
                 and (not case_number.strip() or legal.index_key(r.case_number) == legal.index_key(case_number))
                 and (not agency_name.strip() or legal.index_key(r.agency_name) == legal.index_key(agency_name))]
        found.sort(key=lambda r: r.registered_at, reverse=True)
        return found[offset:offset + limit]


@dataclass
class FakeDocuments:
    docs: dict[str, bytes] = field(default_factory=dict)

    async def put(self, data: bytes) -> str:
        ref = hashlib.sha256(data).hexdigest()
        self.docs[ref] = data
        return ref

    async def get(self, ref: str) -> bytes | None:
        return self.docs.get(ref)


def record(at: datetime, other: str = "13911112222", seconds: int = 60) -> billing_pb2.CallDetail:
    r = billing_pb2.CallDetail(direction=billing_pb2.CALL_DIRECTION_OUTGOING, other_party=other,
                               duration_seconds=seconds, kind=billing_pb2.CALL_KIND_VOICE, charge_fen=15)
    r.start_time.FromDatetime(at)
    return r


@dataclass
class FakeLegalBilling:
    """Subscribers, profiles (with SIM data, which must never be delivered) and call details by
    month; `fail_after` pages, it fails like a billing outage."""

    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    records: dict[tuple[str, str], list[billing_pb2.CallDetail]] = field(default_factory=dict)
    page_size: int = 2
    fail_after: int | None = None
    pages_served: int = 0
    asked: list[tuple[str, str]] = field(default_factory=list)

    def add(self, msisdn: str, *records: datetime) -> None:
        self.subscribers[msisdn] = Subscriber(True, sim_changed_at=NOW - timedelta(days=400))
        for at in records:
            month = (at + CST).strftime("%Y-%m")
            self.records.setdefault((msisdn, month), []).append(record(at))

    async def get_subscriber(self, msisdn: str) -> Subscriber:
        self.asked.append(("subscriber", msisdn))
        return self.subscribers.get(msisdn, Subscriber(False))

    async def get_customer_profile(self, msisdn: str) -> CustomerProfile | None:
        self.asked.append(("profile", msisdn))
        if msisdn not in self.subscribers:
            return None
        return CustomerProfile(name="Zhang San", document_type="resident_id_card",
                               document_number="11010519491231002X", birth_date="1949-12-31", sex="male",
                               province="Beijing", city="Beijing", district="Chaoyang", street="1 Example Rd",
                               plan_name="Basic 58", account_status="active", iccid="89860012345678901234",
                               imsi="460001234567890")

    async def call_detail_pages(self, msisdn: str, month: str) -> AsyncIterator[bytes]:
        self.asked.append(("calls", f"{msisdn} {month}"))
        rows = sorted(self.records.get((msisdn, month), []), key=lambda r: r.start_time.seconds)
        for i in range(0, max(len(rows), 1), self.page_size):
            if self.fail_after is not None and self.pages_served >= self.fail_after:
                raise DependencyUnavailable("billing")
            self.pages_served += 1
            last = i + self.page_size >= len(rows)
            yield billing_pb2.ListCallDetailsResponse(
                records=rows[i:i + self.page_size], next_page_token="" if last else f"p{i}").SerializeToString()


@dataclass
class World:
    desk: LegalDesk
    store: FakeLegalStore
    documents: FakeDocuments
    billing: FakeLegalBilling
    clock: FakeClock
    signer: delivery.Signer


IN_WINDOW = [local(2025, 3, 1, 0), local(2025, 3, 15, 9), local(2025, 4, 2, 10), local(2025, 4, 20, 11),
             local(2025, 4, 30, 23)]
OUT_OF_WINDOW = [local(2025, 2, 28, 23), local(2025, 5, 1, 0), local(2025, 5, 3, 8)]


def make_world(config: LegalConfig | None = None) -> World:
    clock = FakeClock(NOW.timestamp())
    billing = FakeLegalBilling()
    billing.add(A, *IN_WINDOW, *OUT_OF_WINDOW)
    billing.add(B, local(2025, 4, 1, 12))
    store, documents = FakeLegalStore(), FakeDocuments()
    signer = delivery.Signer(Ed25519PrivateKey.generate())
    desk = LegalDesk(store, documents, billing, signer, config or LegalConfig(), clock=clock)
    return World(desk, store, documents, billing, clock, signer)


def draft(**overrides: Any) -> RequestDraft:
    base = RequestDraft(
        agency_kind="public_security", agency_name="Shanghai Municipal Public Security Bureau",
        agency_level="prefecture", letter_reference="沪公(刑)调字\u30142025\u3015118号", letter_date="2025-06-10",
        letter_media_type="application/pdf", letter_content=PDF,
        legal_basis="Criminal Procedure Law art. 54; Telecommunications Regulations art. 66",
        case_number="SH-2025-0042", officers=(Officer("Li Wei", "310123"), Officer("Wang Fang", "310456")),
        targets=(A, B), categories=("call_details", "subscriber_info"),
        window_start=WINDOW_START, window_end=WINDOW_END)
    return replace(base, **overrides)


async def registered(w: World, by: Actor = OFFICER, **overrides: Any) -> LegalRequest:
    return await w.desk.register(by, draft(**overrides))


async def approved(w: World, **overrides: Any) -> LegalRequest:
    r = await registered(w, **overrides)
    return await w.desk.approve(APPROVER, r.request_id, "letter checked against the agency's register")
