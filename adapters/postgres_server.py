"""Run a private PostgreSQL server child from Debian's binaries: the tests' fixture and a development
archive for the audit trail (docs/audit.md, *Archive*).

Like adapters/redis_server.py: `initdb` into a private directory (0700), the server listens on a unix
socket in that directory only (no TCP unless a port is given, then on 127.0.0.1 only), local
connections need no password (the socket's directory is the access control: 0700, socket 0700), the
child dies with the thread that started it and is stopped by its pid.

PostgreSQL refuses to run as root. Started by root (a container, CI), the server runs as the
`postgres` system user (Debian's package creates it), which then owns the directory; the directory's
parents must let that user through, so give root's server a directory outside a 0700 home or pytest's
0700 temporary root (`tempfile.mkdtemp()` in /tmp does).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from adapters import child_process
from adapters.data_dir import make_private_dir

PR_SET_PDEATHSIG = 1
DEBIAN_BIN = Path("/usr/lib/postgresql")


def binary(name: str) -> str:
    """The newest Debian PostgreSQL's `name` (initdb, postgres), else one on PATH."""
    if DEBIAN_BIN.is_dir():
        versions = sorted((p for p in DEBIAN_BIN.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
        for v in reversed(versions):
            if (v / "bin" / name).exists():
                return str(v / "bin" / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)")
    return found


def _run_as() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as: None (ourselves) unless we are root, then `postgres`."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("PostgreSQL will not run as root and there is no `postgres` user") from None


def _child_setup(user: pwd.struct_passwd | None, die_with_parent: bool) -> None:
    """In the child, before exec: drop to `user` (root only), owner-only files, and (server only)
    SIGINT, i.e. PostgreSQL's fast shutdown, when the thread that started it dies. The death signal
    is set after the uid change, which would clear it."""
    if user is not None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    os.umask(0o077)
    if die_with_parent:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)
        except (OSError, AttributeError):
            pass


class PostgresServerProcess:
    """A `postgres` child on a data directory under `directory` (created by initdb on first start,
    reused afterwards). `url` is a libpq conninfo URI for psycopg."""

    def __init__(self, directory: Path, port: int = 0, user: str = "hallgate", dbname: str = "hallgate",
                 fsync: bool = True) -> None:
        self.directory = directory.resolve()
        self.port = port  # 0: unix socket only; the socket file's name still carries a port number
        self.user = user
        self.dbname = dbname
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        self._as = _run_as()

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory

    @property
    def socket_port(self) -> int:
        return self.port or 5432

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@/{dbname}?host={self.socket_dir}&port={self.socket_port}"

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    def _own(self, path: Path) -> None:
        if self._as is not None:
            os.chown(path, self._as.pw_uid, self._as.pw_gid)

    def _initdb(self) -> None:
        make_private_dir(self.directory)
        self._own(self.directory)
        if (self.data / "PG_VERSION").exists():
            return
        log = self.directory / "initdb.log"
        with open(log, "wb") as out:
            done = subprocess.run([binary("initdb"), "-D", str(self.data), "-U", self.user, "-E", "UTF8",
                                   "--locale=C", "--auth-local=trust", "--auth-host=reject", "--no-sync"],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  env=child_process.environ(), preexec_fn=lambda: _child_setup(self._as, False),
                                  check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {log.read_text()[-800:]}")

    def start(self, timeout: float = 30.0) -> PostgresServerProcess:
        self._initdb()
        listen = "127.0.0.1" if self.port else ""
        args = [binary("postgres"), "-D", str(self.data), "-k", str(self.socket_dir), "-p", str(self.socket_port),
                "-c", f"listen_addresses={listen}", "-c", "unix_socket_permissions=0700",
                "-c", f"fsync={'on' if self.fsync else 'off'}", "-c", "max_connections=50",
                "-c", "shared_buffers=32MB", "-c", "logging_collector=off", "-c", "log_min_messages=warning"]
        deadline = time.monotonic() + timeout
        while True:  # after a SIGKILL, the old server's backends may hold its shared memory briefly
            log = open(self.directory / "postgres.log", "ab")  # the child keeps its own copy
            try:
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             env=child_process.environ(),  # no HALLGATE_* secret
                                             preexec_fn=lambda: _child_setup(self._as, True))
            finally:
                log.close()
            if self._wait_ready(deadline):
                return self
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"postgres did not start within {timeout}s: {self._log_tail()}")
            time.sleep(0.2)

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.directory / "postgres.log").read_text(errors="replace")[-800:]
        return ""

    def _wait_ready(self, deadline: float) -> bool:
        """True once the server accepts connections; False if the child exited (retry)."""
        import psycopg

        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                with psycopg.connect(self.url_for("postgres"), connect_timeout=2, autocommit=True) as conn:
                    if self.dbname != "postgres":
                        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone()
                        if exists is None:
                            conn.execute(f'CREATE DATABASE "{self.dbname}"')
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        return False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def kill(self) -> None:
        """SIGKILL of the postmaster, as a crash would: its backends notice and exit, and the next
        start runs crash recovery."""
        child_process.kill(self.proc)
        self.proc = None

    def stop(self) -> None:
        """Fast shutdown (SIGINT: open sessions are ended), then SIGKILL after 15 s."""
        child_process.stop(self.proc, signal.SIGINT, timeout=15)
        self.proc = None

    def remove(self) -> None:
        """Stop and delete the whole directory (tests)."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
