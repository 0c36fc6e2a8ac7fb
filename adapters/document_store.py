"""Scanned letters as files, each named by its SHA-256: `<dir>/<first two hex>/<sha256>`.

A file is written whole to a temporary file in the same directory (mode 0600), flushed to disk,
then renamed into place, so a reader never sees half a letter; the same bytes stored twice are
stored once. Reads return what is on disk: the caller checks it against the reference (the legal
desk does, and refuses to disclose on a mismatch). Directories are created 0700 (the store's own
directory and any missing parents too, whatever the umask): a letter names the people it targets.
The blocking file work runs in a thread. `delete` destroys a letter (disposal, R8): the caller
decides that no request still references it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path

from adapters.data_dir import make_private_dir
from gateway.domain.errors import DependencyUnavailable

REF_RE = re.compile(r"[0-9a-f]{64}")


class FileDocumentStore:
    """The DocumentStore port (gateway/domain/legal.py) on a local (or shared) directory."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def path_of(self, ref: str) -> Path:
        if not REF_RE.fullmatch(ref):
            raise ValueError("a document reference is a lower-case hex SHA-256")
        return self.dir / ref[:2] / ref

    async def put(self, data: bytes) -> str:
        try:
            return await asyncio.to_thread(self._put, data)
        except OSError as e:
            raise DependencyUnavailable("documents") from e

    async def get(self, ref: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self._get, ref)
        except OSError as e:
            raise DependencyUnavailable("documents") from e

    async def delete(self, ref: str) -> bool:
        """Destroy a letter (disposal, R8): True if it was there, False if it was already gone."""
        try:
            return await asyncio.to_thread(self._delete, ref)
        except OSError as e:
            raise DependencyUnavailable("documents") from e

    def _delete(self, ref: str) -> bool:
        path = self.path_of(ref)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the unlink itself survives a crash
        finally:
            os.close(dir_fd)
        return True

    def _put(self, data: bytes) -> str:
        ref = hashlib.sha256(data).hexdigest()
        path = self.path_of(ref)
        existing = self._get(ref)
        if existing is not None and hashlib.sha256(existing).hexdigest() == ref:
            return ref  # already stored, intact
        make_private_dir(path.parent)  # missing parents too (the store's own directory), each 0700
        fd, tmp = tempfile.mkstemp(prefix=f".{ref}.", suffix=".tmp", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
        return ref

    def _get(self, ref: str) -> bytes | None:
        try:
            return self.path_of(ref).read_bytes()
        except FileNotFoundError:
            return None
