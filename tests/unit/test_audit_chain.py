"""The audit chain's pure logic: sealing, canonical form, verification verdicts, checkpoints,
filters, JSON Lines, retention arithmetic and the durability decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain import audit_chain as ac

CHAIN = "main"
KEY = b"k" * 32
KEYS = {"k1": KEY}


def event(i: int, **extra: object) -> dict[str, str]:
    return ac.normalise({"at": f"2025-01-01T00:00:{i % 60:02d}.000+00:00", "method": "/hallgate.v1.KioskService/X",
                         "terminal": f"T{i % 3}", "decision": "allowed", "records": i, "proof": None, **extra})


def chain_of(n: int, start_seq: int = 0, start_mac: str = "") -> list[tuple[str, dict[str, str]]]:
    sealed = ac.seal_batch(CHAIN, [event(i) for i in range(n)], start_seq, start_mac, "k1", KEY)
    return [(f"{1000 + i}-0", s) for i, s in enumerate(sealed)]


def test_canonical_is_sorted_compact_ascii_and_order_independent() -> None:
    a = ac.canonical({"b": "2", "a": "ü"})
    assert a == b'{"a":"\\u00fc","b":"2"}'
    assert ac.canonical({"a": "ü", "b": "2"}) == a


def test_normalise_stringifies_and_refuses_reserved_names() -> None:
    assert ac.normalise({"records": 3, "duration_ms": 1.5, "proof": None}) == {
        "records": "3", "duration_ms": "1.5", "proof": ""}
    for name in ("seq", "prev", "mac", "kid", "eid", "id", "chain"):
        with pytest.raises(ValueError, match="reserved"):
            ac.normalise({name: "x"})


def test_seal_links_each_event_to_the_previous_mac() -> None:
    entries = chain_of(3)
    macs = [e["mac"] for _, e in entries]
    assert [e["seq"] for _, e in entries] == ["1", "2", "3"]
    assert [e["prev"] for _, e in entries] == ["", macs[0], macs[1]]
    assert all(ac.mac_ok(CHAIN, KEYS, e) for _, e in entries)
    assert len(set(macs)) == 3


def test_mac_binds_every_field_the_seal_and_the_chain_name() -> None:
    _, e = chain_of(1)[0]
    for name in [*e.keys()]:
        if name != "mac":
            assert ac.mac_ok(CHAIN, KEYS, {**e, name: e[name] + "x"}) is (None if name == "kid" else False), name
    assert ac.mac_ok(CHAIN, KEYS, {**e, "extra": ""}) is False  # added field
    assert ac.mac_ok(CHAIN, KEYS, {k: v for k, v in e.items() if k != "terminal"}) is False  # dropped field
    assert ac.mac_ok("hall-7", KEYS, e) is False
    assert ac.mac_ok(CHAIN, {"k2": KEY}, e) is None


def test_intact_chain_verifies() -> None:
    r = ac.verify_entries(CHAIN, KEYS, chain_of(10), head=ac.Head(10, chain_of(10)[-1][1]["mac"]))
    assert r.ok and r.checked == 10 and r.last_seq == 10 and r.last_id == "1009-0"


def test_an_edited_event_fails_at_that_event() -> None:
    entries = chain_of(10)
    entries[4] = (entries[4][0], {**entries[4][1], "decision": "denied"})
    r = ac.verify_entries(CHAIN, KEYS, entries)
    assert (r.ok, r.first_bad_seq, r.first_bad_id, r.reason, r.checked) == (False, 5, "1004-0", ac.EDITED, 4)


def test_a_forged_prev_or_seq_is_an_edit() -> None:
    entries = chain_of(5)
    forged = list(entries)
    forged[2] = (forged[2][0], {**forged[2][1], "prev": entries[0][1]["mac"]})
    assert ac.verify_entries(CHAIN, KEYS, forged).reason == ac.EDITED
    forged = list(entries)
    forged[2] = (forged[2][0], {**forged[2][1], "seq": "7"})
    r = ac.verify_entries(CHAIN, KEYS, forged)
    assert (r.reason, r.first_bad_seq) == (ac.EDITED, 3)


def test_a_deleted_event_fails_at_its_seq() -> None:
    entries = chain_of(10)
    del entries[6]
    r = ac.verify_entries(CHAIN, KEYS, entries)
    assert (r.ok, r.first_bad_seq, r.first_bad_id, r.reason, r.found_seq) == (False, 7, "1007-0", ac.DELETED, 8)


def test_a_deleted_last_event_is_seen_through_the_head() -> None:
    entries = chain_of(10)
    head = ac.Head(10, entries[-1][1]["mac"], entries[-1][0])
    r = ac.verify_entries(CHAIN, KEYS, entries[:-1], head=head)
    assert (r.ok, r.first_bad_seq, r.first_bad_id, r.reason) == (False, 10, "1009-0", ac.DELETED)


def test_swapped_events_fail_at_the_first_with_reordered() -> None:
    entries = chain_of(10)
    ids = [i for i, _ in entries]
    swapped = [e for _, e in entries]
    swapped[3], swapped[4] = swapped[4], swapped[3]
    r = ac.verify_entries(CHAIN, KEYS, list(zip(ids, swapped, strict=True)))
    assert (r.ok, r.first_bad_seq, r.first_bad_id, r.reason, r.found_seq) == (False, 4, "1003-0", ac.REORDERED, 5)
    far = [e for _, e in entries]
    far[2], far[8] = far[8], far[2]
    r = ac.verify_entries(CHAIN, KEYS, list(zip(ids, far, strict=True)))
    assert (r.first_bad_seq, r.first_bad_id, r.reason) == (3, "1002-0", ac.REORDERED)


def test_a_replayed_event_is_reordered() -> None:
    entries = chain_of(6)
    entries.insert(5, ("1004-5", entries[1][1]))
    r = ac.verify_entries(CHAIN, KEYS, entries)
    assert (r.first_bad_seq, r.first_bad_id, r.reason, r.found_seq) == (6, "1004-5", ac.REORDERED, 2)


def test_an_event_of_another_fork_is_forked() -> None:
    ours = chain_of(4)
    other = ac.seal_batch(CHAIN, [event(99)], 2, "f" * 64, "k1", KEY)[0]
    entries = [*ours[:2], ("1002-0", other), *ours[3:]]
    r = ac.verify_entries(CHAIN, KEYS, entries)
    assert (r.first_bad_seq, r.reason) == (3, ac.FORKED)


def test_unknown_key_and_rotation() -> None:
    old = chain_of(3)
    new = ac.seal_batch(CHAIN, [event(7)], 3, old[-1][1]["mac"], "k2", b"n" * 32)
    entries = [*old, ("2000-0", new[0])]
    assert ac.verify_entries(CHAIN, {"k1": KEY, "k2": b"n" * 32}, entries).ok
    r = ac.verify_entries(CHAIN, {"k2": b"n" * 32}, entries)
    assert (r.ok, r.first_bad_seq, r.reason) == (False, 1, ac.UNKNOWN_KEY)


def test_checkpoint_anchor_lets_the_remaining_chain_verify() -> None:
    entries = chain_of(10)
    last_trimmed = entries[3]
    cp = ac.Checkpoint(4, last_trimmed[1]["mac"], last_trimmed[0], "2025-01-01T00:00:00Z", "k1").signed(CHAIN, KEY)
    anchor = ac.anchor_from_checkpoint(CHAIN, KEYS, cp.as_fields())
    assert anchor == ac.Anchor(4, last_trimmed[1]["mac"], "checkpoint")
    assert isinstance(anchor, ac.Anchor)
    assert ac.verify_entries(CHAIN, KEYS, entries[4:], anchor).ok
    r = ac.verify_entries(CHAIN, KEYS, entries[5:], anchor)  # one more gone than the checkpoint covers
    assert (r.reason, r.first_bad_seq) == (ac.DELETED, 5)
    r = ac.verify_entries(CHAIN, KEYS, entries[4:])  # checkpoint lost: events 1..4 are missing
    assert (r.reason, r.first_bad_seq) == (ac.DELETED, 1)


def test_a_tampered_checkpoint_is_refused() -> None:
    cp = ac.Checkpoint(4, "a" * 64, "1-0", "t", "k1").signed(CHAIN, KEY)
    bad = ac.anchor_from_checkpoint(CHAIN, KEYS, {**cp.as_fields(), "seq": "9"})
    assert isinstance(bad, ac.VerifyResult) and bad.reason == ac.CHECKPOINT and not bad.ok
    missing = ac.anchor_from_checkpoint(CHAIN, KEYS, {"seq": "4"})
    assert isinstance(missing, ac.VerifyResult) and missing.reason == ac.CHECKPOINT
    assert ac.anchor_from_checkpoint(CHAIN, KEYS, {}) == ac.GENESIS


def test_unanchored_range_starts_at_its_first_event_and_seq_range_ends() -> None:
    entries = chain_of(10)
    v = ac.Verifier(CHAIN, KEYS, None, end_seq=6)
    for entry_id, e in entries[3:]:
        v.feed(entry_id, e)
        if not v.wants_more:
            break
    r = v.result(at_stream_end=False)
    assert r.ok and r.checked == 3 and r.last_seq == 6 and r.anchor == "first"


def test_filter_matches_exactly_and_masks_full_numbers() -> None:
    e = {**event(1), "subscriber": "138****0001", "hall": "H1", "staff_id": "S9"}
    assert ac.AuditFilter(subscriber="13800000001").matches("5-0", e)
    assert ac.AuditFilter(subscriber="138****0001", hall="H1", staff_id="S9", decision="allowed").matches("5-0", e)
    assert not ac.AuditFilter(subscriber="13800000002").matches("5-0", e)
    assert not ac.AuditFilter(hall="H").matches("5-0", e)
    assert not ac.AuditFilter(staff_id="S").matches("5-0", e)
    assert not ac.AuditFilter(role="auditor").matches("5-0", e)  # a field the event lacks matches only ""
    assert ac.AuditFilter(extra=(("hall", "H1"),)).matches("5-0", e)
    assert not ac.AuditFilter(extra=(("subscriber_ref", "ab"),)).matches("5-0", e)
    t = datetime(2025, 1, 1, tzinfo=UTC)
    ms = int(t.timestamp() * 1000)
    f = ac.AuditFilter(start=t, end=t + timedelta(milliseconds=2))
    assert f.id_range() == (f"{ms}-0", f"({ms + 2}-0")
    assert [f.matches(f"{ms + d}-3", e) for d in (-1, 0, 1, 2)] == [False, True, True, False]
    with pytest.raises(ValueError):
        ac.AuditFilter(start=datetime(2025, 1, 1))  # naive on purpose


def test_json_lines_round_trip_and_verify_offline() -> None:
    entries = chain_of(4)
    lines = [ac.to_json_line(ac.record(CHAIN, i, e)) for i, e in entries]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    back = [ac.from_json_line(line) for line in lines]
    assert all(c == CHAIN for c, _, _ in back)
    assert ac.verify_entries(CHAIN, KEYS, [(i, f) for _, i, f in back]).ok


def test_retention_cutoff_is_calendar_months() -> None:
    now = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
    assert ac.retention_cutoff(now) == datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
    assert ac.retention_cutoff(now, 1) == datetime(2025, 2, 28, 12, 0, tzinfo=UTC)
    assert ac.retention_cutoff(datetime(2024, 3, 30, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert ac.retention_cutoff(datetime(2025, 1, 15, tzinfo=UTC), 13) == datetime(2023, 12, 15, tzinfo=UTC)
    with pytest.raises(ValueError):
        ac.retention_cutoff(now, 0)


def test_durability_mode() -> None:
    assert ac.durability_mode("7.2.4", True, None) == "waitaof"
    assert ac.durability_mode("8.0.0", True, "everysec") == "waitaof"
    assert ac.durability_mode("7.0.15", True, "always") == "always"
    assert ac.durability_mode("7.0.15", True, "everysec") is None
    assert ac.durability_mode("7.0.15", True, None) is None
    assert ac.durability_mode("7.2.4", False, "always") is None


def test_keys_derivation_rotation_and_parsing() -> None:
    keys, kid = ac.keyring(b"new-secret", retired=[b"old-secret"])
    assert kid in keys and len(keys) == 2 and keys[kid] == ac.derive_key(b"new-secret")
    assert ac.derive_key(b"new-secret") != b"new-secret" and kid == ac.key_id(keys[kid])
    assert ac.parse_keys(f"a:{'11' * 16}, b:{'22' * 32}") == {"a": b"\x11" * 16, "b": b"\x22" * 32}
    for bad in ("", "a", f"a:{'zz' * 16}", "a:1122"):
        with pytest.raises(ValueError):
            ac.parse_keys(bad)
    with pytest.raises(ValueError):
        ac.check_keys({"a": b"x" * 16}, "b")


def test_chain_names_are_safe_hash_tags() -> None:
    assert ac.check_chain_name("hall-17.b_2") == "hall-17.b_2"
    for bad in ("", "a}b", "{a}", "a:b", "a b", "x" * 65):
        with pytest.raises(ValueError):
            ac.check_chain_name(bad)
