"""The event loop the service runs on: uvloop (libuv), not asyncio's selector loop.

Every call is a chain of waits on sockets (the caller, Redis, billing) and each wait is a turn of
the loop: on the selector loop those turns, the socket reads and writes and the scheduling around
them are Python; on uvloop they are C. Measured side by side (`make bench`, issue 18): 8 % less of the
gateway's CPU per call list at one client, 3 to 4 % at 16 and 64, 0.1 ms less latency. The test suite
runs on the same loop (tests/conftest.py), so what is tested is what serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

new_event_loop = uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on a new uvloop loop, closed (with its async generators and executor)
    when `main` ends."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
