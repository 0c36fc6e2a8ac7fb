"""Lua scripts from concurrent calls sharing one Redis connection.

Why: redis-py runs each command on a pooled connection of its own. At 16 concurrent calls that
is, per script, a write syscall, a read syscall and a wake-up of the caller's task in the gateway,
and as many reads and writes in redis-server, all on the same two cores (issue 18: the socket
writes alone were a tenth of the gateway's GIL time). A script cannot block the server, so
scripts can share one connection: those issued in the same turn of the event loop leave in one
write, and the replies, which Redis sends in the order of the commands, are parsed by hiredis in
the transport's callback and handed to their callers in that order (no reader task).

What stays as it was: the connection is made by the client's own pool class (`make_connection`),
so AUTH, SELECT, TLS and a Sentinel master lookup are redis-py's; every other command and every
pipeline uses the pool as before (a WAITAOF or WAIT must follow its append on the same
connection, and a blocking read must not hold up the scripts). Redis Cluster does not use this.

Failures keep the client's contract (`adapters.redis_client`): every caller gets its reply or a
RedisError within about the socket timeout. A lost connection fails every command on it; a reply
not back within the timeout drops the connection and fails every command on it (the server is
hung, or the connection is); a READONLY reply (a master demoted by a failover) is a
ConnectionError and drops the connection, so the next script connects to the new master. A
caller that is cancelled leaves its reply to be read and dropped: the order holds.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

SHARED = frozenset({"EVALSHA", b"EVALSHA"})


class Wire(asyncio.Protocol):
    """One connection's commands in flight: written together once a turn of the loop, answered
    in order. Its failure is its own: a new connection gets a new Wire."""

    def __init__(self, connection: Any, timeout: float | None) -> None:
        self.connection = connection  # redis-py's Connection, kept for its writer (not read again)
        self.transport: asyncio.WriteTransport = connection._writer.transport
        encoder = connection.encoder
        extra = {"encoding": encoder.encoding, "errors": encoder.encoding_errors} if encoder.decode_responses else {}
        self.reader = hiredis.Reader(protocolError=InvalidResponse, replyError=connection._parser.parse_error,
                                     **extra)
        self.timeout = timeout
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.out: list[bytes] = []
        self.loop = asyncio.get_running_loop()
        self.failed: RedisError | None = None
        self._watch: asyncio.TimerHandle | None = None
        self.transport.set_protocol(self)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        fut = self.loop.create_future()
        if self.failed is not None:
            fut.set_exception(self.error())
            return fut
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(packed)
        self.waiting.append((fut, self.loop.time()))
        if self._watch is None and self.timeout:
            self._watch = self.loop.call_later(self.timeout, self._check)
        return fut

    def _flush(self) -> None:
        out, self.out = self.out, []
        if out and self.failed is None:
            self.transport.writelines(out)

    def _check(self) -> None:
        """The oldest command is the one whose reply is due first: past the timeout, fail them all."""
        self._watch = None
        if not self.waiting or self.failed is not None or not self.timeout:
            return
        due = self.waiting[0][1] + self.timeout
        if self.loop.time() >= due:
            self.fail(RedisTimeoutError("Timeout reading from socket"))
        else:
            self._watch = self.loop.call_at(due, self._check)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                if not self.waiting:
                    raise InvalidResponse("a reply no command asked for")
                fut = self.waiting.popleft()[0]
                if isinstance(reply, ReadOnlyError):
                    self.fail(RedisConnectionError("the master was demoted to a replica (READONLY)"))
                    if not fut.done():
                        fut.set_exception(self.error())
                    return
                if fut.done():  # its caller was cancelled
                    continue
                if isinstance(reply, ResponseError):
                    fut.set_exception(reply)
                else:
                    fut.set_result(reply)
        except InvalidResponse as e:
            self.fail(RedisConnectionError(f"Protocol error: {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError("Connection closed by server."))

    def fail(self, error: RedisError) -> None:
        if self.failed is not None:
            return
        self.failed = error
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        waiting, self.waiting = self.waiting, deque()
        self.out = []
        for fut, _ in waiting:
            if not fut.done():
                fut.set_exception(self.error())
        self.transport.close()

    def error(self) -> RedisError:
        """The failure, one exception object per caller (each raise writes its own traceback)."""
        assert self.failed is not None
        return type(self.failed)(*self.failed.args)


class SharedConnection:
    """The connection scripts share, made on first use and again after a failure."""

    def __init__(self, pool: aioredis.ConnectionPool) -> None:
        self.pool = pool
        self.timeout: float | None = pool.connection_kwargs.get("socket_timeout")
        self.wire: Wire | None = None
        self._connecting: asyncio.Lock | None = None
        self.closed = False

    async def execute(self, args: tuple[Any, ...]) -> Any:
        wire = self.wire
        if wire is None or wire.failed is not None:
            wire = await self._connect()
        return await wire.send(hiredis.pack_command(args))

    async def _connect(self) -> Wire:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.closed:
                raise RedisConnectionError("the client is closed")
            wire = self.wire
            if wire is not None and wire.failed is None:
                return wire
            connection = self.pool.make_connection()
            try:
                await connection.connect()
            except BaseException:
                await connection.disconnect(nowait=True)
                raise
            self.wire = Wire(connection, self.timeout)
            return self.wire

    def close(self) -> None:
        self.closed = True
        if self.wire is not None:
            self.wire.fail(RedisConnectionError("the client is closed"))


class Client(aioredis.Redis):
    """A redis-py asyncio client (one server, or a Sentinel master) whose EVALSHAs go over the
    shared connection, everything else over the pool."""

    _shared: SharedConnection | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args[0] in SHARED:
            shared = self._shared
            if shared is None:
                shared = self._shared = SharedConnection(self.connection_pool)
            return await shared.execute(args)
        return await super().execute_command(*args, **options)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._shared is not None:
            self._shared.close()
        await super().aclose(close_connection_pool)
