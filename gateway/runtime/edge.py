"""The edge front, wired: what `create_server` and `serve` need for `proxy_listen` (deploy/k8s/edge/).

    edge = Edge.of(settings)                      # None unless proxy_listen is set
    server, port, health = create_server(settings, deps, edge=edge)   # peers resolved; loopback port bound
    await server.start(); await edge.start()      # the front listens on proxy_listen
    ...; await server.stop(grace); await edge.close()

Why the front has a loopback port of its own on the gRPC server (bound in `bind`) rather than
relaying to the main listen address: with `--workers N` every worker binds the main port with
SO_REUSEPORT, so a relay to it could land on another worker, whose PeerMap does not know the
connection; and the main address need not be reachable on loopback (a pod IP, say). The own port
takes the same mutual-TLS credentials as the main one, on 127.0.0.1 only.

The browser listener has an edge front of its own (`browser_proxy_listen`, `Edge.for_browsers`),
the same front with its own PeerMap, relaying to a loopback port of the browser listener's
(`BrowserListener.relay_port`) for the same reasons; gateway/runtime/browser.py starts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
import structlog

from gateway.runtime.settings import Settings
from gateway.transport.proxy_front import Front, FrontConfig, PeerMap, parse_trusted, split_listen

log = structlog.get_logger("hallgate.edge")


@dataclass
class Edge:
    """The PeerMap the gRPC transport resolves peers with, and the front filling it."""

    settings: Settings
    listen: str  # proxy_listen or browser_proxy_listen
    name: str = "grpc"  # which: grpc or browser (the metric's label)
    peers: PeerMap = field(default_factory=PeerMap)
    upstream_port: int = 0
    front: Front | None = None

    @classmethod
    def of(cls, settings: Settings) -> Edge | None:
        """An Edge for gRPC when `proxy_listen` is set; a one-line ValueError if its settings cannot work."""
        return cls._checked(settings, "proxy_listen", settings.proxy_listen, "grpc")

    @classmethod
    def for_browsers(cls, settings: Settings) -> Edge | None:
        """An Edge for the browser listener when `browser_proxy_listen` is set; likewise checked."""
        if settings.browser_proxy_listen and not settings.browser_listen:
            raise ValueError("browser_proxy_listen is set but browser_listen is not: the front relays to the "
                             "browser listener (set HALLGATE_BROWSER_LISTEN, e.g. to 127.0.0.1:8443)")
        return cls._checked(settings, "browser_proxy_listen", settings.browser_proxy_listen, "browser")

    @classmethod
    def _checked(cls, settings: Settings, name: str, listen: str, front: str) -> Edge | None:
        if not listen:
            return None
        split_listen(listen)
        if not parse_trusted(settings.proxy_trusted):
            raise ValueError(f"{name} is set but proxy_trusted names no proxy: every edge connection "
                             "would be closed (set HALLGATE_PROXY_TRUSTED to the edge proxies' addresses)")
        return cls(settings, listen, front)

    def bind(self, server: grpc.aio.Server, credentials: grpc.ServerCredentials | None) -> int:
        """Give the (not yet started) gRPC server the front's own loopback port; returns it."""
        address = "127.0.0.1:0"
        port = (server.add_insecure_port(address) if credentials is None
                else server.add_secure_port(address, credentials))
        if port == 0:
            raise RuntimeError("cannot bind the edge front's loopback port on the gRPC server")
        self.upstream_port = port
        return port

    async def start(self) -> Front:
        """Listen (after the server it relays to started). The upstream port is the gRPC server's
        (`bind`) or the browser listener's (`BrowserListener.relay_port`)."""
        if not self.upstream_port:
            raise RuntimeError("Edge.start before its upstream port: create_server(..., edge=edge) binds it")
        config = FrontConfig(listen=self.listen, trusted=parse_trusted(self.settings.proxy_trusted),
                             upstream=("127.0.0.1", self.upstream_port), reuse_port=self.settings.workers > 1,
                             name=self.name)
        self.front = await Front.start(config, self.peers)
        log.info("edge_front", front=self.name, address=self.listen, port=self.front.port,
                 trusted=self.settings.proxy_trusted, relay_port=self.upstream_port)
        return self.front

    @property
    def port(self) -> int:
        """The port the front listens on (proxy_listen with port 0 picks one)."""
        assert self.front is not None, "the front has not started"
        return self.front.port

    async def close(self) -> None:
        """Stop the front and close its connections; safe to call again and before start."""
        if self.front is not None:
            await self.front.close()
            self.front = None

