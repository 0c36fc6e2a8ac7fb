"""Stopping the servers the gateway starts as children (redis-server, PostgreSQL, the SMSC
simulator): one way to end a child, so each adapter only says which signal asks it to stop."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


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
