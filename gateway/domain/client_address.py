"""Whose address a website call comes from: the throttles per address count it (R9 way 2).

The connecting peer is the caller, unless the peer is one of the operator's own proxies (a
configured network), which name the caller in a header such as X-Forwarded-For. Each proxy appends
the address it got the request from, so the header is read from its right end: the rightmost address
that is not one of our proxies is the caller. Anything to its left was written by the client and is
ignored, so forging the header gains nothing, and from a peer outside those networks the header is
not read at all. IPv6 callers are counted per /64, the block one subscriber line usually gets, so
walking through one's own addresses does not reset the count.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(spec: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDRs; ValueError names a bad one."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {part!r}") from None
    return tuple(out)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Iterable[Network]) -> bool:
    return any(address.version == n.version and address in n for n in proxies)


def client_address(peer: str, forwarded: str, proxies: tuple[Network, ...]) -> str:
    """The caller's address: `peer` (the connection's), or, when `peer` is one of `proxies`, the
    rightmost address in `forwarded` (the header's value) that is not. "" when the peer is no address."""
    address = _address(peer)
    if address is None:
        return ""
    if proxies and _trusted(address, proxies):
        for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
            named = _address(hop)
            if named is None:
                break  # garbage from a hop we trust to write addresses: stop at the last good one
            address = named
            if not _trusted(named, proxies):
                break
    return str(address)


def throttle_key(address: str) -> str:
    """What a throttle counts: the address, or its /64 for IPv6."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
