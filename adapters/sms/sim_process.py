"""The SMSC simulator (adapters/smsc_sim) as a child process: what `make run` talks SMPP to when no
SMS centre is configured, and what the tests start on a free loopback port.

It runs as its own process, so the gateway reaches it exactly as it reaches an operator's SMSC:
over TCP, binding with a system id and password. The password is made fresh for each start and
handed over as a file the child inherits (`--password-file /proc/self/fd/N`, a sealed memfd:
adapters/child_process.py), never in its environment nor as a value on its command line; the child
gets no HALLGATE_* variable at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from adapters import child_process
from adapters.redis_server import _prepare_child

READY_PREFIX = "smsc-sim listening "


class SmscSimProcess:
    def __init__(self, outbox: Path, system_id: str = "hallgate", password: str | None = None,
                 receipt_delay: float = 0.05, listen: str = "127.0.0.1:0", log_json: bool = False) -> None:
        self.outbox = outbox
        self.system_id = system_id
        self.password = password or secrets.token_urlsafe(6)[:8]  # SMPP passwords are at most 8 octets
        self.receipt_delay = receipt_delay
        self.listen = listen
        self.log_json = log_json  # the gateway logs JSON: so does its simulator (stderr is shared)
        self.proc: subprocess.Popen[str] | None = None
        self.smpp = ""
        self.control = ""

    @property
    def url(self) -> str:
        return f"smpp://{self.smpp}"

    def start(self, timeout: float = 10.0) -> SmscSimProcess:
        password = child_process.secret_fd(self.password, "smsc-sim-password")
        args = [sys.executable, "-m", "adapters.smsc_sim", "--listen", self.listen, "--control", "127.0.0.1:0",
                "--system-id", self.system_id, "--outbox", str(self.outbox),
                "--receipt-delay", str(self.receipt_delay), "--password-file", child_process.fd_path(password)]
        if self.log_json:
            args.append("--log-json")
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                                         env=child_process.environ(), pass_fds=(password,),
                                         preexec_fn=_prepare_child, process_group=0)  # as redis_server.py
        finally:
            os.close(password)  # the child has its own copy
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(READY_PREFIX) or not line:
                break
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise RuntimeError("the SMSC simulator did not start")
        fields = dict(part.split("=", 1) for part in line[len(READY_PREFIX):].split())
        self.smpp, self.control = fields["smpp"], fields["control"]
        # Whatever else it prints is read and dropped, so a full pipe can never stall it.
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
        return self

    @staticmethod
    def _drain(stream: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            for _ in stream:
                pass

    def command(self, line: str, timeout: float = 5.0) -> str:
        """One control command (throttle N, drop-after N, receipts on|off, fail-binds on|off,
        undeliverable N, unreachable N, reset, stats); its one-line answer."""
        host, port = self.control.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(line.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        return answer.decode().strip()

    def stats(self) -> dict[str, Any]:
        return dict(json.loads(self.command("stats")))

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        child_process.kill(self.proc)
        self.proc = None

    def stop(self) -> None:
        child_process.stop(self.proc)
        self.proc = None
