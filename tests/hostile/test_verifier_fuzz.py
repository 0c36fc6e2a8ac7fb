"""The delivery package verifier against hostile packages (hypothesis): whatever is done to a valid
package, verification succeeds only on the untouched package and otherwise fails with one clean
`DeliveryInvalid` reason: never another exception, never a large allocation. A few runs of both
real command lines check the exit code and the `FAILED: <reason>` line.

Mutations: bit flips, truncations, insertions and replacements of any of the three files, edited
length prefixes (off by a little, or absurd), extra entries (a file, a copy of records.bin under
another name, a subdirectory, symlinks, a FIFO), missing files, and manifests that are *validly
signed* but of the wrong shape (so the checks behind the signature are reached too)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.domain import delivery
from gateway.domain.ports import Subscriber
from hallgate_pb.v1 import kiosk_pb2

T0 = datetime(2026, 3, 1, tzinfo=UTC)
A, B = "13800000001", "13800000002"
FILES = (delivery.MANIFEST_FILE, delivery.SIGNATURE_FILE, delivery.RECORDS_FILE)
SIGNER = delivery.Signer(Ed25519PrivateKey.generate())
PEM = SIGNER.public_pem()
# VERIFIER_EXAMPLES=5000 for a longer search (make fuzz runs these tests with it).
FAST = settings(max_examples=int(os.environ.get("VERIFIER_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow], database=None)


def _detail(minutes: int) -> kiosk_pb2.CallDetail:
    d = kiosk_pb2.CallDetail(other_party="13911112222", duration_seconds=minutes, kind=kiosk_pb2.CALL_KIND_VOICE)
    d.start_time.FromDatetime(T0 + timedelta(minutes=minutes))
    return d


def _package() -> tuple[dict[str, bytes], list[bytes], dict[str, Any]]:
    b = delivery.DeliveryBuilder(request_id="LR-0123456789ABCDEF", delivery_id="DL-0123456789ABCDEF",
                                 case_number="SH-2026-0042", letter_sha256="ab" * 32, targets=[A, B],
                                 categories=["subscriber_info", "call_details"], window_start=T0,
                                 window_end=T0 + timedelta(days=30))
    chunks = [b.subscriber_chunk(A, Subscriber(True, sim_changed_at=T0), None),
              b.call_details_chunk(A, [_detail(i) for i in range(1, 6)]),
              b.call_details_chunk(A, [_detail(99)]),
              b.subscriber_chunk(B, Subscriber(False), None)]
    signed = SIGNER.sign(b.manifest(T0 + timedelta(days=31), SIGNER.key_id))
    files = {delivery.MANIFEST_FILE: signed.manifest, delivery.SIGNATURE_FILE: signed.signature,
             delivery.RECORDS_FILE: b"".join(delivery.frame(c) for c in chunks)}
    return files, chunks, json.loads(signed.manifest)


ORIGINAL, CHUNKS, DOC = _package()


def _write(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


def _frames(records: bytes) -> list[int]:
    """Offsets of the length prefixes of a well-formed records file."""
    offsets, at = [], 0
    while at < len(records):
        offsets.append(at)
        at += delivery.FRAME + int.from_bytes(records[at:at + delivery.FRAME], "big")
    return offsets


def _assert_clean_failure(directory: Path) -> str:
    with pytest.raises(delivery.DeliveryInvalid) as e:
        delivery.verify_package(directory, PEM)
    reason = str(e.value)
    assert reason and "\n" not in reason and reason.isprintable(), repr(reason)
    return reason


# --- mutations ---------------------------------------------------------------------------------

files_st = st.sampled_from(FILES)
flip = st.tuples(st.just("flip"), files_st, st.integers(0, 10**6), st.integers(0, 7))
truncate = st.tuples(st.just("truncate"), files_st, st.integers(0, 10**6))
insert = st.tuples(st.just("insert"), files_st, st.integers(0, 10**6), st.binary(min_size=1, max_size=16))
replace = st.tuples(st.just("replace"), files_st, st.binary(max_size=64))
delete = st.tuples(st.just("delete"), files_st)
length = st.tuples(st.just("length"), st.integers(0, len(CHUNKS) - 1),
                   st.one_of(st.integers(0, 4096), st.integers(2**31, 2**64 - 1), st.integers(-3, 3)))
extra = st.tuples(st.just("extra"), st.sampled_from(
    ["notes.txt", "records-copy", "subdir", "symlink", "symlinked-records", "fifo", ".hidden", "manifest.json.bak"]))
mutation = st.one_of(flip, truncate, insert, replace, delete, length, extra)


_SERIAL = itertools.count(1)


def _apply(directory: Path, m: tuple[Any, ...]) -> None:
    kind = m[0]
    if kind == "extra":
        what, n = m[1], next(_SERIAL)  # keeps names apart when the same kind comes twice
        if what == "records-copy":
            (directory / f"records-{n}.bin").write_bytes(ORIGINAL[delivery.RECORDS_FILE])
        elif what == "subdir":
            (directory / f"more-{n}").mkdir()
        elif what == "symlink":
            (directory / f"link-{n}").symlink_to(directory / delivery.RECORDS_FILE)
        elif what == "symlinked-records":  # the right name, but a symlink to a file elsewhere
            real = directory.parent / f"elsewhere-{n}"
            real.write_bytes(ORIGINAL[delivery.RECORDS_FILE])
            (directory / delivery.RECORDS_FILE).unlink(missing_ok=True)
            (directory / delivery.RECORDS_FILE).symlink_to(real)
        elif what == "fifo":
            os.mkfifo(directory / f"pipe-{n}")
        else:
            (directory / f"{what}{n}").write_bytes(b"looks harmless")
        return
    if kind == "length":
        path = directory / delivery.RECORDS_FILE
        if not path.is_file() or path.is_symlink():
            return
        data = bytearray(path.read_bytes())
        try:
            offsets = _frames(bytes(data))
        except ValueError:
            return
        if m[1] >= len(offsets):
            return
        at = offsets[m[1]]
        old = int.from_bytes(data[at:at + delivery.FRAME], "big")
        new = m[2] if m[2] >= 2**31 or m[2] > 3 else max(old + m[2], 0)
        data[at:at + delivery.FRAME] = (new % 2**64).to_bytes(delivery.FRAME, "big")
        path.write_bytes(bytes(data))
        return
    path = directory / m[1]
    if kind == "delete":
        path.unlink(missing_ok=True)
        return
    if not path.is_file() or path.is_symlink():
        return
    data = bytearray(path.read_bytes())
    if kind == "flip" and data:
        data[m[2] % len(data)] ^= 1 << m[3]
    elif kind == "truncate":
        del data[m[2] % (len(data) + 1):]
    elif kind == "insert":
        at = m[2] % (len(data) + 1)
        data[at:at] = m[3]
    elif kind == "replace":
        data = bytearray(m[2])
    path.write_bytes(bytes(data))


def _untouched(directory: Path) -> bool:
    names = set(os.listdir(directory))
    return names == set(FILES) and all(
        not (directory / n).is_symlink() and (directory / n).read_bytes() == ORIGINAL[n] for n in FILES)


@FAST
@given(st.lists(mutation, min_size=1, max_size=3))
def test_a_mutated_package_verifies_only_when_untouched(mutations):
    with tempfile.TemporaryDirectory() as tmp:
        pkg = _write(Path(tmp) / "pkg", ORIGINAL)
        for m in mutations:
            _apply(pkg, m)
        if _untouched(pkg):
            assert delivery.verify_package(pkg, PEM)["delivery_id"] == DOC["delivery_id"]
        else:
            _assert_clean_failure(pkg)


def test_the_untouched_package_verifies_and_each_extra_entry_fails_it(tmp_path):
    pkg = _write(tmp_path / "pkg", ORIGINAL)
    assert delivery.verify_package(pkg, PEM)["totals"]["chunks"] == len(CHUNKS)
    for i, what in enumerate(["notes.txt", "records-copy", "subdir", "symlink", "fifo", ".hidden"]):
        other = tmp_path / f"pkg{i}"
        shutil.copytree(pkg, other)
        _apply(other, ("extra", what))
        assert "not part of a delivery" in _assert_clean_failure(other), what
    linked = tmp_path / "linked"
    shutil.copytree(pkg, linked)
    _apply(linked, ("extra", "symlinked-records"))
    assert "symbolic link" in _assert_clean_failure(linked)
    named = tmp_path / "named"
    shutil.copytree(pkg, named)
    (named / os.fsdecode(b"\xff\xfe-not-utf8")).write_bytes(b"")
    assert "not part of a delivery" in _assert_clean_failure(named)
    missing = tmp_path / "missing"
    shutil.copytree(pkg, missing)
    (missing / delivery.SIGNATURE_FILE).unlink()
    assert "lacks manifest.sig" in _assert_clean_failure(missing)


@pytest.mark.parametrize("claimed", [2**63, 2**64 - 1, 10**12, 1 << 40])
def test_an_absurd_length_prefix_fails_before_anything_is_allocated(tmp_path, claimed):
    records = bytearray(ORIGINAL[delivery.RECORDS_FILE])
    records[:delivery.FRAME] = claimed.to_bytes(delivery.FRAME, "big")
    pkg = _write(tmp_path / "pkg", {**ORIGINAL, delivery.RECORDS_FILE: bytes(records)})
    tracemalloc.start()
    try:
        reason = _assert_clean_failure(pkg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "claims" in reason and peak < 1 << 20


# --- validly signed manifests of the wrong shape ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
KEYS = sorted(DOC)


def _shape_changes() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.just("set"), st.tuples(st.sampled_from(KEYS), json_values)),
        st.tuples(st.just("drop"), st.sampled_from(KEYS)),
        st.tuples(st.just("totals"), st.tuples(st.sampled_from(sorted(DOC["totals"])), json_values)),
        st.tuples(st.just("per_target"), st.tuples(st.sampled_from(["target", "subscriber", "call_details"]),
                                                   json_values)),
        st.tuples(st.just("whole"), json_values),
        st.tuples(st.just("raw"), st.binary(max_size=64)),
        st.tuples(st.just("spaced"), st.just(None)),
    )


def _reshaped(change: tuple[str, Any]) -> bytes:
    kind, arg = change
    doc = json.loads(json.dumps(DOC))
    if kind == "set":
        doc[arg[0]] = arg[1]
    elif kind == "drop":
        del doc[arg]
    elif kind == "totals":
        doc["totals"][arg[0]] = arg[1]
    elif kind == "per_target":
        doc["per_target"][0][arg[0]] = arg[1]
    elif kind == "whole":
        doc = arg
    elif kind == "raw":
        return bytes(arg)
    elif kind == "spaced":
        return json.dumps(doc, indent=1).encode()
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


@FAST
@given(_shape_changes())
def test_a_signed_manifest_of_the_wrong_shape_fails_cleanly(change):
    manifest = _reshaped(change)
    files = {**ORIGINAL, delivery.MANIFEST_FILE: manifest, delivery.SIGNATURE_FILE: SIGNER.sign(manifest).signature}
    with tempfile.TemporaryDirectory() as tmp:
        pkg = _write(Path(tmp) / "pkg", files)
        try:
            doc = delivery.verify_package(pkg, PEM)
        except delivery.DeliveryInvalid as err:
            assert str(err) and str(err).isprintable(), repr(str(err))
            assert manifest != ORIGINAL[delivery.MANIFEST_FILE]
            return
    # The key signed it, so it may verify, but only if it still states exactly this content and
    # differs only in descriptive fields, each of the type the format gives it.
    assert manifest == delivery.canonical_json(doc)
    assert {k: doc[k] for k in BOUND} == {k: DOC[k] for k in BOUND}
    assert set(doc) == set(DOC) and all(isinstance(doc[k], str) for k in FREE_TEXT)
    assert isinstance(doc["categories"], list) and all(isinstance(c, str) for c in doc["categories"])
    assert isinstance(doc["window"], dict) and all(isinstance(doc["window"].get(k), str) for k in ("start", "end"))


BOUND = ("format", "algorithm", "key_id", "content_sha256", "totals", "per_target", "targets")
FREE_TEXT = ("request_id", "delivery_id", "case_number", "letter_sha256", "generated_at")


@pytest.mark.parametrize("manifest", [
    b"\xff\xfe not utf-8", b"[" * 100_000, b'{"format":"hallgate-delivery/1","format":"x"}', b"1" * 5000,
    b'{"a":NaN}', b'{"a":1.5}', json.dumps(["not", "an", "object"]).encode(), b""])
def test_signed_garbage_manifests_fail_with_a_reason(tmp_path, manifest):
    pkg = _write(tmp_path / "pkg", {**ORIGINAL, delivery.MANIFEST_FILE: manifest,
                                    delivery.SIGNATURE_FILE: SIGNER.sign(manifest).signature})
    _assert_clean_failure(pkg)


def test_a_bad_public_key_fails_cleanly(tmp_path):
    pkg = _write(tmp_path / "pkg", ORIGINAL)
    for key in (b"", b"-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n", b"x" * 32 + b"y",
                tmp_path / "absent.pem", tmp_path):
        with pytest.raises(delivery.DeliveryInvalid):
            delivery.verify_package(pkg, key)


# --- writing packages: 0600 files in 0700 directories ------------------------------------------


def test_packages_are_written_owner_only_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        target = tmp_path / "a" / "b" / "pkg"
        w = delivery.PackageWriter(target)
        for c in CHUNKS:
            w.add_chunk(c)
        w.finish(ORIGINAL[delivery.MANIFEST_FILE], ORIGINAL[delivery.SIGNATURE_FILE])
    finally:
        os.umask(old)
    for d in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert sorted(os.listdir(target)) == sorted(FILES)
    for name in FILES:
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o600, name
    assert delivery.verify_package(target, PEM)["delivery_id"] == DOC["delivery_id"]
    with pytest.raises(FileExistsError):
        delivery.PackageWriter(target)  # never writes into an existing directory


def test_a_broken_off_delivery_leaves_no_half_package(tmp_path):
    w = delivery.PackageWriter(tmp_path / "pkg")
    w.add_chunk(CHUNKS[0])
    w.abort()
    assert not (tmp_path / "pkg").exists()


def test_signing_keys_are_written_in_an_owner_only_directory(tmp_path):
    delivery.generate_private_key(tmp_path / "keys" / "signing.pem")
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE((tmp_path / "keys" / "signing.pem").stat().st_mode) == 0o600


# --- the real command lines ----------------------------------------------------------------------

CLIS = {"delivery": [sys.executable, "-m", "gateway.domain.delivery", "verify"],
        "hallgate": [sys.executable, "-m", "gateway.cli", "legal", "verify"]}


def _run(cli: str, pkg: Path, pub: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLIS[cli], str(pkg), "--public-key", str(pub)], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2], check=False)


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_the_command_lines_exit_0_on_a_good_package_and_1_with_a_reason_otherwise(tmp_path, cli):
    pub = tmp_path / "gateway.pub"
    pub.write_bytes(PEM)
    good = _write(tmp_path / "good", ORIGINAL)
    ok = _run(cli, good, pub)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: delivery DL-0123456789ABCDEF"), ok
    huge = bytearray(ORIGINAL[delivery.RECORDS_FILE])
    huge[:delivery.FRAME] = (2**64 - 1).to_bytes(delivery.FRAME, "big")
    bad = {
        "extra": lambda d: (d / "notes.txt").write_text("hi"),
        "huge-length": lambda d: (d / delivery.RECORDS_FILE).write_bytes(bytes(huge)),
        "garbage-manifest": lambda d: (d / delivery.MANIFEST_FILE).write_bytes(b"\xff{not json"),
        "missing": lambda d: (d / delivery.SIGNATURE_FILE).unlink(),
    }
    for name, damage in bad.items():
        pkg = _write(tmp_path / name, ORIGINAL)
        damage(pkg)
        run = _run(cli, pkg, pub)
        assert run.returncode == 1, (name, run)
        assert run.stderr.startswith("FAILED: ") and run.stderr.count("\n") == 1, (name, run.stderr)
        assert "Traceback" not in run.stderr + run.stdout and not run.stdout, (name, run)
