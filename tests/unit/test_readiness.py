"""Readiness per service (gateway/runtime/metrics.py): each service follows only the dependencies it
needs, `hallgate.ready` what every one needs; and the deny-list fails closed until its first load."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grpc_health.v1 import health_pb2
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.revocations import RevocationList
from gateway.domain.errors import DependencyUnavailable
from gateway.runtime import metrics
from gateway.runtime.bootstrap import SERVICES

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class FakeHealth:
    def __init__(self) -> None:
        self.status: dict[str, int] = {}

    async def set(self, service: str, status: int) -> None:
        self.status[service] = status


def test_every_service_is_named_and_needs_redis_and_the_deny_list() -> None:
    assert set(metrics.SERVICE_NEEDS) == {*SERVICES, metrics.READY}
    for needs in metrics.SERVICE_NEEDS.values():
        assert {"redis", "deny_list"} <= set(needs)
    assert metrics.needs(metrics.READY, ["redis", "billing", "deny_list", "archive"]) == ["redis", "deny_list"]
    assert metrics.needs("something.Else", ["redis", "billing"]) == ["redis", "billing"]  # unknown: everything


def test_checks_exist_only_for_what_is_configured() -> None:
    class Billing:
        target = "127.0.0.1:1"

        async def probe(self) -> bool:
            return True

    class Checked:
        async def check(self) -> None:
            return None

    assert set(metrics.dependency_checks(object(), Billing())) == {"redis", "billing"}
    assert set(metrics.dependency_checks(object(), Billing(), revocations=RevocationList(None),  # type: ignore[arg-type]
                                         documents=object(), archive=None)) == {"redis", "billing", "deny_list"}
    assert set(metrics.dependency_checks(object(), None, documents=Checked(), archive=Checked())) == {
        "redis", "documents", "archive"}


async def test_each_service_follows_only_its_own_dependencies() -> None:
    up = dict.fromkeys(["redis", "deny_list", "billing", "documents", "archive"], True)

    def check(name: str) -> metrics.Check:
        async def probe() -> bool:
            if not up[name]:
                raise ConnectionError(f"{name} is gone")
            return True

        return probe

    health = FakeHealth()
    services = [*SERVICES, metrics.READY]
    task = asyncio.create_task(metrics.watch_readiness(health, services, {n: check(n) for n in up}, every=0.02,
                                                       probe_seconds=0.05))

    async def until(expected: dict[str, int]) -> None:
        for _ in range(200):
            if health.status == expected:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(health.status)

    def short(*down: str) -> dict[str, int]:
        return {s: NOT_SERVING if s.rsplit(".", 1)[-1] in down else SERVING for s in services}

    try:
        await until(short())
        up["billing"] = False
        await until(short("KioskService", "ClerkService", "LegalService"))
        assert REGISTRY.get_sample_value("hallgate_dependency_up", {"dependency": "billing"}) == 0
        up["billing"], up["documents"] = True, False
        await until(short("LegalService"))
        up["documents"], up["archive"] = True, False
        await until(short("AuditService"))
        up["archive"], up["deny_list"] = True, False
        await until(short(*(s.rsplit(".", 1)[-1] for s in services)))
        up["deny_list"] = True
        await until(short())
    finally:
        task.cancel()


class Redis:
    """smembers answers from `members`, or fails like an unreachable Redis."""

    def __init__(self) -> None:
        self.members: set[bytes] | None = None
        self.calls = 0

    async def smembers(self, key: str) -> Any:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.members is None:
            raise RedisConnectionError("Error 111 connecting")
        return self.members


async def test_the_deny_list_fails_closed_until_its_first_load() -> None:
    redis = Redis()
    denied = RevocationList(redis)  # type: ignore[arg-type]
    with pytest.raises(DependencyUnavailable):
        denied.revoked("H001/kiosk/K01", "")
    with pytest.raises(DependencyUnavailable):
        await denied.refresh()
    assert not denied.loaded
    redis.members = {b"H001/kiosk/K01"}
    redis.calls = 0
    await asyncio.gather(*(denied.refresh() for _ in range(5)))  # the first calls share one load
    assert redis.calls == 1 and denied.loaded
    assert denied.revoked("H001/kiosk/K01", "") and not denied.revoked("H001/kiosk/K02", "")
    redis.members = None  # a later failure keeps the last list
    with pytest.raises(DependencyUnavailable):
        await denied.refresh()
    assert denied.revoked("H001/kiosk/K01", "")
