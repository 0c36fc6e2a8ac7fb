"""PROXY protocol headers (HAProxy's spec, versions 1 and 2), parsed strictly.

An edge proxy that passes TLS through (deploy/k8s/edge/) opens each connection to the gateway with
one header naming the terminal's address, then relays the terminal's bytes untouched. `parse` reads
that header from the start of a buffer and returns what it says and how many bytes it took, or
raises ProxyHeaderError: anything that is not exactly a well-formed header of a TCP connection over
IPv4 or IPv6 (or a LOCAL one: the proxy speaking for itself, e.g. a health check). Pure: no I/O.

Version 1 is one text line, at most 107 bytes with its CRLF:
    PROXY TCP4 203.0.113.7 10.0.0.5 40001 50053\\r\\n     (TCP6 likewise; "PROXY UNKNOWN ...": no address)
Version 2 is binary: a 12-byte signature, version/command, family/protocol, a 16-bit length, the
addresses (12 bytes for IPv4, 36 for IPv6), then TLVs, which are checked for framing and skipped.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the spec's worst case, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version/command, family/protocol, length
V2_MAX_PAYLOAD = 4096  # addresses + TLVs; the spec allows 65535, real proxies send a few hundred bytes at most
MAX_HEADER = V2_FIXED + V2_MAX_PAYLOAD  # no valid header is longer: more unparsed bytes than this is garbage

CMD_LOCAL, CMD_PROXY = 0x0, 0x1
FAMILY_INET_STREAM, FAMILY_INET6_STREAM = 0x11, 0x21
ADDRESS_BYTES = {FAMILY_INET_STREAM: 12, FAMILY_INET6_STREAM: 36}


class ProxyHeaderError(ValueError):
    """Not a valid PROXY protocol header: the connection must be closed."""


class IncompleteHeader(ProxyHeaderError):
    """What there is so far is a valid beginning of a header, but not a whole one: read more (within
    the deadline), or, if the connection ended, it was truncated."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """`source`: the terminal's (ip, port) as the proxy saw it; None for a LOCAL (v2) or UNKNOWN (v1)
    connection, which the proxy opened on its own behalf. `destination` likewise, the address the
    terminal connected to. `length`: the header's bytes; what follows belongs to the relayed stream."""

    version: int
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    length: int


def parse(data: bytes) -> ProxyHeader:
    """The header at the start of `data` (which may hold more: the stream after it)."""
    if not data:
        raise IncompleteHeader("no bytes yet")
    if data[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(data)
    if data[:1] == V1_PREFIX[:1]:
        return _parse_v1(data)
    raise ProxyHeaderError("not a PROXY protocol header")


# ---------------------------------------------------------------------------------------------------
# Version 1


def _parse_v1(data: bytes) -> ProxyHeader:
    head = data[:V1_MAX]
    end = head.find(b"\r\n")
    if end < 0:
        if len(head) >= V1_MAX:
            raise ProxyHeaderError("v1 header longer than 107 bytes")
        _check_v1_partial(head)
        raise IncompleteHeader("v1 header without its CRLF yet")
    line = head[:end]
    if not line.startswith(V1_PREFIX):
        raise ProxyHeaderError("v1 header does not start with 'PROXY '")
    if any(b < 0x20 or b > 0x7E for b in line):
        raise ProxyHeaderError("v1 header holds a byte that is not printable ASCII")
    parts = line.decode("ascii").split(" ")
    length = end + 2
    if parts[1] == "UNKNOWN":
        return ProxyHeader(1, None, None, length)  # the rest of the line is to be ignored (spec 2.1)
    if len(parts) != 6:
        raise ProxyHeaderError("v1 header needs protocol, two addresses and two ports, single-spaced")
    _, proto, src, dst, sport, dport = parts
    if proto == "TCP4":
        kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] = ipaddress.IPv4Address
    elif proto == "TCP6":
        kind = ipaddress.IPv6Address
    else:
        raise ProxyHeaderError("v1 protocol must be TCP4, TCP6 or UNKNOWN")
    return ProxyHeader(1, (_v1_address(kind, src), _v1_port(sport)), (_v1_address(kind, dst), _v1_port(dport)),
                       length)


def _check_v1_partial(head: bytes) -> None:
    """Fail early on a beginning no v1 header can have (so garbage is not waited for)."""
    if not (head.startswith(V1_PREFIX) or V1_PREFIX.startswith(head)):
        raise ProxyHeaderError("not a PROXY protocol header")
    body = head[:-1] if head.endswith(b"\r") else head
    if any(b < 0x20 or b > 0x7E for b in body):
        raise ProxyHeaderError("v1 header holds a byte that is not printable ASCII")


def _v1_address(kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address], text: str) -> str:
    try:
        address = kind(text)
    except ValueError:
        raise ProxyHeaderError(f"v1 header: not an {kind.__name__[:4]} address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise ProxyHeaderError("v1 header: an address with a zone")
    return str(address)


def _v1_port(text: str) -> int:
    # Decimal digits only (no sign, no space, no leading zero), 0-65535.
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0") or len(text) > 5:
        raise ProxyHeaderError("v1 header: not a port")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError("v1 header: port out of range")
    return port


# ---------------------------------------------------------------------------------------------------
# Version 2


def _parse_v2(data: bytes) -> ProxyHeader:
    fixed = data[:V2_FIXED]
    sig = fixed[:len(V2_SIGNATURE)]
    if not V2_SIGNATURE.startswith(sig):
        raise ProxyHeaderError("not a PROXY protocol v2 signature")
    if len(fixed) > 12:
        _check_version_command(fixed[12])
    if len(fixed) > 13:
        _check_family(fixed[12] & 0x0F, fixed[13])
    if len(fixed) < V2_FIXED:
        raise IncompleteHeader("v2 header shorter than its 16 fixed bytes")
    command, family = fixed[12] & 0x0F, fixed[13]
    (payload_length,) = struct.unpack("!H", fixed[14:16])
    if payload_length > V2_MAX_PAYLOAD:
        raise ProxyHeaderError(f"v2 header longer than {V2_MAX_PAYLOAD} bytes after its fixed part")
    length = V2_FIXED + payload_length
    if command == CMD_PROXY and payload_length < ADDRESS_BYTES[family]:
        raise ProxyHeaderError("v2 header too short for its addresses")
    if len(data) < length:
        raise IncompleteHeader("v2 header shorter than its length says")
    payload = data[V2_FIXED:length]
    if command == CMD_LOCAL:
        return ProxyHeader(2, None, None, length)  # addresses (if any) and TLVs are to be ignored
    if family == FAMILY_INET_STREAM:
        src4, dst4, sport, dport = struct.unpack("!4s4sHH", payload[:12])
        source = (str(ipaddress.IPv4Address(src4)), sport)
        destination = (str(ipaddress.IPv4Address(dst4)), dport)
    else:
        src6, dst6, sport, dport = struct.unpack("!16s16sHH", payload[:36])
        source = (str(ipaddress.IPv6Address(src6)), sport)
        destination = (str(ipaddress.IPv6Address(dst6)), dport)
    _check_tlvs(payload[ADDRESS_BYTES[family]:])
    return ProxyHeader(2, source, destination, length)


def _check_version_command(byte: int) -> None:
    if byte >> 4 != 0x2:
        raise ProxyHeaderError("v2 header: version is not 2")
    if byte & 0x0F not in (CMD_LOCAL, CMD_PROXY):
        raise ProxyHeaderError("v2 header: command is neither LOCAL nor PROXY")


def _check_family(command: int, family: int) -> None:
    if command == CMD_PROXY and family not in ADDRESS_BYTES:
        raise ProxyHeaderError("v2 header: PROXY over anything but TCP over IPv4 or IPv6")
    if family >> 4 > 0x3 or family & 0x0F > 0x2:
        raise ProxyHeaderError("v2 header: unknown address family or protocol")


def _check_tlvs(tlvs: bytes) -> None:
    """Each TLV is type (1 byte), length (2 bytes), value: they must fill the rest exactly."""
    at = 0
    while at < len(tlvs):
        if len(tlvs) - at < 3:
            raise ProxyHeaderError("v2 header: truncated TLV")
        (size,) = struct.unpack("!H", tlvs[at + 1:at + 3])
        at += 3 + size
        if at > len(tlvs):
            raise ProxyHeaderError("v2 header: TLV longer than the header")


# ---------------------------------------------------------------------------------------------------
# Writing (for the tests' proxies and anything that must speak to a PROXY-protocol listener)


def v1_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must be of one IP version")
    proto = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {proto} {src} {dst} {source[1]} {destination[1]}\r\n".encode("ascii")


def v2_header(source: tuple[str, int] | None, destination: tuple[str, int] | None = None,
              tlvs: bytes = b"") -> bytes:
    """A v2 PROXY header; `source` None makes a LOCAL one."""
    if source is None:
        return V2_SIGNATURE + struct.pack("!BBH", 0x20 | CMD_LOCAL, 0x00, len(tlvs)) + tlvs
    destination = destination or (("0.0.0.0" if ":" not in source[0] else "::"), 0)
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must be of one IP version")
    family = FAMILY_INET_STREAM if src.version == 4 else FAMILY_INET6_STREAM
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1]) + tlvs
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | CMD_PROXY, family, len(body)) + body
