"""RedisLegalStore and FileDocumentStore on a real redis-server and a real directory: round trips,
indexes, atomic transitions under concurrency (two approvals, two fulfilments: exactly one wins),
key layout, and failing closed."""

from __future__ import annotations

import asyncio
import hashlib
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.crc import key_slot

from adapters.document_store import FileDocumentStore
from adapters.legal_store import ALL_KEY, RedisLegalStore, request_key, state_key
from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess
from gateway.domain import delivery, legal
from gateway.domain.errors import DependencyUnavailable, FailedPrecondition
from gateway.domain.legal import Action, Actor, LegalConfig, LegalDesk, LegalRequest, ListFilter, State, Transition
from tests.support.legal_world import (
    APPROVER,
    IN_WINDOW,
    NOW,
    OFFICER,
    OFFICER2,
    PDF,
    A,
    FakeLegalBilling,
    draft,
    make_world,
)
from tests.unit.fakes import FakeClock

pytestmark = pytest.mark.asyncio
N = 20


@pytest.fixture
def store(client: aioredis.Redis) -> RedisLegalStore:
    return RedisLegalStore(client)


@pytest.fixture
def desk(store: RedisLegalStore, tmp_path: Path) -> LegalDesk:
    billing = make_world().billing
    return LegalDesk(store, FileDocumentStore(tmp_path / "documents"), billing,
                     delivery.Signer(Ed25519PrivateKey.generate()), LegalConfig(), clock=FakeClock(NOW.timestamp()))


def sample(request_id: str = "LR-00000000000000AA", **changes: object) -> LegalRequest:
    r = LegalRequest(
        request_id=request_id, state=State.AWAITING_APPROVAL, version=1,
        agency_kind=legal.AgencyKind.STATE_SECURITY, agency_name="Beijing State Security Bureau",
        agency_level=legal.AgencyLevel.PROVINCIAL, letter_reference="京安\u30142025\u30153号", letter_date="2025-06-01",
        letter_media_type="application/pdf", letter_sha256="ab" * 32, letter_size=1234,
        legal_basis="Counter-espionage Law art. 38", case_number="BJ-9", officers=(legal.Officer("赵六", "110-77"),),
        targets=(A, "13800000002"), categories=(legal.Category.SUBSCRIBER_INFO, legal.Category.CALL_DETAILS),
        window_start=datetime(2025, 1, 1, 12, 30, 15, 123456, tzinfo=UTC),
        window_end=datetime(2025, 3, 1, tzinfo=UTC), registered_by="L001", registered_at=NOW)
    return replace(r, **changes)  # type: ignore[arg-type]


def first(r: LegalRequest) -> Transition:
    return Transition(r.registered_at, Action.REGISTER, None, State.AWAITING_APPROVAL, "L001", "legal_officer",
                      "registered")


def step(r: LegalRequest, action: Action, by: Actor, **changes: object) -> tuple[LegalRequest, Transition]:
    after = legal.advance(r, action, **changes)
    return after, Transition(NOW + timedelta(minutes=after.version), action, r.state, after.state, by.staff_id,
                             by.role, f"{action.value} because")


# --- round trips and indexes ---------------------------------------------------------------------


async def test_a_request_and_its_history_round_trip(store: RedisLegalStore):
    r = sample()
    assert await store.create(r, first(r))
    assert not await store.create(r, first(r))  # the id is taken
    assert await store.get(r.request_id) == r
    assert await store.get("LR-FFFFFFFFFFFFFFFF") is None
    approved, t = step(r, Action.APPROVE, APPROVER, approved_by="A001", approved_at=NOW)
    assert await store.transition(approved, t)
    signed = replace(approved, manifest=b'{"x":"\xc3\xa9"}', manifest_signature=bytes(range(64)), manifest_key_id="k")
    done, t2 = step(signed, Action.START_FULFILMENT, OFFICER, delivery_id="DL-1", fulfilment_started_at=NOW)
    assert await store.transition(done, t2)
    assert await store.get(r.request_id) == done
    assert await store.history(r.request_id) == [first(r), t, t2]


async def test_a_transition_applies_only_to_the_version_it_was_computed_from(store, client):
    r = sample()
    await store.create(r, first(r))
    after, t = step(r, Action.APPROVE, APPROVER)
    assert not await store.transition(replace(after, version=3), t)  # skips a version
    wrong_state = replace(t, from_state=State.AWAITING_DISCLOSURE)
    after2 = legal.advance(replace(r, state=State.AWAITING_DISCLOSURE), Action.EXPIRE)
    assert not await store.transition(after2, replace(wrong_state, to_state=State.EXPIRED, action=Action.EXPIRE))
    missing = replace(after, request_id="LR-00000000000000BB")
    assert not await store.transition(missing, t)
    assert await store.get(r.request_id) == r and len(await store.history(r.request_id)) == 1
    assert await client.smembers(state_key(State.AWAITING_APPROVAL)) == {r.request_id.encode()}
    assert await store.transition(after, t)
    assert not await client.smembers(state_key(State.AWAITING_APPROVAL))
    assert await client.smembers(state_key(State.AWAITING_DISCLOSURE)) == {r.request_id.encode()}
    with pytest.raises(ValueError):
        await store.transition(after, replace(t, to_state=State.REJECTED))


async def test_lists_filter_by_state_case_and_agency_newest_first(store, client):
    made = []
    for i in range(7):
        r = sample(f"LR-{i:016X}", registered_at=NOW + timedelta(minutes=i), case_number=f"Case-{i % 2}",
                   agency_name="Beijing State Security Bureau" if i < 4 else "Tianjin PSB")
        await store.create(r, first(r))
        made.append(r.request_id)
    after, t = step(await store.get(made[2]), Action.REJECT, APPROVER)  # type: ignore[arg-type]
    await store.transition(after, t)

    async def ids(**kw: object) -> list[str]:
        return [r.request_id for r in await store.list(**kw)]  # type: ignore[arg-type]

    assert await ids() == made[::-1]
    assert await ids(offset=2, limit=3) == made[::-1][2:5]
    assert await ids(state=State.REJECTED) == [made[2]]
    assert await ids(state=State.AWAITING_APPROVAL, case_number=" CASE-0 ") == [made[6], made[4], made[0]]
    assert await ids(agency_name="tianjin  psb", case_number="case-1") == [made[5]]
    assert await ids(agency_name="tianjin psb", offset=1, limit=1) == [made[5]]
    assert await ids(agency_name="nobody") == []
    assert not [k async for k in client.scan_iter("hg:{legal}:scratch:*")]


async def test_every_key_is_in_one_cluster_slot_and_none_is_keyed_by_a_number(store, client, desk):
    r = await desk.register(OFFICER, draft())
    await desk.approve(APPROVER, r.request_id, "ok")
    keys = [k.decode() async for k in client.scan_iter("*")]
    legal_keys = [k for k in keys if k.startswith("hg:{legal}:")]
    assert ALL_KEY in legal_keys and request_key(r.request_id) in legal_keys
    assert len({key_slot(k.encode()) for k in legal_keys}) == 1
    assert not [k for k in keys if any(t in k for t in r.targets)]  # no tipping off, no per-number state
    assert legal_keys == keys  # the legal flow touched nothing else (no SMS, no hall state)


# --- atomicity under concurrency -----------------------------------------------------------------


async def test_racing_transitions_of_one_version_exactly_one_wins(store):
    r = sample()
    await store.create(r, first(r))
    tries = []
    for i in range(N):
        after, t = step(r, Action.APPROVE, Actor(f"A{i:03d}", "legal_approver"), approved_by=f"A{i:03d}")
        tries.append(store.transition(after, t))
    results = await asyncio.gather(*tries)
    assert sum(results) == 1
    history = await store.history(r.request_id)
    assert [h.action for h in history] == [Action.REGISTER, Action.APPROVE]
    winner = (await store.get(r.request_id)).approved_by  # type: ignore[union-attr]
    assert history[-1].actor == winner


class ReadTogether:
    """Wraps the store so that the next `n` reads of a request all return before any of them goes
    on: every contender then holds the same version, and only the store's atomic check can decide."""

    def __init__(self, inner: RedisLegalStore, n: int) -> None:
        self.inner = inner
        self.barrier: asyncio.Barrier | None = asyncio.Barrier(n)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def get(self, request_id: str) -> LegalRequest | None:
        found = await self.inner.get(request_id)
        if self.barrier is not None:
            await self.barrier.wait()
        return found

    def release(self) -> None:
        self.barrier = None


@pytest.mark.parametrize("contenders", [2, N])
async def test_concurrent_approvals_exactly_one_wins(desk: LegalDesk, store, contenders: int):
    r = await desk.register(OFFICER, draft())
    racing = ReadTogether(store, contenders)
    desk.store = racing  # type: ignore[assignment]
    approvers = [Actor(f"A{i:03d}", "legal_approver") for i in range(contenders)]
    results = await asyncio.gather(*(desk.approve(a, r.request_id, "ok") for a in approvers),
                                   return_exceptions=True)
    racing.release()
    wins = [x for x in results if isinstance(x, LegalRequest)]
    losses = [x for x in results if not isinstance(x, LegalRequest)]
    assert len(wins) == 1 and len(losses) == contenders - 1
    # Every loser passed every check on the same version and lost only the atomic transition.
    assert all(isinstance(e, FailedPrecondition) and e.reason == "request_changed" for e in losses)
    history = await store.history(r.request_id)
    assert [h.action for h in history].count(Action.APPROVE) == 1
    assert history[-1].actor == wins[0].approved_by


@pytest.mark.parametrize("contenders", [2, N])
async def test_concurrent_fulfilments_deliver_once(desk: LegalDesk, store, contenders: int):
    r = await desk.register(OFFICER, draft(targets=(A,), categories=("call_details",)))
    await desk.approve(APPROVER, r.request_id, "ok")
    racing = ReadTogether(store, contenders)
    desk.store = racing  # type: ignore[assignment]

    async def fulfil(i: int) -> list[legal.DeliveryPart]:
        parts = []
        async for p in desk.fulfil(Actor(f"L{i:03d}", "legal_officer"), r.request_id, "deliver"):
            racing.release()  # the winner is streaming: later reads need not wait
            parts.append(p)
        return parts

    results = await asyncio.gather(*(fulfil(i) for i in range(contenders)), return_exceptions=True)
    deliveries = [x for x in results if isinstance(x, list)]
    refused = [x for x in results if not isinstance(x, list)]
    assert len(deliveries) == 1 and len(refused) == contenders - 1
    assert all(isinstance(e, FailedPrecondition) and e.reason == "request_changed" for e in refused)
    [parts] = deliveries
    assert isinstance(parts[-1], legal.DeliveryEnd) and parts[-1].request.state == State.DISCLOSED
    billing = desk.billing
    assert isinstance(billing, FakeLegalBilling)
    assert [x for x in billing.asked if x[0] == "calls"] == [("calls", f"{A} 2025-03"), ("calls", f"{A} 2025-04")]
    history = await store.history(r.request_id)
    assert [h.action for h in history] == [Action.REGISTER, Action.APPROVE, Action.START_FULFILMENT,
                                           Action.DISCLOSE]


async def test_the_full_flow_on_redis_and_files(desk: LegalDesk, store, tmp_path: Path):
    r = await desk.register(OFFICER, draft())
    await desk.approve(APPROVER, r.request_id, "checked")
    parts = [p async for p in desk.fulfil(OFFICER2, r.request_id, "handover")]
    end = parts[-1]
    assert isinstance(end, legal.DeliveryEnd)
    chunks = [p.data for p in parts if isinstance(p, legal.DeliveryChunk)]
    doc = delivery.verify_delivery(end.signed.manifest, end.signed.signature, desk.signer.public_key, chunks)
    assert doc["per_target"][0]["call_details"] == len(IN_WINDOW)
    got, history = await desk.get_request(OFFICER, r.request_id)
    assert got.manifest == end.signed.manifest and got.manifest_signature == end.signed.signature
    assert [(h.actor, h.to_state) for h in history] == [
        ("L001", State.AWAITING_APPROVAL), ("A001", State.AWAITING_DISCLOSURE), ("L002", State.DISCLOSING),
        ("L002", State.DISCLOSED)]
    page = await desk.list_requests(OFFICER, ListFilter(state=State.DISCLOSED, case_number="sh-2025-0042"))
    assert [x.request_id for x in page.requests] == [r.request_id]


async def test_lapses_are_recorded_once_however_many_look(desk: LegalDesk, store):
    r = await desk.register(OFFICER, draft())
    await desk.approve(APPROVER, r.request_id, "ok")
    assert isinstance(desk.clock, FakeClock)
    desk.clock.advance(31 * 86400)
    await asyncio.gather(*(desk.get_request(OFFICER, r.request_id) for _ in range(N)),
                         *(desk.list_requests(OFFICER, ListFilter()) for _ in range(5)))
    history = await store.history(r.request_id)
    assert [h.action for h in history].count(Action.EXPIRE) == 1
    assert (await store.get(r.request_id)).state == State.EXPIRED  # type: ignore[union-attr]


# --- failing closed ------------------------------------------------------------------------------


async def test_redis_gone_is_dependency_unavailable(own_redis: RedisServerProcess):
    c = connect(own_redis.url, 0.5)
    try:
        store = RedisLegalStore(c)
        r = sample()
        assert await store.create(r, first(r))
        own_redis.stop()
        for call in (store.get(r.request_id), store.history(r.request_id), store.list(),
                     store.create(sample("LR-00000000000000CC"), first(r)),
                     store.transition(*step(r, Action.APPROVE, APPROVER))):
            with pytest.raises(DependencyUnavailable):
                await call
    finally:
        await c.aclose()


# --- the document store --------------------------------------------------------------------------


async def test_documents_are_files_named_by_their_digest_private_and_whole(tmp_path: Path):
    docs = FileDocumentStore(tmp_path / "documents")
    ref = await docs.put(PDF)
    assert ref == hashlib.sha256(PDF).hexdigest()
    path = docs.path_of(ref)
    assert path == tmp_path / "documents" / ref[:2] / ref
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert await docs.get(ref) == PDF
    assert await docs.put(PDF) == ref  # stored once
    assert await docs.get("0" * 64) is None
    assert not [p for p in path.parent.iterdir() if p.name != ref]  # no temporary files left
    with pytest.raises(ValueError):
        docs.path_of("../../etc/passwd")


async def test_a_damaged_document_is_rewritten_by_the_next_put_and_refused_until_then(tmp_path: Path,
                                                                                       desk: LegalDesk):
    r = await desk.register(OFFICER, draft())
    await desk.approve(APPROVER, r.request_id, "ok")
    docs = desk.documents
    assert isinstance(docs, FileDocumentStore)
    docs.path_of(r.letter_sha256).write_bytes(PDF[:-1])
    with pytest.raises(FailedPrecondition, match="letter_corrupt"):
        [p async for p in desk.fulfil(OFFICER, r.request_id, "deliver")]
    assert await docs.put(PDF) == r.letter_sha256
    assert await docs.get(r.letter_sha256) == PDF


async def test_concurrent_puts_of_one_document_agree(tmp_path: Path):
    docs = FileDocumentStore(tmp_path / "documents")
    refs = await asyncio.gather(*(docs.put(PDF) for _ in range(N)))
    assert set(refs) == {hashlib.sha256(PDF).hexdigest()}
    assert await docs.get(refs[0]) == PDF


async def test_an_unwritable_document_directory_is_dependency_unavailable(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"not a directory")
    with pytest.raises(DependencyUnavailable):
        await FileDocumentStore(blocker / "documents").put(PDF)


async def test_registration_stores_the_letter_before_the_request(tmp_path: Path, store, client):
    clock = FakeClock(NOW.timestamp())
    docs = FileDocumentStore(tmp_path / "docs")
    d = LegalDesk(store, docs, FakeLegalBilling(), delivery.Signer(Ed25519PrivateKey.generate()), clock=clock)
    r = await d.register(OFFICER, draft())
    assert await docs.get(r.letter_sha256) == PDF
    assert (await store.get(r.request_id)).letter_sha256 == r.letter_sha256  # type: ignore[union-attr]
    assert datetime.now(UTC) > NOW  # sanity: the fake clock, not the wall clock, stamped it
