"""The browser listener's sockets: TLS here, HTTP/1.1 and HTTP/2 by hypercorn, per connection.

TLS is terminated by this module (asyncio with an ssl context) rather than by hypercorn's own
server, for one reason: the application must know the client certificate a kiosk presented, and
hypercorn does not tell it. So each accepted connection is handed to hypercorn's connection class
(pinned: pyproject.toml) with the application wrapped to put the verified certificate into the
request scope as the ASGI TLS extension (`scope["extensions"]["tls"]["client_cert_chain"]`).
A certificate is optional here (the website has none) but, when given, must chain to the hall CA;
the pipeline then identifies and checks it exactly as on gRPC (SPIFFE ID, revocation).

Behind the edge (`browser_proxy_listen`, gateway/runtime/edge.py) the edge front relays each
connection, after its PROXY header, to a loopback port of this listener's own (`relay_port`), and
requests on it carry the browser's address from the header as their ASGI `client`, never the
relay's: the front's PeerMap says which relay stands for which browser.

The server certificate and key are re-read when their files change (tls_files.TlsFiles), for new
connections; a changed hall CA bundle needs a restart here (OpenSSL adds to a trust store, it does
not take away).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config

from gateway.transport.proxy_front import PeerMap
from gateway.transport.tls_files import TlsFiles, TlsMaterial

log = structlog.get_logger("hallgate.browser")

HANDSHAKE_TIMEOUT = 10.0


def hypercorn_config(keep_alive: float = 30, read_timeout: int = 60) -> Config:
    """Hypercorn's settings: no Server header, bounded idle and reads (a slow client cannot hold a
    connection forever), its own logs through the stdlib logging the gateway renders as JSON."""
    config = Config()
    config.include_server_header = False
    config.keep_alive_timeout = keep_alive
    config.read_timeout = read_timeout
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 5
    return config


def _load(context: ssl.SSLContext, material: TlsMaterial) -> None:
    """Load a chain and key held in memory (memfds: nothing written to disk)."""
    fds = []
    try:
        paths = []
        for part in (material.chain, material.key):
            fd = os.memfd_create("hallgate-tls", os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, part)
            paths.append(f"/proc/self/fd/{fd}")
        context.load_cert_chain(paths[0], paths[1])
    finally:
        for fd in fds:
            os.close(fd)


def server_context(material: TlsMaterial) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2", "http/1.1"])
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=material.client_ca.decode())
    _load(context, material)
    return context


class WithTls:
    """Hypercorn's application wrapper for one connection: the application, with the connection's
    client certificate in every request's scope and, on a relayed connection, the browser's
    address the edge proxy named (`client`) in place of the relay's."""

    def __init__(self, app: Any, tls: dict[str, Any], client: tuple[str, int] | None = None) -> None:
        self.app = app
        self.tls = tls
        self.client = client

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any, sync_spawn: Callable[..., Any],
                       call_soon: Callable[..., Any]) -> None:
        if scope["type"] == "http":
            scope = {**scope, "extensions": {**scope.get("extensions", {}), "tls": self.tls}}
            if self.client is not None:
                scope["client"] = self.client
        await self.app(scope, receive, send)


def _tls_extension(ssl_object: ssl.SSLObject | None) -> dict[str, Any]:
    if ssl_object is None:
        return {}
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    return {"client_cert_chain": chain, "server_cert": None, "client_cert_name": None, "client_cert_error": None,
            "tls_version": None, "cipher_suite": None}


class BrowserListener:
    """Serve `app` on `address` over TLS until `close`."""

    def __init__(self, app: Any, address: str, files: TlsFiles, reuse_port: bool = False,
                 config: Config | None = None) -> None:
        self.app = app
        self.address = address
        self.files = files
        self.reuse_port = reuse_port
        self.config = config or hypercorn_config()
        self.context = server_context(files.current)
        self.worker = WorkerContext(None)
        self.server: asyncio.Server | None = None
        self.relay: asyncio.Server | None = None  # the edge front's loopback port (relay_port)
        self.relay_bound = 0  # ... its number
        self.port = 0
        self.connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._reload: asyncio.Task[None] | None = None

    def _socket(self, address: str, reuse_port: bool) -> socket.socket:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP. Without it
        # a response's head and body, written apart, wait out the client's delayed ACK (40 ms each).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, int(port)))
        sock.listen(512)
        sock.setblocking(False)
        return sock

    async def _serve(self, sock: socket.socket, peers: PeerMap | None = None) -> asyncio.Server:
        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connection(reader, writer, peers)

        return await asyncio.start_server(connection, sock=sock, ssl=self.context,
                                          ssl_handshake_timeout=HANDSHAKE_TIMEOUT)

    async def start(self) -> int:
        sock = self._socket(self.address, self.reuse_port)
        self.port = sock.getsockname()[1]
        self.server = await self._serve(sock)
        if self.files.every > 0:
            self._reload = asyncio.create_task(self._watch())
        log.info("browser_listening", address=f"{self.address.rpartition(':')[0]}:{self.port}")
        return self.port

    async def relay_port(self, peers: PeerMap) -> int:
        """Serve a port of its own on 127.0.0.1 for the edge front (gateway/runtime/edge.py), whose
        requests name the browser `peers` maps each relay to; returns it. A port per listener, not
        the main address: with --workers that is shared, and a relay could reach another worker,
        whose map does not know it."""
        sock = self._socket("127.0.0.1:0", reuse_port=False)
        self.relay = await self._serve(sock, peers)
        self.relay_bound = int(sock.getsockname()[1])
        return self.relay_bound

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          peers: PeerMap | None = None) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections[task] = writer
        try:
            client = None
            if peers is not None:
                # Asked once, when the connection's TLS handshake is done (the front names a relay
                # before it passes a byte on), and kept: the front forgets the relay as soon as it
                # closes, possibly before the last request it passed is read. A connection to this
                # port that is no relay of the front's (another local process) is closed unserved.
                relay = writer.get_extra_info("peername")
                client = peers.terminal((str(relay[0]), int(relay[1]))) if relay else None
                if client is None:
                    log.warning("browser_relay_unknown", relay=str(relay))
                    writer.transport.abort()
                    return
            app = WithTls(self.app, _tls_extension(writer.get_extra_info("ssl_object")), client)
            loop = asyncio.get_running_loop()
            await TCPServer(app, loop, self.config, self.worker, {}, reader, writer)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            pass  # closed by `close` after its grace: the connection ends here, nothing to report
        finally:
            self.connections.pop(task, None)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.files.every)
            try:
                material = self.files.check()
                if material is not None:
                    _load(self.context, material)  # the context new handshakes use
            except Exception as err:
                log.warning("browser_tls_reload_failed", error=type(err).__name__)

    async def close(self, grace: float = 5.0) -> None:
        if self._reload is not None:
            self._reload.cancel()
        for server in (self.server, self.relay):
            if server is not None:
                server.close()
        await self.worker.terminated.set()
        if self.connections:
            _, pending = await asyncio.wait(list(self.connections), timeout=grace)
            # Past the grace: the connections are cut (their transports aborted, so no read or write
            # can wait on) and their tasks cancelled. A cancellation can be lost on Python 3.11 inside
            # asyncio.wait_for (which hypercorn reads with); the aborted transport ends them anyway.
            for task in pending:
                writer = self.connections.get(task)
                if writer is not None:
                    writer.transport.abort()
                task.cancel()
            _, stuck = await asyncio.wait(pending, timeout=5) if pending else (set(), set())
            if stuck:
                log.warning("browser_connections_left", count=len(stuck))
        for server in (self.server, self.relay):
            if server is not None:
                await server.wait_closed()


def files_of(cert: str, key: str, client_ca: str, every: float) -> TlsFiles:
    return TlsFiles(Path(cert), Path(key), Path(client_ca), every)
