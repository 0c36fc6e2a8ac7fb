"""Whose address a website call comes from (gateway/domain/client_address.py)."""

from __future__ import annotations

import pytest

from gateway.domain.client_address import client_address, networks, throttle_key

PROXIES = networks("10.0.0.0/8, 2001:db8:ff::/48")


@pytest.mark.parametrize(("peer", "header", "expected"), [
    ("198.51.100.7", "203.0.113.1", "198.51.100.7"),  # not from a proxy: the header is never read
    ("10.1.2.3", "198.51.100.7", "198.51.100.7"),  # from our proxy: its entry
    ("10.1.2.3", "203.0.113.66, 198.51.100.7", "198.51.100.7"),  # a forged entry to the left is ignored
    ("10.1.2.3", "198.51.100.7, 10.9.9.9", "198.51.100.7"),  # two of our proxies in a row
    ("10.1.2.3", "", "10.1.2.3"),  # a proxy's own call
    ("10.1.2.3", "garbage, 198.51.100.7", "198.51.100.7"),
    ("10.1.2.3", "198.51.100.7, garbage", "10.1.2.3"),  # garbage from our side: no further
    ("10.1.2.3", "[2001:db8::5]:443", "2001:db8::5"),
    ("10.1.2.3", "198.51.100.7:5555", "198.51.100.7"),
    ("::ffff:10.1.2.3", "198.51.100.7", "198.51.100.7"),  # a v4 proxy seen on a v6 socket
    ("2001:db8:ff::1", "2001:db8:1::9", "2001:db8:1::9"),
    ("not an address", "198.51.100.7", ""),
])
def test_the_caller_is_the_rightmost_address_that_is_not_our_proxy(peer, header, expected):
    assert client_address(peer, header, PROXIES) == expected


def test_ipv6_callers_are_counted_per_64():
    assert throttle_key("2001:db8:1:2::1") == throttle_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert throttle_key("2001:db8:1:3::1") != throttle_key("2001:db8:1:2::1")
    assert throttle_key("198.51.100.7") == "198.51.100.7"


def test_a_bad_network_is_named():
    with pytest.raises(ValueError, match="not-a-net"):
        networks("10.0.0.0/8,not-a-net")
