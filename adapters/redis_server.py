"""Run a private `redis-server` child: the embedded mode of `make run`, and the tests' fixture.

The child persists with AOF under its directory, listens on loopback or a unix socket only, and
is stopped (SIGTERM, then SIGKILL) by the process that started it.

Its files hold code hashes, sessions, staff records and the audit chain, so they are the owner's
alone: the directory is 0700 (an older one is tightened on start), the child runs with umask 077
so every AOF, RDB and log file it creates is 0600, and the unix socket is 0600.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from adapters import child_process
from adapters.data_dir import make_private_dir, tighten

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the thread that started it dies, so a gateway killed with
    SIGKILL does not leave its embedded redis-server behind. Start it from the main thread."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's own shutdown still stops the child


def _prepare_child() -> None:
    """In the child, before exec: owner-only files (AOF, RDB, log), and death with the parent."""
    os.umask(0o077)
    _die_with_parent()


class ChildExited(RuntimeError):
    """redis-server ended while starting."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServerProcess:
    """A redis-server child. Give it a unix socket path (embedded mode) or a port (tests)."""

    def __init__(self, directory: Path, port: int = 0, unix_socket: Path | None = None,
                 appendfsync: str = "everysec") -> None:
        # redis-server changes into --dir before opening its log: every path must be absolute.
        self.directory = directory.resolve()
        self.port = port
        self.unix_socket = unix_socket.resolve() if unix_socket is not None else None
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.unix_socket is not None:
            return f"unix://{self.unix_socket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServerProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        make_private_dir(self.directory)
        tighten(self.directory)  # AOF and logs an older version left group- or world-readable
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
                "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning",
                "--logfile", str(self.directory / "redis.log")]
        if self.unix_socket is not None:
            self.unix_socket.unlink(missing_ok=True)
            args += ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "600"]
        for attempt in (1, 2):
            # A process group of its own: a terminal's Ctrl-C reaches the gateway, which stops this
            # child after its last calls, instead of Redis vanishing under calls still running.
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=_prepare_child,
                                         env=child_process.environ(), process_group=0)  # no HALLGATE_* secret
            try:
                self._wait_ready(timeout)
                return self
            except ChildExited:
                # Seen under load in a process with gRPC's threads running: the forked child gone
                # before redis-server wrote a line. Once more; a second exit is reported as it is.
                if attempt == 2:
                    raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.directory / "redis.log")
                raise ChildExited(f"redis-server exited (status {self.proc.returncode}): "
                                  f"{log.read_text()[-500:] if log.exists() else ''}")
            if self._ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout}s")

    def _ping(self) -> bool:
        try:
            if self.unix_socket is not None:
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(0.5)
                s.connect(str(self.unix_socket))
            else:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            with s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash would: for tests of what survives."""
        child_process.kill(self.proc)
        self.proc = None

    def stop(self) -> None:
        child_process.stop(self.proc)
        self.proc = None
