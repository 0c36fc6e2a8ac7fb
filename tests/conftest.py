"""Fixtures: a real redis-server on a free loopback port, the billing simulator and the gateway
served over real gRPC channels. `--redis-url` points the suite at an existing Redis instead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import pyotp
import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from adapters.billing_sim.data import SeededBilling
from adapters.billing_sim.server import start_billing_sim
from adapters.dev_pki import ensure_dev_pki
from adapters.postgres_server import PostgresServerProcess
from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess, free_port
from adapters.sms.queue import RedisSmsQueue
from adapters.sms_outbox import read_outbox
from gateway.domain import effects, passwords
from gateway.domain.ports import StaffRecord
from gateway.runtime import event_loop
from gateway.runtime.billing_link import billing_client
from gateway.runtime.bootstrap import (
    SERVICES,
    Deps,
    Services,
    build_deps,
    build_services,
    call_pipeline,
    create_server,
    sms_worker,
)
from gateway.runtime.browser import browser_listener, start_browsers
from gateway.runtime.edge import Edge
from gateway.runtime.metrics import dependency_checks, watch_readiness
from gateway.runtime.settings import Settings
from gateway.runtime.sms import SmsWorker
from gateway.transport.browser.listener import BrowserListener
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc, staff_pb2, staff_pb2_grpc
from tests.support.outbox import CODE_RE
from tests.support.postgres import fresh_database
from tests.support.postgres import start_server as start_postgres
from tests.support.staff import STAFF_PASSWORD, fresh_totp
from tests.support.subscribers import HASH_N, SUBSCRIBERS, TEST_SEED
from tests.support.tls import KIOSK_CERT, TRUST_DOMAIN, client_credentials
from tests.support.trail import trail


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-url", default=None, help="use this Redis instead of starting one (it is FLUSHALLed)")


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = request.config.getoption("--redis-url")
    if given:
        yield given
        return
    proc = RedisServerProcess(tmp_path_factory.mktemp("redis"), port=free_port(), appendfsync="always").start()
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
    proc = RedisServerProcess(tmp_path / "own-redis", port=free_port(), appendfsync="always").start()
    try:
        yield proc
    finally:
        proc.stop()


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Every async test on the loop the service runs on (gateway/runtime/event_loop.py)."""
    return {"uvloop": event_loop.new_event_loop}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development hall CA with server and demo terminal certificates (adapters/dev_pki.py)."""
    return ensure_dev_pki(tmp_path_factory.mktemp("pki") / "pki", TRUST_DOMAIN)


@pytest.fixture(scope="session")
def billing_data() -> SeededBilling:
    return SeededBilling(seed=TEST_SEED, subscribers=SUBSCRIBERS, hash_n=HASH_N)


@dataclass
class Harness:
    """One gateway served on a free loopback port, with its billing simulator and helpers."""

    settings: Settings
    stub: kiosk_pb2_grpc.KioskServiceStub
    channel: grpc.aio.Channel
    redis: aioredis.Redis
    outbox_path: Path
    billing: SeededBilling
    billing_server: grpc.aio.Server | None
    server: grpc.aio.Server
    port: int
    pki: Path
    deps: Deps
    services: Services
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    sms: SmsWorker | None = None
    edge: Edge | None = None  # the PROXY-protocol front, when the settings have proxy_listen (edge.port)
    browser: BrowserListener | None = None  # the browser listener, when the settings have browser_listen
    browser_edge: Edge | None = None  # its edge front, when the settings have browser_proxy_listen

    @property
    def browser_url(self) -> str:
        """https://127.0.0.1:<port> of the browser listener (browser_listen="127.0.0.1:0")."""
        assert self.browser is not None, "make_gateway(browser_listen='127.0.0.1:0', ...)"
        return f"https://127.0.0.1:{self.browser.port}"

    def channel_for(self, cert: str) -> grpc.aio.Channel:
        """A new mutual-TLS channel presenting the named demo certificate (closed at teardown)."""
        channel = grpc.aio.secure_channel(f"127.0.0.1:{self.port}", client_credentials(self.pki, cert))
        self.closers.insert(0, channel.close)
        return channel

    async def add_staff(self, staff_id: str, role: str, hall: str = "H001", password: str = STAFF_PASSWORD,
                        changed_days_ago: float = 1, disabled: bool = False) -> str:
        """Put a staff member in the directory; returns their TOTP secret."""
        secret = pyotp.random_base32()
        record = StaffRecord(staff_id, f"Staff {staff_id}", role, hall, passwords.hash_password(password, 2**10),
                             time.time() - changed_days_ago * 86400, secret, disabled)
        await self.deps.staff.put(record)  # the gateway's own store: the secret sealed under its key
        return secret

    async def staff_sign_in(self, cert: str, staff_id: str, secret: str, password: str = STAFF_PASSWORD
                            ) -> tuple[tuple[str, str], ...]:
        """Sign a staff member in on the terminal `cert`; returns the call metadata to use."""
        stub = staff_pb2_grpc.StaffServiceStub(self.channel_for(cert))
        reply = await stub.SignIn(staff_pb2.SignInRequest(staff_id=staff_id, password=password,
                                                          totp_code=fresh_totp(secret)))
        return (("authorization", f"Bearer {reply.staff_token}"),)

    async def messages(self, msisdn: str) -> list[str]:
        """What the number's phone received, once the SMS the gateway queued (after each call's
        audit event was stored, off the request path) have been handed over by the dispatcher."""
        await effects.drain()
        await self.sms_settled()
        return [m["text"] for m in read_outbox(self.outbox_path, msisdn)]

    async def sms_settled(self, seconds: float = 10.0) -> None:
        """Wait until the SMS queue is empty and no dispatcher holds a message (bounded)."""
        assert self.sms is not None
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            try:
                waiting = await cast(RedisSmsQueue, self.deps.sms).depth()
            except RedisError:  # Redis is away (a fault test): nothing can be queued or taken now
                waiting = 0
            if waiting == 0 and not any(d.held for d in self.sms.dispatchers):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the SMS queue did not empty in time")

    async def last_code(self, msisdn: str) -> str:
        codes = [m.group(1) for t in await self.messages(msisdn) if (m := CODE_RE.search(t))]
        assert codes, f"no code was sent to {msisdn}"
        return codes[-1]

    async def request_code(self, msisdn: str) -> str:
        await self.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn))
        return await self.last_code(msisdn)

    async def sign_in(self, msisdn: str) -> str:
        code = await self.request_code(msisdn)
        reply = await self.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=msisdn, service_password=self.billing.password_for(msisdn), one_time_code=code))
        return str(reply.access_token)

    async def audit_events(self) -> list[dict[str, str]]:
        return await trail(self.redis, self.settings.audit_chain)


@pytest.fixture
async def make_gateway(clean_redis: str, billing_data: SeededBilling, tmp_path: Path, pki: Path
                       ) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """Factory: `await make_gateway(code_ttl=1, ...)` serves a gateway with those settings."""
    harnesses: list[Harness] = []

    async def factory(redis_url: str | None = None, billing_target: str | None = None, readiness: bool = False,
                      **overrides: Any) -> Harness:
        """`billing_target`: an outside billing (e.g. a billing-sim process a test may kill) instead of
        an in-process simulator; `readiness`: run the health watcher, as `serve` does."""
        settings = Settings(listen="127.0.0.1:0", data_dir=str(tmp_path / "data"), secret_key="test-secret",
                            sim_hash_n=2**10, staff_hash_n=2**10, trust_domain=TRUST_DOMAIN,
                            tls_cert=str(pki / "server.crt"), tls_key=str(pki / "server.key"),
                            tls_client_ca=str(pki / "ca.crt"), revocation_refresh=0.1,
                            answer_floor=0).with_(**overrides)
        billing_server: Any = None
        if billing_target is None:
            billing_server, billing_port = await start_billing_sim(billing_data)
            billing_target = f"127.0.0.1:{billing_port}"
        client = connect(redis_url or clean_redis, settings.redis_timeout)
        billing = billing_client(settings, billing_target)  # serve's own: plaintext, or billing_tls_* (mutual) TLS
        outbox = Path(settings.data_dir) / "sms-outbox.jsonl"
        if not settings.sms_url:  # the queue and a dispatcher as in production, handing over to a file
            settings = settings.with_(sms_url=f"outbox:{outbox}")
        deps = build_deps(settings, client, billing)  # the server's own composition root
        services = build_services(settings, deps)
        edge = Edge.of(settings)  # proxy_listen="127.0.0.1:0", proxy_trusted=...: the edge front, as serve starts it
        server, port, health_servicer = create_server(settings, deps, services, edge=edge)
        sms = sms_worker(settings, deps)
        sms.start()
        await server.start()
        if edge is not None:
            await edge.start()
        browser = browser_listener(settings, call_pipeline(settings, deps), services.by_name())
        browser_edge = await start_browsers(browser, settings) if browser is not None else None
        refresher = asyncio.create_task(deps.revocations.run(settings.revocation_refresh))
        watcher = asyncio.create_task(watch_readiness(health_servicer, SERVICES, dependency_checks(client, billing))
                                      if readiness else asyncio.sleep(0))
        if settings.tls_cert:
            channel = grpc.aio.secure_channel(f"127.0.0.1:{port}", client_credentials(pki, KIOSK_CERT))
        else:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        h = Harness(settings, kiosk_pb2_grpc.KioskServiceStub(channel), channel, client, outbox, billing_data,
                    billing_server, server, port, pki, deps, services,
                    sms=sms, closers=[channel.close, lambda: server.stop(0), sms.stop, billing.close,
                             lambda: billing_server.stop(0) if billing_server else asyncio.sleep(0),
                             _cancel(refresher), _cancel(watcher), client.aclose], edge=edge)
        if edge is not None:
            h.closers.insert(0, edge.close)
        if browser is not None:
            h.browser = browser
            h.closers.insert(0, lambda: browser.close(0))
        if browser_edge is not None:  # browser_proxy_listen="127.0.0.1:0": the browsers' edge front
            h.browser_edge = browser_edge
            h.closers.insert(0, browser_edge.close)
        harnesses.append(h)
        return h

    yield factory
    hung: list[str] = []
    for h in harnesses:
        for close in h.closers:
            hung += await _bounded_close(close)
    if hung:
        pytest.fail("teardown: a part of the gateway did not stop within "
                    f"{CLOSE_LIMIT:.0f} s:\n" + "\n".join(hung), pytrace=False)


CLOSE_LIMIT = 20.0  # a part that does not stop by then is a finding, not a reason to wait out the test's timeout


def _described(close: Callable[[], Any]) -> str:
    code = getattr(close, "__code__", None)
    where = f" ({'/'.join(Path(code.co_filename).parts[-2:])}:{code.co_firstlineno})" if code is not None else ""
    return f"{getattr(close, '__qualname__', repr(close))}{where}"


async def _bounded_close(close: Callable[[], Any]) -> list[str]:
    """Run one closer (best effort: its errors are ignored); if it hangs, the stacks of every task
    then running, so the report says what it waited for, and it is cancelled."""
    try:
        task = asyncio.ensure_future(close())
    except Exception:
        return []
    done, _ = await asyncio.wait({task}, timeout=CLOSE_LIMIT)
    if done:
        if not task.cancelled():
            task.exception()  # retrieved: best effort
        return []
    stacks = []
    for t in asyncio.all_tasks():
        if t is asyncio.current_task():
            continue
        frames = "; ".join(f"{f.f_code.co_name} ({f.f_code.co_filename.rsplit('/', 2)[-1]}:{f.f_lineno})"
                           for f in t.get_stack(limit=8))
        stacks.append(f"    task {t.get_name()}: {frames}")
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    return [f"  {_described(close)}; tasks running then:", *stacks]


def _cancel(task: asyncio.Task[Any]) -> Callable[[], Awaitable[None]]:
    async def cancel() -> None:
        task.cancel()

    return cancel


@pytest.fixture
async def gw(make_gateway: Callable[..., Awaitable[Harness]]) -> Harness:
    return await make_gateway()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServerProcess]:
    """The suite's PostgreSQL (Debian's binaries, unix socket only), for the audit archive's tests."""
    proc = start_postgres()
    try:
        yield proc
    finally:
        proc.remove()


@pytest.fixture
def archive_url(postgres_server: PostgresServerProcess) -> Iterator[str]:
    """A fresh, empty database on the suite's PostgreSQL for this test."""
    yield from fresh_database(postgres_server)
