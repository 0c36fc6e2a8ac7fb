"""Disposal of archive months past retention (R8) on a real PostgreSQL and Redis: a chain over 15
months in the archive, the 3 oldest disposed in order, each recorded as an audit event that names
what was destroyed; the chain verifies afterwards from the new signed anchor; a month that does not
verify is not disposed; an anchor edited in the database is detected; a rerun is a no-op; a crash
between the event, the anchor and the drop (a raising hook, SIGKILL of a disposing process) leaves
the month and the old anchor, and a rerun completes without recording anything twice."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis

from adapters.audit.archive import PgAuditArchive
from adapters.audit.disposal import METHOD, DisposalRefused, dispose
from adapters.audit.keys import ChainKeys
from adapters.audit.sink import ChainedAuditSink
from adapters.audit_reader import ChainAuditReader
from gateway.domain import audit_chain as ac
from gateway.runtime.settings import Settings

SETTINGS = Settings(audit_hmac_key="disposal-test-secret-0123456789")
KEYS, KID = SETTINGS.audit_keys()
CHAIN = "main"
K = ChainKeys.of(CHAIN)
ROOT = Path(__file__).resolve().parents[2]
PER_MONTH = 20
MONTHS = 15
HOT = 4  # events appended to Redis after the archived ones
NUMBER = re.compile(r"(?<![0-9a-f])1[3-9]\d{9}(?![0-9a-f])")
ACTOR = {"staff_id": "ops1", "role": "admin"}


def month_start(back: int) -> datetime:
    """The first instant of the month `back` months before the current one (UTC)."""
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 - back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def month_name(back: int) -> str:
    m = month_start(back)
    return f"{m.year:04d}_{m.month:02d}"


# the archive holds the 15 months before the current one; with a 12-month retention from now, the
# months 15, 14 and 13 back end before the retention line and month 12 back does not, whatever the day
ARCHIVED = [month_name(back) for back in range(MONTHS, 0, -1)]
PAST = ARCHIVED[:3]


def ev(i: int) -> dict[str, str]:
    return {"at": "2025-06-01T00:00:00.000+00:00", "channel": "clerk", "method": "/x/A", "decision": "allowed",
            "reason": "ok", "code": "OK", "records": str(i), "hall": "H001", "terminal": "H001/clerk/T01",
            "staff_id": f"s{i % 3}", "call": f"c{i}", "subscriber": "138****0001", "subscriber_ref": f"ref{i % 7:02d}",
            "eid": f"{i:016x}"}


def sink_for(r: aioredis.Redis) -> ChainedAuditSink:
    return ChainedAuditSink(r, KEYS, KID, CHAIN, durability="trust")


async def stream(r: aioredis.Redis) -> list[tuple[str, dict[str, str]]]:
    raw = await r.xrange(K.stream)
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in raw]


async def disposals(r: aioredis.Redis) -> list[dict[str, str]]:
    return [f for _, f in await stream(r) if f.get("method") == METHOD]


async def seed(r: aioredis.Redis, archive: PgAuditArchive) -> list[dict[str, str]]:
    """15 months of sealed events in the archive (20 a month, seq 1..300, from genesis), the Redis
    checkpoint at the last of them (as the mover's trim leaves it) and a few newer events in Redis."""
    ids = []
    for back in range(MONTHS, 0, -1):
        start = month_start(back) + timedelta(days=1)
        ids += [f"{int((start + timedelta(hours=h)).timestamp() * 1000)}-0" for h in range(PER_MONTH)]
    sealed = ac.seal_batch(CHAIN, [ev(i) for i in range(len(ids))], 0, "", KID, KEYS[KID])
    records = [ac.record(CHAIN, i, s) for i, s in zip(ids, sealed, strict=True)]
    await archive.store(CHAIN, records)
    last = records[-1]
    cp = ac.Checkpoint(int(last["seq"]), last["mac"], last["id"], "2026-01-01T00:00:00.000+00:00", KID)
    await r.hset(K.checkpoint, mapping=cp.signed(CHAIN, KEYS[KID]).as_fields())
    sink = sink_for(r)
    for i in range(HOT):
        await sink.append({k: v for k, v in ev(1000 + i).items() if k != "eid"})
    assert (await ChainAuditReader(r, CHAIN, KEYS, archive=archive).verify(1, None)).ok
    return records


async def run(r: aioredis.Redis, archive: PgAuditArchive, **kw: Any) -> Any:
    return await dispose(r, archive, CHAIN, KEYS, KID, retention_months=12, sink=sink_for(r), actor=ACTOR, **kw)


async def anchor_row(archive_url: str) -> Any:
    async with await psycopg.AsyncConnection.connect(archive_url) as conn:
        cur = await conn.execute("SELECT anchor FROM audit_archive_chains WHERE chain = %s", (CHAIN,))
        row = await cur.fetchone()
        return row[0] if row else None


# ---------------------------------------------------------------------------------------------


async def test_the_three_oldest_months_are_disposed_in_order_and_recorded(r: aioredis.Redis,
                                                                         archive: PgAuditArchive) -> None:
    await seed(r, archive)
    assert await archive.months(CHAIN) == ARCHIVED
    dry = await run(r, archive, dry_run=True)
    assert dry.dry_run and [m.month for m in dry.months] == PAST
    assert await archive.months(CHAIN) == ARCHIVED and await disposals(r) == []  # a dry run changes nothing

    result = await run(r, archive)
    assert [(m.month, m.first_seq, m.last_seq, m.events) for m in result.months] == \
        [(PAST[0], 1, 20, 20), (PAST[1], 21, 40, 20), (PAST[2], 41, 60, 20)]
    assert result.events == 60 and not any(m.resumed for m in result.months)
    assert await archive.months(CHAIN) == ARCHIVED[3:]
    head = await archive.head(CHAIN)
    assert head is not None and head.first_seq == 61 and head.last_seq == MONTHS * PER_MONTH

    # the events: one per month, in order, naming what was destroyed and when, by whom; no subscriber data
    events = await disposals(r)
    assert [e["month"] for e in events] == PAST
    assert [int(e["seq"]) for e in events] == [m.event_seq for m in result.months]
    for e, m in zip(events, result.months, strict=True):
        assert (e["decision"], e["channel"], e["reason"], e["staff_id"], e["role"]) == \
            ("allowed", "maintenance", "retention", "ops1", "admin")
        assert (e["first_seq"], e["last_seq"], e["events"], e["records"]) == \
            (str(m.first_seq), str(m.last_seq), "20", "20")
        assert m.month in e["detail"] and f"seq {m.first_seq}..{m.last_seq}" in e["detail"] and e["at"] in e["detail"]
        assert e["checkpoint_seq"] == str(m.last_seq) and e["checkpoint_id"] == m.last_id
        assert e["subscriber"] == "" and e["subscriber_ref"] == "" and not NUMBER.search(json.dumps(e))

    # the new anchor: a signed checkpoint of seq 60 naming the last disposal's event
    assert head.anchor is not None
    cp = ac.Checkpoint.from_fields(head.anchor)
    assert (cp.seq, cp.id, cp.trim_event_seq) == (60, result.months[-1].last_id, result.months[-1].event_seq)
    assert cp.valid(CHAIN, KEYS)
    across = await ChainAuditReader(r, CHAIN, KEYS, archive=archive).verify(1, None)
    assert across.ok and across.anchor == "checkpoint", across
    assert across.checked == MONTHS * PER_MONTH - 60 + HOT + 3

    # a rerun disposes nothing and records nothing
    again = await run(r, archive)
    assert again.months == () and len(await disposals(r)) == 3
    assert await archive.months(CHAIN) == ARCHIVED[3:]
    # a longer time later the next month goes too, after the anchor the first run left
    later = await dispose(r, archive, CHAIN, KEYS, KID, retention_months=11, sink=sink_for(r), actor=ACTOR)
    assert [(m.month, m.first_seq) for m in later.months] == [(ARCHIVED[3], 61)]
    assert (await ChainAuditReader(r, CHAIN, KEYS, archive=archive).verify(1, None)).ok


async def test_a_month_that_does_not_verify_is_not_disposed(r: aioredis.Redis, archive: PgAuditArchive,
                                                            archive_url: str) -> None:
    await seed(r, archive)
    async with await psycopg.AsyncConnection.connect(archive_url, autocommit=True) as conn:
        await conn.execute("UPDATE audit_events SET fields = jsonb_set(fields, '{decision}', '\"denied\"') "
                           "WHERE chain = %s AND seq = 30", (CHAIN,))
    with pytest.raises(DisposalRefused) as caught:
        await run(r, archive)
    assert caught.value.month == PAST[1] and caught.value.result.first_bad_seq == 30
    assert caught.value.result.reason == ac.EDITED
    assert await archive.months(CHAIN) == ARCHIVED  # not even the intact month before it
    assert await disposals(r) == [] and await anchor_row(archive_url) is None
    with pytest.raises(DisposalRefused):  # nor in a dry run
        await run(r, archive, dry_run=True)
    # a row deleted from the oldest month: refused as well
    async with await psycopg.AsyncConnection.connect(archive_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM audit_events WHERE chain = %s AND seq = 5", (CHAIN,))
    with pytest.raises(DisposalRefused) as caught:
        await run(r, archive)
    assert caught.value.month == PAST[0] and caught.value.result.reason == ac.DELETED
    assert await archive.months(CHAIN) == ARCHIVED


async def test_an_anchor_edited_in_the_database_is_detected(r: aioredis.Redis, archive: PgAuditArchive,
                                                            archive_url: str) -> None:
    await seed(r, archive)
    await run(r, archive)
    reader = ChainAuditReader(r, CHAIN, KEYS, archive=archive)
    genuine = await anchor_row(archive_url)
    async with await psycopg.AsyncConnection.connect(archive_url, autocommit=True) as conn:
        async def set_anchor(value: Any) -> None:
            await conn.execute("UPDATE audit_archive_chains SET anchor = %s WHERE chain = %s",
                               (None if value is None else psycopg.types.json.Jsonb(value), CHAIN))

        # moved to hide the next month's deletion: the signature no longer holds
        await conn.execute("DELETE FROM audit_events WHERE chain = %s AND seq <= 80", (CHAIN,))
        await set_anchor({**genuine, "seq": "80"})
        forged = await reader.verify(1, None)
        assert (forged.ok, forged.reason) == (False, ac.CHECKPOINT), forged
        with pytest.raises(DisposalRefused) as caught:
            await dispose(r, archive, CHAIN, KEYS, KID, retention_months=10, sink=sink_for(r))
        assert caught.value.result.reason == ac.CHECKPOINT
        # the anchor removed (verification from genesis): the destroyed months show as deleted
        await set_anchor(None)
        gone = await reader.verify(1, None)
        assert (gone.ok, gone.reason, gone.first_bad_seq) == (False, ac.DELETED, 1), gone
        # the genuine anchor back: the 20 events deleted by hand after it are named
        await set_anchor(genuine)
        cut = await reader.verify(1, None)
        assert (cut.ok, cut.reason, cut.first_bad_seq) == (False, ac.DELETED, 61), cut


@pytest.mark.parametrize("step", ["anchored", "dropped"])
async def test_a_crash_inside_the_disposal_leaves_the_month_and_the_old_anchor(
        r: aioredis.Redis, archive: PgAuditArchive, archive_url: str, step: str) -> None:
    await seed(r, archive)

    class Crash(Exception):
        pass

    async def hook(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        await run(r, archive, hook=hook)
    # the first month's event is recorded, but its transaction rolled back: month and old anchor there
    assert await archive.months(CHAIN) == ARCHIVED and await anchor_row(archive_url) is None
    first = await disposals(r)
    assert [e["month"] for e in first] == [PAST[0]]
    assert (await ChainAuditReader(r, CHAIN, KEYS, archive=archive).verify(1, None)).ok
    result = await run(r, archive)
    assert [m.month for m in result.months] == PAST
    assert [m.resumed for m in result.months] == [True, False, False]
    assert result.months[0].event_seq == int(first[0]["seq"])
    assert [e["month"] for e in await disposals(r)] == PAST  # nothing recorded twice
    assert (await ChainAuditReader(r, CHAIN, KEYS, archive=archive).verify(1, None)).ok


DISPOSER = """
import asyncio, os, signal, sys
from adapters.audit.archive import PgAuditArchive
from adapters.audit.disposal import dispose
from adapters.audit.sink import ChainedAuditSink
from adapters.redis_client import connect
from gateway.runtime.settings import Settings

keys, kid = Settings(audit_hmac_key=sys.argv[3]).audit_keys()
step, nth = sys.argv[4], int(sys.argv[5])
recorded = 0

async def hook(at):
    global recorded
    recorded += at == "recorded"
    if at == step and recorded == nth:
        os.kill(os.getpid(), signal.SIGKILL)

async def main():
    r = connect(sys.argv[1], 5.0)
    await dispose(r, PgAuditArchive(sys.argv[2]), "main", keys, kid, retention_months=12,
                  sink=ChainedAuditSink(r, keys, kid, "main", durability="trust"), hook=hook)

asyncio.run(main())
"""


async def no_disposer_left(archive_url: str) -> None:
    """Wait (bounded) until PostgreSQL has ended the killed process's session and its locks."""
    async with await psycopg.AsyncConnection.connect(archive_url, autocommit=True) as conn:
        for _ in range(200):
            cur = await conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                     "OR (relation = 'audit_events'::regclass AND mode = 'AccessExclusiveLock')")
            row = await cur.fetchone()
            if row is not None and row[0] == 0:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the killed disposer's session is still there")


async def test_sigkill_of_the_disposer_leaves_a_consistent_state_and_the_command_completes(
        clean_redis: str, r: aioredis.Redis, archive: PgAuditArchive, archive_url: str) -> None:
    await seed(r, archive)
    reader = ChainAuditReader(r, CHAIN, KEYS, archive=archive)
    # killed inside the second month's transaction (anchor written, month dropped, not committed)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", DISPOSER, clean_redis, archive_url,
                                                SETTINGS.audit_hmac_key, "dropped", "2", cwd=ROOT,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]
    await no_disposer_left(archive_url)
    assert await archive.months(CHAIN) == ARCHIVED[1:]  # the first month committed, the second not
    anchor = await anchor_row(archive_url)
    assert anchor is not None and anchor["seq"] == "20"
    assert [e["month"] for e in await disposals(r)] == PAST[:2]
    assert (await reader.verify(1, None)).ok
    # killed right after the third month's event, before its transaction
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", DISPOSER, clean_redis, archive_url,
                                                SETTINGS.audit_hmac_key, "recorded", "2", cwd=ROOT,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]
    await no_disposer_left(archive_url)
    assert await archive.months(CHAIN) == ARCHIVED[2:]
    assert (await anchor_row(archive_url))["seq"] == "40"
    assert [e["month"] for e in await disposals(r)] == PAST  # the second's event was found, not repeated
    assert (await reader.verify(1, None)).ok
    # the operator's command completes it
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLGATE_")}
    env.update(HALLGATE_REDIS_URL=clean_redis, HALLGATE_AUDIT_ARCHIVE_URL=archive_url,
               HALLGATE_AUDIT_HMAC_KEY=SETTINGS.audit_hmac_key, HALLGATE_AUDIT_DURABILITY="trust",
               HALLGATE_AUDIT_CHAIN=CHAIN, HALLGATE_LOG_FORMAT="json", HALLGATE_AUDIT_RETENTION_MONTHS="12")

    async def cli(*args: str) -> tuple[int, str]:
        p = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", "audit", "dispose", *args,
                                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(), 60)
        assert p.returncode is not None
        return p.returncode, out.decode() + err.decode(errors="replace")[-2000:]

    code, out = await cli("--dry-run")
    assert code == 0 and f"would destroy month {PAST[2]}: seq 41..60, 20 events" in out and "dry run" in out, out
    assert await archive.months(CHAIN) == ARCHIVED[2:]
    code, out = await cli()
    assert code == 0 and f"destroyed month {PAST[2]}: seq 41..60, 20 events" in out, out
    assert "interrupted run" in out, out
    assert await archive.months(CHAIN) == ARCHIVED[3:]
    assert [e["month"] for e in await disposals(r)] == PAST
    across = await reader.verify(1, None)
    assert across.ok and across.anchor == "checkpoint"
    code, out = await cli()
    assert code == 0 and "0 month(s), 0 events destroyed" in out, out


async def test_a_month_the_archive_does_not_hold_entirely_waits(r: aioredis.Redis, archive: PgAuditArchive) -> None:
    """A mover behind: the third month past retention is half in the archive, half still in Redis."""
    ids = []
    for back in range(MONTHS, 0, -1):
        start = month_start(back) + timedelta(days=1)
        ids += [f"{int((start + timedelta(hours=h)).timestamp() * 1000)}-0" for h in range(PER_MONTH)]
    sealed = ac.seal_batch(CHAIN, [ev(i) for i in range(len(ids))], 0, "", KID, KEYS[KID])
    await archive.store(CHAIN, [ac.record(CHAIN, i, s) for i, s in zip(ids[:50], sealed[:50], strict=True)])
    for i, s in zip(ids[50:], sealed[50:], strict=True):
        await r.xadd(K.stream, s, id=i)  # type: ignore[arg-type]
    await r.hset(K.head, mapping={"seq": sealed[-1]["seq"], "mac": sealed[-1]["mac"], "id": ids[-1]})
    result = await run(r, archive)
    assert [m.month for m in result.months] == PAST[:2]
    assert await archive.months(CHAIN) == [PAST[2]]
    across = await ChainAuditReader(r, CHAIN, KEYS, archive=archive).verify(1, None)
    assert across.ok and across.anchor == "checkpoint", across


async def test_trim_by_age_is_refused_when_an_archive_is_configured(clean_redis: str, r: aioredis.Redis,
                                                                    archive: PgAuditArchive, archive_url: str) -> None:
    """With an archive only the mover trims Redis (after archiving): a trim by age could drop events the
    mover has not moved yet. The CronJob of deploy/k8s is suspended for the same reason."""
    await seed(r, archive)
    before = await r.xlen(ChainKeys.of(CHAIN).stream)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLGATE_")}
    env.update(HALLGATE_REDIS_URL=clean_redis, HALLGATE_AUDIT_ARCHIVE_URL=archive_url,
               HALLGATE_AUDIT_HMAC_KEY=SETTINGS.audit_hmac_key, HALLGATE_AUDIT_CHAIN=CHAIN)
    done = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", "audit", "trim", "--months", "1",
                                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode == 2 and out == b""
    assert "refusing to trim" in err.decode() and "hallgate audit archive" in err.decode()
    assert await r.xlen(ChainKeys.of(CHAIN).stream) == before
