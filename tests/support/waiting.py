"""Bounded polling: every wait in the tests ends, and says what it waited for when it gives up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.05,
               retry_on: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """Poll `check` until it returns something truthy (returned) or raise TimeoutError after `timeout`
    seconds. Exceptions of the `retry_on` types count as "not yet"; others propagate at once."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            found = check()
            if found:
                return found
        except retry_on as e:
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout}s" + (f" (last error: {last!r})" if last else ""))
        time.sleep(every)


async def wait_for(predicate: Callable[[], Awaitable[object]], limit: float = 10.0, every: float = 0.05,
                   what: str = "condition", retry_on: tuple[type[BaseException], ...] = ()) -> None:
    """Poll an async predicate until it holds (AssertionError after `limit` seconds). Exceptions of
    the `retry_on` types count as "not yet"."""
    deadline = time.monotonic() + limit
    while True:
        try:
            if await predicate():
                return
        except retry_on:
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met in time ({limit}s)")
        await asyncio.sleep(every)


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    """Wait until something accepts TCP connections on host:port."""
    import socket

    def accepts() -> bool | None:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return None

    wait_until(f"{host}:{port} to accept connections", accepts, timeout, every=0.05)
