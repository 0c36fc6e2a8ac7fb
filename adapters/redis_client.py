"""Build the redis-py asyncio client from settings, failing fast rather than retrying for long.

One URL picks the topology; redis-py's own support does the rest:

    redis://[user:pass@]host:port/db        one server (TCP)
    rediss://...                            one server over TLS
    unix:///path/to/redis.sock[?db=0]       one server on a unix socket
    redis+sentinel://[user:pass@]host:port[,host:port...]/<service>[?db=0]
                                            Sentinel: the master of <service>, found through any of
                                            the sentinels (redis.asyncio.sentinel)
    redis+cluster://[user:pass@]host:port[,host:port...]
                                            Redis Cluster: the nodes are startup nodes; the client
                                            learns the slot map (redis.asyncio.cluster.RedisCluster)

Sentinel URLs take `sentinel_username`/`sentinel_password` in the query for sentinels that need
their own credentials; user:pass in the URL are the data nodes' credentials.

Every client answers or raises a `redis.exceptions.RedisError` within a few `timeout`s: a dead,
hung or failing-over Redis becomes UNAVAILABLE for the caller (the adapters map RedisError to
DependencyUnavailable), never a hang and never another status. In particular the cluster client's
own errors (`RedisClusterException`, which redis-py does not derive from RedisError, e.g. "Redis
Cluster cannot be connected" while every startup node is down) are re-raised as `ClusterUnavailable`,
a RedisError.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import AbstractStrategy, ClusterNode, ClusterPipeline, RedisCluster, TransactionStrategy
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, DataError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.redis_mux import Client as SharingClient

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
MAX_CONNECTIONS = 256  # per server (per node on a cluster): calls beyond it fail, they never queue


class ClusterUnavailable(RedisConnectionError):
    """A cluster client error redis-py raises outside the RedisError hierarchy (no reachable node,
    slots not covered, keys of one command or transaction in different slots)."""


class HiredisPacking:
    """Commands packed by hiredis (C), as redis-py's synchronous client packs them; its asyncio
    connection packs in Python, joining the buffer once per argument. An audit append has some 80
    arguments: 37 µs to pack in Python, 4 µs with hiredis (issue 18). Same bytes on the wire; an
    argument of a type Redis cannot take (None, a bool) is refused as redis-py refuses it."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # "CONFIG GET": the words of the command name go separately
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:  # hiredis refuses what redis-py's encoder refuses (None, a bool), with a TypeError
            return [hiredis.pack_command(args)]
        except TypeError as e:
            raise DataError(str(e)) from e


class DirectSend:
    """A command written in the caller's task. redis-py's asyncio connection sends every command
    under `asyncio.wait_for`, which on Python 3.11 runs the send as a task of its own: two more
    turns of the event loop per command (issue 18), for a write the socket almost always takes at
    once. Only a wait for room in a full buffer (`drain`) can last, and that wait is bounded by the
    socket timeout as before, with redis-py's errors and its disconnect on any failure.

    The timer is armed only when the wait can happen: a stream's writes pause once the
    transport's buffer goes past its high-water mark and resume at its low-water mark, so at or
    under the low mark `drain` returns at once (it still raises a lost connection). An
    `asyncio.timeout` costs about 5 µs, a tenth of the Python redis-py runs per command."""

    async def send_packed_command(self: Any, command: bytes | str | list[bytes], check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        writer: asyncio.StreamWriter = self._writer
        try:
            writer.writelines(command)
            transport = writer.transport
            if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[0]:
                await writer.drain()
            else:
                async with asyncio.timeout(self.socket_timeout or None):
                    await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            await self.disconnect(nowait=True)
            err_no, message = (e.args[0], e.args[1]) if len(e.args) > 1 else ("UNKNOWN", e.args[0] if e.args else e)
            raise RedisConnectionError(f"Error {err_no} while writing to socket. {message}.") from e
        except BaseException:
            await self.disconnect(nowait=True)  # a write cut short leaves the stream unusable
            raise


C = TypeVar("C", bound=AbstractConnection)


@functools.cache
def lean_connection(connection_class: type[C]) -> type[C]:
    """`connection_class` packing with hiredis and sending in the caller's task (one subclass per
    class)."""
    return type(f"Lean{connection_class.__name__}", (HiredisPacking, DirectSend, connection_class), {})


def _lean(client: Any) -> Any:
    pool = client.connection_pool
    pool.connection_class = lean_connection(pool.connection_class)
    return client


def connect(url: str, timeout: float) -> aioredis.Redis:
    """A client whose every call either answers or raises within about `timeout` seconds (a few
    of them across a failover or node loss): a hung Redis must turn into UNAVAILABLE for the
    caller, never into a hang.

    For `redis+cluster://` the object is a `RedisCluster`, typed as `aioredis.Redis` for the
    adapters: it has every command they use (scripts, pipelines, hashes, sets, streams, ping,
    aclose), but a MULTI pipeline (`transaction=True`) and a script must keep their keys in one
    slot (a common hash tag), and `transaction=False` pipelines may span slots without atomicity.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == SENTINEL_SCHEME:
        return _sentinel(url, timeout)
    if scheme == CLUSTER_SCHEME:
        return cast(aioredis.Redis, _cluster(url, timeout))
    if "+" in scheme:
        raise ValueError(f"unsupported Redis URL scheme {scheme!r}: use redis, rediss, unix, "
                         f"{SENTINEL_SCHEME} or {CLUSTER_SCHEME}")
    return _lean(SharingClient.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
        max_connections=MAX_CONNECTIONS,
    ))


# --- URL parsing ------------------------------------------------------------------------------


def _hosts(netloc: str, scheme: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """host:port[,host:port...] with optional user:pass@ in front."""
    userinfo, _, hostlist = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, sep, pw = userinfo.partition(":")
        username, password = (unquote(user) or None), (unquote(pw) if sep else None)
    hosts: list[tuple[str, int]] = []
    for item in filter(None, (h.strip() for h in hostlist.split(","))):
        if item.startswith("["):  # [::1]:26379
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{scheme}: expected host:port, got {item!r}")
        hosts.append((host, int(port)))
    if not hosts:
        raise ValueError(f"{scheme}: no host:port given")
    return hosts, username, password


def _query(query: str, allowed: set[str], scheme: str) -> dict[str, str]:
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"{scheme}: unsupported option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return params


def _fail_fast(timeout: float) -> dict[str, Any]:
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout, "health_check_interval": 0}


# --- Sentinel ---------------------------------------------------------------------------------


class SentinelMaster(SharingClient):
    """The master of a Sentinel service (`Sentinel.master_for`); `aclose` also closes the
    connections to the sentinels themselves."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            for s in self.sentinel_manager.sentinels:
                await s.aclose()


def _sentinel(url: str, timeout: float) -> SentinelMaster:
    """`master_for(service)`: every new connection asks the sentinels for the current master. While
    the master is down (sentinels report it s_down/o_down) or being replaced, connecting raises
    MasterNotFoundError (a RedisError); after the failover the next connection goes to the new
    master. A connection to a master demoted to replica turns its READONLY reply into a
    ConnectionError and reconnects."""
    parts = urlsplit(url)
    hosts, username, password = _hosts(parts.netloc, SENTINEL_SCHEME)
    service = unquote(parts.path.strip("/"))
    if not service or "/" in service:
        raise ValueError(f"{SENTINEL_SCHEME}://host:port[,host:port...]/<service_name>: the service name is missing")
    params = _query(parts.query, {"db", "sentinel_username", "sentinel_password"}, SENTINEL_SCHEME)
    db = params.get("db", "0")
    if not db.isdigit():
        raise ValueError(f"{SENTINEL_SCHEME}: db must be a number")
    sentinel_kwargs: dict[str, Any] = {**_fail_fast(timeout), "retry": Retry(NoBackoff(), 0)}
    if params.get("sentinel_username"):
        sentinel_kwargs["username"] = params["sentinel_username"]
    if params.get("sentinel_password"):
        sentinel_kwargs["password"] = params["sentinel_password"]
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs)
    master = sentinel.master_for(
        service, redis_class=SentinelMaster, db=int(db), username=username, password=password,
        retry=Retry(NoBackoff(), 1), max_connections=MAX_CONNECTIONS, **_fail_fast(timeout))
    master.sentinel_manager = sentinel
    return cast(SentinelMaster, _lean(master))


# --- Cluster ----------------------------------------------------------------------------------


class FailClosedCluster(RedisCluster):
    """RedisCluster whose every failure is a RedisError (see ClusterUnavailable), and which asks a
    node that just failed for the slot map only as a last resort."""

    last_failed_node: str | None = None

    async def initialize(self, additional_startup_nodes_info: Any = None,
                         last_failed_node_name: str | None = None) -> RedisCluster:
        """Load the slot map (redis-py's `initialize`, with two changes): the node that failed last
        is neither asked first nor kept as the default node, and the command table is loaded once,
        from any primary that answers. redis-py reloads it from the default node on every reload,
        which is the owner of slot 0; while that node is down, every reload and therefore every call
        after any connection error would fail."""
        if not self._initialize:
            return self
        if not self._lock:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._initialize:
                return self
            try:
                await self.nodes_manager.initialize(
                    additional_startup_nodes_info=additional_startup_nodes_info,
                    last_failed_node_name=last_failed_node_name or self.last_failed_node)
                default = self.get_default_node()
                if default is not None and default.name == self.last_failed_node:
                    # keyless commands go to the default node: readiness PING, the audit sink's
                    # INFO and CONFIG GET durability probe
                    self.replace_default_node()
                await self._load_command_table()
                self._initialize = False
            except BaseException as e:
                await self.nodes_manager.aclose()
                await self.nodes_manager.aclose("startup_nodes")
                if isinstance(e, RedisClusterException):
                    raise ClusterUnavailable(str(e)) from e
                raise
        return self

    async def _load_command_table(self) -> None:
        parser = self.commands_parser
        default = self.get_default_node()
        parser.node = default  # for COMMAND GETKEYS (commands with movable keys)
        if parser.commands:
            return
        errors: list[RedisError] = []
        for node in [default, *(n for n in self.get_primaries() if n is not default)]:
            try:
                await parser.initialize(node)
                parser.node = default
                return
            except RedisError as e:
                errors.append(e)
        raise errors[0] if errors else ClusterUnavailable("no node to load the command table from")

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if self._initialize:
                # redis-py 8.1 picks the target before it loads the slot map: on a client without
                # one (new, or reset after CLUSTERDOWN) a keyed command goes to a random primary
                # and relies on MOVED, and fails outright if that primary is the one that is down.
                await self.initialize()
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as e:
            raise ClusterUnavailable(str(e)) from e
        except (RedisConnectionError, RedisTimeoutError) as e:
            self.last_failed_node = getattr(e, "last_failed_node_name", None) or self.last_failed_node
            raise

    async def connection_failed(self) -> None:
        """After a pipeline's connection error or timeout: reload the slot map before the next
        command (a replica may have taken over) and drop idle connections, so that connections
        made stale by a restart fail one call, not one call each."""
        self._initialize = True
        for node in list(self.nodes_manager.nodes_cache.values()):
            await node.disconnect_free_connections()

    async def script_load(self, script: Any) -> Any:  # type: ignore[override]
        """SCRIPT LOAD on every primary that answers; it fails only if none does. redis-py sends it
        to all primaries and fails if one is down, which would stop every script (a NOSCRIPT reply
        is answered with SCRIPT LOAD) on the healthy shards too while one shard is lost. A shard
        that missed the load answers NOSCRIPT later and gets it then."""
        await self.initialize()
        results = await asyncio.gather(*(self.execute_command("SCRIPT LOAD", script, target_nodes=node)
                                         for node in self.get_primaries()), return_exceptions=True)
        for r in results:
            if not isinstance(r, BaseException):
                return r
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, RedisError):
                raise r
        raise results[0] if results else ClusterUnavailable("no primary to load the script on")

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise ValueError("shard_hint is not supported in cluster mode")
        return FailClosedPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py's own


class FailClosedPipeline(ClusterPipeline):
    """A cluster pipeline: `transaction=False` spans slots (one round trip per node, not atomic);
    `transaction=True` is MULTI/EXEC and needs every key in one slot (else ClusterUnavailable,
    before anything is sent). It behaves like a standalone Redis pipeline where redis-py 8's
    cluster pipeline does not:

    - commands queued before `async with pipe:` stay queued (redis-py's `__aenter__` drops them);
    - `transaction=True` queues commands without running each through `asyncio.run` in a helper
      thread (redis-py's TransactionStrategy does, which blocks the event loop per command and,
      after a connection error, re-initialises the client on a foreign event loop); the slot
      check happens in `execute`. WATCH is not supported here;
    - EVALSHA may be pipelined (redis-py blocks it because a cluster pipeline does not reload
      missing scripts: with `raise_on_error=False` the caller gets the NoScriptError and reloads);
    - WAIT/WAITAOF go to the node of the command queued before them, so they run on the
      connection that made the write they wait for (redis-py sends them to the default node,
      whose answer would say nothing about that write).
    """

    async def initialize(self) -> ClusterPipeline:
        await self.cluster_client.initialize()
        return self

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._transaction:
            return AbstractStrategy.execute_command(cast(AbstractStrategy, self._execution_strategy), *args, **kwargs)
        return super().execute_command(*args, **kwargs)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:  # type: ignore[override]
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    async def watch(self, *names: Any) -> None:  # type: ignore[override]
        raise ClusterUnavailable("WATCH is not supported on this cluster pipeline: use a script")

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        try:
            strategy = self._execution_strategy
            if isinstance(strategy, TransactionStrategy) and strategy._command_queue:
                await self.cluster_client.initialize()
                for cmd in strategy._command_queue:
                    strategy._pipeline_slots.add(await self.cluster_client._determine_slot(*cmd.args))
            else:
                await self.route_waits()
            return await super().execute(raise_on_error, allow_redirections)
        except RedisClusterException as e:
            raise ClusterUnavailable(str(e)) from e
        except (RedisConnectionError, RedisTimeoutError, ClusterDownError):
            client = self.cluster_client
            if isinstance(client, FailClosedCluster):
                await client.connection_failed()
            raise
        finally:
            await self.reset()

    async def route_waits(self) -> None:
        """Give every queued WAIT/WAITAOF without target_nodes the node of the command before it."""
        queue = cast(AbstractStrategy, self._execution_strategy)._command_queue
        client = self.cluster_client
        previous = None
        for cmd in queue:
            if str(cmd.args[0]).upper() not in ("WAIT", "WAITAOF"):
                previous = cmd
                continue
            if previous is None or "target_nodes" in cmd.kwargs:
                continue
            if "target_nodes" in previous.kwargs:
                cmd.kwargs["target_nodes"] = previous.kwargs["target_nodes"]
                continue
            await client.initialize()
            slot = await client._determine_slot(*previous.args)
            cmd.kwargs["target_nodes"] = client.nodes_manager.get_node_from_slot(slot)


def _cluster(url: str, timeout: float) -> FailClosedCluster:
    """No retries (redis-py's cluster-level `retry` set to 0; node connections do not retry
    either): a connection error, a timeout or CLUSTERDOWN fails the call at once (a hung node
    after one `timeout`, a dead one as soon as its port refuses) and the next call reloads the slot
    map first. MOVED/ASK redirections are still followed. The slots of a lost node fail, the
    others serve on; they recover on the first call after the node (or its promoted replica)
    serves them again. Retrying would double the time a call waits on a hung node, and redis-py's
    pipeline retry closes every connection of the client, in-flight ones of other calls too."""
    parts = urlsplit(url)
    hosts, username, password = _hosts(parts.netloc, CLUSTER_SCHEME)
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"{CLUSTER_SCHEME}: a cluster has only db 0")
    _query(parts.query, set(), CLUSTER_SCHEME)
    packing = lean_connection(Connection)
    cluster = FailClosedCluster(
        startup_nodes=[ClusterNode(h, p, connection_class=packing) for h, p in hosts],
        username=username, password=password,
        retry=Retry(NoBackoff(), 0),
        # A node that is down (not yet failed over) leaves its slots unserved; the others serve on.
        require_full_coverage=False,
        max_connections=MAX_CONNECTIONS,
        **_fail_fast(timeout),
    )
    cluster.nodes_manager.connection_kwargs["connection_class"] = packing  # the nodes it discovers
    return cluster
