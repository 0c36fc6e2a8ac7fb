"""The servers the gateway starts as children (redis-server, PostgreSQL, the SMSC simulator): one way
to end a child, so each adapter only says which signal asks it to stop; the environment they get,
with no HALLGATE_* variable (none of them reads one, and several hold secrets); and a way to hand a
child a secret without its environment or command line: a sealed in-memory file (memfd) it inherits,
read through /proc/self/fd/N."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

PREFIX = "HALLGATE_"


def environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server child: ours without any HALLGATE_* variable."""
    base = os.environ if base is None else base
    return {k: v for k, v in base.items() if not k.startswith(PREFIX)}


def secret_fd(value: str, name: str = "hallgate-secret") -> int:
    """A sealed, read-only-from-now-on memfd holding `value` (Linux), close-on-exec in this process:
    give it to a child with `pass_fds=(fd,)` and the path `fd_path(fd)`; close it once the children
    that need it are started. Every open of the path reads the value from its start, so a child may
    read it more than once; nothing lands on a disk and no other user can open it."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        data = value.encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fd_path(fd: int) -> str:
    """The path under which a child reads an inherited fd (the same number: pass_fds keeps it)."""
    return f"/proc/self/fd/{fd}"


def kill(proc: subprocess.Popen[Any] | None) -> None:
    """SIGKILL, as a crash would, and reap it."""
    if proc is not None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def stop(proc: subprocess.Popen[Any] | None, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Ask with `sig`, wait up to `timeout` seconds, then SIGKILL; always reaped."""
    if proc is None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
