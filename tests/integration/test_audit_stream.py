"""The audit chain on real redis-server: concurrent appends from two OS processes, tampering,
SIGKILL durability, queries, retention with checkpoints, and the SIEM shipper's restarts."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.audit.keys import ChainKeys
from adapters.audit.queries import chain_status, export_jsonl, query, verify
from adapters.audit.retention import trim
from adapters.audit.sink import ChainedAuditSink
from adapters.audit_shipper import ship
from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess, free_port
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable

KEYS = {"k1": b"audit-test-key-0123456789abcdef"}
CHAIN = "main"
K = ChainKeys.of(CHAIN)


def ev(i: int, **extra: Any) -> dict[str, Any]:
    return {"at": f"2025-06-01T00:00:00.{i % 1000:03d}+00:00", "channel": "kiosk", "terminal": f"T{i % 4}",
            "peer": "ipv4:127.0.0.1:1", "method": "/hallgate.v1.KioskService/ListCalls",
            "subscriber": "138****0001", "decision": "allowed", "reason": "ok", "code": "OK", "records": i,
            "duration_ms": 1.5, **extra}


@pytest.fixture
async def r(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(clean_redis, 2.0)
    yield client
    await client.aclose()


@pytest.fixture
def sink(r: aioredis.Redis) -> ChainedAuditSink:
    # the session Redis runs appendfsync everysec: durability is tested on a server of its own
    return ChainedAuditSink(r, KEYS, "k1", CHAIN, durability="trust")


async def entries(r: aioredis.Redis, chain: str = CHAIN) -> list[tuple[str, dict[str, str]]]:
    raw = await r.xrange(ChainKeys.of(chain).stream)
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in raw]


async def rewrite(r: aioredis.Redis, change: Callable[[list[tuple[str, dict[str, str]]]], None]) -> None:
    """What an attacker with Redis access can do: rewrite the stream, keeping every stream id."""
    items = await entries(r)
    change(items)
    await r.delete(K.stream)
    for entry_id, fields in items:
        await r.xadd(K.stream, fields, id=entry_id)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Appends


async def test_events_handed_over_together_share_an_append_and_are_never_split(r: aioredis.Redis) -> None:
    """A stream's opening and closing events go in together: next to each other in the chain, in
    one script call, even when a batch boundary (max_batch) falls where they would be split."""
    sink = ChainedAuditSink(r, KEYS, "k1", CHAIN, durability="trust", max_batch=3)
    singles = [sink.record(ev(i)) for i in range(20)]
    pairs = [sink.record_all([ev(100 + i, phase="open", call=f"c{i}"), ev(100 + i, phase="close", call=f"c{i}")])
             for i in range(20)]
    done = await asyncio.gather(*(x for pair in zip(singles, pairs, strict=True) for x in pair))
    assert sink.stats["appends"] == 60 and sink.stats["commits"] < 40
    stored = await entries(r)
    assert len(stored) == 60 and (await verify(r, CHAIN, KEYS)).ok
    for receipts in done[1::2]:
        opening, closing = receipts
        assert closing.seq == opening.seq + 1  # adjacent: no other event between them
        assert closing.mac and opening.mac != closing.mac
    by_call: dict[str, list[str]] = {}
    for _, f in stored:
        if f.get("call"):
            by_call.setdefault(f["call"], []).append(f["phase"])
    assert by_call == {f"c{i}": ["open", "close"] for i in range(20)}
    assert await sink.record_all([]) == [] and len(await entries(r)) == 60  # nothing handed over, nothing written
    sink.mode, sink._short_at = "trust", time.monotonic()  # the replicas known short: both refused, none written
    sink.replicas = 1
    with pytest.raises(DependencyUnavailable):
        await sink.record_all([ev(1), ev(2)])
    assert sink.stats["fast_refusals"] == 2 and len(await entries(r)) == 60


async def test_appends_form_one_chain_under_a_hash_tagged_chain_name(r: aioredis.Redis,
                                                                     sink: ChainedAuditSink) -> None:
    receipts = [await sink.record(ev(i)) for i in range(5)]
    receipts += await asyncio.gather(*(sink.record(ev(i)) for i in range(5, 205)))
    assert [x.seq for x in receipts] == list(range(1, 206))
    assert sink.stats["commits"] < 205  # concurrent calls were group-committed
    stored = await entries(r)
    assert [i for i, _ in stored] == [x.id for x in receipts]
    assert stored[0][1]["prev"] == "" and stored[1][1]["prev"] == stored[0][1]["mac"]
    assert stored[0][1]["terminal"] == "T0" and stored[0][1]["records"] == "0"
    head = await r.hgetall(K.head)
    assert head[b"seq"] == b"205" and head[b"mac"].decode() == receipts[-1].mac
    assert (await verify(r, CHAIN, KEYS)) == ac.VerifyResult(True, 205, last_seq=205, last_id=receipts[-1].id,
                                                            anchor="genesis")
    hall = ChainedAuditSink(r, KEYS, "k1", "hall-7", durability="trust")
    await hall.append(ev(1, hall="7"))
    assert ChainKeys.of("hall-7") == ChainKeys("hg:audit:{hall-7}:stream", "hg:audit:{hall-7}:head",
                                               "hg:audit:{hall-7}:checkpoint", "hg:audit:{hall-7}:lease")
    assert (await verify(r, "hall-7", KEYS)).checked == 1 and (await verify(r, CHAIN, KEYS)).checked == 205


def _append_in_process(url: str, tag: str, n: int, barrier: Any, results: Any) -> None:
    async def run() -> None:
        client = connect(url, 5.0)
        sink = ChainedAuditSink(client, KEYS, "k1", CHAIN, durability="trust")
        await client.ping()
        barrier.wait()
        for i in range(n // 2):  # one at a time, then in concurrent waves
            await sink.append(ev(i, terminal=tag))
        for wave in range(n // 2, n, 10):
            await asyncio.gather(*(sink.append(ev(i, terminal=tag)) for i in range(wave, min(wave + 10, n))))
        results.put((tag, dict(sink.stats)))
        await client.aclose()

    asyncio.run(run())


def test_two_gateway_processes_extend_one_unbroken_chain(clean_redis: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_append_in_process, args=(clean_redis, tag, 200, barrier, results))
             for tag in ("gw-a", "gw-b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    stats = dict(results.get(timeout=5) for _ in procs)

    async def check() -> None:
        client = connect(clean_redis, 2.0)
        try:
            stored = await entries(client)
            assert [int(f["seq"]) for _, f in stored] == list(range(1, 401))
            assert sum(f["terminal"] == "gw-a" for _, f in stored) == 200
            result = await verify(client, CHAIN, KEYS)
            assert result.ok and result.checked == 400, result
        finally:
            await client.aclose()

    asyncio.run(check())
    print("conflicts retried:", {t: s["conflicts"] for t, s in stats.items()})


async def test_a_retried_append_is_not_stored_twice(r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    await sink.append(ev(0))
    before = sink._head
    first = await sink.record(ev(1))
    last_event = (await entries(r))[-1][1]
    other = ChainedAuditSink(r, KEYS, "k1", CHAIN, durability="trust")
    await other.append(ev(2))  # someone else appends after it
    sink._head = before  # as if the reply was lost and the client sent the same call again
    event = {k: v for k, v in last_event.items() if k not in ac.SEAL_FIELDS}
    again = await sink._commit([event])
    assert again[0].id == first.id and again[0].seq == 2
    assert len(await entries(r)) == 3
    assert sink._head is not None and sink._head.seq == 3
    assert (await verify(r, CHAIN, KEYS)).ok


async def test_identical_events_stay_two_events(sink: ChainedAuditSink, r: aioredis.Redis) -> None:
    await asyncio.gather(sink.append(ev(1)), sink.append(ev(1)))
    assert len(await entries(r)) == 2


async def test_a_lost_head_is_recovered_from_the_stream(r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    for i in range(3):
        await sink.append(ev(i))
    await r.delete(K.head)
    fresh = ChainedAuditSink(r, KEYS, "k1", CHAIN, durability="trust")
    assert (await fresh.record(ev(9))).seq == 4
    assert (await verify(r, CHAIN, KEYS)).ok


async def test_append_fails_closed(own_redis: RedisServerProcess, tmp_path: Path) -> None:
    lax = RedisServerProcess(tmp_path / "everysec", port=free_port(), appendfsync="everysec").start()
    everysec = connect(lax.url, 1.0)
    try:
        strict = ChainedAuditSink(everysec, KEYS, "k1", CHAIN)  # durability="strict"
        with pytest.raises(DependencyUnavailable) as err:
            await strict.append(ev(1))
        assert err.value.dependency == "audit"
        assert await everysec.exists(K.stream) == 0  # nothing stored that could not be made durable
    finally:
        await everysec.aclose()
        lax.stop()
    client = connect(own_redis.url, 0.3)
    try:
        down = ChainedAuditSink(client, KEYS, "k1", CHAIN, durability="trust")
        await down.append(ev(1))
        own_redis.stop()
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await down.append(ev(2))
        assert time.monotonic() - started < 3
        with pytest.raises(ValueError, match="reserved"):
            await down.append({"mac": "forged"})
    finally:
        await client.aclose()


async def test_waitaof_runs_on_the_appending_connection_and_its_failure_fails_the_call(
        r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    await sink.append(ev(0))
    sink.durability, sink.mode, sink._probed_at = "strict", "waitaof", time.monotonic()  # as on Redis >= 7.2
    with pytest.raises(DependencyUnavailable):  # this 7.0 server does not know WAITAOF
        await sink.append(ev(1))
    assert sink.mode is None  # probed again next time


async def test_a_cancelled_call_still_leaves_its_event(r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    calls = [asyncio.create_task(sink.append(ev(i))) for i in range(3)]
    await asyncio.sleep(0)
    calls[1].cancel()
    await sink.drain()
    await asyncio.gather(*calls, return_exceptions=True)
    assert len(await entries(r)) == 3 and (await verify(r, CHAIN, KEYS)).ok


async def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    proc = RedisServerProcess(tmp_path / "redis", port=free_port(), appendfsync="always").start()
    client = connect(proc.url, 2.0)
    try:
        sink = ChainedAuditSink(client, KEYS, "k1", CHAIN)  # strict: appendfsync always is checked
        receipts = [await sink.record(ev(i)) for i in range(50)]
        receipts += await asyncio.gather(*(sink.record(ev(i)) for i in range(50, 500)))
        assert sink.mode == "always"
        proc.kill()  # right after the last acknowledgement
        await client.aclose()
        proc = RedisServerProcess(tmp_path / "redis", port=proc.port, appendfsync="always").start()
        client = connect(proc.url, 2.0)
        stored = await entries(client)
        assert [(i, f["mac"]) for i, f in stored] == [(x.id, x.mac) for x in receipts]
        assert (await verify(client, CHAIN, KEYS)).checked == 500
    finally:
        await client.aclose()
        proc.stop()


# ---------------------------------------------------------------------------------------------
# Tampering


@pytest.fixture
async def ten(sink: ChainedAuditSink, r: aioredis.Redis) -> list[tuple[str, dict[str, str]]]:
    for i in range(10):
        await sink.append(ev(i))
    return await entries(r)


async def test_an_edited_field_fails_verification_at_that_event(r: aioredis.Redis, ten: list[Any]) -> None:
    def edit(items: list[tuple[str, dict[str, str]]]) -> None:
        items[4][1]["decision"] = "denied"

    await rewrite(r, edit)
    result = await verify(r, CHAIN, KEYS)
    assert (result.ok, result.first_bad_seq, result.first_bad_id, result.reason) == (False, 5, ten[4][0], ac.EDITED)
    assert result.checked == 4


async def test_a_deleted_event_fails_verification_at_that_event(r: aioredis.Redis, ten: list[Any]) -> None:
    await r.xdel(K.stream, ten[6][0])
    result = await verify(r, CHAIN, KEYS)
    assert (result.ok, result.first_bad_seq, result.first_bad_id, result.reason) == (False, 7, ten[7][0], ac.DELETED)
    await r.xdel(K.stream, ten[9][0], ten[7][0], ten[8][0])  # the newest ones: only the head knows
    result = await verify(r, CHAIN, KEYS)
    assert (result.first_bad_seq, result.reason) == (7, ac.DELETED)


async def test_a_deleted_last_event_is_noticed(r: aioredis.Redis, ten: list[Any]) -> None:
    await r.xdel(K.stream, ten[9][0])
    result = await verify(r, CHAIN, KEYS)
    assert (result.ok, result.first_bad_seq, result.first_bad_id, result.reason) == (False, 10, ten[9][0], ac.DELETED)


async def test_swapped_events_fail_verification_at_the_first(r: aioredis.Redis, ten: list[Any]) -> None:
    def swap(items: list[tuple[str, dict[str, str]]]) -> None:
        (a, fa), (b, fb) = items[2], items[3]
        items[2], items[3] = (a, fb), (b, fa)

    await rewrite(r, swap)
    result = await verify(r, CHAIN, KEYS)
    assert (result.ok, result.first_bad_seq, result.first_bad_id, result.reason) == (False, 3, ten[2][0],
                                                                                     ac.REORDERED)


async def test_verify_over_a_range(r: aioredis.Redis, ten: list[Any]) -> None:
    ok = await verify(r, CHAIN, KEYS, start_seq=3, end_seq=6)
    assert (ok.ok, ok.checked, ok.last_seq, ok.anchor) == (True, 4, 6, "predecessor")
    assert (await verify(r, CHAIN, KEYS, start_seq=8)).checked == 3
    assert (await verify(r, CHAIN, KEYS, start_seq=11)).ok
    await r.xdel(K.stream, ten[6][0])
    assert (await verify(r, CHAIN, KEYS, start_seq=1, end_seq=6)).ok  # the damage is outside
    bad = await verify(r, CHAIN, KEYS, start_seq=7, end_seq=9)  # starts right at the hole
    assert (bad.first_bad_seq, bad.reason) == (7, ac.DELETED)
    whole_ms = ac.time_of(ten[0][0]), ac.time_of(ten[-1][0]) + timedelta(milliseconds=1)
    assert (await verify(r, CHAIN, KEYS, start=whole_ms[0], end=whole_ms[1])).reason == ac.DELETED


# ---------------------------------------------------------------------------------------------
# Queries


async def test_queries_return_exactly_the_matching_events(r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    numbers = ["13800000001", "13800000002", "13900000003"]
    sent = []
    for i in range(60):
        e = ev(i, subscriber=numbers[i % 3][:3] + "****" + numbers[i % 3][-4:], hall=f"H{i % 2}",
               staff_id=f"S{i % 5}", method=f"/hallgate.v1.KioskService/M{i % 3}",
               decision=("allowed", "denied", "invalid", "failed")[i % 4])
        sent.append((await sink.record(e), {k: str(v) for k, v in e.items()}))
        if i in (19, 39):
            await asyncio.sleep(0.003)  # distinct milliseconds around the time range
    cases: list[tuple[dict[str, Any], Callable[[dict[str, str]], bool]]] = [
        ({"subscriber": "13800000002"}, lambda e: e["subscriber"] == "138****0002"),
        ({"subscriber": "139****0003"}, lambda e: e["subscriber"] == "139****0003"),
        ({"staff_id": "S3"}, lambda e: e["staff_id"] == "S3"),
        ({"terminal": "T1"}, lambda e: e["terminal"] == "T1"),
        ({"hall": "H0"}, lambda e: e["hall"] == "H0"),
        ({"method": "/hallgate.v1.KioskService/M2"}, lambda e: e["method"].endswith("M2")),
        ({"decision": "denied"}, lambda e: e["decision"] == "denied"),
        ({"hall": "H1", "decision": "failed", "staff_id": "S1"},
         lambda e: (e["hall"], e["decision"], e["staff_id"]) == ("H1", "failed", "S1")),
        ({"hall": "nowhere"}, lambda e: False),
    ]
    for criteria, wanted in cases:
        got = [rec async for rec in query(r, CHAIN, batch=7, **criteria)]
        assert [g["id"] for g in got] == [x.id for x, e in sent if wanted(e)], criteria
    start, end = ac.time_of(sent[20][0].id), ac.time_of(sent[40][0].id)
    got = [rec["seq"] async for rec in query(r, CHAIN, ac.AuditFilter(start=start, end=end, hall="H0"), batch=4)]
    assert got == [str(x.seq) for x, e in sent if start <= ac.time_of(x.id) < end and e["hall"] == "H0"]
    assert got and got[0] == "21" and got[-1] == "39"
    limited = [rec async for rec in query(r, CHAIN, terminal="T2", limit=3)]
    assert [x["seq"] for x in limited] == ["3", "7", "11"]
    assert set(limited[0]) >= {"chain", "id", "seq", "prev", "kid", "mac", "eid", "hall"}

    class Out:
        lines: list[str] = []

        def write(self, s: str) -> None:
            self.lines.append(s)

    out = Out()
    assert await export_jsonl(r, CHAIN, out, ac.AuditFilter(decision="invalid")) == 15
    assert all(json.loads(line)["decision"] == "invalid" for line in out.lines)


# ---------------------------------------------------------------------------------------------
# Retention


async def test_trim_with_checkpoint_keeps_verification_green(r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    old = [await sink.record(ev(i)) for i in range(20)]
    await asyncio.sleep(0.003)
    new = [await sink.record(ev(i)) for i in range(20, 30)]
    cutoff = ac.time_of(new[0].id)
    done = await trim(r, CHAIN, KEYS, "k1", cutoff, sink=sink, actor={"staff_id": "ops-1", "role": "operator"})
    assert done.trimmed == 20 and done.checkpoint is not None
    assert (done.checkpoint.seq, done.checkpoint.id, done.checkpoint.mac) == (20, old[-1].id, old[-1].mac)
    stored = await entries(r)
    assert [i for i, _ in stored] == [x.id for x in new] + [done.event.id]
    trim_event = stored[-1][1]
    assert (trim_event["method"], trim_event["decision"], trim_event["records"], trim_event["checkpoint_seq"],
            trim_event["staff_id"]) == ("maintenance/trim", "allowed", "20", "20", "ops-1")
    result = await verify(r, CHAIN, KEYS)
    assert (result.ok, result.checked, result.anchor) == (True, 11, "checkpoint")
    status = await chain_status(r, CHAIN)
    assert (status.length, status.head and status.head.seq, status.checkpoint) == (11, 31, done.checkpoint)
    assert (await verify(r, CHAIN, KEYS, start_seq=21, end_seq=23)).ok  # the predecessor is gone

    second_cutoff = ac.time_of(done.event.id)
    again = await trim(r, CHAIN, KEYS, "k1", second_cutoff, sink=sink)  # a second trim
    assert again.trimmed == sum(ac.time_of(x.id) < second_cutoff for x in new) >= 1
    assert (await verify(r, CHAIN, KEYS)).ok
    assert (await trim(r, CHAIN, KEYS, "k1", cutoff, sink=sink)).trimmed == 0  # nothing left to trim
    assert (await verify(r, CHAIN, KEYS)).ok

    await r.hset(K.checkpoint, "seq", "29")  # a forged checkpoint
    assert (await verify(r, CHAIN, KEYS)).reason == ac.CHECKPOINT
    await r.delete(K.checkpoint)  # no checkpoint at all: the start of the chain is missing
    gone = await verify(r, CHAIN, KEYS)
    assert (gone.reason, gone.first_bad_seq) == (ac.DELETED, 1)


async def test_trim_refuses_to_launder_a_broken_chain(r: aioredis.Redis, sink: ChainedAuditSink) -> None:
    old = [await sink.record(ev(i)) for i in range(10)]
    await asyncio.sleep(0.003)
    new = await sink.record(ev(10))
    await r.xdel(K.stream, old[3].id)
    with pytest.raises(ac.ChainBroken) as err:
        await trim(r, CHAIN, KEYS, "k1", ac.time_of(new.id), sink=sink)
    assert err.value.result.first_bad_seq == 4
    assert len(await entries(r)) == 10 and not await r.exists(K.checkpoint)


# ---------------------------------------------------------------------------------------------
# Shipping


def append_text(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def read_lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_shipper_resumes_without_duplicates_or_gaps(r: aioredis.Redis, sink: ChainedAuditSink,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "siem" / "audit.jsonl"
    for i in range(50):
        await sink.append(ev(i))
    first = await ship(r, CHAIN, "siem", "shipper-1", out, stop_after=20, batch=8)
    assert first.shipped == 20 and len(read_lines(out)) == 20
    pending = await r.xpending(K.stream, "siem")
    assert pending["pending"] == 4  # read but not shipped when it stopped: shipped after the restart
    for i in range(50, 80):
        await sink.append(ev(i))
    second = await ship(r, CHAIN, "siem", "shipper-1", out, follow=False, batch=8)
    assert second.shipped == 60 and second.skipped == 0
    lines = read_lines(out)
    assert [int(x["seq"]) for x in lines] == list(range(1, 81))
    assert [x["id"] for x in lines] == [i for i, _ in await entries(r)]
    assert ac.verify_entries(CHAIN, KEYS, [(x.pop("id"), {k: v for k, v in x.items() if k != "chain"})
                                           for x in lines]).ok
    assert (await r.xpending(K.stream, "siem"))["pending"] == 0
    assert out.stat().st_mode & 0o777 == 0o600 and out.parent.stat().st_mode & 0o777 == 0o700  # owner only


async def test_shipper_crash_between_write_and_ack_or_mid_line(r: aioredis.Redis, sink: ChainedAuditSink,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    for i in range(10):
        await sink.append(ev(i))
    await ship(r, CHAIN, "siem", "s1", out, follow=False)
    for i in range(10, 20):
        await sink.append(ev(i))
    # the shipper read 5 entries and wrote them, then died before XACK (and before its state file)
    raw = await r.xreadgroup("siem", "s1", {K.stream: ">"}, count=5)
    read = [ac.record(CHAIN, i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in raw[0][1]]
    append_text(out, "".join(ac.to_json_line(rec) for rec in read))
    resumed = await ship(r, CHAIN, "siem", "s1", out, follow=False)
    assert (resumed.shipped, resumed.skipped) == (5, 5)
    for i in range(20, 23):
        await sink.append(ev(i))
    append_text(out, '{"chain":"main","id":"1-0","seq":"2')  # died in the middle of a line
    await ship(r, CHAIN, "siem", "s1", out, follow=False)
    assert [int(x["seq"]) for x in read_lines(out)] == list(range(1, 24))


async def test_shipper_to_stdout_with_a_state_file(r: aioredis.Redis, sink: ChainedAuditSink, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        await sink.append(ev(i))
    state = tmp_path / "stdout.state"
    assert (await ship(r, CHAIN, "siem", "s1", None, follow=False, state=state)).shipped == 3
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == ["1", "2", "3"]
    assert json.loads(state.read_text())["last_id"] == (await entries(r))[-1][0]


def _ship_forever(url: str, out: str) -> None:
    async def run() -> None:
        client = connect(url, 2.0)
        await ship(client, CHAIN, "siem", "s1", Path(out), batch=1)

    asyncio.run(run())


async def test_shipper_killed_with_sigkill_resumes_exactly(r: aioredis.Redis, sink: ChainedAuditSink,
                                                          clean_redis: str, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    await asyncio.gather(*(sink.append(ev(i)) for i in range(400)))
    proc = multiprocessing.get_context("spawn").Process(target=_ship_forever, args=(clean_redis, str(out)))
    proc.start()
    try:
        wait_until(lambda: out.exists() and out.stat().st_size > 20 * 300, 20)  # well before the end
    finally:
        proc.kill()
        proc.join(5)
    killed_at = len(out.read_text().splitlines())
    print("shipper killed after", killed_at, "lines")
    await ship(r, CHAIN, "siem", "s1", out, follow=False)
    seqs = [int(x["seq"]) for x in read_lines(out)]
    assert seqs == list(range(1, 401)), f"killed after {killed_at} lines"
