"""A tiny edge proxy for the tests: takes a client's TCP connection on loopback, opens one to the
gateway's PROXY-protocol front, sends a header naming a chosen (fake) terminal address, then relays
bytes both ways untouched (TLS passthrough, as the Envoy of deploy/k8s/edge/ does).

    async with ProxyHop(("127.0.0.1", front_port), v2_header(("203.0.113.7", 40001))) as hop:
        channel = grpc.aio.secure_channel(f"127.0.0.1:{hop.port}", credentials)
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

CHUNK = 64 * 1024


class ProxyHop:
    """`header`: the bytes sent first on every connection to the front (b"": none)."""

    def __init__(self, front: tuple[str, int], header: bytes) -> None:
        self.front = front
        self.header = header
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.relayed: list[tuple[str, int]] = []  # the hop's own addresses towards the front

    async def __aenter__(self) -> ProxyHop:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            front_r, front_w = await asyncio.wait_for(asyncio.open_connection(*self.front), 5)
        except (OSError, TimeoutError):
            client_w.close()
            self.tasks.discard(task)
            return
        self.relayed.append(front_w.get_extra_info("sockname")[:2])
        try:
            if self.header:
                front_w.write(self.header)
            await asyncio.gather(_pipe(client_r, front_w), _pipe(front_r, client_w))
        finally:
            for w in (client_w, front_w):
                w.close()
            self.tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF or an error on either side, then close the writing side."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
