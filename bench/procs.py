"""The processes a bench run starts, each on 127.0.0.1, each stopped by its own pid at the end."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from adapters.redis_server import RedisServerProcess, free_port
from bench.measure import children, tcp_sockets

REPO = Path(__file__).resolve().parents[1]
KIOSK_PATH = "hall/H001/kiosk/K01"  # a demo terminal of the gateway's development PKI
KIOSK_CERT = "kiosk-H001-K01"
HALLGATE = str(Path(sys.executable).parent / "hallgate")


@dataclass
class Child:
    """One started process, its log file and the port it should answer on."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    workers: list[int] = field(default_factory=list)  # a supervisor's worker processes (`serve --workers`)
    browser_port: int = 0  # its browser listener (`serve --browser-listen`, HTTPS), if it has one

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, chars: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_listening(self, timeout: float = 20.0) -> None:
        """Until the port (and the browser port, if it has one) accepts connections."""
        deadline = time.monotonic() + timeout
        for port in (self.port, self.browser_port):
            while port:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name} did not listen on 127.0.0.1:{port} within {timeout}s:\n"
                                           f"{self.tail()}") from None
                    time.sleep(0.05)

    def wait_workers(self, count: int, timeout: float = 30.0) -> None:
        """Until this supervisor has `count` worker processes and each of them listens on the port
        (a connection made earlier would all go to the first worker that bound it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            kids = [k for k in children(self.pid) if _is_worker(k)]
            if len(kids) == count and all(tcp_sockets(k, self.port, "0A") for k in kids):
                self.workers = kids
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: {count} workers did not all listen on port {self.port} within {timeout}s:\n"
                           f"{self.tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to this pid, then SIGKILL if it does not exit in time; then any of its workers
        still alive (the supervisor stops them itself; this is the fallback), each by its pid."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 5
        for pid in self.workers:
            while _is_worker(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _is_worker(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _is_worker(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) `python -m gateway.cli serve` worker process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return state != "Z" and b"gateway.cli" in cmdline


@functools.cache
def serve_flags(src: Path | None = None) -> str:
    """`hallgate serve --help`: which flags this version of the gateway has (with `src`, the
    gateway of that checkout, started the way Stack starts a candidate)."""
    env = os.environ | {"PYTHONPATH": str(src)} if src else None
    return subprocess.run([HALLGATE, "serve", "--help"], capture_output=True, text=True, timeout=30,
                          cwd=src or REPO, env=env).stdout


@dataclass
class Stack:
    """Redis, the billing simulator, the gateway and the bare proxy, started in that order; plus,
    where the gateway has mutual TLS, a second gateway on mTLS with its development PKI, and with
    `workers` > 1, where the gateway has `serve --workers`, a third one with that many workers.

    SMS: where the gateway has `serve --sms-url` (codes go through a queue in Redis, sent over SMPP
    by dispatchers in every gateway process), all the gateways share one Redis, hence one queue,
    and a code asked for through one gateway may be sent by any other's dispatcher. So the stack
    runs ONE SMSC simulator (`hallgate smsc-sim`, its outbox at `outbox`) and points every gateway
    that has the flag at it; a gateway without it (an older candidate) writes its own outbox in
    its own data directory. `outboxes` says where each gateway's codes land."""

    workdir: Path
    sim_seed: str = "bench"
    sim_subscribers: int = 20_000
    children: list[Child] = field(default_factory=list)
    redis: RedisServerProcess | None = None
    identity: str = ""  # the kiosk identity for the x-hallgate-dev-identity header, if the gateway wants one
    pki: Path | None = None  # the mTLS gateway's development PKI
    candidates: list[Path] = field(default_factory=list)  # checkouts whose gateways run beside this one (A/B)
    workers: int = 0  # above 1: also a gateway with `--workers N`, its own port, the same flags otherwise
    smsc: Child | None = None  # the shared SMSC simulator, where the gateway has `serve --sms-url`
    smsc_control: int = 0  # its control port (docs/smsc-sim.md)
    sms_password: str = field(default="", repr=False)  # its bind password: in the children's environment only
    outboxes: dict[str, Path] = field(default_factory=dict)  # gateway name -> the outbox its codes land in

    @property
    def data_dir(self) -> Path:
        return self.workdir / "gateway"

    @property
    def outbox(self) -> Path:
        return self.data_dir / "sms-outbox.jsonl"

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    @property
    def scaled(self) -> str:
        """The name of the gateway with `--workers N`, if there is one."""
        return next((c.name for c in self.children if c.workers), "")

    def browser_port(self, name: str) -> int:
        """The browser listener's port of gateway `name` (0: it has none, or it is not running)."""
        child = next((c for c in self.children if c.name == name), None)
        return child.browser_port if child is not None and self.pki is not None else 0

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.child(name).port}"

    @property
    def smsc_url(self) -> str:
        return f"smpp://127.0.0.1:{self.smsc.port}" if self.smsc is not None else ""

    def outbox_of(self, name: str) -> Path:
        """Where the codes asked for through gateway `name` land."""
        return self.outboxes.get(name, self.outbox)

    def _spawn(self, name: str, argv: list[str], port: int, src: Path | None = None,
               env: dict[str, str] | None = None) -> Child:
        """Start a child; with `src`, its `gateway` and `adapters` packages come from that checkout;
        `env` is added to its environment (secrets go there, never on the command line)."""
        log = self.workdir / f"{name}.log"
        if src or env:
            env = os.environ | ({"PYTHONPATH": str(src)} if src else {}) | (env or {})
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=src or REPO, env=env)
        child = Child(name, proc, log, port)
        self.children.append(child)
        return child

    def _smsc_sim(self) -> Child:
        """The one SMSC simulator every current gateway submits to, writing what phones receive to
        `outbox` (docs/smsc-sim.md); its bind password goes to it and to the gateways by environment."""
        port, self.smsc_control = free_port(), free_port()
        self.sms_password = secrets.token_urlsafe(6)[:8]  # SMPP allows at most 8 octets
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.smsc = self._spawn("smsc-sim", [
            HALLGATE, "smsc-sim", "--listen", f"127.0.0.1:{port}", "--control", f"127.0.0.1:{self.smsc_control}",
            "--outbox", str(self.outbox), "--system-id", "hallgate", "--log-level", "warning"], port,
            env={"HALLGATE_SMSC_SIM_PASSWORD": self.sms_password})
        return self.smsc

    def smsc_command(self, line: str, timeout: float = 5.0) -> str:
        """One command on the simulator's control port (e.g. `stats`); its one-line answer."""
        with socket.create_connection(("127.0.0.1", self.smsc_control), timeout=timeout) as s:
            s.sendall(line.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        return answer.decode().strip()

    def _gateway(self, name: str, data_dir: Path, billing_port: int, flags: list[str],
                 src: Path | None = None, browser: bool = False) -> Child:
        """A gateway; with `browser`, where it has `serve --browser-listen`, also serving browsers
        (Connect, gRPC-Web) on a port of its own, over the same TLS material as its gRPC port."""
        assert self.redis is not None
        port = free_port()
        browser_port = free_port() if browser and "--browser-listen" in serve_flags(src) else 0
        if browser_port:
            flags = [*flags, "--browser-listen", f"127.0.0.1:{browser_port}"]
        has = serve_flags(src)
        sms: list[str] = []
        env: dict[str, str] = {}
        if "--sms-url" in has and self.smsc is not None:
            # The shared SMSC simulator; no limit on the dispatcher's hand-overs (the simulator has
            # none, and --sms-throughput's 50/s per dispatcher would pace the bench's code bursts).
            sms = ["--sms-url", self.smsc_url, "--sms-throughput", "0"]
            env = {"HALLGATE_SMS_PASSWORD": self.sms_password}
            self.outboxes[name] = self.outbox
        else:  # an older gateway: its own file outbox in its own data directory
            self.outboxes[name] = data_dir / "sms-outbox.jsonl"
        child = self._spawn(name, [
            HALLGATE, "serve", "--listen", f"127.0.0.1:{port}", "--redis-url", self.redis.url,
            "--billing-target", f"127.0.0.1:{billing_port}", "--data-dir", str(data_dir),
            "--secret-key", "bench", "--log-level", "warning", "--log-format", "json",
            # Generous throttles, so the same numbers can sign in again and again ("0", which the
            # scripts treat as 1 ms, because older versions parse this flag as an int).
            "--send-min-interval", "0", "--send-max-per-hour", "1000000000", "--grace-period", "1",
            # Development material (CA, legal signing key) where the gateway needs the flag for it.
            *(["--dev"] if "--dev" in has else []), *sms, *flags], port, src, env)
        child.browser_port = browser_port
        return child

    def start(self, tls: bool = True) -> Stack:
        redis_dir = self.workdir / "redis"
        # appendfsync always: the audit trail must be durable before anything is released (on Redis
        # < 7.2 the gateway refuses anything less), as the gateway's own embedded Redis runs it.
        self.redis = RedisServerProcess(redis_dir, unix_socket=redis_dir / "redis.sock", appendfsync="always").start()
        billing_port, proxy_port, stream_port = free_port(), free_port(), free_port()
        billing = self._spawn("billing", [
            HALLGATE, "billing-sim", "--listen", f"127.0.0.1:{billing_port}", "--sim-hash-n", "1024",
            "--sim-seed", self.sim_seed, "--sim-subscribers", str(self.sim_subscribers),
            "--log-level", "warning", "--log-format", "json"], billing_port)
        proxy = self._spawn("proxy", [
            sys.executable, "-m", "bench.proxy", "--listen", f"127.0.0.1:{proxy_port}",
            "--upstream", f"127.0.0.1:{billing_port}"], proxy_port)
        proxy_stream = self._spawn("proxy-stream", [
            sys.executable, "-m", "bench.proxy", "--listen", f"127.0.0.1:{stream_port}",
            "--upstream", f"127.0.0.1:{billing_port}", "--stream-out"], stream_port)
        started = [billing, proxy, proxy_stream]
        plain: list[str] = []
        flags = serve_flags()
        if "--sms-url" in flags:
            self._smsc_sim().wait_listening()  # before any gateway binds to it
        if "--insecure-dev" in flags:
            # Plaintext like the proxy, so the two compare like with like; the kiosk names itself
            # in a header instead of a client certificate. Tokens are bound to this terminal.
            self.identity = f"spiffe://hallgate.example/{KIOSK_PATH}"
            plain = ["--insecure-dev", "--trust-domain", "hallgate.example"]
            if tls:
                # On mTLS, and serving browsers too: the Connect scenarios compare the two
                # transports of this one gateway, the same kiosk certificate on both.
                started.append(self._gateway("gateway-tls", self.workdir / "gateway-tls", billing_port,
                                             ["--trust-domain", "hallgate.example"], browser=True))
        started.append(self._gateway("gateway", self.data_dir, billing_port, plain))
        for n, src in enumerate(self.candidates, 1):
            # Same Redis and secret key: tokens and codes from any of the gateways work on all.
            started.append(self._gateway(f"gateway-c{n}", self.workdir / f"gateway-c{n}", billing_port, plain, src))
        scaled = None
        if self.workers > 1 and "--workers" in flags:
            scaled = self._gateway(f"gateway-w{self.workers}", self.workdir / f"gateway-w{self.workers}", billing_port,
                                   [*plain, "--workers", str(self.workers)])
            started.append(scaled)
        for c in started:
            c.wait_listening()
        if scaled is not None:
            scaled.wait_workers(self.workers)
        if any(c.name == "gateway-tls" for c in started):
            pki = self.workdir / "gateway-tls" / "pki"
            if all((pki / f).exists() for f in ("ca.crt", KIOSK_CERT + ".crt", KIOSK_CERT + ".key")):
                self.pki = pki
        return self

    def stop(self) -> None:
        """Every child, newest first, by its own pid; then Redis."""
        for c in reversed(self.children):
            c.stop()
        if self.redis is not None:
            self.redis.stop()
