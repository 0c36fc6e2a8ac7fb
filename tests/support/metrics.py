"""Prometheus scrapes in the tests: fetch one over real HTTP, read its samples, and check that no
subscriber number appears anywhere in it."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

# A subscriber number as a token of its own (not digits inside a float such as 0.0213800000001).
MSISDN_RE = re.compile(r"(?<![0-9.])1[3-9][0-9]{9}(?![0-9])")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def samples(text: str) -> Samples:
    """{(name, labels): value} of every sample in an exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def delta(before: Samples, after: Samples) -> Callable[..., float]:
    """d(name, **labels): how far a sample moved from `before` to `after` (absent counts as 0)."""
    def d(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    return d


def assert_no_subscriber_numbers(text: str) -> None:
    found = MSISDN_RE.search(text)
    assert found is None, text[max(0, found.start() - 200):found.end() + 20]
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert not any(re.search(r"[0-9]{5}", v) for v in s.labels.values()), s
