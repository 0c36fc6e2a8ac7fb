"""Disposal (R8) end to end on a real redis-server and a real PostgreSQL (the letters): closed legal
requests past retention go with their history, indexes and letters, each batch recorded in the audit
trail first; open and recent requests stay, and so does a letter another request still references;
old SMS dead letters go, recent ones stay; an approval that lapsed unnoticed is recorded expired; a
rerun records nothing; a run interrupted between its event and its destruction (an exception, SIGKILL
of a running process) or before its event (the sink down) is completed by the next one without a
second event; and `hallgate retention status|run` does the same from the host."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.audit.sink import ChainedAuditSink
from adapters.audit_reader import ChainAuditReader
from adapters.document_store import FileDocumentStore
from adapters.legal_store import ALL_KEY, RedisLegalStore, agency_key, case_key, history_key, request_key, state_key
from adapters.pg_documents import PgDocumentStore
from adapters.pseudonyms import RedisPseudonymDirectory
from adapters.retention_runner import (
    JOURNAL,
    LOCK,
    CutoffDisposer,
    LegalDisposer,
    RetentionConflict,
    RetentionRunner,
    SmsDeadLetterDisposer,
    register_disposers,
)
from adapters.sms.queue import DEAD
from gateway.domain import audit_chain as ac
from gateway.domain import delivery
from gateway.domain import retention as rt
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.legal import LegalConfig, LegalDesk, LegalRequest, State
from gateway.runtime.settings import Settings
from tests.support.legal_world import APPROVER, NOW, OFFICER, PDF, draft, make_world
from tests.unit.fakes import FakeClock

pytestmark = pytest.mark.asyncio
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings(audit_hmac_key="retention-test-secret-0123456789", legal_retention_days=30,
                    sms_record_retention_days=30)
KEYS, KID = SETTINGS.audit_keys()
CHAIN = "main"
DAY = 86400.0
RUN_AT = NOW + timedelta(days=40, hours=1)  # cutoff NOW + 10 d 1 h: closed on day 1 due, on day 40 not
ACTOR = {"staff_id": "ops1", "role": "admin"}


def letter(n: int) -> bytes:
    return PDF + f"letter {n}".encode()


@pytest.fixture
async def docs(archive_url: str) -> AsyncIterator[PgDocumentStore]:
    d = PgDocumentStore(archive_url)
    yield d
    await d.close()


class World:
    def __init__(self, r: aioredis.Redis, docs: PgDocumentStore) -> None:
        self.r, self.docs = r, docs
        self.store = RedisLegalStore(r)
        self.clock = FakeClock(NOW.timestamp())
        self.desk = LegalDesk(self.store, docs, make_world().billing, delivery.Signer(Ed25519PrivateKey.generate()),
                              LegalConfig(), clock=self.clock)
        self.sink = ChainedAuditSink(r, KEYS, KID, CHAIN, durability="trust")
        self.reader = ChainAuditReader(r, CHAIN, KEYS)

    async def register(self, n: int) -> LegalRequest:
        return await self.desk.register(OFFICER, draft(letter_content=letter(n), case_number=f"SH-2025-{n:04d}"))

    def runner(self, **kw: Any) -> RetentionRunner:
        legal = LegalDisposer(self.store, self.docs, LegalConfig(), clock=lambda: RUN_AT)
        return RetentionRunner(SETTINGS, self.r, [legal, SmsDeadLetterDisposer(self.r)],
                               sink=kw.pop("sink", self.sink), reader=self.reader, chain=CHAIN, keys=KEYS, actor=ACTOR,
                               clock=lambda: RUN_AT.timestamp(), **kw)

    async def disposals(self) -> list[dict[str, str]]:
        return [e async for e in self.reader.query(ac.AuditFilter(method=rt.METHOD))]


@pytest.fixture
def world(r: aioredis.Redis, docs: PgDocumentStore) -> World:
    return World(r, docs)


async def seed(w: World) -> dict[str, Any]:
    """Registered at NOW: `gone` rejected and `shared` cancelled on day 1 (past retention), `open`
    still awaiting approval (registered with the same letter as `shared`), `old_open` awaiting
    approval, `recent` rejected on day 40 (within retention), `lapsing` approved on day 1 and never
    fulfilled (its approval lapses on day 31; nobody lists requests). Dead letters: two old, one recent."""
    gone = await w.register(1)
    shared = await w.register(2)
    open_ = await w.desk.register(OFFICER, draft(letter_content=letter(2), case_number="SH-2025-0099"))
    old_open = await w.register(3)
    recent = await w.register(4)
    lapsing = await w.register(5)
    w.clock.advance(DAY)
    await w.desk.approve(APPROVER, lapsing.request_id, "letter checked")  # lapses on day 31, unlisted
    await w.desk.reject(APPROVER, gone.request_id, "no legal basis named")
    await w.desk.cancel(OFFICER, shared.request_id, "the agency withdrew it")
    w.clock.advance(39 * DAY)
    await w.desk.reject(APPROVER, recent.request_id, "wrong agency level")
    old_ms = int(NOW.timestamp() * 1000)
    for i in range(2):
        await w.r.xadd(DEAD, {"id": f"m{i}", "kind": "code", "error": "refused", "at": "x"}, id=f"{old_ms + i}-0")
    await w.r.xadd(DEAD, {"id": "m9", "kind": "code", "error": "refused", "at": "x"},
                   id=f"{int((NOW + timedelta(days=39)).timestamp() * 1000)}-0")
    return {"gone": gone, "shared": shared, "open": open_, "old_open": old_open, "recent": recent, "lapsing": lapsing,
            "refs": {n: hashlib.sha256(letter(n)).hexdigest() for n in (1, 2, 3, 4, 5)}}


async def assert_disposed(w: World, s: dict[str, Any]) -> None:
    for r in (s["gone"], s["shared"]):
        rid = r.request_id
        assert await w.store.get(rid) is None and await w.store.history(rid) == []
        assert not await w.r.exists(request_key(rid), history_key(rid))
        assert await w.r.zscore(ALL_KEY, rid) is None
        for key in (state_key(State.REJECTED), state_key(State.CANCELLED), case_key(r.case_number),
                    agency_key(r.agency_name)):
            assert not await w.r.sismember(key, rid)
    assert await w.docs.get(s["refs"][1]) is None  # its only request is gone: so is the letter
    assert await w.docs.get(s["refs"][2]) == letter(2)  # still referenced by the open request
    for key in ("open", "old_open", "recent", "lapsing"):
        kept = await w.store.get(s[key].request_id)
        assert kept is not None and await w.store.history(s[key].request_id)
    for n in (3, 4, 5):
        assert await w.docs.get(s["refs"][n]) == letter(n)
    raw: Any = await w.r.xrange(DEAD)
    left = [e[0].decode() for e in raw]
    assert len(left) == 1 and left[0].startswith(str(int((NOW + timedelta(days=39)).timestamp() * 1000)))
    assert not await w.r.exists(JOURNAL)


async def test_closed_records_past_retention_are_disposed_recorded_and_gone(world: World) -> None:
    s = await seed(world)
    before = await world.runner().status()
    legal = next(x for x in before if x.rule == "R8.legal")
    assert legal.due == 2 and legal.oldest_due.startswith((NOW + timedelta(days=1)).isoformat()[:16])
    assert next(x for x in before if x.rule == "R8.sms-dead").due == 2
    assert "TTL" in next(x for x in before if x.rule == "R8.sms-life").note
    assert next(x for x in before if x.rule == "R8.customer-session").due is None

    result = await world.runner().run()
    assert {d.rule: d.records for d in result.disposals} == {"R8.legal": 2, "R8.sms-dead": 2}
    legal_done = next(d for d in result.disposals if d.rule == "R8.legal")
    assert legal_done.destroyed == {"requests": 2, "refused": 0, "letters": 1}
    await assert_disposed(world, s)
    lapsed = await world.store.get(s["lapsing"].request_id)  # recorded expired at its lapse, kept: too recent
    assert lapsed is not None and lapsed.state == State.EXPIRED
    assert (await world.store.history(lapsed.request_id))[-1].at == NOW + timedelta(days=31)

    events = await world.disposals()
    assert [e["rule"] for e in events] == ["R8.legal", "R8.sms-dead"]
    le, se = events
    assert sorted(le["ids"].split(",")) == sorted([s["gone"].request_id, s["shared"].request_id])
    assert le["letters"] == s["refs"][1] and le["letters_kept"] == "1"  # named by digest, never content
    assert le["records"] == "2" and le["reason"] == "retention" and le["staff_id"] == "ops1"
    assert le["older_than"].startswith((RUN_AT - timedelta(days=30)).isoformat()[:16])
    assert le["call"] == legal_done.disposal_id and int(le["seq"]) == legal_done.event_seq
    assert "Li Wei" not in json.dumps(events) and "13800000001" not in json.dumps(events)
    assert se["records"] == "2" and se["through"].startswith(str(int(NOW.timestamp() * 1000) + 1))
    assert (await world.reader.verify(1, None)).ok

    again = await world.runner().run()  # nothing due: nothing recorded
    assert again.disposals == () and len(await world.disposals()) == 2
    after = {x.rule: x for x in await world.runner().status()}
    assert after["R8.legal"].due == 0 and after["R8.sms-dead"].due == 0


async def test_a_crash_between_the_event_and_the_destruction_is_completed_without_a_second_event(
        world: World) -> None:
    s = await seed(world)

    async def crash(at: str) -> None:
        if at == "recorded":
            raise RuntimeError("killed after the event")

    with pytest.raises(RuntimeError):
        await world.runner(hook=crash).run()
    events = await world.disposals()
    assert len(events) == 1 and events[0]["rule"] == "R8.legal"
    assert await world.store.get(s["gone"].request_id) is not None  # recorded, not destroyed yet
    assert await world.r.hlen(JOURNAL) == 1
    status = {x.rule: x for x in await world.runner().status()}
    assert status["R8.legal"].pending == 1

    result = await world.runner().run()
    legal = [d for d in result.disposals if d.rule == "R8.legal"]
    assert len(legal) == 1 and legal[0].resumed and legal[0].event_seq == int(events[0]["seq"])
    await assert_disposed(world, s)
    assert [e["rule"] for e in await world.disposals()] == ["R8.legal", "R8.sms-dead"]  # the legal one once


KILLED_RUNNER = """
import asyncio, os, signal, sys
from datetime import datetime
from adapters.audit.sink import ChainedAuditSink
from adapters.audit_reader import ChainAuditReader
from adapters.document_store import FileDocumentStore
from adapters.legal_store import RedisLegalStore
from adapters.pg_documents import PgDocumentStore
from adapters.redis_client import connect
from adapters.retention_runner import LegalDisposer, RetentionRunner, SmsDeadLetterDisposer
from gateway.runtime.settings import Settings

async def hook(at):
    if at == "recorded":
        os.kill(os.getpid(), signal.SIGKILL)

async def main():
    s = Settings(audit_hmac_key=sys.argv[3], legal_retention_days=30, sms_record_retention_days=30)
    keys, kid = s.audit_keys()
    r = connect(sys.argv[1], 5.0)
    store = RedisLegalStore(r)
    at = datetime.fromisoformat(sys.argv[4])
    runner = RetentionRunner(s, r, [LegalDisposer(store, PgDocumentStore(sys.argv[2])), SmsDeadLetterDisposer(r)],
                             sink=ChainedAuditSink(r, keys, kid, "main", durability="trust"),
                             reader=ChainAuditReader(r, "main", keys), chain="main", keys=keys,
                             actor={"staff_id": "ops1", "role": "admin"}, clock=at.timestamp, hook=hook, lock_ttl=1.0)
    await runner.run()

asyncio.run(main())
"""


async def test_sigkill_after_the_event_leaves_it_for_the_next_run_to_complete(world: World, clean_redis: str,
                                                                             archive_url: str) -> None:
    s = await seed(world)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", KILLED_RUNNER, clean_redis, archive_url,
                                                SETTINGS.audit_hmac_key, RUN_AT.isoformat(), cwd=ROOT,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]
    events = await world.disposals()
    assert len(events) == 1 and events[0]["rule"] == "R8.legal" and await world.r.hlen(JOURNAL) == 1
    assert await world.store.get(s["gone"].request_id) is not None
    with pytest.raises(RetentionConflict):  # the killed run's lock, until it lapses (1 s here)
        await world.runner().run()
    for _ in range(50):
        if not await world.r.exists(LOCK):
            break
        await asyncio.sleep(0.1)
    result = await world.runner().run()
    assert [(d.rule, d.resumed) for d in result.disposals] == [("R8.legal", True), ("R8.sms-dead", False)]
    await assert_disposed(world, s)
    assert [e["rule"] for e in await world.disposals()] == ["R8.legal", "R8.sms-dead"]


class FailingSink:
    async def record(self, event: Any) -> Any:
        raise DependencyUnavailable("audit")


async def test_without_its_event_nothing_is_destroyed_and_the_next_run_records_it_once(world: World) -> None:
    s = await seed(world)
    with pytest.raises(DependencyUnavailable):
        await world.runner(sink=FailingSink()).run()
    assert await world.disposals() == []
    assert await world.store.get(s["gone"].request_id) is not None
    assert await world.docs.get(s["refs"][1]) == letter(1)
    assert await world.r.hlen(JOURNAL) == 1
    await world.runner().run()
    await assert_disposed(world, s)
    assert [e["rule"] for e in await world.disposals()] == ["R8.legal", "R8.sms-dead"]


async def test_an_open_request_is_never_disposed_even_when_asked_directly(world: World) -> None:
    s = await seed(world)
    assert await world.store.dispose(s["old_open"].request_id, rt.LEGAL_CLOSED) == -1
    assert await world.store.get(s["old_open"].request_id) is not None
    assert await world.store.dispose("LR-NOSUCH", rt.LEGAL_CLOSED) == 0
    assert await world.docs.delete(s["refs"][1]) is True and await world.docs.delete(s["refs"][1]) is False


async def test_the_file_letter_store_destroys_a_letter_once(tmp_path: Path) -> None:
    files = FileDocumentStore(tmp_path / "documents")
    ref = await files.put(letter(7))
    assert files.path_of(ref).exists()
    assert await files.delete(ref) is True
    assert not files.path_of(ref).exists() and await files.get(ref) is None
    assert await files.delete(ref) is False


async def test_batches_are_bounded_and_a_run_stops_at_its_limit(world: World) -> None:
    await seed(world)
    result = await world.runner(batch=1, max_batches=1).run()
    assert [d.records for d in result.disposals] == [1, 1] and set(result.more) == {"R8.legal", "R8.sms-dead"}
    result = await world.runner(batch=1).run()
    assert [d.rule for d in result.disposals] == ["R8.legal", "R8.sms-dead"] and result.more == ()
    assert len(await world.disposals()) == 4


async def test_the_commands_show_what_is_due_and_dispose_of_it(world: World, clean_redis: str, archive_url: str,
                                                               tmp_path: Path) -> None:
    s = await seed(world)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLGATE_")}
    env.update(HALLGATE_REDIS_URL=clean_redis, HALLGATE_LEGAL_DOCUMENT_URL=archive_url,
               HALLGATE_AUDIT_HMAC_KEY=SETTINGS.audit_hmac_key, HALLGATE_AUDIT_DURABILITY="trust",
               HALLGATE_AUDIT_CHAIN=CHAIN, HALLGATE_LEGAL_RETENTION_DAYS="30", HALLGATE_DATA_DIR=str(tmp_path),
               USER="ops2")

    async def cli(*args: str) -> tuple[int, str]:
        p = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", "retention", *args,
                                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(), 60)
        assert p.returncode is not None
        return p.returncode, out.decode() + err.decode(errors="replace")[-2000:]

    code, out = await cli("status", "--json")
    assert code == 0, out
    rules = {x["rule"]: x for x in json.loads(out)["rules"]}
    # with today's clock, `recent` is past 30 days as well, and so is the approval that lapsed on day 31
    assert rules["R8.legal"]["due"] == 4
    assert rules["R8.sms-life"]["how"] == "ttl" and rules["R8.sms-life"]["due"] is None
    code, out = await cli("status")
    assert code == 0 and "R8.legal" in out and "due 4" in out and "expires by TTL" in out, out
    code, out = await cli("run", "--dry-run")
    assert code == 0 and "would dispose of 4 record(s) by R8.legal" in out and "dry run" in out, out
    assert await world.disposals() == []
    assert (await world.store.get(s["lapsing"].request_id)).state == State.AWAITING_DISCLOSURE  # type: ignore[union-attr]
    code, out = await cli("run")
    assert code == 0 and "R8.legal: 4 record(s) disposed of" in out, out
    assert await world.store.get(s["lapsing"].request_id) is None
    events = await world.disposals()
    assert [e["staff_id"] for e in events] == ["ops2", "ops2"]
    assert await world.store.get(s["recent"].request_id) is None
    assert await world.store.get(s["open"].request_id) is not None
    code, out = await cli("status", "--json")
    assert json.loads(out)["rules"][0]["due"] == 0, out


async def test_letters_survive_while_any_kept_request_references_them(world: World) -> None:
    s = await seed(world)
    await world.runner().run()
    assert await world.docs.get(s["refs"][2]) == letter(2)
    # the open request that shared the letter closes, and its time comes: now the letter goes
    world.clock.t = (NOW + timedelta(days=2)).timestamp()
    await world.desk.cancel(OFFICER, s["open"].request_id, "withdrawn")
    result = await world.runner().run()
    assert [d.rule for d in result.disposals] == ["R8.legal"]
    assert await world.docs.get(s["refs"][2]) is None
    assert (await world.disposals())[-1]["letters"] == s["refs"][2]


class ClosedRegister:
    """A store of the shape the lending register and the incidents offer (count_returned and
    dispose_returned(before)), on the same Redis: the seam CutoffDisposer plugs them in by."""

    KEY = "test:{retention}:returned"

    def __init__(self, r: aioredis.Redis) -> None:
        self.r = r

    async def count_returned(self, before: datetime) -> tuple[int, datetime | None]:
        got: Any = await self.r.zrangebyscore(self.KEY, "-inf", f"({before.timestamp()}", withscores=True)
        return len(got), (datetime.fromtimestamp(got[0][1], UTC) if got else None)

    async def dispose_returned(self, before: datetime) -> list[str]:
        got: Any = await self.r.zrangebyscore(self.KEY, "-inf", f"({before.timestamp()}")
        if got:
            await self.r.zrem(self.KEY, *got)
        return [g.decode() for g in got]


async def test_a_register_that_disposes_by_cutoff_plugs_in_and_is_recorded_first(world: World) -> None:
    old, recent = (NOW + timedelta(days=1)).timestamp(), (NOW + timedelta(days=39)).timestamp()
    await world.r.zadd(ClosedRegister.KEY, {"LN-1": old, "LN-2": old, "LN-3": recent})
    loans = CutoffDisposer(rt.LOANS, ClosedRegister(world.r), "dispose_returned")
    runner = RetentionRunner(SETTINGS.with_(loan_retention_days=30), world.r, [loans], sink=world.sink,
                             reader=world.reader, chain=CHAIN, keys=KEYS, actor=ACTOR, clock=lambda: RUN_AT.timestamp())
    status = {x.rule: x for x in await runner.status()}
    assert status["R8.loan"].due == 2 and status["R8.incident"].due is None  # not wired here
    assert "not wired" in status["R8.incident"].note
    result = await runner.run()
    assert [(d.rule, dict(d.destroyed)) for d in result.disposals] == [("R8.loan", {"records": 2})]
    assert await world.r.zrange(ClosedRegister.KEY, 0, -1) == [b"LN-3"]
    (event,) = await world.disposals()
    assert event["rule"] == "R8.loan" and event["count_due"] == "2"
    assert event["older_than"].startswith((RUN_AT - timedelta(days=30)).isoformat()[:16])
    assert (await runner.run()).disposals == ()


async def test_the_registers_are_wired_and_the_pseudonym_directory_goes_by_month(world: World) -> None:
    """register_disposers wires the lending register, the incidents and (with the server secret) the
    pseudonym directory: a month of the directory older than the audit retention is disposed of,
    recorded first; the current month stays."""
    key = b"retention-test-server-secret"
    directory = RedisPseudonymDirectory(world.r, key)
    old, current = RUN_AT - timedelta(days=31 * 14), RUN_AT
    directory.note("p" * 32, "13800000001", now=old)
    directory.note("q" * 32, "13800000002", now=current)
    await directory.drain()
    settings = SETTINGS.with_(audit_retention_months=12)
    wired = register_disposers(world.r, key)
    assert {d.rule.name for d in wired} == {"R8.loan", "R8.incident", "R8.pseudonyms"}
    assert {d.rule.name for d in register_disposers(world.r, None)} == {"R8.loan", "R8.incident"}
    runner = RetentionRunner(settings, world.r, wired, sink=world.sink, reader=world.reader, chain=CHAIN, keys=KEYS,
                             actor=ACTOR, clock=lambda: RUN_AT.timestamp())
    status = {x.rule: x for x in await runner.status()}
    assert status["R8.pseudonyms"].due == 1 and status["R8.loan"].due == 0 and status["R8.incident"].due == 0
    result = await runner.run()
    assert [d.rule for d in result.disposals] == ["R8.pseudonyms"]
    assert await directory.months() == [current.strftime("%Y-%m")]
    (event,) = await world.disposals()
    assert event["rule"] == "R8.pseudonyms" and event["count_due"] == "1"
    assert "13800000001" not in json.dumps(event)
