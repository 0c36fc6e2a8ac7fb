"""The delivery package of a legal request: record chunks, a manifest, and the gateway's signature.

A delivery is a sequence of chunks, each a serialized `hallgate.v1.DeliveryRecords` (one target's
subscriber record or a run of its call details). The content digest is the SHA-256 over every
chunk in order, each preceded by its length as 8 bytes big-endian; a package on disk keeps the
chunks in exactly that framing in `records.bin`, so the digest is simply the file's SHA-256.

The manifest is canonical JSON (UTF-8, keys sorted, no insignificant whitespace, no floats) naming
the request, the delivery, what was delivered and the content digest; the gateway signs those
exact bytes with Ed25519. Anyone with the gateway's public key can check a package offline:

    python -m gateway.domain.delivery verify PACKAGE_DIR --public-key legal-signing.pem.pub

Building is incremental: the builder keeps a running hash and counters, never the records.
Pure apart from `cryptography` and the protobuf encoding of the chunks: no gRPC, no I/O except
the key and package files named explicitly.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf.message import DecodeError

from gateway.domain import delivery_checks as checks
from gateway.domain.delivery_checks import DeliveryInvalid as DeliveryInvalid  # callers catch delivery.DeliveryInvalid
from gateway.domain.ports import CustomerProfile, Subscriber
from hallgate_pb.v1 import kiosk_pb2, legal_pb2

FORMAT = "hallgate-delivery/1"
ALGORITHM = "Ed25519"
FRAME = 8  # bytes of big-endian length before each chunk
RECORDS_FILE, MANIFEST_FILE, SIGNATURE_FILE = "records.bin", "manifest.json", "manifest.sig"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What a verifier reads at most: a manifest names at most a few hundred targets; an Ed25519
# signature is 64 bytes; no chunk comes near the gRPC client's 4 MiB receive limit.
MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 64
MAX_CHUNK_BYTES = 64 << 20
MAX_KEY_FILE_BYTES = 64 << 10


# --- canonical form and content digest ---------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """One byte sequence per value: sorted keys, no spaces, UTF-8. Floats are refused, since their
    text form is not canonical across implementations."""

    def no_floats(v: Any) -> None:
        if isinstance(v, float):
            raise TypeError("floats have no canonical form here")
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    raise TypeError("keys must be strings")
                no_floats(x)
        elif isinstance(v, list | tuple):
            for x in v:
                no_floats(x)

    no_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def frame(chunk: bytes) -> bytes:
    return len(chunk).to_bytes(FRAME, "big") + chunk


def content_sha256(chunks: Iterable[bytes]) -> str:
    """The content digest a manifest states, for chunks held by the verifier."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(frame(chunk))
    return h.hexdigest()


def iso(t: datetime) -> str:
    """UTC, millisecond precision, always the same shape: 2025-06-15T04:00:00.000Z."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.astimezone(UTC).microsecond // 1000:03d}Z"


# --- chunk encoding ----------------------------------------------------------------------------


def records_in_window(page: bytes, start: datetime, end: datetime) -> list[kiosk_pb2.CallDetail]:
    """The records of a serialized billing page whose start time lies in [start, end). The page is
    read as the public message and stripped of every field the public API lacks, exactly as the
    kiosk path does, so nothing billing adds later leaks into a delivery."""
    chunk = kiosk_pb2.ListCallDetailsResponse.FromString(page)
    chunk.DiscardUnknownFields()
    lo, hi = nanos(start), nanos(end)
    return [r for r in chunk.records if lo <= r.start_time.seconds * 10**9 + r.start_time.nanos < hi]


def nanos(t: datetime) -> int:
    """Exact nanoseconds since the epoch (no float rounding at the window's edges)."""
    return (t - EPOCH) // timedelta(microseconds=1) * 1000


def subscriber_record(subscriber: Subscriber, profile: CustomerProfile | None) -> legal_pb2.SubscriberRecord:
    """What a delivery says about a target. SIM card data (ICCID, IMSI) is never copied (R7)."""
    if not subscriber.exists:
        return legal_pb2.SubscriberRecord(exists=False)
    rec = legal_pb2.SubscriberRecord(exists=True)
    if subscriber.sim_changed_at is not None:
        rec.sim_changed_at.FromDatetime(subscriber.sim_changed_at)
    if subscriber.ported_at is not None:
        rec.ported_at.FromDatetime(subscriber.ported_at)
    if profile is not None:
        rec.owner_name, rec.document_type, rec.document_number = (
            profile.name, profile.document_type, profile.document_number)
        rec.birth_date, rec.sex = profile.birth_date, profile.sex
        rec.province, rec.city, rec.district, rec.street = (
            profile.province, profile.city, profile.district, profile.street)
        rec.plan_name, rec.account_status = profile.plan_name, profile.account_status
    return rec


# --- the builder -------------------------------------------------------------------------------


@dataclass
class TargetCount:
    """What one target's part of a delivery held."""

    subscriber: str = "not_requested"  # "found" | "not_found" | "not_requested"
    call_details: int = 0

    @property
    def has_data(self) -> bool:
        return self.subscriber == "found" or self.call_details > 0


class DeliveryBuilder:
    """Encodes chunks as they stream and keeps only a running hash and counters (bounded memory).
    Every chunk the delivery carries must come from `subscriber_chunk` or `call_details_chunk`,
    so the manifest's digest covers exactly the bytes sent."""

    def __init__(self, *, request_id: str, delivery_id: str, case_number: str, letter_sha256: str,
                 targets: Sequence[str], categories: Sequence[str], window_start: datetime,
                 window_end: datetime) -> None:
        self.request_id, self.delivery_id = request_id, delivery_id
        self.case_number, self.letter_sha256 = case_number, letter_sha256
        self.targets, self.categories = list(targets), list(categories)
        self.window_start, self.window_end = window_start, window_end
        self.counts = {t: TargetCount() for t in self.targets}
        self._hash = hashlib.sha256()
        self.chunks = 0
        self.content_bytes = 0

    def _add(self, message: legal_pb2.DeliveryRecords) -> bytes:
        chunk = message.SerializeToString()
        self._hash.update(frame(chunk))
        self.chunks += 1
        self.content_bytes += FRAME + len(chunk)
        return chunk

    def subscriber_chunk(self, target: str, subscriber: Subscriber, profile: CustomerProfile | None) -> bytes:
        self.counts[target].subscriber = "found" if subscriber.exists else "not_found"
        return self._add(legal_pb2.DeliveryRecords(target=target, subscriber=subscriber_record(subscriber, profile)))

    def call_details_chunk(self, target: str, records: Sequence[kiosk_pb2.CallDetail]) -> bytes:
        self.counts[target].call_details += len(records)
        return self._add(legal_pb2.DeliveryRecords(target=target, call_details=records))

    @property
    def has_data(self) -> bool:
        return any(c.has_data for c in self.counts.values())

    @property
    def call_details(self) -> int:
        return sum(c.call_details for c in self.counts.values())

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    def manifest(self, generated_at: datetime, key_id: str) -> bytes:
        return canonical_json({
            "format": FORMAT,
            "request_id": self.request_id,
            "delivery_id": self.delivery_id,
            "case_number": self.case_number,
            "letter_sha256": self.letter_sha256,
            "targets": self.targets,
            "categories": self.categories,
            "window": {"start": iso(self.window_start), "end": iso(self.window_end)},
            "per_target": [{"target": t, "subscriber": c.subscriber, "call_details": c.call_details}
                           for t, c in self.counts.items()],
            "totals": {"chunks": self.chunks, "call_details": self.call_details,
                       "subscribers_found": sum(c.subscriber == "found" for c in self.counts.values()),
                       "content_bytes": self.content_bytes},
            "content_sha256": self.digest,
            "generated_at": iso(generated_at),
            "algorithm": ALGORITHM,
            "key_id": key_id,
        })


# --- keys and signatures -----------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SignedManifest:
    manifest: bytes
    signature: bytes
    key_id: str
    algorithm: str = ALGORITHM


class Signer:
    """The gateway's delivery signing key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, manifest: bytes) -> SignedManifest:
        return SignedManifest(manifest, self._key.sign(manifest), self.key_id)

    def public_pem(self) -> bytes:
        return public_pem(self.public_key)


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """An unencrypted PKCS#8 PEM Ed25519 key; ValueError for anything else."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(source: str | Path | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    """A public key from a PEM file path, PEM bytes, 32 raw bytes, or a key object."""
    if isinstance(source, Ed25519PublicKey):
        return source
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Write `data` to a temporary file, then link it into place: readers never see half a file
    and two processes creating it at once agree on one. False if `path` already existed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def generate_private_key(path: str | Path) -> Ed25519PrivateKey:
    """A new signing key written to `path` (mode 0600) and its public key to `path`.pub.
    Refuses to overwrite an existing key (FileExistsError)."""
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if not _write_new(path, pem, 0o600):
        raise FileExistsError(path)
    pub = Path(f"{path}.pub")
    pub.unlink(missing_ok=True)
    _write_new(pub, public_pem(key.public_key()), 0o644)
    return key


def load_or_create_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Development: the key at `path`, generated there first if missing (as the server secret is)."""
    path = Path(path)
    if not path.exists():
        try:
            return generate_private_key(path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    return load_private_key(path)


def verify_manifest(manifest: bytes, signature: bytes, public_key: str | Path | bytes | Ed25519PublicKey) -> bool:
    """True only if `signature` is the key's Ed25519 signature of exactly these manifest bytes."""
    try:
        load_public_key(public_key).verify(signature, manifest)
    except (InvalidSignature, ValueError, UnsupportedAlgorithm, OSError):
        return False
    return True


def verify_delivery(manifest: bytes, signature: bytes, public_key: str | Path | bytes | Ed25519PublicKey,
                    chunks: Iterable[bytes]) -> dict[str, Any]:
    """Check the signature, then that the chunks are exactly what the manifest states. Returns the
    manifest as a dict; raises DeliveryInvalid naming the first thing that does not hold, and
    nothing else, whatever the bytes (see gateway/domain/delivery_checks.py for the manifest's shape)."""
    key = _public_key(public_key)
    if not verify_manifest(manifest, signature, key):
        raise DeliveryInvalid("the signature does not match the manifest and key")
    doc = checks.manifest_document(manifest, FORMAT, ALGORITHM)
    if doc["key_id"] != key_id(key):
        raise DeliveryInvalid("the manifest names another signing key")
    h, count, size = hashlib.sha256(), 0, 0
    per_target: dict[str, int] = {}
    subscribers: dict[str, str] = {}
    undecodable: str | None = None
    for chunk in chunks:
        h.update(frame(chunk))
        count, size = count + 1, size + FRAME + len(chunk)
        if undecodable is not None:
            continue
        try:
            part = legal_pb2.DeliveryRecords.FromString(chunk)
        except (DecodeError, RecursionError, ValueError):
            # Said only once the digest matched: bytes the signature does not cover are "changed", not "odd".
            undecodable = f"records.bin holds a chunk (number {count}) that is not a DeliveryRecords message"
            continue
        per_target[part.target] = per_target.get(part.target, 0) + len(part.call_details)
        if part.HasField("subscriber"):
            subscribers[part.target] = "found" if part.subscriber.exists else "not_found"
    if h.hexdigest() != doc["content_sha256"]:
        raise DeliveryInvalid("the content does not match the manifest's content_sha256")
    if undecodable is not None:
        raise DeliveryInvalid(undecodable)
    totals = doc["totals"]
    if (count, size) != (totals["chunks"], totals["content_bytes"]):
        raise DeliveryInvalid("the chunk count or size does not match the manifest")
    stated = {t["target"]: t["call_details"] for t in doc["per_target"]}
    if any(per_target.get(t, 0) != n for t, n in stated.items()) or set(per_target) - set(stated):
        raise DeliveryInvalid("the per-target counts do not match the manifest")
    if any(subscribers.get(t["target"], "not_requested") != t["subscriber"] for t in doc["per_target"]) or (
            sum(v == "found" for v in subscribers.values()) != totals["subscribers_found"]):
        raise DeliveryInvalid("the subscriber records do not match the manifest")
    return dict(doc)


def _public_key(source: str | Path | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    """The verifying key, or DeliveryInvalid saying it could not be read (never a traceback)."""
    if isinstance(source, str | Path):
        source = checks.read_bounded(source, MAX_KEY_FILE_BYTES)
    try:
        return load_public_key(source)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise DeliveryInvalid("the public key is not an Ed25519 public key (PEM)") from err


# --- packages on disk (the receiving side) -----------------------------------------------------


def _private_dir(directory: Path) -> None:
    """Create `directory` (it must not exist) and any missing parents, each 0700: a package is
    subscriber data, readable by its owner only whatever the umask."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing[1:]):
        d.mkdir(mode=0o700, exist_ok=True)
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)


def _private_file(path: Path) -> BinaryIO:
    """A new file opened for writing, 0600 from its creation (never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


class PackageWriter:
    """Writes a received delivery to a new directory (0700): records.bin (the framed chunks, whose
    SHA-256 is the content digest), then manifest.json and manifest.sig once the stream ended with
    them; every file 0600 and flushed to disk. A stream that broke off leaves no half package:
    `abort` removes what was written."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        _private_dir(self.dir)
        self._records = _private_file(self.dir / RECORDS_FILE)

    def add_chunk(self, chunk: bytes) -> None:
        self._records.write(frame(chunk))

    def finish(self, manifest: bytes, signature: bytes) -> None:
        self._records.flush()
        os.fsync(self._records.fileno())
        self._records.close()
        for name, data in ((MANIFEST_FILE, manifest), (SIGNATURE_FILE, signature)):
            with _private_file(self.dir / name) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def abort(self) -> None:
        """Remove the incomplete package: records without a signed manifest are not a delivery."""
        self._records.close()
        for name in (RECORDS_FILE, MANIFEST_FILE, SIGNATURE_FILE):
            (self.dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()


def read_chunks(path: str | Path) -> Iterator[bytes]:
    """The chunks of a records.bin, one at a time; DeliveryInvalid for anything but whole frames."""
    try:
        f = Path(path).open("rb")
    except OSError as err:
        raise DeliveryInvalid(f"cannot read {RECORDS_FILE}: {checks.shown(err.strerror or str(err))}") from err
    with f:
        yield from checks.framed_chunks(f, os.fstat(f.fileno()).st_size, FRAME, MAX_CHUNK_BYTES)


def verify_package(directory: str | Path, public_key: str | Path | bytes | Ed25519PublicKey) -> dict[str, Any]:
    """Verify a package directory: exactly manifest.json, manifest.sig and records.bin, each a
    regular file (no symlinks, no extra or missing entries), a signature by `public_key` over the
    manifest, and records matching it. Raises DeliveryInvalid, and nothing else, when it fails."""
    key = _public_key(public_key)
    with checks.PackageDir(directory, {MANIFEST_FILE, SIGNATURE_FILE, RECORDS_FILE}) as pkg:
        manifest = pkg.read_small(MANIFEST_FILE, MAX_MANIFEST_BYTES)
        signature = pkg.read_small(SIGNATURE_FILE, MAX_SIGNATURE_BYTES)
        records, size = pkg.open_file(RECORDS_FILE)
        with records:
            return verify_delivery(manifest, signature, key,
                                   checks.framed_chunks(records, size, FRAME, MAX_CHUNK_BYTES))


# --- command line ------------------------------------------------------------------------------


def verify_command(directory: str, public_key: str) -> int:
    """`verify` of both command lines (this module's and `hallgate legal verify`): one line, OK on
    stdout and exit 0, or `FAILED: <reason>` on stderr and exit 1; never a traceback."""
    try:
        doc = verify_package(directory, public_key)
    except DeliveryInvalid as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug here must still end in a one-line verdict, not a traceback
        print(f"FAILED: the package could not be checked ({type(err).__name__})", file=sys.stderr)
        return 1
    print(f"OK: delivery {checks.shown(doc['delivery_id'])} of request {checks.shown(doc['request_id'])}, "
          f"{doc['totals']['call_details']} call details, content {doc['content_sha256']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.domain.delivery",
                                description="Delivery signing keys and offline verification of delivery packages.")
    sub = p.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("keygen", help="write a new Ed25519 signing key (0600) and its public key (.pub)")
    gen.add_argument("path")
    pub = sub.add_parser("public-key", help="print the public key and key id of a signing key")
    pub.add_argument("path")
    ver = sub.add_parser("verify", help="verify a package directory: exactly records.bin, manifest.json and "
                                        "manifest.sig, signed by the key, records matching the manifest")
    ver.add_argument("directory")
    ver.add_argument("--public-key", required=True, help="the gateway's public key (PEM)")
    vm = sub.add_parser("verify-manifest", help="verify a manifest's signature only")
    vm.add_argument("manifest")
    vm.add_argument("signature")
    vm.add_argument("--public-key", required=True, help="the gateway's public key (PEM)")
    args = p.parse_args(argv)
    if args.command == "verify":
        return verify_command(args.directory, args.public_key)
    try:
        if args.command == "keygen":
            key = generate_private_key(args.path)
            print(f"wrote {args.path} and {args.path}.pub (key id {key_id(key.public_key())})")
        elif args.command == "public-key":
            signer = Signer(load_private_key(args.path))
            sys.stdout.write(signer.public_pem().decode())
            print(f"key id {signer.key_id}")
        else:
            manifest = checks.read_bounded(args.manifest, MAX_MANIFEST_BYTES)
            signature = checks.read_bounded(args.signature, MAX_SIGNATURE_BYTES)
            if not verify_manifest(manifest, signature, _public_key(args.public_key)):
                raise DeliveryInvalid("the signature does not match the manifest and key")
            print("OK: the signature matches")
    except (DeliveryInvalid, ValueError, OSError, UnsupportedAlgorithm) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
