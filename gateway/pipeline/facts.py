"""What a transport knows about a call before anything is decided: the facts the pipeline needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BrowserFacts:
    """What the browser listener saw of a call (gateway/transport/browser/): `origin` the Origin header
    ("" without one), `site` the origin the request was addressed to (https://<Host>), `csrf` whether
    the X-CSRF-Token header equals the CSRF cookie (both present and non-empty), `client` the caller's
    address (a trusted proxy's header believed only from that proxy: gateway/domain/client_address.py),
    `challenge` the bot-challenge token ("" without one)."""

    origin: str
    site: str
    csrf: bool
    client: str
    challenge: str = ""


@dataclass(frozen=True, slots=True)
class CallFacts:
    """One call as the transport received it. `tls` with `peer_uris` and `peer_cert_pem` comes from
    the verified client certificate (`tls` is set only with one); `metadata` are the request headers (lower-case names);
    `time_left` tells the seconds before the caller's deadline (None: no deadline)."""

    method: str
    peer: str = ""
    tls: bool = False
    peer_uris: tuple[str, ...] = ()
    peer_cert_pem: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)
    time_left: Callable[[], float | None] = lambda: None
    kind: str = "unary"  # unary, server_stream, client_stream, bidi_stream: for the counters
    browser: BrowserFacts | None = None  # set by the browser listener only (Connect, gRPC-Web)
