"""Lua scripts from concurrent calls sharing one Redis connection.

Why: redis-py runs each command on a pooled connection of its own. At 16 concurrent calls that
is, per script, a write syscall, a read syscall and a wake-up of the caller's task in the gateway,
and as many reads and writes in redis-server, all on the same two cores (issue 18: the socket
writes alone were a tenth of the gateway's GIL time). A script cannot block the server, so
scripts can share one connection: those issued in the same turn of the event loop leave in one
write, and the replies, which Redis sends in the order of the commands, are parsed by hiredis in
the transport's callback and handed to their callers in that order (no reader task).

Plain pipelines (`transaction=False`) of commands that cannot block either (`SHAREABLE`: DEL,
HSET, PEXPIRE and the like; opening a session is one) go the same way, written together.

What stays as it was: the connection is made by the client's own pool class (`make_connection`),
so AUTH, SELECT, TLS and a Sentinel master lookup are redis-py's; every other command, every
MULTI and every pipeline with another command uses the pool as before (a WAITAOF or WAIT must
follow its append on the same connection, and a blocking read must not hold up the scripts).
Redis Cluster does not use this.

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
from redis.asyncio.client import EMPTY_RESPONSE, NEVER_DECODE, Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

SHARED = frozenset({"EVALSHA", b"EVALSHA"})
# What a plain pipeline may hold to go over the shared connection: commands that answer at once
# and leave the connection as they found it (no blocking read, no WAIT, no SELECT or CLIENT).
SHAREABLE = frozenset({
    "EVALSHA", "DEL", "UNLINK", "EXISTS", "GET", "SET", "INCRBY", "DECRBY", "PTTL", "TTL",
    "PEXPIRE", "EXPIRE", "PERSIST", "HSET", "HGET", "HMGET", "HGETALL", "HDEL", "HINCRBY", "SADD",
    "SREM", "SISMEMBER", "SMEMBERS", "SCARD", "ZADD", "ZREM", "ZCARD", "ZSCORE", "XADD", "XLEN",
})


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

    async def execute_all(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Every command's reply, or its error reply (a ResponseError) in its place; any other
        failure is raised, after every reply has been collected."""
        wire = self.wire
        if wire is None or wire.failed is not None:
            wire = await self._connect()
        futures = [wire.send(hiredis.pack_command(args)) for args in commands]
        replies = await asyncio.gather(*futures, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(reply, ResponseError):
                raise reply
        return replies

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
            return await self._shared_connection().execute(args)
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return SharingPipeline(self._shared_connection(), self.connection_pool, self.response_callbacks,
                               transaction, shard_hint)

    def _shared_connection(self) -> SharedConnection:
        if self._shared is None:
            self._shared = SharedConnection(self.connection_pool)
        return self._shared

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._shared is not None:
            self._shared.close()
        await super().aclose(close_connection_pool)


class SharingPipeline(Pipeline):
    """A plain pipeline of `SHAREABLE` commands goes over the shared connection, with redis-py's
    reply callbacks and error handling; any other pipeline runs as redis-py runs it."""

    def __init__(self, shared: SharedConnection, *args: Any) -> None:
        super().__init__(*args)
        self.shared = shared

    def _shareable(self) -> bool:
        if self.is_transaction or self.explicit_transaction or self.watching or self.scripts:
            return False
        return all(str(args[0]).upper() in SHAREABLE and NEVER_DECODE not in options
                   for args, options in self.command_stack)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = self.command_stack
        if not stack or not self._shareable():
            return await super().execute(raise_on_error)
        try:
            replies = await self.shared.execute_all([args for args, _ in stack])
            response = [self._parsed(args[0], reply, dict(options))
                        for (args, options), reply in zip(stack, replies, strict=True)]
            if raise_on_error:
                self.raise_first_error(stack, response)
            return response
        finally:
            await self.reset()

    def _parsed(self, command_name: Any, reply: Any, options: dict[str, Any]) -> Any:
        """What redis-py's `parse_response` makes of a reply read off the wire."""
        if isinstance(reply, ResponseError):
            return options[EMPTY_RESPONSE] if EMPTY_RESPONSE in options else reply
        options.pop(EMPTY_RESPONSE, None)
        options.pop("keys", None)
        callback = self.response_callbacks.get(command_name)
        return reply if callback is None else callback(reply, **options)
