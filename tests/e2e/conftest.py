"""Fixtures of the e2e ring: highly available Redis topologies on loopback (tests/support/topologies.py),
module scope: the tests of one module share one topology; the ones that break it say so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.topologies import RedisClusterTopology, RedisSentinelTopology, running_cluster, running_sentinel


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterTopology]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as topology:
        yield topology


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelTopology]:
    with running_sentinel(tmp_path_factory.mktemp("sentinel")) as topology:
        yield topology
