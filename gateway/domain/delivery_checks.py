"""Reading a delivery package as untrusted input: the directory, its files and the manifest.

A package arrives from outside (a drive handed to an agency, a copy on a file share), so the
verifier treats every byte as hostile: it reads exactly the package's files and nothing beside
them, follows no symlinks and opens nothing but regular files (a FIFO would block it), bounds
every length it reads by what is left of the file before allocating, and checks the manifest's
shape before using any of it. Every failure is a DeliveryInvalid whose message is one printable
line saying what is wrong; nothing else escapes, whatever the input.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

SHA256_RE = re.compile(r"[0-9a-f]{64}")
SUBSCRIBER_STATES = {"found", "not_found", "not_requested"}
STRING_FIELDS = ("request_id", "delivery_id", "case_number", "letter_sha256", "generated_at", "key_id")
COUNT_FIELDS = ("chunks", "call_details", "subscribers_found", "content_bytes")


class DeliveryInvalid(ValueError):
    """A package or manifest that does not verify; the message says what failed."""


def shown(value: object, limit: int = 80) -> str:
    """`value` as printable text for a one-line message: control characters, lone surrogates
    (undecodable file names) and the like escaped, long values cut."""
    text = value if isinstance(value, str) else repr(value)
    out = "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                  for c in text[:limit])
    return out + ("…" if len(text) > limit else "")


def _why(err: OSError) -> str:
    return shown(err.strerror or type(err).__name__)


def read_bounded(path: str | Path, limit: int) -> bytes:
    """A small file's bytes, refusing one larger than `limit` without reading it whole."""
    try:
        with Path(path).open("rb") as f:
            data = f.read(min(os.fstat(f.fileno()).st_size, limit) + 1)
    except OSError as err:
        raise DeliveryInvalid(f"cannot read {shown(str(path))}: {_why(err)}") from err
    if len(data) > limit:
        raise DeliveryInvalid(f"{shown(str(path))} is larger than {limit} bytes")
    return data


def framed_chunks(f: BinaryIO, size: int, frame: int, max_chunk: int) -> Iterator[bytes]:
    """The chunks of a records file of `size` bytes, each preceded by its length (`frame` bytes,
    big-endian). A length is checked against what remains of the file before anything is read."""
    position, number = 0, 0
    while head := f.read(frame):
        number += 1
        if len(head) != frame:
            raise DeliveryInvalid(f"records.bin ends inside the length prefix of chunk {number}")
        length = int.from_bytes(head, "big")
        position += frame
        remaining = max(size - position, 0)
        if length > remaining:
            raise DeliveryInvalid(f"chunk {number} claims {length} bytes but records.bin has {remaining} left")
        if length > max_chunk:
            raise DeliveryInvalid(f"chunk {number} claims {length} bytes, more than any delivery chunk holds")
        chunk = f.read(length)
        if len(chunk) != length:
            raise DeliveryInvalid(f"records.bin is truncated inside chunk {number}")
        position += length
        yield chunk


class PackageDir:
    """An open package directory that must hold exactly `expected` (names of regular files).
    Files are opened relative to the directory's descriptor without following symlinks, so what
    was listed is what is read."""

    def __init__(self, directory: str | Path, expected: set[str]) -> None:
        self.path = Path(directory)
        self.expected = expected
        self.fd = -1

    def __enter__(self) -> PackageDir:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            names = set(os.listdir(self.fd))
        except OSError as err:
            self.close()
            raise DeliveryInvalid(f"cannot read the package directory {shown(str(self.path))}: {_why(err)}") from err
        extra, missing = sorted(names - self.expected), sorted(self.expected - names)
        if extra:
            self.close()
            listed = ", ".join(shown(n, 40) for n in extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5
                                                                   else "")
            raise DeliveryInvalid(f"the package holds entries that are not part of a delivery: {listed}")
        if missing:
            self.close()
            raise DeliveryInvalid(f"the package lacks {', '.join(missing)}")
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def open_file(self, name: str) -> tuple[BinaryIO, int]:
        """The named file opened for reading, with its size; a regular file or DeliveryInvalid."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=self.fd)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise DeliveryInvalid(f"{name} is a symbolic link, not a file of the package") from err
            raise DeliveryInvalid(f"cannot read {name}: {_why(err)}") from err
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise DeliveryInvalid(f"{name} is not a regular file")
        return os.fdopen(fd, "rb"), info.st_size

    def read_small(self, name: str, limit: int) -> bytes:
        f, size = self.open_file(name)
        with f:
            if size > limit:
                raise DeliveryInvalid(f"{name} has {size} bytes, more than {limit}")
            try:
                data = f.read(size + 1)  # not limit + 1: a read allocates what it asks for
            except OSError as err:
                raise DeliveryInvalid(f"cannot read {name}: {_why(err)}") from err
        if len(data) > limit:
            raise DeliveryInvalid(f"{name} has more than {limit} bytes")
        return data


# --- the manifest's shape ----------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for k, v in pairs:
        if k in doc:
            raise ValueError(f"the key {k!r} appears twice")
        doc[k] = v
    return doc


def _refuse(text: str) -> Any:
    raise ValueError(f"{text} has no canonical form")


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def manifest_document(data: bytes, fmt: str, algorithm: str) -> dict[str, Any]:
    """The signed manifest as a dict, once its shape is what format `fmt` states: canonical JSON,
    every field present with its type, counts non-negative integers. The signature was checked
    before this, so a failure here means a gateway bug or another format, not tampering."""
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_float=_refuse,
                         parse_constant=_refuse)
    except UnicodeDecodeError as err:
        raise DeliveryInvalid("the manifest is not UTF-8") from err
    except (ValueError, RecursionError) as err:
        raise DeliveryInvalid(f"the manifest is not canonical JSON: {shown(err)}") from err
    if not isinstance(doc, dict):
        raise DeliveryInvalid("the manifest is not a JSON object")
    if doc.get("format") != fmt:
        raise DeliveryInvalid(f"unknown format {shown(doc.get('format'))}")
    if doc.get("algorithm") != algorithm:
        raise DeliveryInvalid(f"unknown signature algorithm {shown(doc.get('algorithm'))}")
    problems = [f for f in STRING_FIELDS if not isinstance(doc.get(f), str)]
    problems += [f for f in ("targets", "categories") if not _strings(doc.get(f))]
    if not (isinstance(doc.get("content_sha256"), str) and SHA256_RE.fullmatch(doc["content_sha256"])):
        problems.append("content_sha256")
    window = doc.get("window")
    if not (isinstance(window, dict) and isinstance(window.get("start"), str) and isinstance(window.get("end"), str)):
        problems.append("window")
    totals = doc.get("totals")
    if not (isinstance(totals, dict) and all(_count(totals.get(f)) for f in COUNT_FIELDS)):
        problems.append("totals")
    per_target = doc.get("per_target")
    if not (isinstance(per_target, list) and all(
            isinstance(t, dict) and isinstance(t.get("target"), str) and _count(t.get("call_details"))
            and isinstance(t.get("subscriber"), str) and t["subscriber"] in SUBSCRIBER_STATES for t in per_target)):
        problems.append("per_target")
    elif [t["target"] for t in per_target] != doc.get("targets") or len(set(doc["targets"])) != len(per_target):
        problems.append("per_target (not one entry per target, in order)")
    elif isinstance(totals, dict) and "totals" not in problems and (
            sum(t["call_details"] for t in per_target) != totals["call_details"]):
        problems.append("totals.call_details (not the sum of per_target)")
    if problems:
        raise DeliveryInvalid(f"the manifest's fields are missing or of the wrong type: {', '.join(problems)}")
    try:
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                               allow_nan=False).encode("utf-8")
    except (ValueError, TypeError) as err:
        raise DeliveryInvalid("the manifest is not canonical JSON") from err
    if canonical != data:
        raise DeliveryInvalid("the manifest is not canonical JSON (sorted keys, no spaces, UTF-8)")
    return doc
