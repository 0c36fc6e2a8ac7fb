"""Incremental verification on real redis-server (adapters/audit/checkpoints.py): a signed verified
position lets the next run read only the events appended since; tampering after it is named, tampering
before it is left to a full run; a forged, edited, misplaced or rotated-out position is reported and
never trusted; the position survives retention trims and key rotation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.audit import checkpoints as cps
from adapters.audit.keys import ChainKeys
from adapters.audit.queries import verify
from adapters.audit.retention import trim
from adapters.audit.sink import ChainedAuditSink
from adapters.redis_client import connect
from gateway.domain import audit_chain as ac

K1 = b"audit-test-key-0123456789abcdef"
K2 = b"audit-test-key-rotated-456789ab"
KEYS = {"k1": K1}
CHAIN = "main"
K = ChainKeys.of(CHAIN)
VKEY = cps.verified_key(CHAIN)


def ev(i: int) -> dict[str, Any]:
    return {"at": f"2025-06-01T00:00:00.{i % 1000:03d}+00:00", "channel": "kiosk", "terminal": f"T{i % 4}",
            "method": "/hallgate.v1.KioskService/ListCalls", "subscriber": "138****0001", "decision": "allowed",
            "reason": "ok", "code": "OK", "records": i}


@pytest.fixture
async def r(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(clean_redis, 5.0)
    yield client
    await client.aclose()


def sink_for(r: aioredis.Redis, keys: dict[str, bytes] = KEYS, kid: str = "k1") -> ChainedAuditSink:
    return ChainedAuditSink(r, keys, kid, CHAIN, durability="trust")


async def append(sink: ChainedAuditSink, n: int, chunk: int = 500) -> None:
    for base in range(0, n, chunk):  # group-committed: a few ms per chunk
        await asyncio.gather(*(sink.record(ev(base + i)) for i in range(min(chunk, n - base))))


async def stored(r: aioredis.Redis) -> list[tuple[str, dict[str, str]]]:
    raw = await r.xrange(K.stream)
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in raw]


async def position(r: aioredis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (await r.hgetall(VKEY)).items()}


async def xrange_calls(r: aioredis.Redis) -> int:
    stats = await r.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0))


class Counting:
    """Counts the stream entries a run reads through XRANGE (the scan), besides Redis' own count of
    XRANGE calls."""

    def __init__(self, r: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read = 0
        real = r.xrange

        async def xrange(*a: Any, **kw: Any) -> Any:
            page = await real(*a, **kw)
            self.read += len(page)
            return page

        monkeypatch.setattr(r, "xrange", xrange)


async def run(r: aioredis.Redis, keys: dict[str, bytes] = KEYS, kid: str = "k1", **kw: Any) -> ac.IncrementalResult:
    return await cps.verify_incremental(r, CHAIN, keys, kid, **kw)


# ---------------------------------------------------------------------------------------------
# Only the new events


async def test_a_run_after_a_verified_position_reads_only_the_new_events(
        r: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = sink_for(r)
    await append(sink, 5000)
    t0 = time.perf_counter()
    first = await run(r, batch=500)
    full_s = time.perf_counter() - t0
    assert first.result.ok and first.result.checked == 5000 and first.result.anchor == "genesis"
    assert first.recorded_seq == 5000 and first.rejected == ""
    pos = await position(r)
    assert (pos["seq"], pos["checked"], pos["from_seq"], pos["kid"]) == ("5000", "5000", "0", "k1")
    assert pos["id"] == (await stored(r))[-1][0]

    await append(sink, 100)
    counting = Counting(r, monkeypatch)
    calls = await xrange_calls(r)
    t0 = time.perf_counter()
    second = await run(r, batch=500)
    incr_s = time.perf_counter() - t0
    assert second.result.ok and second.result.checked == 100 and second.result.anchor == "verified"
    assert second.result.last_seq == 5100 and second.recorded_seq == 5100
    assert counting.read == 100  # the scan read the 100 new entries, nothing before them
    # Redis' own count: the position's event, the first entry, the scan (one page) and the new
    # position's event inside the recording script: 4 XRANGEs, where the full run needed 11 pages
    assert await xrange_calls(r) - calls == 4
    print(f"\nfull run of 5,000: {full_s * 1000:.0f} ms; incremental run of 100: {incr_s * 1000:.1f} ms")

    nothing = await run(r)  # nothing new: nothing read, the position stays
    assert nothing.result.ok and nothing.result.checked == 0 and nothing.recorded_seq is None
    assert (await position(r))["seq"] == "5100"
    # an explicit full run still reads everything, and `verify` (ranges) never touches the position
    assert (await run(r, full=True)).result.checked == 5100
    assert (await verify(r, CHAIN, KEYS, start_seq=10, end_seq=20)).checked == 11
    assert (await position(r))["seq"] == "5100"


async def test_full_run_reports_progress(r: aioredis.Redis) -> None:
    await append(sink_for(r), 2500)
    seen: list[tuple[int, int]] = []
    done = await run(r, full=True, batch=300, every=1000,
                     progress=lambda checked, seq, seconds: seen.append((checked, seq)))
    assert done.result.ok and done.result.checked == 2500
    assert seen == [(1000, 1000), (2000, 2000)]
    assert done.recorded_seq == 2500


# ---------------------------------------------------------------------------------------------
# Tampering


async def rewrite(r: aioredis.Redis, items: list[tuple[str, dict[str, str]]]) -> None:
    """An attacker with Redis access rewrites the stream, keeping every stream id."""
    await r.delete(K.stream)
    for entry_id, fields in items:
        await r.xadd(K.stream, fields, id=entry_id)  # type: ignore[arg-type]


async def test_tampering_after_the_position_is_named(r: aioredis.Redis) -> None:
    sink = sink_for(r)
    await append(sink, 40)
    assert (await run(r)).recorded_seq == 40
    await append(sink, 10)
    items = await stored(r)
    # edited
    edited = [(i, dict(f)) for i, f in items]
    edited[44][1]["decision"] = "denied"
    await rewrite(r, edited)
    bad = (await run(r)).result
    assert (bad.ok, bad.first_bad_seq, bad.first_bad_id, bad.reason, bad.anchor) == (
        False, 45, items[44][0], ac.EDITED, "verified")
    assert bad.checked == 4  # 41..44 were read and held
    assert (await position(r))["seq"] == "40"  # a broken run records nothing
    # deleted
    await rewrite(r, [e for n, e in enumerate(items) if n != 46])
    bad = (await run(r)).result
    assert (bad.first_bad_seq, bad.reason) == (47, ac.DELETED)
    # inserted: a made-up event between 42 and 43 (it cannot carry a valid mac); the entries after
    # the position get new stream ids to make room
    forged = dict(items[42][1], decision="allowed", records="9999")
    ms = ac.parse_stream_id(items[-1][0])[0] + 1
    tail = [*items[40:42], ("", forged), *items[42:]]
    await rewrite(r, [*items[:40], *((f"{ms}-{n}", f) for n, (_, f) in enumerate(tail))])
    bad = (await run(r)).result
    assert (bad.ok, bad.first_bad_seq, bad.reason) == (False, 43, ac.EDITED)
    await rewrite(r, items)
    assert (await run(r)).result.ok


async def test_tampering_before_the_position_is_left_to_a_full_run(r: aioredis.Redis) -> None:
    sink = sink_for(r)
    await append(sink, 30)
    assert (await run(r)).recorded_seq == 30
    await append(sink, 5)
    items = await stored(r)
    edited = [(i, dict(f)) for i, f in items]
    edited[9][1]["decision"] = "denied"
    await rewrite(r, edited)
    quick = await run(r)
    assert quick.result.ok and quick.result.checked == 5  # not re-read: the documented limit
    full = (await run(r, full=True)).result
    assert (full.ok, full.first_bad_seq, full.reason) == (False, 10, ac.EDITED)
    assert (await verify(r, CHAIN, KEYS)).first_bad_seq == 10


async def test_a_forged_position_is_reported_and_ignored(r: aioredis.Redis) -> None:
    sink = sink_for(r)
    await append(sink, 40)
    assert (await run(r)).recorded_seq == 40
    await append(sink, 20)
    items = await stored(r)
    # Cover an edit of seq 45 by moving the position past it: the signature fails.
    edited = [(i, dict(f)) for i, f in items]
    edited[44][1]["decision"] = "denied"
    await rewrite(r, edited)
    await r.hset(VKEY, mapping={"seq": "55", "id": items[54][0], "mac": items[54][1]["mac"]})
    moved = await run(r)
    assert "signature does not match" in moved.rejected
    assert (moved.result.ok, moved.result.first_bad_seq, moved.result.reason, moved.result.anchor) == (
        False, 45, ac.EDITED, "genesis")
    await rewrite(r, items)
    # A position signed with a key the gateway does not hold (the attacker's own).
    fake = cps.Position(55, items[54][0], items[54][1]["mac"], "2026-01-01T00:00:00.000+00:00", 55, 0, "k1")
    await r.delete(VKEY)
    await r.hset(VKEY, mapping=fake.signed(CHAIN, {"k1": b"not-the-audit-key-0123456789abcd"}).as_fields())
    again = await run(r)
    assert "signature does not match" in again.rejected
    assert again.result.ok and again.result.checked == 60 and again.result.anchor == "genesis"
    assert again.recorded_seq == 60  # replaced by a valid one
    assert (await run(r)).rejected == ""
    # Signed with the chain key itself instead of the derived one: also refused (its own label).
    import hashlib
    import hmac
    raw = cps.VERIFIED_DOMAIN + CHAIN.encode() + b"\x00" + ac.canonical(fake.payload())
    await r.hset(VKEY, mapping={**fake.payload(), "sig": hmac.new(K1, raw, hashlib.sha256).hexdigest()})
    assert "signature does not match" in (await run(r)).rejected
    # Malformed, and not a hash at all.
    await r.hset(VKEY, "seq", "many")
    assert "malformed" in (await run(r)).rejected
    await r.delete(VKEY)
    await r.set(VKEY, "x")
    odd = await run(r)
    assert "not a hash" in odd.rejected and odd.result.ok and odd.recorded_seq == 60
    assert (await run(r)).rejected == ""
    # Another chain's position does not fit this one (the chain name is signed).
    other = cps.Position(60, items[59][0], items[59][1]["mac"], "2026-01-01T00:00:00.000+00:00", 1, 59, "k1")
    await r.delete(VKEY)
    await r.hset(VKEY, mapping=other.signed("hall-7", KEYS).as_fields())
    assert "signature does not match" in (await run(r)).rejected


async def test_a_position_whose_event_changed_or_vanished_is_not_trusted(r: aioredis.Redis) -> None:
    sink = sink_for(r)
    await append(sink, 30)
    assert (await run(r)).recorded_seq == 30
    await append(sink, 5)
    items = await stored(r)
    # the checkpointed event itself edited (its mac left as it was)
    edited = [(i, dict(f)) for i, f in items]
    edited[29][1]["decision"] = "denied"
    await rewrite(r, edited)
    changed = await run(r)
    assert "has changed" in changed.rejected
    assert (changed.result.first_bad_seq, changed.result.reason) == (30, ac.EDITED)
    # the checkpointed event deleted from the middle of the stream
    await rewrite(r, [e for n, e in enumerate(items) if n != 29])
    gone = await run(r)
    assert "gone from the stream" in gone.rejected
    assert (gone.result.first_bad_seq, gone.result.reason) == (30, ac.DELETED)
    # the newest events deleted with the position's event, and the head rewritten to match: the
    # position is the witness that the chain was longer
    await rewrite(r, items[:25])
    await r.hset(K.head, mapping={"seq": "25", "mac": items[24][1]["mac"], "id": items[24][0]})
    assert (await verify(r, CHAIN, KEYS)).ok  # the hash chain alone cannot tell
    cut = (await run(r)).result
    assert (cut.ok, cut.first_bad_seq, cut.reason) == (False, 26, ac.DELETED)
    assert "was verified at" in cut.detail
    full = (await run(r, full=True)).result
    assert (full.ok, full.first_bad_seq, full.reason) == (False, 26, ac.DELETED)


# ---------------------------------------------------------------------------------------------
# Retention, rotation, concurrency


async def test_the_position_and_retention_trims(r: aioredis.Redis) -> None:
    sink = sink_for(r)
    await append(sink, 20)
    await asyncio.sleep(0.01)
    first_cut = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await append(sink, 20)
    assert (await run(r)).recorded_seq == 40
    await append(sink, 5)  # 41..45
    # a trim below the position: the run still starts at the position (checks the trim's event too)
    t = await trim(r, CHAIN, KEYS, "k1", first_cut, sink=sink)
    assert t.trimmed == 20
    after = await run(r)
    assert after.result.ok and after.result.anchor == "verified" and after.result.checked == 6  # 41..45, trim
    assert after.recorded_seq == 46
    # a trim past the position: the run starts at the trim's own checkpoint
    await append(sink, 3)  # 47..49
    await asyncio.sleep(0.01)
    second_cut = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await append(sink, 4)  # 50..53
    t = await trim(r, CHAIN, KEYS, "k1", second_cut, sink=sink)  # trims 21..49, records 54
    assert t.checkpoint is not None and t.checkpoint.seq == 49
    past = await run(r)
    assert past.result.ok and past.result.anchor == "checkpoint" and past.rejected == ""
    assert past.result.checked == 5 and past.recorded_seq == 54
    # a position whose event was trimmed (or archived) while the trim checkpoint lags behind it: the
    # signature vouches for it and the next event must follow it
    await append(sink, 3)  # 55..57
    items = await stored(r)
    pos = cps.Position(54, items[4][0], items[4][1]["mac"], "2026-01-01T00:00:00.000+00:00", 5, 49, "k1")
    assert await cps.record(r, CHAIN, KEYS, pos, (await position(r))["sig"]) == 1
    await r.xtrim(K.stream, minid=items[5][0])  # the position's event and all before it leave Redis
    kept = await run(r)
    assert kept.result.ok and kept.result.anchor == "verified" and kept.result.checked == 3
    # a tampered retention checkpoint is still a verdict
    await r.hset(K.checkpoint, "seq", "48")
    bad = await run(r)
    assert not bad.result.ok and bad.result.reason == ac.CHECKPOINT


async def test_key_rotation_keeps_older_positions_checkable(r: aioredis.Redis) -> None:
    await append(sink_for(r), 20)
    assert (await run(r)).recorded_seq == 20
    rotated = {"k1": K1, "k2": K2}
    await append(sink_for(r, rotated, "k2"), 10)
    after = await run(r, rotated, "k2")
    assert after.result.ok and after.result.anchor == "verified" and after.result.checked == 10
    assert (await position(r))["kid"] == "k2"
    await append(sink_for(r, rotated, "k2"), 5)
    # the position is signed under k2 now: a verifier that lost k2 reports it and starts over
    stale = await run(r, KEYS, "k1")
    assert "unknown key id" in stale.rejected and stale.result.reason == ac.UNKNOWN_KEY
    assert (await run(r, rotated, "k2")).result.checked == 5


async def test_concurrent_runs_never_move_the_position_back(r: aioredis.Redis) -> None:
    sink = sink_for(r)
    await append(sink, 300)
    results = await asyncio.gather(*(run(r, batch=50) for _ in range(4)))
    assert all(x.result.ok for x in results)
    assert sum(x.recorded_seq is not None for x in results) >= 1
    await append(sink, 7)
    later = await run(r)
    assert later.result.checked == 7 and later.recorded_seq == 307
    older = cps.Position(300, (await stored(r))[299][0], (await stored(r))[299][1]["mac"], "x", 1, 299, "k1")
    assert await cps.record(r, CHAIN, KEYS, older, "stale-sig") == 0  # compare-and-set on the sig read
    assert (await position(r))["seq"] == "307"
