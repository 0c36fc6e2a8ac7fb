"""RedisIncidentStore and the sealed pseudonym directory on a real redis-server: round trips, the
version check under concurrency (of two changes from one version exactly one wins), paging, one
alert claim per incident, kind and day, the disposal hook (closed incidents before a cutoff, never
an open one), one Cluster slot, and the directory holding no number in the clear."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from adapters.pseudonyms import RedisPseudonymDirectory, month_end, month_key
from adapters.redis_client import connect
from adapters.redis_incidents import RedisIncidentStore
from gateway.domain import rules
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.incidents import IncidentConfig, State, add_step, record_notice, report, transition

pytestmark = pytest.mark.asyncio
NOW = datetime(2026, 11, 30, 2, tzinfo=UTC)
CFG = IncidentConfig(7, 7, "Asia/Shanghai")
KEY = b"k" * 32


def fresh(now: datetime = NOW, actor: str = "C1001"):
    return report("suspected leak", "staff", actor, now - timedelta(days=1), now, "C2001", "clerk", now)


async def keys(client: aioredis.Redis) -> list[str]:
    return sorted(k.decode() for k in await client.keys("*"))


async def test_an_incident_round_trips_and_changes_only_from_its_version(client):
    store = RedisIncidentStore(client)
    inc = fresh()
    await store.create(inc)
    assert await store.get(inc.incident_id) == inc
    assert await store.get("INC-20260101-00000000") is None
    a = add_step(inc, "revoked the session", "S1", NOW)
    b = add_step(inc, "another step", "S2", NOW)
    done = await asyncio.gather(store.update(a, inc.version), store.update(b, inc.version))
    assert sorted(done) == [False, True]
    stored = await store.get(inc.incident_id)
    assert stored in (a, b) and stored.version == 2
    assert await store.open_ids() == [inc.incident_id]


async def test_pages_are_newest_first(client):
    store = RedisIncidentStore(client)
    made = [fresh(NOW + timedelta(minutes=i)) for i in range(5)]
    for inc in made:
        await store.create(inc)
    page, total = await store.page(0, 2)
    assert total == 5 and [i.incident_id for i in page] == [made[4].incident_id, made[3].incident_id]
    page, _ = await store.page(4, 2)
    assert [i.incident_id for i in page] == [made[0].incident_id]


async def test_an_alert_is_claimed_once_per_incident_kind_and_day(client):
    store = RedisIncidentStore(client)
    claims = await asyncio.gather(*(store.claim_alert("INC-1", "incident_le_notice_overdue", "2026-12-09")
                                    for _ in range(10)))
    assert claims.count(True) == 1
    assert await store.claim_alert("INC-1", "incident_le_notice_overdue", "2026-12-10")
    assert await store.claim_alert("INC-1", "incident_customer_notice_due", "2026-12-09")
    await store.release_alert("INC-1", "incident_le_notice_overdue", "2026-12-09")
    assert await store.claim_alert("INC-1", "incident_le_notice_overdue", "2026-12-09")
    ttl = await client.ttl("hg:{incidents}:alert:INC-1:incident_le_notice_overdue:2026-12-09")
    assert 0 < ttl <= 3 * 86400


async def test_dispose_closed_destroys_closed_incidents_before_the_cutoff_and_never_an_open_one(client):
    store = RedisIncidentStore(client)
    made = {}
    for actor, days, to in (("C1", 800, State.CLOSED), ("C2", 10, State.CLOSED), ("C3", 900, None),
                            ("C4", 900, State.CONTAINED)):
        at = NOW - timedelta(days=days)
        inc = fresh(at, actor)
        await store.create(inc)
        if to is not None:
            changed = transition(inc, to, "S1", at, determined_at=at if to == State.CONTAINED else None)
            assert await store.update(changed, inc.version)
            inc = changed
        made[actor] = inc
    old, recent, still_open, contained = made["C1"], made["C2"], made["C3"], made["C4"]
    cutoff = NOW - timedelta(days=730)
    assert await store.count_closed(cutoff) == (1, old.closed_at)
    assert await store.dispose_closed(cutoff) == [old.incident_id]
    assert await store.get(old.incident_id) is None
    assert await store.dispose_closed(cutoff) == []  # idempotent
    assert await store.count_closed(cutoff) == (0, None)
    assert {i.incident_id for i in (await store.page(0, 10))[0]} == {recent.incident_id, still_open.incident_id,
                                                                      contained.incident_id}
    assert await store.dispose_closed(NOW + timedelta(days=1)) == [recent.incident_id]
    assert sorted(await store.open_ids()) == sorted([still_open.incident_id, contained.incident_id])
    assert all(k.startswith("hg:{incidents}:") for k in await keys(client))


async def test_every_key_is_in_one_cluster_slot(client):
    store = RedisIncidentStore(client)
    inc = fresh()
    await store.create(inc)
    inc2 = transition(inc, State.CONTAINED, "S1", NOW, determined_at=NOW)
    await store.update(record_notice(inc2, "law_enforcement", NOW, "ref", "S1", NOW, CFG), 1)
    await store.claim_alert(inc.incident_id, "x", "2026-12-01")
    assert len({key_slot(k.encode()) for k in await keys(client)}) == 1


async def test_the_directory_seals_numbers_and_reveals_only_matching_pseudonyms(client):
    directory = RedisPseudonymDirectory(client, KEY)
    numbers = ["13800000001", "13800000002"]
    refs = [rules.subscriber_ref(KEY, m) for m in numbers]
    for ref, m in zip(refs, numbers, strict=True):
        directory.note(ref, m, NOW)
        directory.note(ref, m, NOW)  # once pending, again ignored
    directory.note(rules.subscriber_ref(KEY, "not-a-number"), "not-a-number", NOW)
    await directory.drain()
    key = month_key("2026-11")
    raw = await client.hgetall(key)
    assert sorted(k.decode() for k in raw) == sorted(refs)
    assert all(v.startswith(b"hgbox1.") and not any(m.encode() in v for m in numbers) for v in raw.values())
    assert await directory.reveal([*refs, "f" * 24]) == dict(zip(refs, numbers, strict=True))
    # A sealed value moved to another pseudonym does not open there.
    await client.hset(key, "e" * 24, raw[refs[0].encode()])
    assert await directory.reveal(["e" * 24]) == {}
    # Another key (another deployment) opens nothing.
    assert await RedisPseudonymDirectory(client, b"x" * 32).reveal(refs) == {}
    # Seen this month: not written again by this process; next month: written to that month's hash.
    await client.delete(key)
    directory.note(refs[0], numbers[0], NOW)
    await directory.drain()
    assert await client.hlen(key) == 0
    directory.note(refs[0], numbers[0], NOW + timedelta(days=3))  # December
    await directory.drain()
    assert await client.hlen(month_key("2026-12")) == 1
    assert all(k.startswith("hg:{pseudonyms}:") for k in await keys(client))
    assert len({key_slot(k.encode()) for k in await keys(client)}) == 1


async def test_the_directory_is_disposed_of_month_by_month_with_the_trail(client):
    directory = RedisPseudonymDirectory(client, KEY)
    old, new = "13800000001", "13800000002"
    ref_old, ref_new = rules.subscriber_ref(KEY, old), rules.subscriber_ref(KEY, new)
    directory.note(ref_old, old, datetime(2025, 10, 31, 23, tzinfo=UTC))
    directory.note(ref_new, new, datetime(2025, 11, 1, tzinfo=UTC))
    directory.note(ref_new, new, datetime(2026, 11, 2, tzinfo=UTC))
    await directory.drain()
    assert await directory.months() == ["2025-10", "2025-11", "2026-11"]
    cutoff = datetime(2025, 11, 30, tzinfo=UTC)  # e.g. the trail's retention cutoff
    assert await directory.count_before(cutoff) == (1, datetime(2025, 10, 1, tzinfo=UTC))
    assert await directory.dispose_before(cutoff) == ["2025-10"]
    assert await directory.dispose_before(cutoff) == []
    assert await directory.reveal([ref_old, ref_new]) == {ref_new: new}
    assert await directory.dispose_before(datetime(2025, 12, 1, tzinfo=UTC)) == ["2025-11"]
    assert await directory.reveal([ref_new]) == {ref_new: new}  # still named in November 2026
    assert month_end("2025-12") == datetime(2026, 1, 1, tzinfo=UTC)


async def test_the_directory_fails_soft_on_writes_and_closed_on_reads(own_redis):
    client = connect(own_redis.url, 0.5)
    try:
        directory = RedisPseudonymDirectory(client, KEY)
        own_redis.stop()
        ref = rules.subscriber_ref(KEY, "13800000001")
        directory.note(ref, "13800000001")  # never raises on the call path
        await directory.drain()
        assert not directory.seen and not directory.pending  # tried again when an event names it
        with pytest.raises(DependencyUnavailable):
            await directory.reveal([ref])
        with pytest.raises(DependencyUnavailable):
            await RedisIncidentStore(client).get("INC-20260101-00000000")
    finally:
        await client.aclose()
