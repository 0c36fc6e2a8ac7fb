"""The edge's way in: a listener for PROXY-protocol connections, relaying them to the gRPC server.

grpcio cannot read a PROXY protocol header, so the gateway puts this front before it. An edge proxy
(deploy/k8s/edge/) passes the terminal's TLS through untouched and opens each connection with a
header naming the terminal's address. The front

- admits a connection only from the trusted proxies' addresses (`proxy_trusted`); others are closed
  at once, before a byte is read;
- reads the header (adapters/proxy_protocol.py) within `header_timeout` seconds: a connection that
  sends garbage, too much, or too little in time is closed, and never reaches gRPC;
- opens a TCP connection to the gRPC server's own loopback port and relays bytes both ways. TLS
  stays end to end: the front sees only ciphertext, the gRPC server verifies the terminal's
  certificate exactly as on its main port;
- remembers, while the connection lives, which terminal address the relay's local (ip, port)
  stands for, so `PeerMap.resolve` can turn the peer gRPC reports (`ipv4:127.0.0.1:54321`) into the
  terminal's (`ipv4:203.0.113.7:40001`) for the audit trail.

The relay's local port is bound explicitly (bind to port 0 before connect): such a port is the
relay's alone on this host, no other socket's connect() may share it, so a peer the map knows can
only be one of the front's own connections. Relaying is two asyncio Protocols with flow control
(a full write buffer on one side pauses reading on the other), no coroutine per chunk; when either
side ends, both are closed.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import cast

import structlog
from prometheus_client import Counter

from adapters.proxy_protocol import MAX_HEADER, IncompleteHeader, ProxyHeaderError, parse

log = structlog.get_logger("hallgate.edge")

EDGE_CONNECTIONS = Counter(
    "hallgate_edge_connections_total",
    "Connections to a PROXY-protocol listener, by front (grpc: proxy_listen; browser: browser_proxy_listen) "
    "and outcome: relayed, untrusted (not from a proxy_trusted address), bad_header, header_timeout, "
    "upstream_failed, over_limit.",
    ["front", "outcome"])

HEADER_TIMEOUT = 3.0  # seconds a proxy gets to send the whole header
CONNECT_TIMEOUT = 5.0  # seconds to reach the gRPC server's loopback port
CLOSE_LINGER = 5.0  # seconds a closing side may still flush what it holds before it is aborted
MAX_CONNECTIONS = 8192  # open edge connections per process; more are closed at once
WRITE_HIGH_WATER = 256 * 1024  # bytes buffered for one side before the other side stops being read

Address = tuple[str, int]


def _plain(ip: str) -> str:
    """An IPv4-mapped IPv6 address as IPv4 (a dual-stack socket reports IPv4 peers so)."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def grpc_peer(address: Address) -> str:
    """An (ip, port) in grpc's `context.peer()` form."""
    ip = _plain(address[0])
    return f"ipv6:[{ip}]:{address[1]}" if ":" in ip else f"ipv4:{ip}:{address[1]}"


def parse_grpc_peer(peer: str) -> Address | None:
    """(ip, port) of a grpc peer string (`ipv4:1.2.3.4:5`, `ipv6:[::1]:5`, percent-encoded or not);
    None for anything else (unix sockets, garbage)."""
    kind, _, rest = peer.partition(":")
    host, sep, port = rest.replace("%5B", "[").replace("%5D", "]").rpartition(":")
    if kind not in ("ipv4", "ipv6") or not sep or not port.isdigit():
        return None
    try:
        return _plain(host.strip("[]")), int(port)
    except ValueError:
        return None


def parse_trusted(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`proxy_trusted`: comma-separated addresses or CIDRs. Raises ValueError naming a bad one."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"proxy_trusted: {item!r} is not an address or CIDR") from None
    return tuple(networks)


def split_listen(address: str) -> Address:
    """`host:port` or `[v6]:port` into (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not host:port: {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class PeerMap:
    """The relay's local (ip, port) -> the terminal's address, for the front's open connections."""

    def __init__(self) -> None:
        self._terminals: dict[Address, Address] = {}

    def add(self, relay: Address, terminal: Address) -> None:
        self._terminals[(_plain(relay[0]), relay[1])] = terminal

    def remove(self, relay: Address) -> None:
        self._terminals.pop((_plain(relay[0]), relay[1]), None)

    def __len__(self) -> int:
        return len(self._terminals)

    def relays(self) -> list[Address]:
        """The open relays' local (ip, port)."""
        return list(self._terminals)

    def terminal(self, relay: Address) -> Address | None:
        """The terminal the relay's local (ip, port) stands for, or None if it is no open relay."""
        return self._terminals.get((_plain(relay[0]), relay[1]))

    def resolve(self, peer: str) -> str:
        """The terminal's address in grpc's peer form if `peer` is one of the front's relays, else
        `peer` unchanged."""
        address = parse_grpc_peer(peer)
        terminal = self._terminals.get(address) if address is not None else None
        return grpc_peer(terminal) if terminal is not None else peer


@dataclass
class FrontConfig:
    listen: str
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    upstream: Address  # the gRPC server's loopback address
    header_timeout: float = HEADER_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    reuse_port: bool = False  # workers sharing proxy_listen (each relays to its own gRPC server)
    relay_host: str = "127.0.0.1"  # the relay's own source address (loopback)
    name: str = "grpc"  # the front's label in hallgate_edge_connections_total


class Front:
    """The listener and its open connections. `await Front.start(config, peers)`; `await close()`."""

    def __init__(self, config: FrontConfig, peers: PeerMap) -> None:
        self.config = config
        self.peers = peers
        self.connections: set[EdgeConnection] = set()
        self.server: asyncio.Server | None = None

    @classmethod
    async def start(cls, config: FrontConfig, peers: PeerMap) -> Front:
        front = cls(config, peers)
        host, port = split_listen(config.listen)
        loop = asyncio.get_running_loop()
        front.server = await loop.create_server(lambda: EdgeConnection(front), host, port,
                                                reuse_port=config.reuse_port or None, backlog=1024)
        return front

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.sockets
        return int(self.server.sockets[0].getsockname()[1])

    def trusts(self, address: Address) -> bool:
        try:
            ip = ipaddress.ip_address(_plain(address[0]))
        except ValueError:
            return False
        return any(ip in net for net in self.config.trusted)

    async def close(self) -> None:
        """Stop accepting and close every open connection (both sides). Safe to call again."""
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.abort()
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None


class EdgeConnection(asyncio.Protocol):
    """One connection from an edge proxy: the header, then the relay to gRPC."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.upstream: Upstream | None = None
        self.source: Address = ("", 0)
        self.buffer = bytearray()
        self.pending = bytearray()  # bytes after the header, until the relay is connected
        self.deadline: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.closed = False

    # The proxy's side -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # a stream transport (asyncio's or uvloop's)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.source = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        if not self.front.trusts(self.source):
            self._reject("untrusted")
            return
        if len(self.front.connections) >= self.front.config.max_connections:
            self._reject("over_limit")
            return
        self.front.connections.add(self)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.deadline = asyncio.get_running_loop().call_later(self.front.config.header_timeout, self._timeout)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)
            return
        if self.connecting is not None:  # header read, relay not yet connected (reading is paused)
            self.pending += data
            return
        self.buffer += data
        try:
            header = parse(bytes(self.buffer))
        except IncompleteHeader:
            if len(self.buffer) > MAX_HEADER:  # cannot happen for a valid beginning; kept as a bound
                self._reject("bad_header")
            return
        except ProxyHeaderError as err:
            self._reject("bad_header", reason=str(err))
            return
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.pending = self.buffer[header.length:]
        self.buffer = bytearray()
        # LOCAL/UNKNOWN: the proxy speaks for itself (spec): its own address is the peer.
        terminal = header.source or self.source
        assert self.transport is not None
        self.transport.pause_reading()  # until the relay is connected
        self.connecting = asyncio.get_running_loop().create_task(self._connect(terminal))

    def eof_received(self) -> bool:
        return False  # close: gRPC over TLS has no use for a half-closed connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def pause_writing(self) -> None:  # the proxy reads slower than gRPC writes
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    # The relay ------------------------------------------------------------------------------------

    async def _connect(self, terminal: Address) -> None:
        loop = asyncio.get_running_loop()
        config = self.front.config
        try:
            # local_addr: bind to port 0 first, so the port is exclusively this relay's (module docstring).
            _, upstream = await asyncio.wait_for(
                loop.create_connection(lambda: Upstream(self, terminal), *config.upstream,
                                       local_addr=(config.relay_host, 0)),
                config.connect_timeout)
        except (TimeoutError, OSError) as err:
            log.warning("edge_upstream_failed", error=str(err) or type(err).__name__)
            self._reject("upstream_failed")
            return
        if self.closed:  # the proxy went away meanwhile
            upstream.close()
            return
        self.upstream = upstream
        EDGE_CONNECTIONS.labels(config.name, "relayed").inc()
        if self.pending:
            assert upstream.transport is not None
            upstream.transport.write(bytes(self.pending))
            self.pending = bytearray()
        if self.transport is not None:
            self.transport.resume_reading()

    # Ending ---------------------------------------------------------------------------------------

    def _timeout(self) -> None:
        self.deadline = None
        if self.upstream is None and not self.closed:
            self._reject("header_timeout")

    def _reject(self, outcome: str, reason: str = "") -> None:
        EDGE_CONNECTIONS.labels(self.front.config.name, outcome).inc()
        log.debug("edge_connection_closed", outcome=outcome, source=f"{self.source[0]}:{self.source[1]}",
                  reason=reason or None)
        self.abort()

    def abort(self) -> None:
        """Close both sides now."""
        if self.connecting is not None and not self.connecting.done() and self.connecting is not asyncio.current_task():
            self.connecting.cancel()
        if self.transport is not None:
            self.transport.abort()
        self._finish()
        if self.upstream is not None:
            self.upstream.abort()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.front.connections.discard(self)
        if self.upstream is not None:
            self.upstream.close()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self.transport is not None:
            _linger(self.transport)


class Upstream(asyncio.Protocol):
    """The relay's connection to the gRPC server."""

    def __init__(self, edge: EdgeConnection, terminal: Address) -> None:
        self.edge = edge
        self.terminal: Address | None = terminal
        self.transport: asyncio.Transport | None = None
        self.local: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Connected, nothing sent yet: the terminal is on the map before gRPC can see a byte."""
        assert self.terminal is not None
        transport = cast(asyncio.Transport, transport)  # a stream transport (asyncio's or uvloop's)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        sockname = transport.get_extra_info("sockname")
        self.local = (str(sockname[0]), int(sockname[1]))
        self.edge.front.peers.add(self.local, self.terminal)

    def data_received(self, data: bytes) -> None:
        if self.edge.transport is not None and not self.edge.closed:
            self.edge.transport.write(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if not self.edge.closed:
            self.edge._finish()

    def pause_writing(self) -> None:  # gRPC reads slower than the proxy writes
        if self.edge.transport is not None:
            self.edge.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.edge.transport is not None and not self.edge.closed:
            self.edge.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
            _linger(self.transport)
        self._forget()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._forget()

    def _forget(self) -> None:
        if self.local is not None and self.terminal is not None:
            self.edge.front.peers.remove(self.local)
            self.terminal = None


def _linger(transport: asyncio.Transport) -> None:
    """A closed transport flushes its buffer first; if its peer does not read, abort it in time."""
    asyncio.get_running_loop().call_later(CLOSE_LINGER, transport.abort)
