"""RedisLendingStore on a real redis-server: round trips, indexes (holder, state, overdue by due
time), atomic transitions under concurrency (two approvals racing over separate connections: one
wins; two requests for one document: one wins), the overdue check's once-a-day claim across
racing sweeps, disposal of closed loans, and the key layout (one Cluster slot)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from adapters.redis_client import connect
from adapters.redis_lending import CLOSED_KEY, DUE_KEY, RedisLendingStore, doc_key, loan_key
from gateway.domain import lending as ln
from gateway.domain.errors import FailedPrecondition
from gateway.domain.lending import Actor, LendingConfig, LendingDesk, State
from gateway.runtime.lending import OverdueSweep
from gateway.runtime.lending_metrics import LOAN_OVERDUE_ALERTS

pytestmark = pytest.mark.asyncio
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CLERK = Actor("C1", "clerk", "H001")
CLERK2 = Actor("C2", "clerk", "H001")
MANAGER = Actor("M1", "hall_manager", "H001")
MANAGER2 = Actor("M2", "hall_manager", "H001")
CUSTODIAN = Actor("K1", "custodian", "H001")


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []

    async def append(self, event):
        await asyncio.sleep(0)
        self.events.append(dict(event))


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def store(client: aioredis.Redis) -> RedisLendingStore:
    return RedisLendingStore(client)


def desk_on(store: RedisLendingStore, clock: Clock) -> LendingDesk:
    return LendingDesk(store, LendingConfig(max_days=3), clock=clock)


async def out_loan(d: LendingDesk, archive_id: str, borrower: Actor = CLERK, hours: float = 2) -> ln.Loan:
    await d.register(CUSTODIAN, ln.DocumentDraft(archive_id, "contract", "", f"contract {archive_id}"))
    x = await d.request(borrower, archive_id, "billing dispute", d.clock() + timedelta(hours=hours))
    await d.approve(MANAGER, x.loan_id, "ok")
    return await d.hand_out(CUSTODIAN, x.loan_id)


async def test_round_trip_history_and_where(store, clock):
    d = desk_on(store, clock)
    doc = await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0001", "id_copy", "H001", "ID copy, 2024 contract"))
    assert await store.document("H001-CT-0001") == (doc, "")
    x = await d.request(CLERK, doc.archive_id, "dispute 多行\nreason", None)
    assert await store.loan(x.loan_id) == x
    await d.approve(MANAGER, x.loan_id, "ok")
    out = await d.hand_out(CUSTODIAN, x.loan_id)
    where = await d.where(MANAGER, doc.archive_id)
    assert where.loan == out and not where.on_shelf
    assert [(t.from_state, t.to_state, t.actor) for t in where.history] == [
        (None, State.REQUESTED, "C1"), (State.REQUESTED, State.APPROVED, "M1"), (State.APPROVED, State.OUT, "K1")]
    back = await d.record_return(CUSTODIAN, x.loan_id)
    assert (await store.document(doc.archive_id)) == (doc, "")
    assert back.returned_to == "K1" and (await d.where(CLERK, doc.archive_id)).on_shelf


async def test_two_approvals_racing_over_separate_connections_one_wins(store, clock, clean_redis):
    d = desk_on(store, clock)
    await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0002", "contract", "", "c"))
    x = await d.request(CLERK, "H001-CT-0002", "why", None)
    clients = [connect(clean_redis, 2.0) for _ in range(8)]
    try:
        desks = [desk_on(RedisLendingStore(c), clock) for c in clients]
        results = await asyncio.gather(*(dk.approve(MANAGER if i % 2 else MANAGER2, x.loan_id, f"ok {i}")
                                         for i, dk in enumerate(desks)), return_exceptions=True)
    finally:
        for c in clients:
            await c.aclose()
    wins = [r for r in results if isinstance(r, ln.Loan)]
    assert len(wins) == 1, results
    assert all(isinstance(r, FailedPrecondition) and r.reason in ("loan_changed", "loan_approved")
               for r in results if not isinstance(r, ln.Loan))
    history = await store.history(x.loan_id)
    assert [t.to_state for t in history] == [State.REQUESTED, State.APPROVED]
    # an approval racing a rejection: still one decision
    await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0003", "contract", "", "c"))
    y = await d.request(CLERK, "H001-CT-0003", "why", None)
    both = await asyncio.gather(d.approve(MANAGER, y.loan_id, "ok"), d.reject(MANAGER2, y.loan_id, "no"),
                                return_exceptions=True)
    assert sum(isinstance(r, ln.Loan) for r in both) == 1
    assert len(await store.history(y.loan_id)) == 2


async def test_two_requests_for_one_document_one_wins(store, clock):
    d = desk_on(store, clock)
    await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0004", "contract", "", "c"))
    results = await asyncio.gather(*(d.request(Actor(f"C{i}", "clerk", "H001"), "H001-CT-0004", "why", None)
                                     for i in range(6)), return_exceptions=True)
    assert sum(isinstance(r, ln.Loan) for r in results) == 1
    assert {r.reason for r in results if isinstance(r, FailedPrecondition)} == {"document_unavailable"}


async def test_indexes_holder_state_and_overdue(store, clock):
    d = desk_on(store, clock)
    a = await out_loan(d, "H001-CT-0010", CLERK, hours=1)
    b = await out_loan(d, "H001-CT-0011", CLERK, hours=5)
    c = await out_loan(d, "H001-CT-0012", CLERK2, hours=3)
    await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0013", "contract", "", "c"))
    r = await d.request(CLERK, "H001-CT-0013", "why", None)
    held = await store.list_loans("H001", holder="C1", state=State.OUT)
    assert {x.loan_id for x in held} == {a.loan_id, b.loan_id}
    assert [x.loan_id for x in await store.list_loans("H001", state=State.REQUESTED)] == [r.loan_id]
    assert await store.list_loans("H002") == []
    clock.t = NOW + timedelta(hours=4)
    overdue = await store.list_loans("H001", overdue_at=clock.t)
    assert [x.loan_id for x in overdue] == [a.loan_id, c.loan_id]  # most overdue first
    assert await store.count_overdue(clock.t) == 2
    await d.record_return(CUSTODIAN, a.loan_id)
    assert [x.loan_id for x in await store.overdue(clock.t)] == [c.loan_id]
    page = await d.list_loans(MANAGER, ln.LoanFilter(page_size=2))
    assert len(page.loans) == 2 and page.next_page_token == "2"
    rest = await d.list_loans(MANAGER, ln.LoanFilter(page_size=2, page_token="2"))
    assert len(rest.loans) == 2 and not rest.next_page_token
    mine = await d.list_loans(CLERK2, ln.LoanFilter())
    assert [x.loan_id for x in mine.loans] == [c.loan_id]


async def test_racing_sweeps_alert_each_overdue_loan_once_a_day(store, clock, clean_redis):
    d = desk_on(store, clock)
    late = await out_loan(d, "H001-CT-0020", hours=1)
    await out_loan(d, "H001-CT-0021", hours=48)  # not overdue
    clock.t = NOW + timedelta(hours=2)
    sink = ListSink()
    clients = [connect(clean_redis, 2.0) for _ in range(4)]
    before = LOAN_OVERDUE_ALERTS._value.get()
    try:
        sweeps = [OverdueSweep(RedisLendingStore(c), sink, LendingConfig(), clock=clock) for c in clients]
        alerted = await asyncio.gather(*(s.sweep_once() for s in sweeps))
        assert sorted(x for a in alerted for x in a) == [late.loan_id]
        again = await asyncio.gather(*(s.sweep_once() for s in sweeps))  # later the same day: nothing
        assert not any(again)
        clock.t += timedelta(days=1)  # the next day: once more
        next_day = await asyncio.gather(*(s.sweep_once() for s in sweeps))
        assert sorted(x for a in next_day for x in a) == [late.loan_id]
    finally:
        for c in clients:
            await c.aclose()
    assert [(e["reason"], e["loan_id"], e["staff_id"], e["method"]) for e in sink.events] == [
        ("loan_overdue", late.loan_id, "gateway", "maintenance/lending")] * 2
    assert [e["day"] for e in sink.events] == ["2026-11-30", "2026-12-01"]
    assert LOAN_OVERDUE_ALERTS._value.get() - before == 2


async def test_a_claim_whose_event_fails_is_given_back(store, clock):
    d = desk_on(store, clock)
    late = await out_loan(d, "H001-CT-0030", hours=1)
    clock.t = NOW + timedelta(hours=2)

    class Broken:
        async def append(self, event):
            raise RuntimeError("trail down")

    with pytest.raises(RuntimeError):
        await OverdueSweep(store, Broken(), clock=clock).sweep_once()
    sink = ListSink()
    assert await OverdueSweep(store, sink, clock=clock).sweep_once() == [late.loan_id]


async def test_dispose_returned_destroys_closed_loans_only(store, clock, client):
    d = desk_on(store, clock)
    returned = await out_loan(d, "H001-CT-0040")
    await d.record_return(CUSTODIAN, returned.loan_id)
    await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0041", "contract", "", "c"))
    rejected = await d.request(CLERK, "H001-CT-0041", "why", None)
    await d.reject(MANAGER, rejected.loan_id, "no")
    still_out = await out_loan(d, "H001-CT-0042")
    await d.register(CUSTODIAN, ln.DocumentDraft("H001-CT-0043", "contract", "", "c"))
    clock.t = NOW + timedelta(days=1)
    late_return = await d.request(CLERK, "H001-CT-0043", "why", None)
    await d.cancel(CLERK, late_return.loan_id, "not needed")
    assert await store.count_returned(NOW + timedelta(hours=1)) == (2, NOW)
    gone = await store.dispose_returned(NOW + timedelta(hours=1))
    assert sorted(gone) == sorted([returned.loan_id, rejected.loan_id])
    for lid in gone:
        assert await store.loan(lid) is None and await store.history(lid) == []
    assert await store.loan(still_out.loan_id) is not None and await store.loan(late_return.loan_id) is not None
    assert await store.dispose_returned(NOW + timedelta(hours=1)) == []  # idempotent
    held = await store.list_loans("H001", holder="C1")
    assert {x.loan_id for x in held} == {still_out.loan_id, late_return.loan_id}
    assert await store.document("H001-CT-0040") is not None  # the document stays on the register
    assert await client.zcard(CLOSED_KEY) == 1


async def test_every_key_is_in_one_cluster_slot(store, clock, client):
    d = desk_on(store, clock)
    x = await out_loan(d, "H001-CT-0050")
    keys = [k.decode() async for k in client.scan_iter("hg:{lending}:*")]
    assert doc_key("H001-CT-0050") in keys and loan_key(x.loan_id) in keys and DUE_KEY in keys
    assert len({key_slot(k.encode()) for k in keys}) == 1
