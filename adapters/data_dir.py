"""The gateway's data directory: one gateway per directory, owner-only permissions.

One directory, one gateway. Two `hallgate serve` on one data directory would each start (and stop)
a redis-server on the same AOF, delete each other's socket and interleave the SMS outbox. So the
first thing `serve` does is take an exclusive flock on `<data_dir>/serve.lock` and write its pid
into it; a second one finds the lock taken, names the holder and touches nothing else. The kernel
drops the lock when its holder dies, even by SIGKILL: no stale lock to clean up. The lock file
itself is never removed (removing it would let a newcomer lock a fresh inode while an old holder
still runs). Workers under a supervisor (`--workers N`) do not take it: the supervisor holds it,
and a worker checks that the holder is its own supervisor.

Permissions: the directory holds the server secret, signing and TLS keys, the Redis AOF (codes'
hashes, sessions, the audit chain), scanned legal letters and the development SMS outbox, so it
is 0700 and everything in it owner-only. `tighten` takes group and other bits off whatever an older
version (or a laxer umask) left there; it never adds a permission.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from pathlib import Path

LOCK_NAME = "serve.lock"


class DataDirBusy(RuntimeError):
    """Another gateway serves this data directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        super().__init__(f"{directory} is already served by pid {pid if pid else '(unknown)'}; "
                         "one data directory serves one gateway (use another --data-dir, or --workers N)")
        self.pid = pid


def make_private_dir(directory: Path) -> None:
    """Create `directory` and any missing parents 0700 (whatever the umask); leave existing ones."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
        os.chmod(d, 0o700)


def _read_pid(fd: int) -> int | None:
    raw = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(raw) if raw.isdigit() else None


class ServeLock:
    """The exclusive lock on a data directory, held until `release` or the process's end."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def acquire(cls, directory: Path) -> ServeLock:
        """Lock `directory` for this process (created 0700 if missing), or DataDirBusy."""
        if not directory.exists():
            make_private_dir(directory)
        path = directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = None
            deadline = time.monotonic() + 1.0  # the holder writes its pid right after locking
            while pid is None and time.monotonic() < deadline:
                pid = _read_pid(fd)
                if pid is None:
                    time.sleep(0.02)
            os.close(fd)
            raise DataDirBusy(directory, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fchmod(fd, 0o600)
        return cls(fd, path)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _is_ancestor(pid: int, levels: int = 4) -> bool:
    current: int | None = os.getppid()
    for _ in range(levels):
        if current is None or current <= 1:
            return False
        if current == pid:
            return True
        current = _parent_of(current)
    return False


def check_supervised(directory: Path) -> None:
    """In a worker: `directory` must be locked by this worker's supervisor (an ancestor process),
    else DataDirBusy naming whoever holds it."""
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise RuntimeError(f"{directory}: a worker found no supervisor's lock ({LOCK_NAME})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
        else:
            raise RuntimeError(f"{directory}: a worker found the data directory not locked by its supervisor")
        if pid is None or not _is_ancestor(pid):
            raise DataDirBusy(directory, pid)
    finally:
        os.close(fd)


def tighten(directory: Path) -> None:
    """Take group and other permissions off `directory` and everything below it (0755 -> 0700,
    0644 -> 0600). Symbolic links are neither changed nor followed."""
    def strip(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(path)
            if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)

    strip(str(directory))
    for root, dirs, files in os.walk(directory):
        for name in (*dirs, *files):
            strip(os.path.join(root, name))
