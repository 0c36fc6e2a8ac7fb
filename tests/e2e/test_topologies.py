"""hallgate on highly available Redis: a 3-master Redis Cluster and a Sentinel setup on loopback
(tests/support/topologies.py), two gateway processes and a billing simulator process on each.

On each topology: a code requested through one gateway authenticates through the other and the
call list streams; failed sign-ins add up across both; a clerk signs in on one gateway and opens
and reads a customer session through both; the audit trail holds every call and its hash chain
(adapters/audit/) verifies. Then the topology breaks:
a Cluster master holding some numbers is killed and restarted, the Sentinel master is killed and
replaced. Calls fail with UNAVAILABLE within seconds (never another status, never a hang), recover
by themselves, and every audit event acknowledged before, during and after is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pyotp
import pytest
from redis.exceptions import NoScriptError, RedisError

from adapters.audit.queries import verify
from adapters.redis_client import connect
from adapters.redis_staff import RedisStaffStore
from adapters.sms_outbox import OUTBOX_NAME
from gateway.domain import passwords, rules
from gateway.domain.ports import StaffRecord
from gateway.runtime.settings import Settings
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc, kiosk_pb2, kiosk_pb2_grpc, staff_pb2, staff_pb2_grpc
from tests.support.clerk import id_card
from tests.support.dates import month
from tests.support.outbox import code_in
from tests.support.processes import BillingProc, Proc
from tests.support.staff import STAFF_PASSWORD, fresh_totp
from tests.support.subscribers import BILLING
from tests.support.tls import tls_env
from tests.support.topologies import HOST, RedisClusterTopology, RedisSentinelTopology

SECRET = "topology-secret"
CLERK_CERT = "clerk-H001-T07"
Code = grpc.StatusCode
FAILING_CALL_LIMIT = 4.0  # seconds: a call during an outage must answer UNAVAILABLE within this

pytestmark = pytest.mark.timeout(90)


@dataclass
class Deployment:
    """Two gateways and a billing simulator on one Redis topology."""

    url: str
    a: Proc
    b: Proc
    pki: Path
    data: Path
    channels: dict[tuple[str, str], grpc.Channel] = field(default_factory=dict)

    def stub(self, gw: Proc, kind: Any, cert: str = "kiosk-H001-K01") -> Any:
        """A stub on a channel to `gw` presenting `cert`, one channel per gateway and cert."""
        if (gw.address, cert) not in self.channels:
            self.channels[gw.address, cert] = gw.channel(self.pki, cert)
        return kind(self.channels[gw.address, cert])

    def kiosk(self, gw: Proc) -> kiosk_pb2_grpc.KioskServiceStub:
        return self.stub(gw, kiosk_pb2_grpc.KioskServiceStub)

    def code(self, msisdn: str) -> str:
        """The number's latest code: the SMS leaves just after the answer, so it may take a moment."""
        return code_in(self.data, msisdn)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.log.read_text()[-1500:]}" for p in (self.a, self.b))

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


@contextlib.contextmanager
def deployment(url: str, pki: Path, tmp: Path, **extra: str) -> Iterator[Deployment]:
    data = tmp / "shared"  # one data directory each, one SMS outbox for both (as one SMSC)
    sim = BillingProc(tmp / "sim.log").start()
    env = {"HALLGATE_REDIS_URL": url, "HALLGATE_BILLING_TARGET": sim.address, "HALLGATE_SECRET_KEY": SECRET,
           "HALLGATE_SMS_OUTBOX": str(data / OUTBOX_NAME), "HALLGATE_LOCK_THRESHOLD": "3", **tls_env(pki), **extra}
    gws = [Proc(["serve", "--listen", "{address}"], {**env, "HALLGATE_DATA_DIR": str(tmp / f"gw{i}")},
                tmp / f"gw{i}.log") for i in (1, 2)]
    try:
        for g in gws:
            g.wait_serving(pki)
        d = Deployment(url, gws[0], gws[1], pki, data)
        try:
            yield d
        finally:
            d.close()
    finally:
        codes = [g.stop() for g in gws]
        sim.stop()
    assert codes == [0, 0], "\n".join(g.log.read_text()[-2000:] for g in gws)


@pytest.fixture(scope="module")
def on_cluster(redis_cluster: RedisClusterTopology, pki: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(redis_cluster.url, pki, tmp_path_factory.mktemp("on-cluster")) as d:
        yield d


@pytest.fixture(scope="module")
def on_sentinel(redis_sentinel: RedisSentinelTopology, pki: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(redis_sentinel.url, pki, tmp_path_factory.mktemp("on-sentinel")) as d:
        yield d


# --- the audit trail ----------------------------------------------------------------------------


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def _read_audit(url: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Every audit event the gateways wrote (every hash chain `hg:audit:{<chain>}:stream`), and each
    chain's verification result."""
    keys = Settings(secret_key=SECRET).audit_keys()[0]
    client = connect(url, 2.0)
    try:
        events: list[dict[str, str]] = []
        verdicts: dict[str, Any] = {}
        streams = {_s(k) async for k in client.scan_iter(match="hg:audit:*:stream", count=1000)}
        for stream in sorted(streams):
            chain = stream.split("{", 1)[1].split("}", 1)[0]
            verdicts[chain] = await verify(client, chain, keys)
            events += [{_s(k): _s(v) for k, v in f.items()} for _, f in await client.xrange(stream)]
        return events, verdicts
    finally:
        await client.aclose()


def audit(d: Deployment) -> list[dict[str, str]]:
    """The events of both gateways; every chain verifies."""
    events, verdicts = asyncio.run(_read_audit(d.url))
    assert verdicts, "no audit chain was written"
    for chain, result in verdicts.items():
        assert result.ok, f"audit chain {chain} does not verify: {result.as_dict()}"
    return events


def ref(msisdn: str) -> str:
    return rules.subscriber_ref(SECRET.encode(), msisdn)


def acknowledged_missing(events: list[dict[str, str]], calls: list[tuple[str, str, Code]],
                         method: str = "RequestOneTimeCode") -> list[str]:
    """The numbers whose successful `method` call has no OK event."""
    seen = {e.get("subscriber_ref") for e in events if e.get("method", "").endswith(method) and e.get("code") == "OK"}
    return [m for m, _, code in calls if code == Code.OK and ref(m) not in seen]


# --- the flows -----------------------------------------------------------------------------------


def kiosk_flow(d: Deployment, msisdn: str) -> None:
    """A code requested through A authenticates through B; the token lists calls through A."""
    a, b = d.kiosk(d.a), d.kiosk(d.b)
    a.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), timeout=10)
    reply = b.Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=msisdn, service_password=BILLING.password_for(msisdn), one_time_code=d.code(msisdn)), timeout=10)
    chunks = list(a.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=reply.access_token,
                                                                     month=month()), timeout=30))
    assert sum(len(c.records) for c in chunks) > 0
    b.EndSession(kiosk_pb2.EndSessionRequest(access_token=reply.access_token), timeout=10)


def lock_counters(d: Deployment, msisdn: str) -> None:
    """Threshold 3: two failures through A and B, the third locks the number on both."""
    bad = kiosk_pb2.AuthenticateRequest(msisdn=msisdn, service_password="000000", one_time_code="000000")
    seen = []
    for gw in (d.a, d.b, d.a, d.b):
        with pytest.raises(grpc.RpcError) as e:
            d.kiosk(gw).Authenticate(bad, timeout=10)
        seen.append(e.value.code())
    assert seen == [Code.UNAUTHENTICATED, Code.UNAUTHENTICATED, Code.RESOURCE_EXHAUSTED, Code.RESOURCE_EXHAUSTED]


async def _add_staff(url: str, staff_id: str) -> str:
    client = connect(url, 2.0)
    try:
        secret = pyotp.random_base32()
        await RedisStaffStore(client).put(StaffRecord(
            staff_id, f"Staff {staff_id}", "clerk", "H001", passwords.hash_password(STAFF_PASSWORD, 2**10),
            time.time() - 86400, secret, False))
        return secret
    finally:
        await client.aclose()


def clerk_flow(d: Deployment, staff_id: str, msisdn: str) -> None:
    """Staff added through connect() on the topology; sign-in on A, session opened on B, profile
    read on A, closed on B."""
    secret = asyncio.run(_add_staff(d.url, staff_id))
    staff = d.stub(d.a, staff_pb2_grpc.StaffServiceStub, CLERK_CERT)
    token = staff.SignIn(staff_pb2.SignInRequest(staff_id=staff_id, password=STAFF_PASSWORD,
                                                 totp_code=fresh_totp(secret)), timeout=10).staff_token
    md = (("authorization", f"Bearer {token}"),)
    on_a = d.stub(d.a, clerk_pb2_grpc.ClerkServiceStub, CLERK_CERT)
    on_b = d.stub(d.b, clerk_pb2_grpc.ClerkServiceStub, CLERK_CERT)
    owner = BILLING.owner_of(msisdn)
    doc = id_card(owner)
    session = on_b.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
        msisdn=msisdn, id_document=doc, purpose=clerk_pb2.SESSION_PURPOSE_BILL_ENQUIRY),
        metadata=md, timeout=10).customer_session
    profile = on_a.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(customer_session=session),
                                      metadata=md, timeout=10)
    assert profile.msisdn_masked == rules.mask_msisdn(msisdn)
    assert owner.document_number not in str(profile)
    on_b.CloseCustomerSession(clerk_pb2.CloseCustomerSessionRequest(customer_session=session), metadata=md,
                              timeout=10)


def all_flows(d: Deployment, numbers: list[str]) -> None:
    kiosk, locked, customer = numbers
    kiosk_flow(d, kiosk)
    lock_counters(d, locked)
    clerk_flow(d, "C2001", customer)
    events = audit(d)
    methods = [e.get("method", "").rsplit("/", 1)[-1] for e in events]
    for m in ("RequestOneTimeCode", "Authenticate", "ListCallDetails", "EndSession", "SignIn",
              "OpenCustomerSession", "GetCustomerProfile", "CloseCustomerSession"):
        assert m in methods, f"no audit event for {m}"
    assert methods.count("Authenticate") >= 5  # one success, four failures
    assert any(e.get("subscriber_ref") == ref(locked) and e.get("code") == "RESOURCE_EXHAUSTED" for e in events)


def request_code(d: Deployment, gw: Proc, msisdn: str) -> tuple[str, str, Code, float]:
    """RequestOneTimeCode, never raising: (number, gateway, status, seconds). Every number is used
    once, so the per-number throttle never answers instead of Redis."""
    started = time.monotonic()
    try:
        d.kiosk(gw).RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), timeout=10)
        code = Code.OK
    except grpc.RpcError as e:
        code = e.code()
    return msisdn, gw.address, code, time.monotonic() - started


def numbers(first: int, n: int) -> list[str]:
    """Ordinary subscribers: no recent SIM change or port-in (those get no code), no heavy users."""
    return [f"138{i:08d}" for i in range(first, first + n) if i % 100 not in (7, 8) and i % 500]


# --- the client ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "redis+sentinel://127.0.0.1:26379/hallgate",
    "redis+sentinel://user:p%40ss@127.0.0.1:26379,[::1]:26380/hallgate?db=2&sentinel_password=s",
    "redis+cluster://127.0.0.1:7000",
    "redis+cluster://:secret@127.0.0.1:7000,127.0.0.2:7001/0",
    "redis://127.0.0.1:6379/0", "unix:///tmp/redis.sock?db=1",
])
async def test_connect_accepts_every_topology_url(url: str) -> None:
    await connect(url, 1.0).aclose()  # nothing is contacted until the first command


@pytest.mark.parametrize("url", [
    "redis+sentinel://127.0.0.1:26379", "redis+sentinel://127.0.0.1:26379/hallgate?dbx=1",
    "redis+sentinel://127.0.0.1/hallgate", "redis+cluster://127.0.0.1:7000/1", "redis+cluster://",
    "redis+cluster://127.0.0.1:7000?foo=1", "redis+tls://127.0.0.1:6379",
])
def test_connect_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(ValueError):
        connect(url, 1.0)


async def test_a_cluster_nobody_answers_is_a_redis_error_at_once() -> None:
    from adapters.redis_server import free_port

    client = connect(f"redis+cluster://{HOST}:{free_port()}", 1.0)
    started = time.monotonic()
    with pytest.raises(RedisError):  # redis-py's own RedisClusterException is no RedisError
        await client.ping()
    assert time.monotonic() - started < 2
    await client.aclose()


async def test_cluster_pipelines_behave_like_standalone_ones(redis_cluster: RedisClusterTopology) -> None:
    client = connect(redis_cluster.url, 1.0)
    try:
        # MULTI within one slot; commands queued before `async with` are kept
        p = client.pipeline(transaction=True)
        p.hset("t:{x}:a", mapping={"f": "1"})
        p.pexpire("t:{x}:a", 10_000)
        async with p:
            assert await p.execute() == [1, True]
        # MULTI across slots: refused before anything is sent, as a RedisError
        with pytest.raises(RedisError, match="same slot"):
            async with client.pipeline(transaction=True) as p:
                p.set("t:{x}:b", "1")
                p.set("t:{y}:b", "1")
                await p.execute()
        assert await client.exists("t:{x}:b") == 0
        # EVALSHA pipelines (a missing script comes back as NoScriptError to reload)
        p = client.pipeline(transaction=False)
        p.evalsha("0" * 40, 1, "t:{x}:a")
        async with p:
            res = await p.execute(raise_on_error=False)
        assert isinstance(res[0], NoScriptError)
        # WAIT/WAITAOF run on the node (and connection) of the write before them
        p = client.pipeline(transaction=False)
        p.xadd("t:{z}:s", {"k": "v"})
        p.execute_command("WAIT", 0, 0)
        await p.route_waits()  # type: ignore[attr-defined]
        queue = p._execution_strategy._command_queue  # type: ignore[attr-defined]
        assert queue[-1].kwargs["target_nodes"].port == redis_cluster.node_for_key("t:{z}:s").port
        assert (await p.execute())[-1] == 0
    finally:
        await client.aclose()


# --- Cluster -------------------------------------------------------------------------------------


def test_flows_across_two_gateways_on_a_redis_cluster(on_cluster: Deployment) -> None:
    all_flows(on_cluster, ["13800000101", "13800000102", "13800000121"])


def test_cluster_node_loss_fails_closed_for_its_slots_and_recovers(
        on_cluster: Deployment, redis_cluster: RedisClusterTopology) -> None:
    d, cluster = on_cluster, redis_cluster
    # The victim: a master holding no audit stream, the owner of slot 0 if it can be (every client's
    # default node, which serves keyless commands: readiness PING, the audit sink's INFO probe).
    calls: list[tuple[str, str, Code]] = []
    assert request_code(d, d.a, "13800000390")[2] == Code.OK  # the audit chain exists
    audit_nodes = {cluster.node_for_key(k).port for k in asyncio.run(_audit_streams(d.url))}
    assert audit_nodes
    victim = next(n for n in cluster.nodes if n.port not in audit_nodes)
    pool = numbers(400, 600)
    on_victim = [m for m in pool if cluster.node_for_key(f"hg:{{{m}}}:lock") is victim]
    elsewhere = [m for m in pool if cluster.node_for_key(f"hg:{{{m}}}:lock") is not victim]

    def call(gw: Proc, msisdn: str) -> tuple[Code, float]:
        m, g, code, took = request_code(d, gw, msisdn)
        calls.append((m, g, code))
        return code, took

    survivor = on_victim.pop()  # a code stored before the crash must work after the restart
    assert call(d.a, survivor)[0] == Code.OK
    survivor_code = d.code(survivor)

    victim.pause()  # hung, not gone: the port still accepts connections, nothing answers
    try:
        for gw in (d.a, d.b):
            code, took = call(gw, on_victim.pop())
            assert code == Code.UNAVAILABLE and took < FAILING_CALL_LIMIT, (code, took)
            print(f"cluster node hung: {code.name} in {took:.2f}s")
    finally:
        victim.resume()
    cluster.wait_ok(timeout=15)

    victim.kill()
    killed_at = time.monotonic()
    try:
        for gw in (d.a, d.b, d.a, d.b):
            code, took = call(gw, on_victim.pop())
            assert code == Code.UNAVAILABLE and took < FAILING_CALL_LIMIT, (code, took)
            print(f"cluster node {victim.name} killed: {code.name} in {took:.2f}s")
        for gw in (d.a, d.b):  # other slots keep serving (cluster-require-full-coverage no)
            assert call(gw, elsewhere.pop())[0] == Code.OK
        assert asyncio.run(_new_script_on(d.url, f"hg:{{{elsewhere[0]}}}:x")) == b"ok"
        if victim is cluster.nodes[0]:
            assert asyncio.run(_keyless_after_a_failure(d.url))[1:] == ["ok", "ok"]
    finally:
        victim.start()
    cluster.wait_ok(timeout=15)
    deadline = time.monotonic() + 15
    recovered: dict[str, bool] = {d.a.address: False, d.b.address: False}
    while not all(recovered.values()):
        assert time.monotonic() < deadline, f"no recovery: {calls[-6:]}\n{d.logs()}"
        for gw in (d.a, d.b):
            code, took = call(gw, on_victim.pop())
            assert code in (Code.OK, Code.UNAVAILABLE) and took < FAILING_CALL_LIMIT, (code, took)
            recovered[gw.address] |= code == Code.OK
        time.sleep(0.2)
    print(f"cluster node restarted: both gateways recovered {time.monotonic() - killed_at:.2f}s after the kill")
    reply = d.kiosk(d.b).Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=survivor, service_password=BILLING.password_for(survivor), one_time_code=survivor_code), timeout=10)
    assert reply.access_token

    assert acknowledged_missing(audit(d), calls) == []


async def _audit_streams(url: str) -> set[str]:
    client = connect(url, 2.0)
    try:
        found = {_s(k) async for k in client.scan_iter(match="hg:audit*", count=1000)}
        return {k for k in found if k.endswith(":stream")}
    finally:
        await client.aclose()


async def _keyless_after_a_failure(url: str) -> list[str]:
    """PING and INFO on a fresh client whose default node (the owner of slot 0) is down: the first
    may fail, the next ones go to another node."""
    client = connect(url, 1.0)
    out = []
    try:
        for _ in range(3):
            try:
                await client.ping()
                await client.info("persistence")
                out.append("ok")
            except RedisError as e:
                out.append(type(e).__name__)
        return out
    finally:
        await client.aclose()


async def _new_script_on(url: str, key: str) -> Any:
    """A script no node has seen yet (NOSCRIPT, then SCRIPT LOAD on every primary that answers)."""
    client = connect(url, 1.0)
    try:
        return await client.register_script(f"return 'ok' -- {time.time_ns()}")(keys=[key])
    finally:
        await client.aclose()


# --- Sentinel ------------------------------------------------------------------------------------


def test_flows_across_two_gateways_on_sentinel(on_sentinel: Deployment) -> None:
    all_flows(on_sentinel, ["13800000201", "13800000202", "13800000221"])


def test_sentinel_failover_fails_closed_and_recovers_with_every_acknowledged_event(
        on_sentinel: Deployment, redis_sentinel: RedisSentinelTopology) -> None:
    d, topology = on_sentinel, redis_sentinel
    pool = iter(numbers(600, 600))
    calls: list[tuple[str, str, Code]] = []
    timings: list[tuple[Code, float, float]] = []  # status, duration, seconds since the kill

    def round_of_calls(since: float) -> list[Code]:
        out = []
        for gw in (d.a, d.b):
            m, g, code, took = request_code(d, gw, next(pool))
            calls.append((m, g, code))
            timings.append((code, took, time.monotonic() - since))
            out.append(code)
        return out

    assert round_of_calls(time.monotonic()) == [Code.OK, Code.OK]
    old = topology.master()
    killed_at = time.monotonic()
    old.kill()
    # Keep calling through both gateways until both succeed again on the new master.
    deadline = killed_at + 30
    ok_after_failure = 0
    failed = False
    while ok_after_failure < 3:
        assert time.monotonic() < deadline, f"no recovery within 30 s: {timings[-6:]}\n{d.logs()}"
        codes = round_of_calls(killed_at)
        assert set(codes) <= {Code.OK, Code.UNAVAILABLE}, codes
        failed |= Code.UNAVAILABLE in codes
        ok_after_failure = ok_after_failure + 1 if failed and codes == [Code.OK, Code.OK] else 0
        time.sleep(0.1)
    new = topology.wait_failover(old, timeout=5)
    assert new is not old
    assert failed, "no call failed: the failover went unnoticed?"
    assert max(took for _, took, _ in timings) < FAILING_CALL_LIMIT, timings
    outage = [t for code, _, t in timings if code == Code.UNAVAILABLE]
    print(f"sentinel failover: {len(outage)} UNAVAILABLE calls from {min(outage):.2f}s to {max(outage):.2f}s "
          f"after the kill; {len(timings)} calls; slowest {max(took for _, took, _ in timings):.2f}s")
    # The flows still work on the new master, and nothing acknowledged was lost on the way.
    kiosk_flow(d, next(pool))
    assert acknowledged_missing(audit(d), calls) == []
