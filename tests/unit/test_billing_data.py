"""SeededBilling: the simulator's data is reproducible, realistic in shape, and keeps no plaintext."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.billing_sim.data import SeededBilling, resident_id_check_char
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


def test_heavy_month_has_20000_records() -> None:
    # How fast it is generated is for bench/, not for a timed test on a shared machine.
    assert len(make().records(HEAVY, "2025-03")) >= 20_000


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


# --- registered owners ---------------------------------------------------------------------------

# GB/T 2260 codes and what they name: an owner's address must agree with the ID number's first six digits.
AREAS = {
    "110101": ("北京市", "北京市", "东城区"), "110105": ("北京市", "北京市", "朝阳区"),
    "310104": ("上海市", "上海市", "徐汇区"), "310115": ("上海市", "上海市", "浦东新区"),
    "440305": ("广东省", "深圳市", "南山区"), "440106": ("广东省", "广州市", "天河区"),
    "510107": ("四川省", "成都市", "武侯区"), "330106": ("浙江省", "杭州市", "西湖区"),
    "420106": ("湖北省", "武汉市", "武昌区"), "320102": ("江苏省", "南京市", "玄武区"),
}


def mod11_2(first17: str) -> str:
    """ISO 7064 MOD 11-2 written from the standard's recursive definition, independent of the code
    under test: p = (p + digit) * 2 mod 11 over the 17 digits, then the check value is (12 - p) mod 11."""
    p = 0
    for c in first17:
        p = (p + int(c)) * 2 % 11
    v = (12 - p) % 11
    return "X" if v == 10 else str(v)


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in reversed(number)]
    return sum(d if k % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for k, d in enumerate(digits)) % 10 == 0


def every_owner(data: SeededBilling) -> list[tuple[str, Any]]:
    return [(f"138{i:08d}", data.owner_of(f"138{i:08d}")) for i in range(1, data.subscribers + 1)]


def test_check_char_known_numbers_and_bad_input() -> None:
    # Published examples: the standard's own (GB 11643-1999 annex) and widely quoted valid numbers.
    assert resident_id_check_char("11010519491231002") == "X"
    assert resident_id_check_char("44052418800101001") == "4"
    assert resident_id_check_char("11010119900307123") == mod11_2("11010119900307123")
    for first17 in ("", "1101051949123100", "110105194912310021", "1101051949123100X", "\uff11" + "1010519491231002"):
        with pytest.raises(ValueError):
            resident_id_check_char(first17)


def test_every_generated_resident_id_is_valid_and_agrees_with_the_profile() -> None:
    data = make()
    owners = every_owner(data)
    assert len(owners) == 3000
    for msisdn, o in owners:
        n = o.document_number
        assert o.document_type == "resident_id_card", msisdn
        assert len(n) == 18 and n[:17].isascii() and n[:17].isdigit() and n[17] in "0123456789X", n
        assert mod11_2(n[:17]) == n[17], n
        assert resident_id_check_char(n[:17]) == n[17]
        born = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
        assert date(1950, 1, 1) <= born <= date(2005, 12, 31)
        assert o.birth_date == born.isoformat()
        assert n[14:17] != "000"
        assert o.sex == ("male" if int(n[16]) % 2 else "female")
        assert (o.province, o.city, o.district) == AREAS[n[:6]], msisdn
        assert o.street and o.street[-1] == "室" and "号" in o.street
        assert isinstance(o.name, str) and 2 <= len(o.name) <= 3
        assert all("\u4e00" <= c <= "\u9fff" for c in o.name), o.name
        assert o.account_status == "active" and o.plan_name
        assert o.iccid.isascii() and o.iccid.isdigit() and 19 <= len(o.iccid) <= 20
        assert o.iccid.startswith("8986") and luhn_ok(o.iccid), o.iccid
        assert o.imsi.isascii() and o.imsi.isdigit() and len(o.imsi) == 15 and o.imsi.startswith("46000")
    # Variety, as real subscribers have: every area, both sexes, check characters X included.
    numbers = [o.document_number for _, o in owners]
    assert {n[:6] for n in numbers} == set(AREAS)
    assert {o.sex for _, o in owners} == {"female", "male"}
    assert any(n.endswith("X") for n in numbers)
    assert len(set(numbers)) > 2990 and len({o.iccid for _, o in owners}) == len({o.imsi for _, o in owners}) == 3000


def test_owners_are_reproducible_from_the_seed() -> None:
    a, b, c = make(), make(), make(seed="another-seed")
    assert a.owner_of(ORDINARY) == b.owner_of(ORDINARY) != c.owner_of(ORDINARY)
    assert a.owner_of(ORDINARY) != a.owner_of("13800000002")
    assert a.opened_at(ORDINARY) == b.opened_at(ORDINARY)
    for msisdn in ("13800000000", "13800003001", "13900000001", "1380000001"):
        with pytest.raises(KeyError):
            a.owner_of(msisdn)
        with pytest.raises(KeyError):
            a.opened_at(msisdn)


def test_opened_at_is_consistent_with_the_sim_history_and_the_owner() -> None:
    data = make()
    assert data.opened_at(PORTED) == data.subscriber(PORTED).ported_at
    for i in range(1, 3001):
        msisdn = f"138{i:08d}"
        opened, sub, owner = data.opened_at(msisdn), data.subscriber(msisdn), data.owner_of(msisdn)
        assert opened.utcoffset() == timedelta(0)
        assert opened <= (sub.ported_at or sub.sim_changed_at or NOW) <= NOW
        born = date.fromisoformat(owner.birth_date)
        assert opened.astimezone(ZoneInfo("Asia/Shanghai")).date() >= date(born.year + 16, born.month, 1)


def test_verify_owner_document_matches_only_the_registered_owner() -> None:
    data = make()
    o = data.owner_of(ORDINARY)
    n = o.document_number
    assert data.verify_owner_document(ORDINARY, "resident_id_card", n, o.name) is True
    assert data.verify_owner_document(ORDINARY, "resident_id_card", n, f" {o.name[0]} {o.name[1:]}\u3000") is True
    other_name = "王伟" if o.name != "王伟" else "李娜"
    other_number = n[:17] + ("0" if n[17] != "0" else "1")
    others = data.owner_of("13800000002")
    for args in [
        ("resident_id_card", n, other_name),  # wrong name
        ("resident_id_card", n, o.name + "伟"),
        ("resident_id_card", other_number, o.name),  # wrong number
        ("resident_id_card", n[:17], o.name),
        ("resident_id_card", others.document_number, o.name),
        ("passport", n, o.name),  # wrong type
        ("", n, o.name),
        ("resident_id_card", "", ""),
        ("resident_id_card", others.document_number, others.name),  # someone else's owner
    ]:
        assert data.verify_owner_document(ORDINARY, *args) is False, args
    # Unknown numbers never match, not even with a real owner's document.
    for msisdn in ("13800003001", "13900000001", "13800000000", "x"):
        assert data.verify_owner_document(msisdn, "resident_id_card", n, o.name) is False


def test_verify_owner_document_accepts_a_lowercase_x() -> None:
    data = make()
    msisdn, owner = next((m, o) for m, o in every_owner(data) if o.document_number.endswith("X"))
    lower = owner.document_number.lower()
    assert data.verify_owner_document(msisdn, "resident_id_card", lower, owner.name) is True
    assert data.verify_owner_document(msisdn, "resident_id_card", owner.document_number, owner.name) is True


def test_verify_owner_document_does_the_same_work_for_unknown_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make()
    o = data.owner_of(ORDINARY)
    built: list[str] = []
    real = SeededBilling._owner

    def counting(self: SeededBilling, d: bytes) -> Any:
        built.append(d.hex())
        return real(self, d)

    monkeypatch.setattr(SeededBilling, "_owner", counting)
    for msisdn in (ORDINARY, "13800003001", "13900000001"):
        built.clear()
        data.verify_owner_document(msisdn, "resident_id_card", o.document_number, o.name)
        assert len(built) == 1, msisdn


def test_demo_note_names_the_ordinary_owner() -> None:
    data = make()
    notes = {m: note for m, _, note in data.demo_subscribers()}
    owner = data.owner_of(ORDINARY)
    assert owner.name in notes[ORDINARY] and owner.document_number in notes[ORDINARY]
    assert all(len(t) == 3 for t in data.demo_subscribers())


@pytest.mark.parametrize("bad", ["12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16", "", "12345\n"])
def test_set_password_accepts_only_six_ascii_digits(bad: str) -> None:
    data = make()
    with pytest.raises(ValueError):
        data.set_password(ORDINARY, bad)
    assert data.verify(ORDINARY, data.password_for(ORDINARY)) is True
