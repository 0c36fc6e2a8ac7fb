"""The metrics: the reason-to-counter mapping, label hygiene (no subscriber number can ever be a
label value), the measuring adapters, readiness, and the call pipeline's counters."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.domain import request_context
from gateway.domain.errors import DependencyUnavailable, Unauthenticated
from gateway.domain.request_context import CallContext
from gateway.pipeline.audit import Recorder
from gateway.pipeline.codes import Code
from gateway.pipeline.counters import method_labels
from gateway.pipeline.facts import CallFacts
from gateway.pipeline.run import Pipeline, Refusal
from gateway.runtime import metrics, worker_role, workers
from gateway.runtime.settings import Settings, from_env
from gateway.runtime.workers import settings_env
from hallgate_pb.v1 import kiosk_pb2  # noqa: F401 - the descriptors a serving gateway has loaded
from tests.support.metrics import MSISDN_RE

KIOSK = "/hallgate.v1.KioskService/"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


COUNTERS: list[tuple[str, dict[str, str]]] = [
    ("hallgate_codes_sent_total", {"channel": "kiosk"}),
    ("hallgate_codes_sent_total", {"channel": "clerk"}),
    *[("hallgate_code_requests_refused_total", {"reason": r}) for r in sorted(metrics.CODE_REFUSAL_REASONS)],
    ("hallgate_lockouts_total", {"subject": "number"}),
    ("hallgate_lockouts_total", {"subject": "staff"}),
    ("hallgate_sim_swap_refusals_total", {}),
    ("hallgate_denials_total", {"channel": "kiosk", "reason": "bad_credentials"}),
    ("hallgate_denials_total", {"channel": "kiosk", "reason": "send_throttled"}),
    ("hallgate_denials_total", {"channel": "kiosk", "reason": "locked_now"}),
    ("hallgate_denials_total", {"channel": "clerk", "reason": "wrong_channel"}),
    ("hallgate_denials_total", {"channel": "unidentified", "reason": "no_identity"}),
    ("hallgate_denials_total", {"channel": "clerk", "reason": "staff_locked_now"}),
]


def snapshot() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(n, tuple(sorted(labels.items()))): value(n, **labels) for n, labels in COUNTERS}


def moved(before: dict[Any, float]) -> dict[str, float]:
    after = snapshot()
    out = {}
    for key, v in after.items():
        if v != before[key]:
            name, labels = key
            out[name + "{" + ",".join(f"{k}={val}" for k, val in labels) + "}"] = v - before[key]
    return out


OK, UNAUTH, EXHAUSTED = Code.OK, Code.UNAUTHENTICATED, Code.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(("reason", "code", "channel", "expected"), [
    ("code_sent", OK, "kiosk", {"hallgate_codes_sent_total{channel=kiosk}": 1}),
    ("code_sent", OK, "clerk", {"hallgate_codes_sent_total{channel=clerk}": 1}),
    ("sim_swap_hold", OK, "kiosk", {"hallgate_code_requests_refused_total{reason=sim_swap_hold}": 1,
                                    "hallgate_sim_swap_refusals_total{}": 1}),
    ("unknown_number", OK, "kiosk", {"hallgate_code_requests_refused_total{reason=unknown_number}": 1}),
    ("locked_no_code", OK, "kiosk", {"hallgate_code_requests_refused_total{reason=locked_no_code}": 1}),
    ("send_throttled", EXHAUSTED, "kiosk", {"hallgate_code_requests_refused_total{reason=send_throttled}": 1,
                                            "hallgate_denials_total{channel=kiosk,reason=send_throttled}": 1}),
    ("bad_credentials", UNAUTH, "kiosk", {"hallgate_denials_total{channel=kiosk,reason=bad_credentials}": 1}),
    ("locked_now", EXHAUSTED, "kiosk", {"hallgate_lockouts_total{subject=number}": 1,
                                        "hallgate_denials_total{channel=kiosk,reason=locked_now}": 1}),
    ("staff_locked_now", EXHAUSTED, "clerk", {"hallgate_lockouts_total{subject=staff}": 1,
                                              "hallgate_denials_total{channel=clerk,reason=staff_locked_now}": 1}),
    ("wrong_channel", Code.PERMISSION_DENIED, "clerk",
     {"hallgate_denials_total{channel=clerk,reason=wrong_channel}": 1}),
    ("no_identity", UNAUTH, "", {"hallgate_denials_total{channel=unidentified,reason=no_identity}": 1}),
    ("", OK, "kiosk", {}),  # an ordinary success moves no domain counter
    ("billing_unavailable", Code.UNAVAILABLE, "kiosk", {}),  # a failure is not a denial
])
def test_the_reason_of_a_finished_call_moves_exactly_its_counters(reason, code, channel, expected) -> None:
    before = snapshot()
    metrics.record_outcome(CallContext(method=KIOSK + "RequestOneTimeCode", channel=channel, reason=reason,
                                       msisdn="13800000001"), code)
    assert moved(before) == expected


def test_a_call_without_an_audit_context_moves_no_domain_counter() -> None:
    before = snapshot()
    metrics.record_outcome(CallContext(method="", reason="code_sent"), OK)
    assert moved(before) == {}


def test_label_values_are_plain_words_or_other() -> None:
    assert metrics.word("bad_credentials") == "bad_credentials"
    for bad in ("13800000001", "x13800000001", "138****0001", "Bad", "", "a-b", "a" * 65, "locked now"):
        assert metrics.word(bad) == "other"


def test_method_labels_come_from_the_descriptors_only() -> None:
    assert method_labels(KIOSK + "Authenticate") == ("hallgate.v1.KioskService", "Authenticate")
    assert method_labels("/grpc.health.v1.Health/Check") == ("grpc.health.v1.Health", "Check")
    for path in (KIOSK + "13800000001", "/13800000001/Authenticate", "/x/y", "nonsense", "/a/b/c", ""):
        assert method_labels(path) == ("unknown", "unknown")


def test_legal_states_are_counted_and_cleaned() -> None:
    before = value("hallgate_legal_requests_total", state="awaiting_approval")
    metrics.legal_request_entered("awaiting_approval")
    assert value("hallgate_legal_requests_total", state="awaiting_approval") == before + 1
    other = value("hallgate_legal_requests_total", state="other")
    metrics.legal_request_entered("13800000001")
    assert value("hallgate_legal_requests_total", state="other") == other + 1


# --- the call pipeline's counters, driven without a transport -----------------------------------


class SeeEveryone:
    """Authorizer fake: every caller is the kiosk H001/kiosk/K01 (the policy is tested elsewhere)."""

    async def authorize(self, facts: CallFacts, call: CallContext, request: Any) -> None:
        call.channel, call.hall, call.terminal = "kiosk", "H001", "H001/kiosk/K01"


class Events:
    """AuditSink fake: keeps the events."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def append(self, *events: Any) -> None:
        self.events.extend(dict(event) for event in events)

    async def check(self) -> None:
        return None


def pipeline() -> Pipeline:
    return Pipeline(SeeEveryone(), Recorder(Events(), b"k"))  # type: ignore[arg-type]


def handled(method: str, code: str, kind: str = "unary", service: str = "hallgate.v1.KioskService") -> float:
    return value("grpc_server_handled_total", grpc_type=kind, grpc_service=service, grpc_method=method,
                 grpc_code=code)


async def test_the_pipeline_counts_the_final_status_and_reads_the_audit_context() -> None:
    async def authenticate(request: Any) -> str:
        request_context.current().msisdn = "13800000001"
        if request == "wrong":
            raise Unauthenticated("bad_credentials")
        return "token"

    p = pipeline()
    facts = CallFacts(KIOSK + "Authenticate")
    ok, unauth = handled("Authenticate", "OK"), handled("Authenticate", "UNAUTHENTICATED")
    denied = value("hallgate_denials_total", channel="kiosk", reason="bad_credentials")
    started = value("grpc_server_started_total", grpc_type="unary", grpc_service="hallgate.v1.KioskService",
                    grpc_method="Authenticate")
    assert await p.unary(facts, "right", authenticate) == "token"
    with pytest.raises(Refusal) as e:
        await p.unary(facts, "wrong", authenticate)
    assert e.value.status.code == Code.UNAUTHENTICATED
    assert handled("Authenticate", "OK") == ok + 1
    assert handled("Authenticate", "UNAUTHENTICATED") == unauth + 1
    assert value("hallgate_denials_total", channel="kiosk", reason="bad_credentials") == denied + 1
    assert value("grpc_server_started_total", grpc_type="unary", grpc_service="hallgate.v1.KioskService",
                 grpc_method="Authenticate") == started + 2


async def test_streams_are_timed_to_their_end_and_a_cancelled_one_counts_as_cancelled() -> None:
    async def pages(request: Any) -> AsyncIterator[int]:
        for i in range(3):
            await asyncio.sleep(0.01)
            yield i

    p = pipeline()
    facts = CallFacts(KIOSK + "ListCallDetails", kind="server_stream")
    ok, cancelled = handled("ListCallDetails", "OK", "server_stream"), handled("ListCallDetails", "CANCELLED",
                                                                               "server_stream")
    labels = {"grpc_type": "server_stream", "grpc_service": "hallgate.v1.KioskService",
              "grpc_method": "ListCallDetails"}
    count = REGISTRY.get_sample_value("grpc_server_handling_seconds_count", labels) or 0.0
    sent: list[int] = []

    async def send(message: int) -> None:
        sent.append(message)

    await p.stream(facts, None, pages, send)
    assert sent == [0, 1, 2]
    assert REGISTRY.get_sample_value("grpc_server_handling_seconds_count", labels) == count + 1
    sent.clear()
    task = asyncio.create_task(p.stream(facts, None, pages, send))
    for _ in range(1000):  # until the first message is out (bounded)
        if sent:
            break
        await asyncio.sleep(0.001)
    task.cancel()  # the client went away mid-stream
    with pytest.raises(asyncio.CancelledError):
        await task
    assert handled("ListCallDetails", "OK", "server_stream") == ok + 1
    assert handled("ListCallDetails", "CANCELLED", "server_stream") == cancelled + 1


async def test_an_unknown_method_is_counted_without_its_path() -> None:
    before = handled("unknown", "UNIMPLEMENTED", service="unknown")
    with pytest.raises(Refusal) as e:
        await pipeline().unimplemented(CallFacts(KIOSK + "13800000001"))
    assert e.value.status.code == Code.UNIMPLEMENTED
    assert handled("unknown", "UNIMPLEMENTED", service="unknown") == before + 1


async def test_no_subscriber_number_anywhere_in_a_scrape() -> None:
    """Feed every path a number could take (context fields, reasons, method paths, legal states)."""
    n = "13800000001"
    for reason in [*metrics.CODE_REFUSAL_REASONS, "code_sent", "locked_now", "bad_credentials", n, f"x_{n}"]:
        for code in (OK, UNAUTH, EXHAUSTED):
            metrics.record_outcome(CallContext(method=KIOSK + n, channel=n, msisdn=n, subscriber=n, reason=reason,
                                               detail=n, terminal=n, staff_id=n), code)
    metrics.legal_request_entered(n)

    async def echo(request: Any) -> Any:
        return request

    await pipeline().unary(CallFacts(f"/hallgate.v1.{n}/{n}"), n, echo)
    scrape = generate_latest(REGISTRY).decode()
    assert "hallgate_denials_total" in scrape
    assert not MSISDN_RE.search(scrape)
    assert not label_values_with_numbers(scrape)


def label_values_with_numbers(scrape: str) -> list[str]:
    """Every label value holding a run of 5 or more digits (none may: the longest legitimate one is
    a worker index)."""
    return [v for family in text_string_to_metric_families(scrape) for sample in family.samples
            for v in sample.labels.values() if re.search(r"[0-9]{5}", v)]


# --- measuring adapters -----------------------------------------------------------------------


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[Any] = []
        self.extra = "delegated"

    async def append(self, event: Any) -> None:
        await asyncio.sleep(0.002)
        if self.fail:
            raise DependencyUnavailable("audit")
        self.events.append(event)


async def test_timed_audit_sink_times_every_append_and_counts_failures() -> None:
    count = value("hallgate_audit_append_seconds_count")
    failures = value("hallgate_audit_append_failures_total")
    sink = Sink()
    timed = metrics.TimedAuditSink(sink)
    await timed.append({"a": 1})
    assert sink.events == [{"a": 1}]
    assert timed.extra == "delegated"
    with pytest.raises(DependencyUnavailable):
        await metrics.TimedAuditSink(Sink(fail=True)).append({})
    assert value("hallgate_audit_append_seconds_count") == count + 2
    assert value("hallgate_audit_append_failures_total") == failures + 1


async def test_counting_legal_store_counts_only_accepted_state_changes() -> None:
    from gateway.domain.legal import Action, State, Transition

    class Store:
        def __init__(self) -> None:
            self.accept = True

        async def create(self, request: Any, first: Any) -> bool:
            return self.accept

        async def transition(self, after: Any, t: Any) -> bool:
            return self.accept

        async def get(self, request_id: str) -> str:
            return request_id

    inner = Store()
    store = metrics.CountingLegalStore(inner)  # type: ignore[arg-type]
    t = Transition(None, Action.APPROVE, State.AWAITING_APPROVAL, State.AWAITING_DISCLOSURE, "L1", "approver", "")
    first = Transition(None, Action.REGISTER, None, State.AWAITING_APPROVAL, "L2", "officer", "")
    approval, disclosure = (value("hallgate_legal_requests_total", state=s)
                            for s in ("awaiting_approval", "awaiting_disclosure"))
    assert await store.create(None, first)  # type: ignore[arg-type]
    assert await store.transition(None, t)  # type: ignore[arg-type]
    inner.accept = False
    assert not await store.transition(None, t)  # type: ignore[arg-type]
    assert await store.get("LR-1") == "LR-1"
    assert value("hallgate_legal_requests_total", state="awaiting_approval") == approval + 1
    assert value("hallgate_legal_requests_total", state="awaiting_disclosure") == disclosure + 1


# --- readiness --------------------------------------------------------------------------------


class FakeHealth:
    def __init__(self) -> None:
        self.status: dict[str, int] = {}

    async def set(self, service: str, status: int) -> None:
        self.status[service] = status


async def test_readiness_follows_every_dependency() -> None:
    from grpc_health.v1 import health_pb2

    up = {"redis": True, "billing": True}

    def check(name: str) -> metrics.Check:
        async def probe() -> bool:
            if up[name] is None:
                await asyncio.sleep(10)  # hangs: the probe's own timeout must end it
            if not up[name]:
                raise ConnectionError(name)
            return True

        return probe

    health = FakeHealth()
    task = asyncio.create_task(metrics.watch_readiness(health, ["a", "b"], {n: check(n) for n in up}, every=0.02,
                                                       probe_seconds=0.05))

    async def until(status: int) -> None:
        for _ in range(200):
            if health.status == {"a": status, "b": status}:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(health.status)

    try:
        await until(health_pb2.HealthCheckResponse.SERVING)
        up["billing"] = False
        await until(health_pb2.HealthCheckResponse.NOT_SERVING)
        assert value("hallgate_dependency_up", dependency="billing") == 0
        assert value("hallgate_dependency_up", dependency="redis") == 1
        up["billing"] = True
        await until(health_pb2.HealthCheckResponse.SERVING)
        up["redis"] = None  # type: ignore[assignment]
        await until(health_pb2.HealthCheckResponse.NOT_SERVING)
    finally:
        task.cancel()


# --- workers' settings hand-over ----------------------------------------------------------------


def test_every_setting_survives_the_trip_through_the_environment() -> None:
    s = Settings(listen="127.0.0.1:7000", insecure_dev=True, notify_subscriber=False, code_ttl=12.5,
                 lock_threshold=3, redis_url="unix:///tmp/r.sock", secret_key="k", sms_password="p\n")
    with workers.SecretFiles(s) as files:  # secrets travel as inherited in-memory files, never as values
        env = settings_env(s, files.paths)
        assert not {"k", "unix:///tmp/r.sock", "p\n"} & set(env.values())
        assert from_env(env) == s


def test_workers_need_a_fixed_port_and_share_it_only_when_several() -> None:
    with pytest.raises(RuntimeError, match="fixed listen port"):
        workers.check(Settings(listen="127.0.0.1:0", workers=2))  # type: ignore[call-arg]
    workers.check(Settings(listen="127.0.0.1:7000", workers=2))  # type: ignore[call-arg]
    assert worker_role.reuse_port(Settings(workers=2)) == 1  # type: ignore[call-arg]
    assert worker_role.reuse_port(Settings()) == 0
