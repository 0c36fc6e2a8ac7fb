"""The generated code in hallgate_pb/ is exactly what proto/ gives, and the public and billing
messages the gateway passes through stay wire-compatible (gateway/api/kiosk.py re-reads a
billing page as the public ListCallDetailsResponse and discards the fields the public API lacks)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from hallgate_pb.billing.v1 import billing_pb2
from hallgate_pb.v1 import kiosk_pb2

ROOT = Path(__file__).resolve().parents[2]


def load_gen_protos():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def test_committed_generated_code_is_exactly_what_proto_generates(tmp_path):
    out = tmp_path / "hallgate_pb"
    load_gen_protos().generate(out)
    fresh, committed = tree(out), tree(ROOT / "hallgate_pb")
    assert sorted(fresh) == sorted(committed)
    assert {"v1/kiosk_pb2.py", "v1/kiosk_pb2_grpc.py", "billing/v1/billing_pb2.py"} <= set(fresh)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"hallgate_pb/ differs from proto/ in {stale}: run `make protos`"
    # The imports were rewritten into the hallgate_pb package.
    assert b"from hallgate_pb.v1 import kiosk_pb2" in fresh["v1/kiosk_pb2_grpc.py"]
    assert not [n for n, text in fresh.items() if b"from hallgate." in text or b"from hallgate import" in text]


# --- wire compatibility --------------------------------------------------------------------------

WIRE_TYPES = {  # types that share one wire encoding and meaning when both sides decode them
    FieldDescriptor.TYPE_ENUM: "enum",
    FieldDescriptor.TYPE_MESSAGE: "message",
}


def wire_shape(field: FieldDescriptor) -> tuple[object, ...]:
    """What must match for a field to decode the same on both sides (names may differ)."""
    return field.number, WIRE_TYPES.get(field.type, field.type), field.is_repeated


def assert_wire_compatible(a: Descriptor, b: Descriptor, numbers: list[int] | None = None,
                           seen: set[tuple[str, str]] | None = None) -> None:
    seen = set() if seen is None else seen
    if (a.full_name, b.full_name) in seen:
        return
    seen.add((a.full_name, b.full_name))
    if numbers is None:
        assert sorted(a.fields_by_number) == sorted(b.fields_by_number), (a.full_name, b.full_name)
        numbers = sorted(a.fields_by_number)
    for n in numbers:
        fa, fb = a.fields_by_number[n], b.fields_by_number[n]
        assert wire_shape(fa) == wire_shape(fb), (fa.full_name, fb.full_name)
        assert fa.name == fb.name, (fa.full_name, fb.full_name)
        if fa.type == FieldDescriptor.TYPE_ENUM:
            va = {v.number: v.name for v in fa.enum_type.values}
            vb = {v.number: v.name for v in fb.enum_type.values}
            assert va == vb, (fa.enum_type.full_name, fb.enum_type.full_name)
        if fa.type == FieldDescriptor.TYPE_MESSAGE:
            assert_wire_compatible(fa.message_type, fb.message_type, seen=seen)


def test_public_and_billing_call_detail_are_wire_compatible_field_by_field():
    pub, bill = kiosk_pb2.CallDetail.DESCRIPTOR, billing_pb2.CallDetail.DESCRIPTOR
    assert_wire_compatible(pub, bill)
    assert len(pub.fields) == 7
    assert pub.fields_by_number[1].message_type.full_name == "google.protobuf.Timestamp"


def test_billing_page_field_1_is_the_public_chunk_field_1():
    pub, bill = kiosk_pb2.ListCallDetailsResponse.DESCRIPTOR, billing_pb2.ListCallDetailsResponse.DESCRIPTOR
    assert_wire_compatible(pub, bill, numbers=[1])
    assert sorted(pub.fields_by_number) == [1]  # the public chunk carries records and nothing else
    assert bill.fields_by_number[2].name == "next_page_token"


def test_wire_shape_tells_incompatible_fields_apart():
    # The comparison can fail: fields of different type or number do not match.
    detail = kiosk_pb2.CallDetail.DESCRIPTOR
    assert wire_shape(detail.fields_by_name["duration_seconds"]) != wire_shape(detail.fields_by_name["volume_bytes"])
    with pytest.raises(AssertionError):
        assert_wire_compatible(detail, kiosk_pb2.ListCallDetailsResponse.DESCRIPTOR)


def full_billing_record() -> billing_pb2.CallDetail:
    r = billing_pb2.CallDetail(direction=billing_pb2.CALL_DIRECTION_INCOMING, other_party="13911112222",
                               duration_seconds=-7, kind=billing_pb2.CALL_KIND_DATA, volume_bytes=2**40 + 3,
                               charge_fen=-(2**33))
    r.start_time.seconds, r.start_time.nanos = 1_748_736_000, 123
    return r


def test_a_billing_page_reread_as_the_public_chunk_keeps_every_record_field_and_drops_the_token():
    records = [full_billing_record(), billing_pb2.CallDetail(kind=billing_pb2.CALL_KIND_SMS)]
    page = billing_pb2.ListCallDetailsResponse(records=records, next_page_token="opaque-next-page")
    wire = page.SerializeToString()

    chunk = kiosk_pb2.ListCallDetailsResponse.FromString(wire)
    assert b"opaque-next-page" in chunk.SerializeToString()  # kept as an unknown field until discarded
    chunk.DiscardUnknownFields()
    out = chunk.SerializeToString()
    assert b"opaque-next-page" not in out
    assert out == billing_pb2.ListCallDetailsResponse(records=records).SerializeToString()

    [r, _] = chunk.records
    assert (r.start_time.seconds, r.start_time.nanos, r.direction, r.other_party, r.duration_seconds, r.kind,
            r.volume_bytes, r.charge_fen) == (1_748_736_000, 123, kiosk_pb2.CALL_DIRECTION_INCOMING, "13911112222",
                                              -7, kiosk_pb2.CALL_KIND_DATA, 2**40 + 3, -(2**33))
    assert billing_pb2.ListCallDetailsResponse.FromString(out).next_page_token == ""


def test_unknown_fields_inside_a_record_are_discarded_too():
    # A field billing might add to its CallDetail later (here number 99) never reaches a kiosk.
    extra = billing_pb2.CallDetail(other_party="13911112222").SerializeToString() + b"\x9a\x06\x05cell1"
    page = b"\x0a" + bytes([len(extra)]) + extra
    chunk = kiosk_pb2.ListCallDetailsResponse.FromString(page)
    chunk.DiscardUnknownFields()
    assert b"cell1" not in chunk.SerializeToString()
    assert chunk.records[0].other_party == "13911112222"
