"""Fixtures: a real redis-server on a free loopback port, the billing simulator and the gateway
served over real gRPC channels. `--redis-url` points the suite at an existing Redis instead."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
import redis.asyncio as aioredis

from adapters.audit_redis import AUDIT_STREAM, RedisStreamAuditSink
from adapters.billing_client import GrpcBilling
from adapters.billing_sim.data import SeededBilling
from adapters.billing_sim.server import start_billing_sim
from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess, free_port
from adapters.redis_state import RedisSignInState
from adapters.sms_outbox import OutboxSms, read_outbox
from gateway.bootstrap import Deps, create_server
from gateway.settings import Settings
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc

CODE_RE = re.compile(r"code is (\d{6})")
TEST_SEED = "hallgate-test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-url", default=None, help="use this Redis instead of starting one (it is FLUSHALLed)")


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = request.config.getoption("--redis-url")
    if given:
        yield given
        return
    proc = RedisServerProcess(tmp_path_factory.mktemp("redis"), port=free_port()).start()
    try:
        yield proc.url
    finally:
        proc.stop()


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    with redis.Redis.from_url(redis_url) as r:
        r.flushall()
    return redis_url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    """A Redis of this test's own, which the test may stop or kill."""
    proc = RedisServerProcess(tmp_path / "own-redis", port=free_port()).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def billing_data() -> SeededBilling:
    return SeededBilling(seed=TEST_SEED, subscribers=1200, hash_n=2**10)


@dataclass
class Harness:
    """One gateway served on a free loopback port, with its billing simulator and helpers."""

    settings: Settings
    stub: kiosk_pb2_grpc.KioskServiceStub
    channel: grpc.aio.Channel
    redis: aioredis.Redis
    outbox_path: Path
    billing: SeededBilling
    billing_server: grpc.aio.Server
    server: grpc.aio.Server
    port: int
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def messages(self, msisdn: str) -> list[str]:
        return [m["text"] for m in read_outbox(self.outbox_path, msisdn)]

    def last_code(self, msisdn: str) -> str:
        codes = [m.group(1) for t in self.messages(msisdn) if (m := CODE_RE.search(t))]
        assert codes, f"no code was sent to {msisdn}"
        return codes[-1]

    async def request_code(self, msisdn: str) -> str:
        await self.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn))
        return self.last_code(msisdn)

    async def sign_in(self, msisdn: str) -> str:
        code = await self.request_code(msisdn)
        reply = await self.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=msisdn, service_password=self.billing.password_for(msisdn), one_time_code=code))
        return str(reply.access_token)

    async def audit_events(self) -> list[dict[str, str]]:
        entries = await self.redis.xrange(AUDIT_STREAM)
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


@pytest.fixture
async def make_gateway(clean_redis: str, billing_data: SeededBilling, tmp_path: Path
                       ) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """Factory: `await make_gateway(code_ttl=1, ...)` serves a gateway with those settings."""
    harnesses: list[Harness] = []

    async def factory(redis_url: str | None = None, **overrides: Any) -> Harness:
        settings = Settings(listen="127.0.0.1:0", data_dir=str(tmp_path / "data"), secret_key="test-secret",
                            sim_hash_n=2**10).with_(**overrides)
        billing_server, billing_port = await start_billing_sim(billing_data)
        client = connect(redis_url or clean_redis, settings.redis_timeout)
        billing = GrpcBilling(f"127.0.0.1:{billing_port}", timeout=settings.billing_timeout,
                              page_size=settings.billing_page_size)
        outbox = Path(settings.data_dir) / "sms-outbox.jsonl"
        deps = Deps(state=RedisSignInState(client), billing=billing, sms=OutboxSms(outbox),
                    audit=RedisStreamAuditSink(client), key=settings.key_bytes(), redis=client)
        server, port, _ = create_server(settings, deps)
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        h = Harness(settings, kiosk_pb2_grpc.KioskServiceStub(channel), channel, client, outbox, billing_data,
                    billing_server, server, port,
                    closers=[channel.close, lambda: server.stop(0), billing.close,
                             lambda: billing_server.stop(0), client.aclose])
        harnesses.append(h)
        return h

    yield factory
    for h in harnesses:
        for close in h.closers:
            try:
                await close()
            except Exception:  # noqa: S110 - best-effort teardown
                pass


@pytest.fixture
async def gw(make_gateway: Callable[..., Awaitable[Harness]]) -> Harness:
    return await make_gateway()
