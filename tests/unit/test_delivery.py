"""The delivery package (gateway/domain/delivery.py): canonical manifest, incremental content digest,
Ed25519 signature, offline verification, key files and the command line."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.domain import delivery
from gateway.domain.ports import CustomerProfile, Subscriber
from hallgate_pb.billing.v1 import billing_pb2
from hallgate_pb.v1 import kiosk_pb2, legal_pb2

T0 = datetime(2025, 3, 1, tzinfo=UTC)
T1 = datetime(2025, 4, 1, tzinfo=UTC)
A, B = "13800000001", "13800000002"


def detail(at: datetime, other: str = "13911112222") -> kiosk_pb2.CallDetail:
    d = kiosk_pb2.CallDetail(other_party=other, duration_seconds=42, kind=kiosk_pb2.CALL_KIND_VOICE)
    d.start_time.FromDatetime(at)
    return d


def builder(targets: tuple[str, ...] = (A, B)) -> delivery.DeliveryBuilder:
    return delivery.DeliveryBuilder(request_id="LR-0123456789ABCDEF", delivery_id="DL-0123456789ABCDEF",
                                    case_number="SH-2025-0042", letter_sha256="ab" * 32, targets=targets,
                                    categories=["subscriber_info", "call_details"], window_start=T0, window_end=T1)


def sample(signer: delivery.Signer) -> tuple[delivery.SignedManifest, list[bytes]]:
    b = builder()
    chunks = [
        b.subscriber_chunk(A, Subscriber(True, sim_changed_at=T0), None),
        b.call_details_chunk(A, [detail(T0), detail(T0 + timedelta(hours=1))]),
        b.call_details_chunk(A, [detail(T0 + timedelta(days=3))]),
        b.subscriber_chunk(B, Subscriber(False), None),
    ]
    return signer.sign(b.manifest(T1 + timedelta(days=1), signer.key_id)), chunks


@pytest.fixture
def signer() -> delivery.Signer:
    return delivery.Signer(Ed25519PrivateKey.generate())


# --- the manifest --------------------------------------------------------------------------------


def test_the_manifest_is_canonical_json_stating_what_was_delivered(signer):
    signed, chunks = sample(signer)
    text = signed.manifest.decode()
    doc = json.loads(text)
    assert delivery.canonical_json(doc) == signed.manifest  # sorted keys, no spaces: one byte form
    assert " " not in text.replace("SH-2025-0042", "")
    assert doc["per_target"] == [{"target": A, "subscriber": "found", "call_details": 3},
                                 {"target": B, "subscriber": "not_found", "call_details": 0}]
    assert doc["totals"] == {"chunks": 4, "call_details": 3, "subscribers_found": 1,
                             "content_bytes": sum(8 + len(c) for c in chunks)}
    assert doc["content_sha256"] == delivery.content_sha256(chunks)
    assert doc["window"] == {"start": "2025-03-01T00:00:00.000Z", "end": "2025-04-01T00:00:00.000Z"}
    assert doc["generated_at"] == "2025-04-02T00:00:00.000Z"
    assert (doc["algorithm"], doc["key_id"]) == ("Ed25519", signer.key_id)
    assert {"request_id", "delivery_id", "case_number", "letter_sha256", "targets", "categories",
            "format"} <= set(doc)


def test_canonical_json_refuses_what_has_no_canonical_form():
    assert delivery.canonical_json({"b": 1, "a": ["é", True]}) == '{"a":["é",true],"b":1}'.encode()
    for bad in ({"x": 1.5}, {1: "x"}, [float("nan")]):
        with pytest.raises(TypeError):
            delivery.canonical_json(bad)


def test_the_content_digest_is_incremental_and_framed(signer):
    _, chunks = sample(signer)
    framed = b"".join(len(c).to_bytes(8, "big") + c for c in chunks)
    assert delivery.content_sha256(chunks) == hashlib.sha256(framed).hexdigest()
    # Framing makes the chunk boundaries part of what is signed.
    assert delivery.content_sha256([chunks[0] + chunks[1]]) != delivery.content_sha256(chunks[:2])


# --- the signature -------------------------------------------------------------------------------


def test_the_signature_verifies_and_fails_after_any_one_byte_changes(signer):
    signed, _ = sample(signer)
    assert delivery.verify_manifest(signed.manifest, signed.signature, signer.public_key)
    assert delivery.verify_manifest(signed.manifest, signed.signature, signer.public_pem())
    for i in range(len(signed.manifest)):
        changed = bytearray(signed.manifest)
        changed[i] ^= 0x01
        assert not delivery.verify_manifest(bytes(changed), signed.signature, signer.public_key), i
    for i in range(len(signed.signature)):
        changed = bytearray(signed.signature)
        changed[i] ^= 0x80
        assert not delivery.verify_manifest(signed.manifest, bytes(changed), signer.public_key), i
    other = Ed25519PrivateKey.generate().public_key()
    assert not delivery.verify_manifest(signed.manifest, signed.signature, other)
    assert not delivery.verify_manifest(signed.manifest, b"short", signer.public_key)


def test_a_delivery_verifies_only_with_exactly_its_chunks(signer):
    signed, chunks = sample(signer)
    doc = delivery.verify_delivery(signed.manifest, signed.signature, signer.public_key, chunks)
    assert doc["request_id"] == "LR-0123456789ABCDEF"
    tampered = bytearray(chunks[1])
    tampered[-1] ^= 0x01
    cases = {
        "one byte changed": [chunks[0], bytes(tampered), *chunks[2:]],
        "a chunk dropped": chunks[:-1],
        "chunks reordered": [chunks[1], chunks[0], *chunks[2:]],
        "a chunk added": [*chunks, chunks[-1]],
    }
    for name, bad in cases.items():
        with pytest.raises(delivery.DeliveryInvalid, match="content"):
            delivery.verify_delivery(signed.manifest, signed.signature, signer.public_key, bad)
        assert name
    with pytest.raises(delivery.DeliveryInvalid, match="signature"):
        delivery.verify_delivery(signed.manifest, signed.signature[::-1], signer.public_key, chunks)


def test_a_manifest_signed_by_another_key_with_a_lying_key_id_is_refused(signer):
    _, chunks = sample(signer)
    rogue = delivery.Signer(Ed25519PrivateKey.generate())
    b = builder()
    b.subscriber_chunk(A, Subscriber(True), None)
    forged = rogue.sign(b.manifest(T1, signer.key_id))  # claims the gateway's key id
    with pytest.raises(delivery.DeliveryInvalid, match="signature"):
        delivery.verify_delivery(forged.manifest, forged.signature, signer.public_key, chunks)
    with pytest.raises(delivery.DeliveryInvalid, match="another signing key"):
        delivery.verify_delivery(forged.manifest, forged.signature, rogue.public_key, chunks)


# --- chunks --------------------------------------------------------------------------------------


def test_records_in_window_are_half_open_to_the_nanosecond():
    inside = [detail(T0), detail(T1 - timedelta(microseconds=1))]
    before, at_end = detail(T0 - timedelta(microseconds=1)), detail(T1)
    edge = kiosk_pb2.CallDetail()
    edge.start_time.seconds, edge.start_time.nanos = int(T1.timestamp()) - 1, 999_999_999
    page = billing_pb2.ListCallDetailsResponse(next_page_token="next").SerializeToString()
    page += b"".join(b"\x0a" + bytes([len(r.SerializeToString())]) + r.SerializeToString()
                     for r in [before, *inside, at_end, edge])
    got = delivery.records_in_window(page, T0, T1)
    assert [r.SerializeToString() for r in got] == [r.SerializeToString() for r in [*inside, edge]]


def test_fields_billing_adds_later_never_reach_a_delivery():
    # A field billing might add to its CallDetail later (number 99, e.g. a cell id) is dropped.
    rec = billing_pb2.CallDetail(other_party="13911112222")
    rec.start_time.FromDatetime(T0)
    raw = rec.SerializeToString() + b"\x9a\x06\x05cell1"
    page = b"\x0a" + bytes([len(raw)]) + raw
    [got] = delivery.records_in_window(page, T0, T1)
    chunk = builder().call_details_chunk(A, [got])
    assert b"cell1" not in chunk and b"13911112222" in chunk


def test_the_subscriber_record_never_carries_sim_data():
    profile = CustomerProfile(name="Zhang San", document_type="resident_id_card",
                              document_number="11010519491231002X", birth_date="1949-12-31", sex="male",
                              province="Beijing", city="Beijing", district="Chaoyang", street="1 Example Rd",
                              plan_name="Basic 58", account_status="active", iccid="89860012345678901234",
                              imsi="460001234567890")
    chunk = builder().subscriber_chunk(A, Subscriber(True, ported_at=T0), profile)
    rec = legal_pb2.DeliveryRecords.FromString(chunk)
    assert rec.target == A and rec.subscriber.owner_name == "Zhang San"
    assert rec.subscriber.ported_at.ToDatetime(tzinfo=UTC) == T0 and not rec.subscriber.HasField("sim_changed_at")
    assert b"460001234567890" not in chunk and b"89860012345678901234" not in chunk
    absent = legal_pb2.DeliveryRecords.FromString(builder().subscriber_chunk(B, Subscriber(False), profile))
    assert not absent.subscriber.exists and absent.subscriber.owner_name == ""


def test_the_builder_holds_counters_not_records():
    b = builder()
    for _ in range(50):
        b.call_details_chunk(A, [detail(T0)] * 100)
    assert b.call_details == 5000 and b.chunks == 50
    assert not any(isinstance(v, list | bytes) and len(v) > 10 for v in vars(b).values())


# --- keys ----------------------------------------------------------------------------------------


def test_key_files(tmp_path: Path):
    path = tmp_path / "keys" / "legal-signing.pem"
    key = delivery.generate_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert delivery.load_private_key(path).public_key() == key.public_key()
    pub = delivery.load_public_key(Path(f"{path}.pub"))
    assert delivery.key_id(pub) == delivery.Signer(key).key_id
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert delivery.load_public_key(raw) == pub
    with pytest.raises(FileExistsError):
        delivery.generate_private_key(path)
    assert delivery.load_or_create_private_key(path).public_key() == key.public_key()
    fresh = delivery.load_or_create_private_key(tmp_path / "dev.pem")
    assert delivery.load_private_key(tmp_path / "dev.pem").public_key() == fresh.public_key()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_key_of_another_kind_is_refused(tmp_path: Path):
    path = tmp_path / "ec.pem"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="not an Ed25519"):
        delivery.load_private_key(path)


# --- packages on disk and the command line -------------------------------------------------------


def write_package(directory: Path, signed: delivery.SignedManifest, chunks: list[bytes]) -> None:
    w = delivery.PackageWriter(directory)
    for c in chunks:
        w.add_chunk(c)
    w.finish(signed.manifest, signed.signature)


def test_a_package_on_disk_and_its_records_file_digest(tmp_path: Path, signer):
    signed, chunks = sample(signer)
    write_package(tmp_path / "pkg", signed, chunks)
    records = (tmp_path / "pkg" / delivery.RECORDS_FILE).read_bytes()
    assert hashlib.sha256(records).hexdigest() == json.loads(signed.manifest)["content_sha256"]
    assert list(delivery.read_chunks(tmp_path / "pkg" / delivery.RECORDS_FILE)) == chunks
    assert delivery.verify_package(tmp_path / "pkg", signer.public_key)["totals"]["chunks"] == 4


def test_the_command_line_generates_keys_and_verifies_packages(tmp_path: Path, capsys):
    key = tmp_path / "signing.pem"
    assert delivery.main(["keygen", str(key)]) == 0
    assert delivery.main(["public-key", str(key)]) == 0
    assert "BEGIN PUBLIC KEY" in capsys.readouterr().out
    signer = delivery.Signer(delivery.load_private_key(key))
    signed, chunks = sample(signer)
    pkg = tmp_path / "pkg"
    write_package(pkg, signed, chunks)
    pub = f"{key}.pub"
    assert delivery.main(["verify", str(pkg), "--public-key", pub]) == 0
    assert "OK" in capsys.readouterr().out
    assert delivery.main(["verify-manifest", str(pkg / "manifest.json"), str(pkg / "manifest.sig"),
                          "--public-key", pub]) == 0

    records = pkg / delivery.RECORDS_FILE
    data = bytearray(records.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte of the records
    records.write_bytes(bytes(data))
    assert delivery.main(["verify", str(pkg), "--public-key", pub]) == 1
    assert "FAILED" in capsys.readouterr().err

    records.write_bytes(bytes(data[:-3]))  # truncated
    assert delivery.main(["verify", str(pkg), "--public-key", pub]) == 1

    manifest = pkg / "manifest.json"
    m = bytearray(signed.manifest)
    m[10] ^= 0x01  # one byte of the manifest
    manifest.write_bytes(bytes(m))
    assert delivery.main(["verify-manifest", str(manifest), str(pkg / "manifest.sig"), "--public-key", pub]) == 1
    assert delivery.main(["keygen", str(key)]) == 1  # never overwrites a key
    assert os.path.getsize(key) > 0
