"""What a transport knows about a call before anything is decided: the facts the pipeline needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CallFacts:
    """One call as the transport received it. `tls` with `peer_uris` and `peer_cert_pem` comes from
    the verified client certificate; `metadata` are the request headers (lower-case names);
    `time_left` tells the seconds before the caller's deadline (None: no deadline)."""

    method: str
    peer: str = ""
    tls: bool = False
    peer_uris: tuple[str, ...] = ()
    peer_cert_pem: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)
    time_left: Callable[[], float | None] = lambda: None
    kind: str = "unary"  # unary, server_stream, client_stream, bidi_stream: for the counters
