"""The audit chain's indexes on real redis-server: written in the same script as the event (a SIGKILLed
Redis leaves both or neither), queries by every indexed field and time range answer exactly what a
full scan answers, a query reads O(matches) entries, retention removes trimmed events from the
indexes, and `reindex` builds them for chains written before they existed."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.audit import indexes, retention
from adapters.audit.keys import ChainKeys, index_key, index_prefix, index_state_key, index_terms
from adapters.audit.queries import query, verify
from adapters.audit.retention import trim
from adapters.audit.sink import ChainedAuditSink
from adapters.audit_reader import ChainAuditReader
from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess, free_port
from gateway.domain import audit_chain as ac

KEYS = {"k1": b"audit-test-key-0123456789abcdef"}
CHAIN = "main"
K = ChainKeys.of(CHAIN)
SUBS = [f"ref{i:02d}" for i in range(12)]


def ev(i: int, rnd: random.Random | None = None, **extra: Any) -> dict[str, Any]:
    rnd = rnd or random.Random(i)
    refs = rnd.sample(SUBS, rnd.choice((0, 1, 1, 1, 2)))
    return {"at": "2025-06-01T00:00:00.000+00:00", "channel": rnd.choice(("kiosk", "clerk")),
            "method": rnd.choice(("/x/A", "/x/B")), "decision": rnd.choice(("allowed", "denied")),
            "reason": "ok", "code": "OK", "records": i, "hall": rnd.choice(("H001", "H002", "")),
            "terminal": rnd.choice(("H001/clerk/T01", "H002/kiosk/K01", "")),
            "staff_id": rnd.choice(("s1", "s2", "s3", "")), "call": f"c{i // 2}",
            "subscriber": "138****0001" if refs else "", "subscriber_ref": ",".join(refs), **extra}


@pytest.fixture
def sink(r: aioredis.Redis) -> ChainedAuditSink:
    return ChainedAuditSink(r, KEYS, "k1", CHAIN, durability="trust")


async def stream(r: aioredis.Redis, chain: str = CHAIN) -> list[tuple[str, dict[str, str]]]:
    raw = await r.xrange(ChainKeys.of(chain).stream)
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in raw]


async def index_contents(r: aioredis.Redis, chain: str = CHAIN) -> dict[str, dict[str, float]]:
    meta = {index_state_key(chain), index_prefix(chain) + ":reindex"}
    out: dict[str, dict[str, float]] = {}
    async for raw in r.scan_iter(match=index_prefix(chain) + ":*"):
        key = raw.decode()
        if key not in meta:
            out[key] = {m.decode(): s for m, s in await r.zrange(key, 0, -1, withscores=True)}
    return out


async def assert_consistent(r: aioredis.Redis, chain: str = CHAIN) -> int:
    """Every stream entry is in exactly the index keys its fields name (score: its ms), and every
    index member is an entry of the stream: neither without the other."""
    expected: dict[str, dict[str, float]] = {}
    stored = await stream(r, chain)
    for entry_id, fields in stored:
        for key in (index_key(chain, kind, value) for kind, value in index_terms(fields)):
            expected.setdefault(key, {})[entry_id] = float(ac.parse_stream_id(entry_id)[0])
    assert await index_contents(r, chain) == expected
    return len(stored)


async def _all(records: AsyncIterator[dict[str, str]]) -> list[dict[str, str]]:
    return [x async for x in records]


def scanned(stored: list[tuple[str, dict[str, str]]], where: ac.AuditFilter) -> list[dict[str, str]]:
    return [ac.record(CHAIN, i, f) for i, f in stored if where.matches(i, f)]


async def command_calls(r: aioredis.Redis) -> dict[str, int]:
    stats = await r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


# ---------------------------------------------------------------------------------------------
# Written with the event


async def test_every_event_lands_in_its_index_keys_under_the_chain_hash_tag(r: aioredis.Redis,
                                                                           sink: ChainedAuditSink) -> None:
    await sink.append(ev(0, subscriber_ref="refA,refB", staff_id="s9", terminal="H001/clerk/T07", hall="H001",
                         call="cafe01"))
    await asyncio.gather(*(sink.append(ev(i)) for i in range(1, 300)))
    assert await assert_consistent(r) == 300
    first = (await stream(r))[0][0]
    for kind, value in (("sub", "refA"), ("sub", "refB"), ("staff", "s9"), ("term", "H001/clerk/T07"),
                        ("hall", "H001"), ("req", "cafe01")):
        assert first in {m.decode() for m in await r.zrange(index_key(CHAIN, kind, value), 0, -1)}
    assert await r.hget(index_state_key(CHAIN), "complete") == b"1"  # a chain indexed from its start
    # one shard holds it all: every key the chain wrote carries its hash tag, none names a number
    names = [k.decode() async for k in r.scan_iter(match="*")]
    assert names and all("{main}" in n for n in names)
    assert not any(re.search(r"1\d{10}|\*\*\*\*", n) for n in names)
    assert (await verify(r, CHAIN, KEYS)).ok


async def test_an_event_without_indexed_fields_is_in_no_index(r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    await sink.append({"at": "2025-06-01T00:00:00.000+00:00", "channel": "maintenance", "method": "m"})
    assert await index_contents(r) == {}
    assert await assert_consistent(r) == 1


async def test_sigkill_during_appends_leaves_events_and_index_entries_together(tmp_path: Path) -> None:
    """Redis is SIGKILLed while group commits are running, three times at different points; after
    each restart every stream entry is in its indexes and every index member is in the stream, every
    acknowledged event survived, and the chain verifies."""
    port = free_port()
    acked: list[str] = []
    rnd = random.Random(7)
    for round_, kill_at in enumerate((700, 1900, 3100)):
        proc = RedisServerProcess(tmp_path / "redis", port=port, appendfsync="always").start()
        client = connect(proc.url, 2.0)
        try:
            sink = ChainedAuditSink(client, KEYS, "k1", CHAIN)  # strict: appendfsync always is checked

            reached = asyncio.Event()

            async def writer(sink: ChainedAuditSink = sink, base: int = round_ * 100_000,
                             reached: asyncio.Event = reached, kill_at: int = kill_at) -> None:
                for wave in range(400):
                    done = await asyncio.gather(*(sink.record(ev(base + wave * 50 + j, rnd)) for j in range(50)),
                                                return_exceptions=True)
                    acked.extend(x.id for x in done if not isinstance(x, BaseException))
                    if len(acked) >= kill_at:
                        reached.set()
                    if any(isinstance(x, BaseException) for x in done):
                        return

            task = asyncio.create_task(writer())
            await asyncio.wait_for(reached.wait(), 60)
            proc.kill()  # while appends are in flight
            await asyncio.wait_for(task, 30)
            await client.aclose()
            proc = RedisServerProcess(tmp_path / "redis", port=port, appendfsync="always").start()
            client = connect(proc.url, 2.0)
            n = await assert_consistent(client)
            assert n >= len(acked) >= kill_at
            assert set(acked) <= {i for i, _ in await stream(client)}
            assert (await verify(client, CHAIN, KEYS)).ok
        finally:
            await client.aclose()
            proc.stop()


# ---------------------------------------------------------------------------------------------
# Queries: the same answer as a scan, for O(matches)


@pytest.fixture
async def seeded(r: aioredis.Redis, sink: ChainedAuditSink) -> list[tuple[str, dict[str, str]]]:
    """600 events in waves (many share a millisecond), spread over some tens of milliseconds."""
    rnd = random.Random(1)
    for wave in range(12):
        await asyncio.gather(*(sink.append(ev(wave * 50 + j, rnd)) for j in range(50)))
        await asyncio.sleep(0.003)
    return await stream(r)


def _random_filter(rnd: random.Random, stored: list[tuple[str, dict[str, str]]]) -> ac.AuditFilter:
    times = [ac.time_of(i) for i, _ in stored]
    start = rnd.choice([None, rnd.choice(times), rnd.choice(times) + timedelta(milliseconds=1)])
    end = rnd.choice([None, rnd.choice(times), rnd.choice(times) + timedelta(milliseconds=1)])
    args: dict[str, Any] = {"start": start, "end": end}
    picks = [rnd.choice(["sub", "staff_id", "terminal", "hall", "call"]),  # at least one indexed field
             *rnd.sample(["sub", "staff_id", "terminal", "hall", "call", "method", "decision"], rnd.randint(0, 2))]
    for p in picks:
        if p == "sub":
            args["subscriber_ref"] = rnd.choice([*SUBS, "nobody"])
        elif p == "call":
            args["extra"] = (("call", f"c{rnd.randrange(320)}"),)
        elif p == "staff_id":
            args["staff_id"] = rnd.choice(("s1", "s2", "s3", "s4"))
        elif p == "terminal":
            args["terminal"] = rnd.choice(("H001/clerk/T01", "H002/kiosk/K01", "T9"))
        elif p == "hall":
            args["hall"] = rnd.choice(("H001", "H002", "H3"))
        else:
            args[p] = rnd.choice({"method": ("/x/A", "/x/B"), "decision": ("allowed", "denied")}[p])
    return ac.AuditFilter(**args)


async def test_queries_by_every_indexed_field_and_time_range_answer_what_a_scan_answers(
        r: aioredis.Redis, seeded: list[tuple[str, dict[str, str]]]) -> None:
    rnd = random.Random(2026)
    nonempty = 0
    for _ in range(250):
        where = _random_filter(rnd, seeded)
        assert await indexes.choose(r, CHAIN, where) is not None
        batch = rnd.choice((1, 2, 3, 7, 500))  # small batches cross shared milliseconds
        got = await _all(query(r, CHAIN, where, batch=batch))
        assert got == scanned(seeded, where), where
        nonempty += bool(got)
        limit = rnd.randint(1, 5)
        assert await _all(query(r, CHAIN, where, batch=batch, limit=limit)) == scanned(seeded, where)[:limit]
    assert nonempty > 50


async def test_one_millisecond_holding_more_than_a_batch_is_read_whole_and_in_order(
        r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    await asyncio.gather(*(sink.append(ev(i, staff_id="s1")) for i in range(128)))  # one script, one ms (mostly)
    stored = await stream(r)
    where = ac.AuditFilter(staff_id="s1")
    for batch in (1, 5, 11, 127, 128, 1000):
        got = await _all(query(r, CHAIN, where, batch=batch))
        assert [x["id"] for x in got] == [i for i, _ in stored]


async def test_a_query_reads_only_its_matches_from_a_chain_of_twenty_thousand(
        r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    rnd = random.Random(3)
    base = {"at": "2025-06-01T00:00:00.000+00:00", "channel": "kiosk", "method": "/x/A", "decision": "allowed"}
    needle = {20 * i + 7 for i in range(10)}
    for start in range(0, 20_000, 500):
        await asyncio.gather(*(sink.append({
            **base, "staff_id": f"s{rnd.randrange(200)}", "subscriber_ref": f"r{rnd.randrange(3000)}",
            "terminal": f"T{rnd.randrange(50)}", "call": f"c{i}",
            **({"subscriber_ref": "needle", "staff_id": "auditor-x"} if i in needle else {})})
            for i in range(start, start + 500)))
    assert await r.xlen(K.stream) == 20_000
    for where in (ac.AuditFilter(subscriber_ref="needle"), ac.AuditFilter(staff_id="auditor-x"),
                  ac.AuditFilter(subscriber_ref="needle", staff_id="auditor-x", method="/x/A")):
        await r.config_resetstat()
        got = await _all(query(r, CHAIN, where))
        calls = await command_calls(r)
        assert len(got) == 10 and {x["call"] for x in got} == {f"c{i}" for i in needle}
        assert calls.get("xrange", 0) == 10  # one entry read per match, nothing else of the stream
        assert calls.get("zrangebyscore", 0) == 1 and calls.get("zcount", 0) <= 2
        assert calls.get("xrevrange", 0) == 0
    await r.config_resetstat()
    assert await _all(query(r, CHAIN, ac.AuditFilter(subscriber_ref="nobody"))) == []
    assert (await command_calls(r)).get("xrange", 0) == 0
    # without an indexed field the range is scanned, as before: 20,000 entries in batches of 500
    await r.config_resetstat()
    assert len(await _all(query(r, CHAIN, ac.AuditFilter(method="/x/A")))) == 20_000
    assert (await command_calls(r))["xrange"] >= 40


async def test_access_history_answers_as_before(r: aioredis.Redis, seeded: list[tuple[str, dict[str, str]]]) -> None:
    reader = ChainAuditReader(r, CHAIN, KEYS)
    times = [ac.time_of(i) for i, _ in seeded]
    for ref in SUBS:
        for since in (times[0] - timedelta(days=365), times[len(times) // 2]):
            got = await _all(reader.accesses(ref, since))
            expected = scanned(seeded, ac.AuditFilter(start=since, subscriber_ref=ref))
            assert got == expected and (since != times[0] - timedelta(days=365) or got)
    await r.delete(index_state_key(CHAIN))  # indexes not trusted: the scan gives the same answer
    assert await _all(reader.accesses(SUBS[0], times[0])) == scanned(
        seeded, ac.AuditFilter(start=times[0], subscriber_ref=SUBS[0]))


# ---------------------------------------------------------------------------------------------
# Retention


@pytest.mark.parametrize("keys_per_script", [1000, 3])
async def test_trim_removes_trimmed_events_from_the_indexes(r: aioredis.Redis, sink: ChainedAuditSink,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            keys_per_script: int) -> None:
    monkeypatch.setattr(retention, "TRIM_INDEX_KEYS", keys_per_script)
    rnd = random.Random(5)
    await asyncio.gather(*(sink.append(ev(i, rnd)) for i in range(200)))
    await asyncio.sleep(0.01)
    cutoff = ac.time_of((await stream(r))[-1][0]) + timedelta(milliseconds=1)
    await asyncio.gather(*(sink.append(ev(i, rnd)) for i in range(200, 300)))
    result = await trim(r, CHAIN, KEYS, "k1", cutoff, sink=sink)
    assert result.trimmed == 200
    remaining = await stream(r)
    assert len(remaining) == 101  # 100 + the trim's own event
    assert await assert_consistent(r) == 101
    assert all(ac.parse_stream_id(m) >= ac.parse_stream_id(remaining[0][0])
               for members in (await index_contents(r)).values() for m in members)
    where = ac.AuditFilter(subscriber_ref=SUBS[0])
    assert await _all(query(r, CHAIN, where)) == scanned(remaining, where)
    assert (await verify(r, CHAIN, KEYS)).ok


async def test_a_trim_sharing_its_last_millisecond_with_kept_events_keeps_theirs(
        r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    await asyncio.gather(*(sink.append(ev(i, staff_id="s1")) for i in range(40)))
    stored = await stream(r)
    # unindex by hand up to the 20th entry, as the trim script does for a boundary inside one ms
    last = stored[19][0]
    key = index_key(CHAIN, "staff", "s1")
    await r.eval(indexes.UNINDEX_LUA, 1, key, "", last)
    left = {m.decode() for m in await r.zrange(key, 0, -1)}
    assert left == {i for i, _ in stored[20:]}


async def test_an_interrupted_trim_cleanup_leaves_members_queries_skip_and_reindex_sweeps(
        r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    await asyncio.gather(*(sink.append(ev(i, staff_id="s1")) for i in range(30)))
    stored = await stream(r)
    await r.xtrim(K.stream, minid=stored[10][0], approximate=False)  # as if the cleanup after a trim never ran
    where = ac.AuditFilter(staff_id="s1")
    assert [x["id"] for x in await _all(query(r, CHAIN, where))] == [i for i, _ in stored[10:]]
    result = await indexes.reindex(r, CHAIN)
    assert result.swept >= 10 and result.complete
    assert await assert_consistent(r) == 20


# ---------------------------------------------------------------------------------------------
# Chains written before the indexes


async def test_reindex_builds_the_indexes_of_an_old_chain_and_resumes(r: aioredis.Redis,
                                                                      sink: ChainedAuditSink) -> None:
    rnd = random.Random(9)
    await asyncio.gather(*(sink.append(ev(i, rnd)) for i in range(500)))
    old = await stream(r)
    # as written by the append script before indexes existed: no index keys, no state
    for key in await index_contents(r):
        await r.delete(key)
    await r.delete(index_state_key(CHAIN))
    await sink.append(ev(500, rnd))  # a new event on an old chain is indexed, the chain is not complete
    where = ac.AuditFilter(subscriber_ref=SUBS[3])
    assert await indexes.choose(r, CHAIN, where) is None  # so queries still scan, and stay right
    everything = await stream(r)
    assert await _all(query(r, CHAIN, where)) == scanned(everything, where)

    first = await indexes.reindex(r, CHAIN, batch=100, max_events=200)  # interrupted
    assert (first.events, first.complete) == (200, False)
    assert await indexes.choose(r, CHAIN, where) is None
    rest = await indexes.reindex(r, CHAIN, batch=100)  # resumes where it stopped
    assert rest.complete and rest.events == len(everything) - 200
    assert await indexes.choose(r, CHAIN, where) is not None
    assert await assert_consistent(r) == len(old) + 1
    assert await _all(query(r, CHAIN, where)) == scanned(everything, where)
    again = await indexes.reindex(r, CHAIN)  # idempotent
    assert again.complete and again.swept == 0
    assert await assert_consistent(r) == len(old) + 1


async def test_query_over_a_time_range_reads_the_index_range(r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    for i in range(5):
        await sink.append(ev(i, staff_id="s1"))
        await asyncio.sleep(0.005)
    stored = await stream(r)
    times = [ac.time_of(i) for i, _ in stored]
    where = ac.AuditFilter(staff_id="s1", start=times[1], end=times[3])
    assert [x["id"] for x in await _all(query(r, CHAIN, where))] == [i for i, _ in stored[1:3]]
    never = ac.AuditFilter(staff_id="s1", start=datetime(2000, 1, 1, tzinfo=times[0].tzinfo),
                           end=datetime(2000, 1, 2, tzinfo=times[0].tzinfo))
    assert await _all(query(r, CHAIN, never)) == []
