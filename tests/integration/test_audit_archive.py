"""The audit archive on a real PostgreSQL (initdb'd by the fixtures from Debian's binaries) and real
Redis: storing is idempotent and refuses other content, gaps and forks; months become partitions; a
query by every indexed key answers across the tier boundary exactly what Redis answered before the
move; the mover survives SIGKILL of itself and of PostgreSQL (no gap, no duplicate, the chain verifies
across both tiers); and the archive holds nothing Redis did not."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis

from adapters.audit import archiving
from adapters.audit.archive import ArchiveConflict, PgAuditArchive, StoreResult
from adapters.audit.keys import ChainKeys
from adapters.audit.queries import query, verify
from adapters.audit.retention import trim
from adapters.audit.sink import ChainedAuditSink
from adapters.audit_reader import ChainAuditReader
from adapters.postgres_server import PostgresServerProcess
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable
from gateway.runtime.settings import Settings

SETTINGS = Settings(audit_hmac_key="archive-test-secret-0123456789")
KEYS, KID = SETTINGS.audit_keys()
CHAIN = "main"
K = ChainKeys.of(CHAIN)
ROOT = Path(__file__).resolve().parents[2]
SUBS = [f"ref{i:02d}" for i in range(12)]
NUMBER = re.compile(r"(?<![0-9a-f])1[3-9]\d{9}(?![0-9a-f])")  # a mobile number, not part of a hex mac


def ev(i: int, rnd: random.Random | None = None) -> dict[str, Any]:
    """A varied event (as in test_audit_index.py): pseudonyms (0-2), staff, terminal, hall, call id."""
    rnd = rnd or random.Random(i)
    refs = rnd.sample(SUBS, rnd.choice((0, 1, 1, 1, 2)))
    return {"at": "2025-06-01T00:00:00.000+00:00", "channel": rnd.choice(("kiosk", "clerk")),
            "method": rnd.choice(("/x/A", "/x/B")), "decision": rnd.choice(("allowed", "denied")),
            "reason": "ok", "code": "OK", "records": i, "hall": rnd.choice(("H001", "H002", "")),
            "terminal": rnd.choice(("H001/clerk/T01", "H002/kiosk/K01", "")),
            "staff_id": rnd.choice(("s1", "s2", "s3", "")), "call": f"c{i // 2}",
            "subscriber": "138****0001" if refs else "", "subscriber_ref": ",".join(refs)}


def sink_for(r: aioredis.Redis) -> ChainedAuditSink:
    return ChainedAuditSink(r, KEYS, KID, CHAIN, durability="trust")


async def stream(r: aioredis.Redis) -> list[tuple[str, dict[str, str]]]:
    raw = await r.xrange(K.stream)
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in raw]


async def _all(records: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in records]


def sealed(n: int, start: datetime, step: timedelta, first_seq: int = 1, prev: str = "") -> list[dict[str, str]]:
    """`n` sealed records with stream ids from `start` every `step` (no Redis involved)."""
    events = [{k: str(v) for k, v in ev(i).items()} | {"eid": f"{i:016x}"} for i in range(n)]
    out = []
    for i, s in enumerate(ac.seal_batch(CHAIN, events, first_seq - 1, prev, KID, KEYS[KID])):
        out.append(ac.record(CHAIN, f"{int((start + i * step).timestamp() * 1000)}-0", s))
    return out


# ---------------------------------------------------------------------------------------------
# The archive itself


async def test_store_is_idempotent_and_refuses_other_content_gaps_and_forks(archive: PgAuditArchive) -> None:
    recs = sealed(10, datetime(2026, 10, 1, tzinfo=UTC), timedelta(minutes=1))
    assert await archive.store(CHAIN, recs[:6]) == StoreResult(6, 0)
    assert await archive.store(CHAIN, recs[:6]) == StoreResult(0, 6)  # again: nothing changes
    assert await archive.store(CHAIN, recs[4:]) == StoreResult(4, 2)  # overlapping: only the new ones
    assert await archive.last_seq(CHAIN) == 10
    edited = dict(recs[3], decision="forged")
    with pytest.raises(ArchiveConflict, match="seq 4"):
        await archive.store(CHAIN, [edited])
    more = sealed(3, datetime(2026, 10, 2, tzinfo=UTC), timedelta(minutes=1), first_seq=11, prev=recs[-1]["mac"])
    with pytest.raises(ArchiveConflict, match="gap"):
        await archive.store(CHAIN, more[1:])  # seq 12 without 11
    forked = sealed(1, datetime(2026, 10, 2, tzinfo=UTC), timedelta(minutes=1), first_seq=11, prev="f" * 64)
    with pytest.raises(ArchiveConflict, match="fork"):
        await archive.store(CHAIN, forked)
    with pytest.raises(ArchiveConflict):  # a refused call stores none of its records
        await archive.store(CHAIN, [more[0], edited])
    assert await archive.last_seq(CHAIN) == 10
    got = await _all(archive.iter_from(CHAIN, 1))
    assert [(i, f) for i, f in got] == [(x["id"], {k: v for k, v in x.items() if k not in ("chain", "id")})
                                        for x in recs]
    assert [list(f) for _, f in got] == [[k for k in x if k not in ("chain", "id")] for x in recs]  # same order
    assert ac.verify_entries(CHAIN, KEYS, got).ok  # byte for byte: every mac verifies


async def test_months_are_partitions_created_on_demand_and_dropped(archive: PgAuditArchive, archive_url: str) -> None:
    recs = sealed(6, datetime(2026, 9, 30, 22, tzinfo=UTC), timedelta(hours=1))  # 2026-09-30 22:00 .. 10-01 03:00
    recs += sealed(2, datetime(2026, 11, 5, tzinfo=UTC), timedelta(hours=1), first_seq=7, prev=recs[-1]["mac"])
    await archive.store(CHAIN, recs)
    assert await archive.months(CHAIN) == ["2026_09", "2026_10", "2026_11"]
    with psycopg.connect(archive_url) as conn:
        parts = {row[0]: row[1] for row in conn.execute(
            "SELECT c.relname, count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'audit_events' GROUP BY 1").fetchall()}
        counts = dict(conn.execute("SELECT tableoid::regclass::text, count(*) FROM audit_events GROUP BY 1").fetchall())
    assert set(parts) == {"audit_events_2026_09", "audit_events_2026_10", "audit_events_2026_11"}
    assert counts == {"audit_events_2026_09": 2, "audit_events_2026_10": 4, "audit_events_2026_11": 2}
    assert await archive.drop_month(CHAIN, "2026_09") == 2
    assert await archive.months(CHAIN) == ["2026_10", "2026_11"]
    assert (await archive.head(CHAIN)).first_seq == 3  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        await archive.drop_month(CHAIN, "2026_13; DROP TABLE audit_events")


# ---------------------------------------------------------------------------------------------
# Moving, and reading across the boundary


def filters(stored: list[tuple[str, dict[str, str]]]) -> list[ac.AuditFilter]:
    mid = ac.time_of(stored[len(stored) // 2][0])
    early = ac.time_of(stored[len(stored) // 5][0])
    late = ac.time_of(stored[4 * len(stored) // 5][0])
    out = [ac.AuditFilter(), ac.AuditFilter(start=early, end=late), ac.AuditFilter(method="/x/A", decision="denied"),
           ac.AuditFilter(extra=(("call", "c40"),)), ac.AuditFilter(extra=(("call", "c140"),))]
    for ref in SUBS[:4]:
        out += [ac.AuditFilter(subscriber_ref=ref), ac.AuditFilter(subscriber_ref=ref, start=early, end=late)]
    for staff in ("s1", "s2"):
        out += [ac.AuditFilter(staff_id=staff), ac.AuditFilter(staff_id=staff, end=mid)]
    out += [ac.AuditFilter(terminal="H001/clerk/T01", start=mid), ac.AuditFilter(hall="H002"),
            ac.AuditFilter(hall="H001", staff_id="s3", start=early)]
    return out


async def seed(r: aioredis.Redis, n: int, waves: int = 20) -> list[tuple[str, dict[str, str]]]:
    sink = sink_for(r)
    rnd = random.Random(3)
    per = n // waves
    for w in range(waves):
        await asyncio.gather(*(sink.append(ev(w * per + j, rnd)) for j in range(per)))
        await asyncio.sleep(0.002)
    return await stream(r)


async def test_queries_across_the_boundary_answer_what_redis_answered_before_the_move(
        r: aioredis.Redis, archive: PgAuditArchive) -> None:
    stored = await seed(r, 400)
    wheres = filters(stored)
    before = [await _all(query(r, CHAIN, w)) for w in wheres]
    history = await _all(ChainAuditReader(r, CHAIN, KEYS).accesses(SUBS[1], ac.time_of(stored[0][0])))
    assert all(before) and history
    cutoff = ac.time_of(stored[200][0])  # about half; the cutoff's millisecond may hold more
    result = await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=cutoff, sink=sink_for(r), batch=64)
    moved = [e for e in stored if ac.parse_stream_id(e[0]) < ac.parse_stream_id(ac.stream_id_at(cutoff))]
    assert result.archived == result.trimmed == len(moved) and result.complete
    remaining = await stream(r)
    assert [i for i, _ in remaining[:-1]] == [i for i, _ in stored[len(moved):]]  # + the move's trim event
    assert remaining[-1][1]["method"] == "maintenance/trim" and remaining[-1][1]["moved_to"] == "archive"
    reader = ChainAuditReader(r, CHAIN, KEYS, archive=archive)
    for w, answer in zip(wheres, before, strict=True):
        got = await _all(reader.query(w))
        if w.start is None or w.end is None:  # open ranges now also see the move's own event
            got = [x for x in got if x["method"] != "maintenance/trim"]
        assert got == answer, w
        assert [list(x) for x in got] == [list(x) for x in answer]  # the same fields in the same order
        limited = await _all(reader.query(w, limit=3))
        assert limited == answer[:3]
    assert await _all(reader.accesses(SUBS[1], ac.time_of(stored[0][0]))) == history
    # a range entirely after the boundary never asks the archive, even when it is down
    down = ChainAuditReader(r, CHAIN, KEYS, archive=PgAuditArchive("postgresql://nobody@/none?host=/nonexistent"))
    assert await _all(down.query(ac.AuditFilter(start=ac.time_of(remaining[0][0])))) == \
        await _all(query(r, CHAIN, ac.AuditFilter(start=ac.time_of(remaining[0][0]))))
    with pytest.raises(DependencyUnavailable):
        await _all(down.query(ac.AuditFilter()))
    assert (await verify(r, CHAIN, KEYS)).ok  # Redis alone, from the checkpoint
    across = await archiving.verify_across(r, archive, CHAIN, KEYS)
    assert across.ok and across.checked == len(stored) + 1 and across.anchor == "genesis"


async def test_a_second_move_continues_and_a_rerun_moves_nothing_twice(r: aioredis.Redis,
                                                                     archive: PgAuditArchive) -> None:
    stored = await seed(r, 200, waves=10)
    first = await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=ac.time_of(stored[60][0]),
                                 sink=sink_for(r), batch=16, max_events=20)
    assert not first.complete and first.archived >= 20
    again = await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=ac.time_of(stored[150][0]),
                                 sink=sink_for(r), batch=16)
    assert again.complete
    assert (await archiving.verify_across(r, archive, CHAIN, KEYS)).ok
    head = await archive.head(CHAIN)
    assert head is not None
    redis_seqs = [int(f["seq"]) for _, f in await stream(r)]
    assert redis_seqs[0] == head.last_seq + 1  # no overlap, no gap
    nothing = await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=ac.time_of(stored[150][0]),
                                   sink=sink_for(r), batch=16)
    assert (nothing.archived, nothing.trimmed) == (0, 0)
    assert len(await stream(r)) == len(redis_seqs)  # no trim event for a move with nothing to move


async def test_a_chain_trimmed_before_its_first_move_is_archived_after_its_checkpoint(
        r: aioredis.Redis, archive: PgAuditArchive) -> None:
    stored = await seed(r, 120, waves=6)
    await trim(r, CHAIN, KEYS, KID, ac.time_of(stored[30][0]), sink=sink_for(r))  # plain retention first
    first_kept = int((await stream(r))[0][1]["seq"])
    await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=ac.time_of(stored[90][0]), sink=sink_for(r))
    head = await archive.head(CHAIN)
    assert head is not None and head.first_seq == first_kept and head.anchor is not None
    across = await archiving.verify_across(r, archive, CHAIN, KEYS)
    assert across.ok and across.anchor == "checkpoint"


async def test_redis_trimmed_past_the_archive_stops_the_move(r: aioredis.Redis, archive: PgAuditArchive) -> None:
    stored = await seed(r, 120, waves=6)
    await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=ac.time_of(stored[30][0]), sink=sink_for(r))
    archived = await archive.last_seq(CHAIN)
    await trim(r, CHAIN, KEYS, KID, ac.time_of(stored[60][0]), sink=sink_for(r))  # without archiving
    with pytest.raises(ac.ChainBroken) as caught:
        await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=ac.time_of(stored[90][0]), sink=sink_for(r))
    assert caught.value.result.reason == ac.DELETED and caught.value.result.first_bad_seq == (archived or 0) + 1
    assert await archive.last_seq(CHAIN) == archived


async def test_a_tampered_redis_stops_the_move_before_anything_is_archived(r: aioredis.Redis,
                                                                          archive: PgAuditArchive) -> None:
    stored = await seed(r, 100, waves=5)
    victim_id, victim = stored[30]
    # edit one event by rewriting the stream with the original ids, as the attacker in docs/audit.md can
    entries = await stream(r)
    await r.delete(K.stream)
    for i, f in entries:
        await r.xadd(K.stream, {**f, "decision": "forged"} if i == victim_id else f, id=i)
    with pytest.raises(ac.ChainBroken) as caught:
        await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=ac.time_of(stored[80][0]),
                             sink=sink_for(r), batch=16)
    assert caught.value.result.first_bad_seq == int(victim["seq"])
    assert (await archive.last_seq(CHAIN) or 0) < int(victim["seq"])  # the batch holding it was not stored
    assert len(await stream(r)) == 100  # nothing trimmed


async def test_the_archive_holds_nothing_redis_did_not(r: aioredis.Redis, archive: PgAuditArchive,
                                                       archive_url: str) -> None:
    stored = await seed(r, 100, waves=5)
    await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=ac.time_of(stored[-1][0]) + timedelta(seconds=1),
                         sink=sink_for(r))
    by_id = dict(stored)
    with psycopg.connect(archive_url) as conn:
        rows = conn.execute("SELECT chain, seq, stream_id, fields, subscriber_refs, staff_id, terminal, hall, call, "
                            "row_to_json(audit_events)::text FROM audit_events").fetchall()
        other = conn.execute("SELECT row_to_json(c)::text FROM audit_archive_chains c").fetchall()
    assert len(rows) == 100
    for chain, seq, sid, fields, refs, staff, term, hall, call, raw in rows:
        held = by_id[sid]
        assert (chain, str(seq), fields) == (CHAIN, held["seq"], held)
        values = set(held.values())
        assert set(refs) <= set(held["subscriber_ref"].split(",")) and {staff, term, hall, call} - {None} <= values
        # no subscriber number in any value of a row (the masked one and the pseudonyms only)
        assert not [v for v in json.loads(raw).values() for v in (v.values() if isinstance(v, dict) else
                    v if isinstance(v, list) else [v]) if isinstance(v, str) and NUMBER.search(v)]
    assert not [row for row in other if NUMBER.search(row[0])]


# ---------------------------------------------------------------------------------------------
# Crashes: the mover SIGKILLed at random points, PostgreSQL stopped mid-move


def mover_env(redis_url: str, archive_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLGATE_")}
    env.update(HALLGATE_REDIS_URL=redis_url, HALLGATE_AUDIT_ARCHIVE_URL=archive_url,
               HALLGATE_AUDIT_HMAC_KEY=SETTINGS.audit_hmac_key, HALLGATE_AUDIT_HOT_DAYS="0",
               HALLGATE_AUDIT_DURABILITY="trust", HALLGATE_AUDIT_CHAIN=CHAIN, HALLGATE_LOG_FORMAT="json")
    return env


async def union(r: aioredis.Redis, archive: PgAuditArchive) -> list[tuple[str, dict[str, str]]]:
    """Archive then Redis, each event once (Redis's copy of one archived but not trimmed yet)."""
    archived = await _all(archive.iter_from(CHAIN, 1))
    last = int(archived[-1][1]["seq"]) if archived else 0
    return archived + [(i, f) for i, f in await stream(r) if int(f["seq"]) > last]


async def test_the_move_survives_sigkill_of_the_mover(clean_redis: str, r: aioredis.Redis,
                                                      archive: PgAuditArchive, archive_url: str) -> None:
    original = await seed(r, 1200, waves=24)
    env = mover_env(clean_redis, archive_url)
    rnd = random.Random(11)
    cmd = [sys.executable, "-m", "adapters.audit.archiving", "--batch", "25"]
    kills = 0
    at_kill: list[tuple[int, int]] = []  # (archived, in Redis) after each run
    # kill twice while batches are being stored (at random progress beyond the last run's), then
    # right after the last batch's commit (the trim's turn), then at a random moment
    steps: list[int | None] = [rnd.randint(25, 300), rnd.randint(25, 300), len(original), None]
    for step in steps:
        before = await archive.last_seq(CHAIN) or 0
        target = None if step is None else min(before + step, len(original))
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL)
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while proc.returncode is None and asyncio.get_running_loop().time() < deadline:
                if target is None:
                    await asyncio.sleep(rnd.uniform(0.2, 0.9))
                    break
                if (await archive.last_seq(CHAIN) or 0) >= target:
                    await asyncio.sleep(rnd.uniform(0, 0.03))
                    break
                await asyncio.sleep(0.005)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await asyncio.wait_for(proc.wait(), 10)
        at_kill.append((await archive.last_seq(CHAIN) or 0, len(await stream(r))))
        seen = await union(r, archive)  # after every crash: no gap, no duplicate, all there
        seqs = [int(f["seq"]) for _, f in seen]
        assert seqs == list(range(1, len(seqs) + 1))
        assert [e for e in seen if e[1].get("method") != "maintenance/trim"] == original
    # the last run through the operator's command
    done = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", "audit", "archive",
                                                "--hot-days", "0", cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode == 0, err.decode(errors="replace")[-2000:]
    assert "complete" in out.decode()
    assert kills >= 2
    assert any(0 < archived < len(original) for archived, _ in at_kill)  # killed while storing
    archived = await _all(archive.iter_from(CHAIN, 1))
    assert [e for e in archived if e[1].get("method") != "maintenance/trim"] == original  # once, in order
    left = await stream(r)
    assert [f["method"] for _, f in left] == ["maintenance/trim"]  # only the last move's own event
    assert int(left[0][1]["seq"]) == int(archived[-1][1]["seq"]) + 1
    across = await archiving.verify_across(r, archive, CHAIN, KEYS)
    assert across.ok and across.checked == len(archived) + 1


class KillingArchive(PgAuditArchive):
    """SIGKILLs its own PostgreSQL at the `at`-th store: before it begins (`after` None) or
    `after` seconds into it, while its transaction is running or committing."""

    def __init__(self, url: str, server: PostgresServerProcess, at: int, after: float | None = None) -> None:
        super().__init__(url)
        self.server, self.at, self.after, self.calls = server, at, after, 0

    async def store(self, *args: Any, **kwargs: Any) -> StoreResult:
        self.calls += 1
        if self.calls == self.at and self.after is None:
            await asyncio.to_thread(self.server.kill)
        elif self.calls == self.at:
            asyncio.get_running_loop().call_later(self.after, self.server.kill)
        return await super().store(*args, **kwargs)


async def test_postgresql_killed_mid_move_fails_cleanly_and_a_rerun_completes(r: aioredis.Redis) -> None:
    server = PostgresServerProcess(Path(tempfile.mkdtemp(prefix="hallgate-pg-")), fsync=True).start()
    try:
        original = await seed(r, 300, waves=10)
        cutoff = ac.time_of(original[-1][0]) + timedelta(milliseconds=1)
        failing = KillingArchive(server.url, server, at=4)
        with pytest.raises(DependencyUnavailable):
            await archiving.move(r, failing, CHAIN, KEYS, KID, older_than=cutoff, sink=sink_for(r), batch=40)
        await failing.close()
        assert await stream(r) == original  # Redis keeps everything: no trim, no trim event
        await asyncio.to_thread(server.start)
        archive = PgAuditArchive(server.url)
        try:
            assert await archive.last_seq(CHAIN) == 120  # three batches committed before the crash
            result = await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=cutoff, sink=sink_for(r), batch=40)
            assert (result.archived, result.trimmed) == (180, 300)
            archived = await _all(archive.iter_from(CHAIN, 1))
            assert archived == original
            assert (await archiving.verify_across(r, archive, CHAIN, KEYS)).ok
        finally:
            await archive.close()
    finally:
        server.remove()


async def test_tampering_in_the_archive_is_named_by_the_full_verification(r: aioredis.Redis, archive: PgAuditArchive,
                                                                          archive_url: str) -> None:
    """An edited, a deleted and an inserted row in the archive are each named at their seq by the
    reader's whole-chain verification (VerifyChain with start_seq=1), as tampering in Redis is."""
    import psycopg

    stored = await seed(r, 120)
    cutoff = ac.time_of(stored[80][0])
    await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=cutoff, sink=sink_for(r), batch=32)
    reader = ChainAuditReader(r, CHAIN, KEYS, archive=archive)
    clean = await reader.verify(1, None)
    assert clean.ok and clean.checked == len(stored) + 1
    target = 40  # a seq in the archive

    async with await psycopg.AsyncConnection.connect(archive_url, autocommit=True) as conn:
        async def sql(statement: str, *args: Any) -> None:
            await conn.execute(statement, args)  # type: ignore[arg-type]

        await sql("UPDATE audit_events SET fields = jsonb_set(fields, '{decision}', '\"allowed\"') "
                  "WHERE chain = %s AND seq = %s AND fields->>'decision' = 'denied'", CHAIN, target)
        await sql("UPDATE audit_events SET fields = jsonb_set(fields, '{reason}', '\"covered\"') "
                  "WHERE chain = %s AND seq = %s", CHAIN, target)
        edited = await reader.verify(1, None)
        assert (edited.ok, edited.first_bad_seq, edited.reason) == (False, target, "edited"), edited
        await sql("DELETE FROM audit_events WHERE chain = %s AND seq = %s", CHAIN, target)
        deleted = await reader.verify(1, None)
        assert not deleted.ok and deleted.first_bad_seq in (target, target + 1), deleted
        # An invented row: a copy of seq 20 made to say something else, slipped in beside it.
        await sql("INSERT INTO audit_events SELECT chain, seq, stream_id, stream_time + interval '1 millisecond', "
                  "jsonb_set(fields, '{method}', '\"/x/Invented\"'), names, subscriber_refs, staff_id, terminal, "
                  "hall, call FROM audit_events WHERE chain = %s AND seq = %s", CHAIN, 20)
        inserted = await reader.verify(1, None)
        assert not inserted.ok and inserted.first_bad_seq <= 21, inserted


@pytest.mark.parametrize(("at", "after"), [(1, None), (2, 0.0), (3, 0.004), (5, 0.02)])
async def test_postgresql_killed_at_any_point_of_a_move_leaves_no_gap_and_no_duplicate(
        r: aioredis.Redis, at: int, after: float | None) -> None:
    """PostgreSQL SIGKILLed before a batch, as it starts, inside its transaction, or as it commits:
    the move fails closed (UNAVAILABLE) or had just finished, Redis loses nothing the archive did
    not take, and a rerun leaves the chain exactly once across the two tiers, verifying."""
    server = PostgresServerProcess(Path(tempfile.mkdtemp(prefix="hallgate-pg-")), fsync=True).start()
    try:
        original = await seed(r, 300, waves=10)
        cutoff = ac.time_of(original[-1][0]) + timedelta(milliseconds=1)
        failing = KillingArchive(server.url, server, at=at, after=after)
        try:  # fails closed, unless the last batches committed before the kill landed
            await archiving.move(r, failing, CHAIN, KEYS, KID, older_than=cutoff, sink=sink_for(r), batch=40)
        except DependencyUnavailable:
            pass
        await asyncio.sleep((after or 0) + 0.1)  # the kill has landed
        await failing.close()
        assert server.proc is None, "PostgreSQL was not killed"
        await asyncio.to_thread(server.start)
        archive = PgAuditArchive(server.url)
        try:
            committed = await archive.last_seq(CHAIN) or 0
            left = await stream(r)
            # whatever Redis dropped, the archive had committed
            assert all(int(f["seq"]) <= committed for _, f in original[:len(original) - len(left)])
            await archiving.move(r, archive, CHAIN, KEYS, KID, older_than=cutoff, sink=sink_for(r), batch=40)
            archived = await _all(archive.iter_from(CHAIN, 1))
            assert archived == original  # each event once, in order, byte for byte
            assert (await archiving.verify_across(r, archive, CHAIN, KEYS)).ok
        finally:
            await archive.close()
    finally:
        server.remove()
