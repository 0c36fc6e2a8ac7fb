"""adapters/proxy_protocol.py: PROXY protocol v1 and v2 headers, parsed strictly; and the peer
strings of gateway/transport/proxy_front.py."""

from __future__ import annotations

import ipaddress
import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.proxy_protocol import (
    MAX_HEADER,
    V1_MAX,
    V2_MAX_PAYLOAD,
    V2_SIGNATURE,
    IncompleteHeader,
    ProxyHeader,
    ProxyHeaderError,
    parse,
    v1_header,
    v2_header,
)
from gateway.transport.proxy_front import PeerMap, grpc_peer, parse_grpc_peer, parse_trusted, split_listen

TLS_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # what follows the header: the terminal's TLS


# ---------------------------------------------------------------------------------------------------
# Version 1


def test_v1_tcp4_gives_source_destination_and_length() -> None:
    header = b"PROXY TCP4 203.0.113.7 10.0.0.5 40001 50053\r\n"
    assert parse(header + TLS_HELLO) == ProxyHeader(1, ("203.0.113.7", 40001), ("10.0.0.5", 50053), len(header))


def test_v1_tcp6() -> None:
    header = b"PROXY TCP6 2001:db8::7 2001:db8::1 40001 443\r\n"
    got = parse(header)
    assert got.source == ("2001:db8::7", 40001) and got.destination == ("2001:db8::1", 443)


def test_v1_unknown_has_no_address_and_ignores_the_rest_of_the_line() -> None:
    assert parse(b"PROXY UNKNOWN\r\n").source is None
    header = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"
    assert parse(header + TLS_HELLO) == ProxyHeader(1, None, None, len(header))


def test_v1_longest_headers_are_accepted_and_one_byte_more_is_not() -> None:
    six = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    tcp6 = f"PROXY TCP6 {six} {six} 65535 65535\r\n".encode()
    assert parse(tcp6).source == (six, 65535)
    unknown = f"PROXY UNKNOWN {six} {six} 65535 65535\r\n".encode()  # the spec's worst case
    assert len(unknown) == V1_MAX
    assert parse(unknown).length == V1_MAX
    with pytest.raises(ProxyHeaderError):
        parse(f"PROXY UNKNOWN {six} {six} 65535 655355\r\n".encode())


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 203.0.113.7 10.0.0.5 40001 50053\n",           # LF only: no CRLF within 107 bytes -> see below
    b"PROXY TCP4 203.0.113.7 10.0.0.5 40001\r\n",                # a port missing
    b"PROXY TCP4 203.0.113.7 10.0.0.5 40001 50053 7\r\n",        # one field too many
    b"PROXY TCP4  203.0.113.7 10.0.0.5 40001 50053\r\n",         # two spaces
    b"PROXY TCP4 203.0.113.7 10.0.0.5 40001 50053 \r\n",         # trailing space
    b"PROXY TCP5 203.0.113.7 10.0.0.5 40001 50053\r\n",          # no such protocol
    b"PROXY tcp4 203.0.113.7 10.0.0.5 40001 50053\r\n",          # case matters
    b"PROXY TCP4 2001:db8::7 10.0.0.5 40001 50053\r\n",          # IPv6 under TCP4
    b"PROXY TCP6 203.0.113.7 2001:db8::1 40001 443\r\n",         # IPv4 under TCP6
    b"PROXY TCP4 203.0.113.256 10.0.0.5 40001 50053\r\n",        # not an address
    b"PROXY TCP4 203.0.113.07 10.0.0.5 40001 50053\r\n",         # leading zero in the address
    b"PROXY TCP4 203.0.113.7 10.0.0.5 65536 50053\r\n",          # port out of range
    b"PROXY TCP4 203.0.113.7 10.0.0.5 040001 50053\r\n",         # leading zero in the port
    b"PROXY TCP4 203.0.113.7 10.0.0.5 +4000 50053\r\n",          # a sign
    b"PROXY TCP4 203.0.113.7 10.0.0.5 -1 50053\r\n",
    b"PROXY TCP6 fe80::1%eth0 fe80::2 40001 443\r\n",            # a zone
    b"PROXY TCP4 203.0.113.7 10.0.0.5 4\xd9\xa1 50053\r\n",      # a non-ASCII digit
    b"PROXY TCP4 203.0.113.7\t10.0.0.5 40001 50053\r\n",         # a control character
    b"PROXY\r\n",
    b"PROXY \r\n",
    b"PROXYTCP4 203.0.113.7 10.0.0.5 40001 50053\r\n",
    b"proxy TCP4 203.0.113.7 10.0.0.5 40001 50053\r\n",
])
def test_malformed_v1_is_refused(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(line + b"x" * 200)  # enough bytes after it that nothing can be "incomplete"


def test_v1_without_crlf_within_107_bytes_is_refused() -> None:
    with pytest.raises(ProxyHeaderError) as err:
        parse(b"PROXY UNKNOWN " + b"a" * 200)
    assert not isinstance(err.value, IncompleteHeader)


def test_every_beginning_of_a_v1_header_is_incomplete() -> None:
    header = b"PROXY TCP4 203.0.113.7 10.0.0.5 40001 50053\r\n"
    for cut in range(1, len(header)):
        with pytest.raises(IncompleteHeader):
            parse(header[:cut])
    assert parse(header).length == len(header)


@pytest.mark.parametrize("start", [b"X", b"PRI * HTTP/2.0\r\n", TLS_HELLO, b"GET / HTTP/1.1\r\n", b"PROXZ",
                                   b"PROXY TCP4 1.2.3.4\x00", b"\x00" * 16])
def test_garbage_is_refused_from_its_first_wrong_byte(start: bytes) -> None:
    with pytest.raises(ProxyHeaderError) as err:
        parse(start)
    assert not isinstance(err.value, IncompleteHeader)


def test_no_bytes_is_incomplete() -> None:
    with pytest.raises(IncompleteHeader):
        parse(b"")


# ---------------------------------------------------------------------------------------------------
# Version 2


def test_v2_ipv4() -> None:
    header = v2_header(("203.0.113.7", 40001), ("10.0.0.5", 50053))
    assert len(header) == 16 + 12
    assert parse(header + TLS_HELLO) == ProxyHeader(2, ("203.0.113.7", 40001), ("10.0.0.5", 50053), 28)


def test_v2_ipv6() -> None:
    header = v2_header(("2001:db8::7", 40001), ("2001:db8::1", 443))
    assert len(header) == 16 + 36
    assert parse(header).source == ("2001:db8::7", 40001)


def test_v2_bytes_as_envoy_sends_them() -> None:
    """A literal header, not made by this module's writer: PROXY, TCP over IPv4, 12 bytes."""
    header = (b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a" b"\x21" b"\x11" b"\x00\x0c"
              b"\xcb\x00\x71\x07" b"\x0a\x00\x00\x05" b"\x9c\x41" b"\xc3\x85")
    assert parse(header) == ProxyHeader(2, ("203.0.113.7", 40001), ("10.0.0.5", 50053), 28)


def test_v2_tlvs_are_skipped() -> None:
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x00" + b"\x20\x00\x05" + b"\x01\x00\x00\x00\x00"  # ALPN, NOOP, SSL
    header = v2_header(("203.0.113.7", 40001), ("10.0.0.5", 50053), tlvs)
    got = parse(header + TLS_HELLO)
    assert got.source == ("203.0.113.7", 40001) and got.length == len(header)


def test_v2_local_has_no_address_and_skips_its_payload() -> None:
    assert parse(v2_header(None) + TLS_HELLO) == ProxyHeader(2, None, None, 16)
    # LOCAL with an address block (some proxies send one): ignored, but skipped whole.
    with_address = bytearray(v2_header(("203.0.113.7", 40001), ("10.0.0.5", 50053)))
    with_address[12] = 0x20
    assert parse(bytes(with_address)) == ProxyHeader(2, None, None, 28)


def _v2(ver_cmd: int = 0x21, family: int = 0x11, body: bytes = b"\x00" * 12, length: int | None = None) -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", ver_cmd, family, len(body) if length is None else length) + body


@pytest.mark.parametrize("header", [
    _v2(ver_cmd=0x11),                       # version 1 in a v2 header
    _v2(ver_cmd=0x31),                       # version 3
    _v2(ver_cmd=0x22),                       # command 2
    _v2(ver_cmd=0x2F),
    _v2(family=0x12),                        # PROXY over UDP (DGRAM)
    _v2(family=0x00),                        # PROXY with AF_UNSPEC
    _v2(family=0x31, body=b"\x00" * 216),    # PROXY over a unix socket
    _v2(family=0x41),                        # no such family
    _v2(family=0x13),                        # no such protocol
    _v2(family=0x11, body=b"\x00" * 11),     # too short for IPv4 addresses
    _v2(family=0x21, body=b"\x00" * 35),     # too short for IPv6 addresses
    _v2(body=b"\x00" * 12 + b"\x01\x00"),    # a truncated TLV
    _v2(body=b"\x00" * 12 + b"\x01\x00\x05ab"),  # a TLV longer than the header
    _v2(body=b"\x00" * (V2_MAX_PAYLOAD + 1)),    # longer than the limit
    _v2(ver_cmd=0x20, family=0x00, body=b"", length=0xFFFF),  # the spec's maximum: still too long here
    b"\r\n\r\n\x00\r\nQUIT\r",               # a wrong signature byte
    b"\r\n\r\n\x01",
])
def test_malformed_v2_is_refused(header: bytes) -> None:
    with pytest.raises(ProxyHeaderError) as err:
        parse(header)
    assert not isinstance(err.value, IncompleteHeader)


def test_every_beginning_of_a_v2_header_is_incomplete() -> None:
    header = v2_header(("2001:db8::7", 40001), ("2001:db8::1", 443), b"\x04\x00\x03abc")
    for cut in range(1, len(header)):
        with pytest.raises(IncompleteHeader):
            parse(header[:cut])
    assert parse(header).length == len(header)


def test_writers_refuse_mixed_versions() -> None:
    with pytest.raises(ValueError):
        v2_header(("203.0.113.7", 1), ("2001:db8::1", 2))
    with pytest.raises(ValueError):
        v1_header(("203.0.113.7", 1), ("2001:db8::1", 2))


# ---------------------------------------------------------------------------------------------------
# Properties

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)
tlv = st.tuples(st.integers(0, 255), st.binary(max_size=40)).map(lambda t: struct.pack("!BH", t[0], len(t[1])) + t[1])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)), ports, ports, st.lists(tlv, max_size=5),
       st.binary(max_size=64), st.booleans())
def test_round_trip(ips: tuple[str, str], sport: int, dport: int, tlvs: list[bytes], rest: bytes, v1: bool) -> None:
    src, dst = (ips[0], sport), (ips[1], dport)
    header = v1_header(src, dst) if v1 else v2_header(src, dst, b"".join(tlvs))
    got = parse(header + rest)
    assert got.source == (str(ipaddress.ip_address(ips[0])), sport)
    assert got.destination == (str(ipaddress.ip_address(ips[1])), dport)
    assert got.length == len(header)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_only_header_errors(data: bytes) -> None:
    try:
        got = parse(data)
    except ProxyHeaderError:
        return
    assert 0 < got.length <= min(len(data), MAX_HEADER)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_a_valid_header_with_one_byte_changed_never_crashes(data: st.DataObject) -> None:
    header = data.draw(st.sampled_from([v1_header(("203.0.113.7", 40001), ("10.0.0.5", 50053)),
                                        v2_header(("203.0.113.7", 40001), ("10.0.0.5", 50053), b"\x04\x00\x01z"),
                                        v2_header(("2001:db8::7", 40001), ("2001:db8::1", 443))]))
    at = data.draw(st.integers(0, len(header) - 1))
    value = data.draw(st.integers(0, 255))
    changed = header[:at] + bytes([value]) + header[at + 1:]
    try:
        got = parse(changed)
    except ProxyHeaderError:
        return
    assert got.length <= len(changed)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=MAX_HEADER + 100))
def test_a_prefix_is_never_accepted_past_its_own_bytes(data: bytes) -> None:
    """Whatever is accepted lies inside what was given: never reads past the buffer."""
    for cut in (1, len(data) // 2, len(data)):
        try:
            got = parse(data[:cut])
        except ProxyHeaderError:
            continue
        assert got.length <= cut


# ---------------------------------------------------------------------------------------------------
# Peer strings and settings (gateway/transport/proxy_front.py)


def test_peer_strings_round_trip() -> None:
    assert grpc_peer(("203.0.113.7", 40001)) == "ipv4:203.0.113.7:40001"
    assert grpc_peer(("2001:db8::7", 40001)) == "ipv6:[2001:db8::7]:40001"
    assert grpc_peer(("::ffff:203.0.113.7", 1)) == "ipv4:203.0.113.7:1"
    assert parse_grpc_peer("ipv4:127.0.0.1:54321") == ("127.0.0.1", 54321)
    assert parse_grpc_peer("ipv6:[::1]:54321") == ("::1", 54321)
    assert parse_grpc_peer("ipv6:%5B::1%5D:54321") == ("::1", 54321)
    assert parse_grpc_peer("ipv6:[::ffff:127.0.0.1]:5") == ("127.0.0.1", 5)
    for other in ("unix:/tmp/s", "", "ipv4:", "ipv4:1.2.3.4", "ipv4:1.2.3.4:x", "ipv4:nohost:5"):
        assert parse_grpc_peer(other) is None


def test_peer_map_resolves_known_relays_only() -> None:
    peers = PeerMap()
    peers.add(("127.0.0.1", 54321), ("203.0.113.7", 40001))
    peers.add(("::ffff:127.0.0.1", 54322), ("2001:db8::7", 40002))
    assert peers.resolve("ipv4:127.0.0.1:54321") == "ipv4:203.0.113.7:40001"
    assert peers.resolve("ipv6:[::ffff:127.0.0.1]:54321") == "ipv4:203.0.113.7:40001"
    assert peers.resolve("ipv4:127.0.0.1:54322") == "ipv6:[2001:db8::7]:40002"
    assert peers.resolve("ipv4:127.0.0.1:1") == "ipv4:127.0.0.1:1"
    assert peers.resolve("ipv4:10.0.0.9:54321") == "ipv4:10.0.0.9:54321"
    assert peers.resolve("unix:/x") == "unix:/x"
    peers.remove(("127.0.0.1", 54321))
    assert peers.resolve("ipv4:127.0.0.1:54321") == "ipv4:127.0.0.1:54321"
    assert len(peers) == 1


def test_trusted_and_listen_settings() -> None:
    assert [str(n) for n in parse_trusted(" 10.244.0.0/16, 192.0.2.7 ,,2001:db8::/32")] == [
        "10.244.0.0/16", "192.0.2.7/32", "2001:db8::/32"]
    assert parse_trusted("") == ()
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/33'")):
        parse_trusted("10.0.0.0/33")
    assert split_listen("0.0.0.0:50053") == ("0.0.0.0", 50053)
    assert split_listen("[::]:50053") == ("::", 50053)
    with pytest.raises(ValueError):
        split_listen("50053")
