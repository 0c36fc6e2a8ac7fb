"""SeededBilling: the simulator's data is reproducible, realistic in shape, and keeps no plaintext."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.billing_sim.data import SeededBilling
from hallgate_pb.billing.v1 import billing_pb2

NOW = datetime(2025, 6, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, mid-month
ORDINARY, HEAVY, SWAPPED, PORTED = "13800000001", "13800000500", "13800000007", "13800000008"


def make(seed: str = "test-seed", now: datetime = NOW) -> SeededBilling:
    return SeededBilling(seed=seed, subscribers=3000, hash_n=2**10, now=now)


def wire(records: list[billing_pb2.CallDetail]) -> list[bytes]:
    return [r.SerializeToString(deterministic=True) for r in records]


def times(records: list[billing_pb2.CallDetail]) -> list[int]:
    return [r.start_time.seconds for r in records]


def test_numbering_knows_exactly_the_seeded_range() -> None:
    data = make()
    for msisdn in (ORDINARY, "13800003000"):
        assert data.subscriber(msisdn).exists
    fullwidth = "\uff11\uff13\uff1800000001"
    for msisdn in ("13800000000", "13800003001", "13900000001", "1380000001", "138000000011", fullwidth):
        assert data.subscriber(msisdn) == data.subscriber("13800003001")
        assert not data.subscriber(msisdn).exists
        assert data.record_count(msisdn, "2025-05") == 0
        assert data.records(msisdn, "2025-05") == []


def test_same_seed_same_records_other_seed_other_records() -> None:
    a, b, c = make(), make(), make(seed="another-seed")
    assert wire(a.records(ORDINARY, "2025-05")) == wire(b.records(ORDINARY, "2025-05"))
    assert a.record_count(ORDINARY, "2025-05") == b.record_count(ORDINARY, "2025-05")
    assert wire(a.records(ORDINARY, "2025-05")) != wire(c.records(ORDINARY, "2025-05"))
    assert a.subscriber(ORDINARY) == b.subscriber(ORDINARY) != c.subscriber(ORDINARY)
    assert a.password_for(ORDINARY) == b.password_for(ORDINARY)


def test_months_and_numbers_differ() -> None:
    data = make()
    assert wire(data.records(ORDINARY, "2025-05")) != wire(data.records(ORDINARY, "2025-04"))
    assert wire(data.records(ORDINARY, "2025-05")) != wire(data.records("13800000002", "2025-05"))


def test_record_counts_per_full_month() -> None:
    data = make()
    for month in ("2025-01", "2025-02", "2025-05"):
        assert 150 <= data.record_count(ORDINARY, month) <= 250
        assert 20_000 <= data.record_count(HEAVY, month) <= 22_000
    assert len(data.records(HEAVY, "2025-05")) == data.record_count(HEAVY, "2025-05")


def test_records_lie_in_the_local_month_sorted_and_well_formed() -> None:
    data = make()
    recs = data.records(HEAVY, "2025-01")
    start = datetime(2025, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    end = datetime(2025, 2, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    assert start == datetime(2024, 12, 31, 16, tzinfo=UTC).timestamp()
    ts = times(recs)
    assert ts == sorted(ts)
    assert start <= ts[0] and ts[-1] < end
    kinds = {r.kind for r in recs}
    assert kinds == {billing_pb2.CALL_KIND_VOICE, billing_pb2.CALL_KIND_SMS, billing_pb2.CALL_KIND_DATA}
    assert {r.direction for r in recs} == {billing_pb2.CALL_DIRECTION_OUTGOING, billing_pb2.CALL_DIRECTION_INCOMING}
    for r in recs:
        if r.kind == billing_pb2.CALL_KIND_DATA:
            assert r.other_party == "" and r.volume_bytes > 0 and r.duration_seconds > 0
        else:
            assert len(r.other_party) == 11 and r.other_party.isdigit() and r.volume_bytes == 0
        if r.kind == billing_pb2.CALL_KIND_SMS:
            assert r.duration_seconds == 0
        if r.kind == billing_pb2.CALL_KIND_VOICE:
            assert r.duration_seconds > 0
        assert r.charge_fen >= 0


def test_slices_agree_with_the_whole_month() -> None:
    data = make()
    whole = wire(data.records(ORDINARY, "2025-05"))
    n = len(whole)
    assert wire(data.records(ORDINARY, "2025-05", 0, 7)) == whole[:7]
    assert wire(data.records(ORDINARY, "2025-05", 100, 30)) == whole[100:130]
    assert wire(data.records(ORDINARY, "2025-05", n - 3, 500)) == whole[n - 3 :]
    assert data.records(ORDINARY, "2025-05", n, 10) == []


def test_current_month_holds_only_the_past_and_future_months_nothing() -> None:
    data, later = make(), make(now=NOW + timedelta(days=40))
    count, full = data.record_count(ORDINARY, "2025-06"), later.record_count(ORDINARY, "2025-06")
    assert 0 < count < full
    assert abs(count / full - 14.5 / 30) < 0.05  # 14.5 of 30 days are over
    recs = data.records(ORDINARY, "2025-06")
    assert len(recs) == count and max(times(recs)) < NOW.timestamp()
    # What the current month shows is exactly the start of what the month will hold.
    assert wire(recs) == wire(later.records(ORDINARY, "2025-06"))[:count]
    assert data.record_count(ORDINARY, "2025-07") == 0 and data.records(ORDINARY, "2025-07") == []
    assert data.record_count(HEAVY, "2030-01") == 0


@pytest.mark.parametrize("month", ["2025-13", "2025-00", "2025-5", "25-05", "2025/05", "", "0000-01", "2025-05x"])
def test_bad_months_are_rejected(month: str) -> None:
    with pytest.raises(ValueError):
        make().record_count(ORDINARY, month)
    with pytest.raises(ValueError):
        make().records("13900000000", month)


def test_heavy_month_is_generated_fast() -> None:
    data = make()
    t0 = time.perf_counter()
    recs = data.records(HEAVY, "2025-03")
    elapsed = time.perf_counter() - t0
    assert len(recs) >= 20_000
    assert elapsed < 1.0


def test_sim_swap_and_porting_are_reported() -> None:
    data = make()
    assert data.subscriber(SWAPPED).sim_changed_at == NOW - timedelta(days=1)
    assert data.subscriber(SWAPPED).ported_at is None
    assert data.subscriber(PORTED).ported_at == NOW - timedelta(days=2)
    assert data.subscriber("13800000107").sim_changed_at == NOW - timedelta(days=1)
    for i in (1, 2, 9, 500, 2999):
        sub = data.subscriber(f"138{i:08d}")
        assert sub.exists and sub.ported_at is None and sub.sim_changed_at is not None
        assert timedelta(days=200) <= NOW - sub.sim_changed_at <= timedelta(days=900)


def test_verify_right_wrong_and_unknown() -> None:
    data = make()
    pw = data.password_for(ORDINARY)
    assert len(pw) == 6 and pw.isdigit()
    wrong = f"{(int(pw) + 1) % 1_000_000:06d}"
    assert data.verify(ORDINARY, wrong) is False  # first use: materialises the hash
    assert data.verify(ORDINARY, pw) is True
    assert data.verify(ORDINARY, wrong) is False
    assert data.verify("13800000002", data.password_for("13800000002")) is True  # first use, right
    assert data.verify("13900000001", pw) is False
    assert data.verify("13800003001", "000000") is False
    with pytest.raises(KeyError):
        data.password_for("13800003001")


def test_store_holds_no_plaintext() -> None:
    data = make()
    known = [m for m, _, _ in data.demo_subscribers()]
    for m in known:
        assert data.verify(m, data.password_for(m))
    store: dict[str, Any] = data._hashes
    assert set(store) == set(known)
    for m, stored in store.items():
        pw = data.password_for(m)
        assert stored != pw and pw not in repr(stored)
        assert pw.encode() not in stored.salt + stored.digest
        assert len(stored.salt) >= 16 and len(stored.digest) >= 32
    # Salts are per subscriber: two stores of one seed hold different hashes of the same password.
    other = make()
    assert other.verify(ORDINARY, data.password_for(ORDINARY))
    assert other._hashes[ORDINARY].digest != store[ORDINARY].digest


def test_every_verify_costs_one_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make()
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(kwargs["n"])
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    for msisdn, pw in [("13900000001", "123456"), (ORDINARY, "123456"), (ORDINARY, "123456"),
                       ("13800000002", data.password_for("13800000002")), ("13800003001", "654321")]:
        calls.clear()
        data.verify(msisdn, pw)
        assert calls == [2**10], msisdn


def test_set_password_replaces_the_hash() -> None:
    data = make()
    old = data.password_for(ORDINARY)
    new = "000000" if old != "000000" else "111111"
    data.set_password(ORDINARY, new)
    assert data.verify(ORDINARY, new) is True
    assert data.verify(ORDINARY, old) is False
    assert data._hashes[ORDINARY].digest != new.encode()
    with pytest.raises(KeyError):
        data.set_password("13800003001", "123456")
    with pytest.raises(ValueError):
        data.set_password(ORDINARY, "12345")


def test_demo_subscribers_log_in_and_are_what_they_say() -> None:
    data = make()
    demo = {m: (pw, note) for m, pw, note in data.demo_subscribers()}
    assert set(demo) == {ORDINARY, HEAVY, SWAPPED, PORTED}
    for m, (pw, note) in demo.items():
        assert data.verify(m, pw) and note
    assert data.record_count(HEAVY, "2025-05") >= 20_000


def test_now_must_be_aware_and_defaults_to_the_present() -> None:
    with pytest.raises(ValueError):
        SeededBilling(now=datetime(2025, 1, 1))
    before = datetime.now(UTC)
    data = SeededBilling(hash_n=2**10)
    assert before <= data.now <= datetime.now(UTC)
    assert data.now.utcoffset() == timedelta(0)
