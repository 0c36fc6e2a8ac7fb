"""`hallgate serve --workers N`: N gateway processes sharing one port, under a supervisor.

The supervisor (the process `hallgate serve` started as) serves no RPC itself. It starts whatever
is embedded exactly once (redis-server, the billing simulator, the development PKI, demo staff),
then starts N workers, each a fresh `python -m gateway.cli serve` (a new interpreter: gRPC and fork
do not mix) told by its environment everything it needs: the full settings with the Redis URL and
billing target of the shared dependencies, its index, and PROMETHEUS_MULTIPROC_DIR. Every worker
binds the listen address with SO_REUSEPORT, and the kernel spreads incoming connections over them.
The supervisor serves the metrics endpoint, summing every worker's metrics.

Secrets never travel in a worker's environment (nor in any child's: /proc/<pid>/environ is read by
tools, crash reporters and anyone with the same uid, and is inherited further). The supervisor
resolves the settings (HALLGATE_<NAME> or HALLGATE_<NAME>_FILE, flags, and what it made itself: the
embedded Redis' URL, the SMSC simulator's password) and puts each secret value into a sealed
in-memory file (memfd, adapters/child_process.py) that the workers inherit; a worker's environment
says only HALLGATE_<NAME>_FILE=/proc/self/fd/N, which settings.from_env reads like any mounted
secret. Why this way: the worker needs no code of its own for it (the _FILE form every secret has
anyway); the value is exactly the one the supervisor resolved, including values no file holds (a
flag, a derived URL); nothing lands on a disk; and unlike a pipe or stdin it can be read more than
once (the CLI reads the settings several times while it builds its parser). The supervisor closes
its copies once the workers run. Secret variables inherited from the supervisor's own environment
are dropped from the workers' (settings.child_environ); the embedded servers get no HALLGATE_*
variable at all.

Stopping: SIGTERM or SIGINT to the supervisor is forwarded as SIGTERM to every worker, which drains
its calls within the grace period like a single gateway does; a worker still running
`grace_period + STOP_MARGIN` seconds later is killed. Then the embedded dependencies stop.

A worker that dies on its own is not restarted: the supervisor logs it, stops the others and exits
1. Half the workers serving would hide a crash (a bad deployment, a dependency gone) behind a
capacity loss nobody sees; the orchestrator restarting the whole unit is visible, and the shared
state lives in Redis, so nothing is lost. Should the supervisor itself die, even by SIGKILL, each
worker notices its lifeline pipe closing and stops itself: no orphans keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields

import structlog

from adapters import child_process
from gateway.runtime import metrics
from gateway.runtime.settings import FILE_ALIASES, SECRETS, Settings, child_environ, env_name, file_env_name

log = structlog.get_logger("hallgate.workers")

LIFELINE_ENV = "HALLGATE_WORKER_LIFELINE"  # fd of a pipe whose other end only the supervisor holds
STOP_MARGIN = 5.0  # seconds past the grace period a worker gets to exit before it is killed
READY_TIMEOUT = 60.0  # seconds to wait for the port to accept connections before the banner
WORKER_COMMAND = [sys.executable, "-m", "gateway.cli", "serve"]


def settings_env(settings: Settings, secret_files: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every setting as its HALLGATE_* variable: the worker reads the supervisor's resolved
    settings whether they came from flags, files or the environment. Secrets are never values here:
    a non-empty one is HALLGATE_<NAME>_FILE=`secret_files[name]` (SecretFiles.paths), and without
    such a file it is left out."""
    files = secret_files or {}
    env = {}
    for f in fields(Settings):
        if f.name in FILE_ALIASES:
            continue  # sms_password_file: its value travels as sms_password's _FILE
        value = getattr(settings, f.name)
        if f.name in SECRETS:
            if value and f.name in files:
                env[file_env_name(f.name)] = files[f.name]
            continue
        env[env_name(f.name)] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return env


class SecretFiles:
    """The non-empty secret settings of `settings`, each in a sealed memfd for children to inherit:
    `paths` for settings_env, `fds` for pass_fds. Close once the children are started."""

    def __init__(self, settings: Settings) -> None:
        self.fds: tuple[int, ...] = ()
        self.paths: dict[str, str] = {}
        try:
            for name in sorted(SECRETS):
                value = getattr(settings, name)
                if value:
                    # + one newline, which reading a _FILE removes: a value ending in one survives
                    fd = child_process.secret_fd(value + "\n", f"hallgate-{name}")
                    self.fds += (fd,)
                    self.paths[name] = child_process.fd_path(fd)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        fds, self.fds = self.fds, ()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> SecretFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def worker_environ(settings: Settings, secret_files: Mapping[str, str],
                   environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A worker's environment: ours without any secret (nor a secret's _FILE: the worker reads the
    supervisor's resolved value from `secret_files`), and every setting."""
    base = child_environ(environ)
    for name in SECRETS:
        base.pop(file_env_name(name), None)
    return {**base, **settings_env(settings, secret_files)}


def watch_lifeline() -> None:
    """In a worker: SIGTERM ourselves once the supervisor is gone (its end of the pipe closed).
    Does nothing outside a worker."""
    raw = os.environ.get(LIFELINE_ENV)
    if not raw:
        return
    fd = int(raw)

    def wait() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        log.error("supervisor_gone")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name="hallgate-lifeline", daemon=True).start()


@dataclass
class Worker:
    index: int
    proc: asyncio.subprocess.Process
    waiter: asyncio.Task[int]

    @property
    def pid(self) -> int:
        return self.proc.pid


def _listen_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), int(port)


async def _accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class Supervisor:
    def __init__(self, settings: Settings, command: list[str] | None = None) -> None:
        self.s = settings
        self.command = command or WORKER_COMMAND
        self.workers: list[Worker] = []
        self.stop = asyncio.Event()
        self.multiproc_dir = ""

    async def run(self, banner: bool = True) -> int:
        from gateway.runtime.bootstrap import Runtime, print_banner

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        runtime = Runtime(self.s)
        endpoint = None
        lifeline = -1
        failed = False
        try:
            deps = await runtime.start()
            s = runtime.s
            redis_url = runtime.redis_child.url if runtime.redis_child is not None else s.redis_url
            billing_target: str = getattr(deps.billing, "target", s.billing_target)
            worker_settings = s.with_(redis_url=redis_url, billing_target=billing_target, metrics_listen="")
            # Private to this supervisor, in the temporary directory (not the data directory, which
            # several gateways, each perhaps pid 1 in its container, may share).
            self.multiproc_dir = tempfile.mkdtemp(prefix="hallgate-metrics-")
            if s.metrics_listen:
                endpoint = metrics.start_metrics_server(s.metrics_listen, self.multiproc_dir)
            read_end, lifeline = os.pipe()
            secrets = SecretFiles(worker_settings)
            try:
                base = {**worker_environ(worker_settings, secrets.paths), metrics.MULTIPROC_ENV: self.multiproc_dir,
                        LIFELINE_ENV: str(read_end)}
                for index in range(s.workers):
                    if self.stop.is_set():
                        break
                    await self._start(index, {**base, metrics.WORKER_ENV: str(index)}, (read_end, *secrets.fds))
            finally:
                os.close(read_end)
                secrets.close()  # each worker has its own copies
            if await self._wait_ready() and banner:
                print_banner(s.listen, s, runtime.demo, runtime.demo_staff, runtime.smsc_child is not None,
                             browser_port=int(s.browser_listen.rsplit(":", 1)[1]) if s.browser_listen else 0)
                print(f"{len(self.workers)} worker processes: pids {' '.join(str(w.pid) for w in self.workers)}",
                      flush=True)
            failed = await self._wait_for_stop_or_death()
        finally:
            failed = not await self._stop_workers() or failed
            if lifeline >= 0:
                os.close(lifeline)
            if endpoint is not None:
                endpoint.close()
            await runtime.close()
            if self.multiproc_dir:
                shutil.rmtree(self.multiproc_dir, ignore_errors=True)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("stopped", workers=len(self.workers), clean=not failed)
        return 1 if failed else 0

    async def _start(self, index: int, env: dict[str, str], fds: tuple[int, ...]) -> None:
        proc = await asyncio.create_subprocess_exec(*self.command, env=env, pass_fds=fds,
                                                    stdin=subprocess.DEVNULL)
        self.workers.append(Worker(index, proc, asyncio.create_task(proc.wait())))
        log.info("worker_started", worker=index, pid=proc.pid)

    def _exited(self) -> list[Worker]:
        return [w for w in self.workers if w.waiter.done()]

    async def _wait_ready(self) -> bool:
        """Until the port accepts connections (some worker is serving), a worker dies, or a stop."""
        host, port = _listen_port(self.s.listen)
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
        while not self.stop.is_set() and not self._exited():
            if await _accepts(host, port):
                return True
            if asyncio.get_running_loop().time() > deadline:
                log.warning("workers_not_accepting", listen=self.s.listen, waited=READY_TIMEOUT)
                return False
            await asyncio.sleep(0.1)
        return False

    async def _wait_for_stop_or_death(self) -> bool:
        """Wait for a stop signal (False) or any worker's exit (True: it died on its own)."""
        stop = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait([stop, *(w.waiter for w in self.workers)], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        dead = self._exited()
        for w in dead:
            log.error("worker_died", worker=w.index, pid=w.pid, exit_code=w.waiter.result())
        return bool(dead) and not self.stop.is_set()

    async def _stop_workers(self) -> bool:
        """SIGTERM to every live worker, a kill for any still running after the grace period, and
        their metrics marked dead. True if every worker exited 0 when asked to."""
        alive = [w for w in self.workers if not w.waiter.done()]
        for w in alive:
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGTERM)
        if alive:
            log.info("stopping_workers", pids=[w.pid for w in alive], grace_period=self.s.grace_period)
            _, late = await asyncio.wait([w.waiter for w in alive], timeout=self.s.grace_period + STOP_MARGIN)
            for w in alive:
                if w.waiter in late:
                    log.error("worker_killed", worker=w.index, pid=w.pid)
                    with contextlib.suppress(ProcessLookupError):
                        w.proc.kill()
            if late:
                await asyncio.wait(late)
        for w in self.workers:
            if self.multiproc_dir:
                metrics.mark_process_dead(w.pid, self.multiproc_dir)
        return all(w.waiter.result() == 0 for w in alive)


def check(settings: Settings) -> None:
    """Refuse settings that cannot work with several workers."""
    if settings.workers < 2:
        raise RuntimeError("workers: a supervisor needs at least 2 workers")
    if not hasattr(os, "memfd_create"):
        raise RuntimeError("--workers needs Linux: secrets reach the workers as inherited in-memory files (memfd)")
    try:
        _, port = _listen_port(settings.listen)
    except ValueError:
        raise RuntimeError(f"listen {settings.listen!r}: expected host:port") from None
    if port == 0:
        raise RuntimeError("--workers needs a fixed listen port: with port 0 every worker would pick its own")
    for name in ("proxy_listen", "browser_listen", "browser_proxy_listen"):
        if getattr(settings, name).endswith(":0"):
            raise RuntimeError(f"--workers needs a fixed {name} port: with port 0 every worker would pick its own")


async def run_workers(settings: Settings, command: list[str] | None = None, banner: bool = True) -> int:
    """Supervise `settings.workers` gateway processes until SIGTERM/SIGINT; the exit status: 0 if all
    of them stopped cleanly when asked, 1 if one died on its own or had to be killed."""
    check(settings)
    return await Supervisor(settings, command).run(banner)

