"""Prometheus metrics for the platform team: the conventional gRPC server metrics, the gateway's
domain counters, audit append latency, dependency readiness, and the HTTP endpoint serving them.

Every label value comes from a closed set fixed by the code: gRPC service and method names known
to the compiled protobuf descriptors, status codes, channels, audit reasons, legal states, worker
indexes. Nothing a caller sends ends up in a label, and a subscriber number can never be one (a
label value that is not a plain lower-case word becomes "other").

The domain counters are derived in ONE place, `record_outcome`, from the finished call's
CallContext (what the audit trail records), so the counters and the audit trail cannot disagree.

Multi-process mode (gateway/runtime/workers.py): the supervisor sets PROMETHEUS_MULTIPROC_DIR in each
worker's environment before it starts, so prometheus_client keeps every worker's values in files
there; the supervisor serves their sum through `MultiProcessCollector` and marks a worker's files
dead when it exits.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from threading import Thread
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
    start_http_server,
)

from gateway.domain.ports import AuditSink
from gateway.domain.request_context import CallContext
from gateway.pipeline.codes import DECISIONS, Code

if TYPE_CHECKING:
    from grpc_health.v1 import health

    from gateway.domain.legal import LegalRequest, LegalStore, Transition

log = structlog.get_logger("hallgate.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_ENV = "HALLGATE_WORKER"  # the worker's index, set by the supervisor; absent in a single process
WORKER = os.environ.get(WORKER_ENV, "0")

# No `*_created` series: they double the output, multi-process mode has none, and their float
# timestamps only add noise to a scrape someone greps for numbers.
disable_created_metrics()

# --- label hygiene -----------------------------------------------------------------------------

_WORD = re.compile(r"[a-z][a-z_]{0,63}")
OTHER = "other"


@functools.lru_cache(maxsize=1024)
def word(value: str) -> str:
    """`value` if it is a plain lower-case word (letters and underscores), else "other". Digits
    are never let through, so no number of any kind can become a label value."""
    return value if _WORD.fullmatch(value) else OTHER


# --- the conventional gRPC server metrics (grpc-ecosystem/go-grpc-prometheus names) -------------

GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

GRPC_STARTED = Counter("grpc_server_started_total", "Total number of RPCs started on the server.",
                       GRPC_LABELS)
GRPC_HANDLED = Counter("grpc_server_handled_total",
                       "Total number of RPCs completed on the server, regardless of success or failure.",
                       (*GRPC_LABELS, "grpc_code"))
GRPC_HANDLING = Histogram("grpc_server_handling_seconds",
                          "Histogram of response latency (seconds) of gRPC that had been application-level "
                          "handled by the server.", GRPC_LABELS, buckets=LATENCY_BUCKETS)
WORKER_CALLS = Counter("hallgate_worker_calls_total",
                       "RPCs handled by each gateway worker process (index 0 in single-process mode).",
                       ("worker",))

# --- domain counters ---------------------------------------------------------------------------

CODES_SENT = Counter("hallgate_codes_sent_total", "One-time codes sent by SMS, by the channel that asked.",
                     ("channel",))
CODE_REQUESTS_REFUSED = Counter(
    "hallgate_code_requests_refused_total",
    "Code requests that sent no code, by reason (send_throttled, sim_swap_hold, locked_no_code, unknown_number).",
    ("reason",))
LOCKOUTS = Counter("hallgate_lockouts_total", "Accounts locked by failed sign-ins, by subject (number or staff).",
                   ("subject",))
DENIALS = Counter("hallgate_denials_total",
                  "Calls refused (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, ...), by channel and "
                  "reason.", ("channel", "reason"))
SIM_SWAP_REFUSALS = Counter("hallgate_sim_swap_refusals_total",
                            "Code requests refused because the SIM was changed or the number ported recently.")
LEGAL_REQUESTS = Counter("hallgate_legal_requests_total", "Legal requests entering each state.", ("state",))
AUDIT_APPEND = Histogram("hallgate_audit_append_seconds", "Time to store one audit event (until acknowledged).",
                         buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
AUDIT_APPEND_FAILURES = Counter("hallgate_audit_append_failures_total",
                                "Audit events that could not be stored (the call failed closed).")
DEPENDENCY_UP = Gauge("hallgate_dependency_up", "1 while the dependency answers, else 0 (readiness follows it).",
                      ("dependency",), multiprocess_mode="livemin")

CODE_REFUSAL_REASONS = frozenset({"send_throttled", "sim_swap_hold", "locked_no_code", "unknown_number"})
# Reasons meaning "this very call locked the subject". `staff_locked_now` needs gateway/domain/staff.py to tell a
# new staff lock from an attempt on a locked account, which today both say `staff_locked`.
LOCKOUT_REASONS = {"locked_now": "number", "staff_locked_now": "staff"}
DENIED = frozenset(code for code, decision in DECISIONS.items() if decision == "denied")
MAX_CHILDREN = 512  # label combinations per metric kept in the fast path; later ones are looked up each time


class _Children:
    """Label children of one metric, cached by their (already clean) label values."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self.cache.get(values)
        if child is None:
            child = self.metric.labels(*values)
            if len(self.cache) < MAX_CHILDREN:
                self.cache[values] = child
        return child


_codes_sent = _Children(CODES_SENT)
_refused = _Children(CODE_REQUESTS_REFUSED)
_lockouts = _Children(LOCKOUTS)
_denials = _Children(DENIALS)
_legal = _Children(LEGAL_REQUESTS)
_worker_calls = WORKER_CALLS.labels(WORKER if WORKER.isdigit() and len(WORKER) <= 3 else OTHER)


def record_outcome(call: CallContext, code: Code) -> None:
    """The domain counters for one finished call, from what its audit event says: the reason the
    rules gave and the final status. A code counts as sent once the rules say so, even if the call
    then failed (the SMS went out). Calls without an audit context (health, reflection) count only
    in hallgate_worker_calls_total."""
    _worker_calls.inc()
    if not call.method:
        return
    reason = word(call.reason or ("ok" if code == Code.OK else code.name.lower()))
    if reason == "code_sent":
        _codes_sent(word(call.channel or "unidentified")).inc()
    elif reason in CODE_REFUSAL_REASONS:
        _refused(reason).inc()
        if reason == "sim_swap_hold":
            SIM_SWAP_REFUSALS.inc()
    subject = LOCKOUT_REASONS.get(reason)
    if subject is not None:
        _lockouts(subject).inc()
    if code in DENIED:
        _denials(word(call.channel or "unidentified"), reason).inc()


def legal_request_entered(state: str) -> None:
    """Count a legal request entering `state` (a gateway.domain.legal.State value)."""
    _legal(word(str(state))).inc()


# --- adapters that measure ---------------------------------------------------------------------


class TimedAuditSink:
    """An AuditSink that times every append of the sink it wraps (hallgate_audit_append_seconds,
    failures included) and counts failures. Anything else is the wrapped sink's."""

    def __init__(self, sink: AuditSink) -> None:
        self.sink = sink

    async def append(self, *events: Mapping[str, Any]) -> None:
        started = time.perf_counter()
        try:
            await self.sink.append(*events)
        except Exception:
            AUDIT_APPEND_FAILURES.inc()
            raise
        finally:
            AUDIT_APPEND.observe(time.perf_counter() - started)

    async def check(self) -> None:
        await self.sink.check()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)


class CountingLegalStore:
    """A LegalStore that counts every stored state change (hallgate_legal_requests_total{state}):
    a new request enters its first state, a transition its `to_state`. Only changes the store
    accepted count; a lost race (False) does not."""

    def __init__(self, store: LegalStore) -> None:
        self.store = store

    async def create(self, request: LegalRequest, first: Transition) -> bool:
        stored = await self.store.create(request, first)
        if stored:
            legal_request_entered(first.to_state)
        return stored

    async def transition(self, after: LegalRequest, t: Transition) -> bool:
        stored = await self.store.transition(after, t)
        if stored:
            legal_request_entered(t.to_state)
        return stored

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


# --- readiness ---------------------------------------------------------------------------------
#
# Liveness is the server-wide status "" (SERVING while the process runs; never touched here).
# Readiness is per service, following only the dependencies that service needs, and
# `hallgate.ready` (the pod's readiness probe) follows what every service needs: Redis reachable
# and the terminal deny-list loaded. A dependency that is not configured (no archive, a document
# store without a check) is simply not needed.

Check = Callable[[], Awaitable[bool]]

READY = "hallgate.ready"
EVERY_SERVICE_NEEDS = ("redis", "deny_list")
SERVICE_NEEDS: dict[str, tuple[str, ...]] = {
    "hallgate.v1.KioskService": (*EVERY_SERVICE_NEEDS, "billing"),
    "hallgate.v1.StaffService": EVERY_SERVICE_NEEDS,
    "hallgate.v1.ClerkService": (*EVERY_SERVICE_NEEDS, "billing"),
    "hallgate.v1.LegalService": (*EVERY_SERVICE_NEEDS, "billing", "documents"),
    "hallgate.v1.AuditService": (*EVERY_SERVICE_NEEDS, "archive"),
    # The lending and incident registers live in Redis alone. ListAffected also reads the trail's
    # archive when its window reaches into it; with the archive away that one call answers
    # UNAVAILABLE (fails closed) while reports and the rest go on.
    "hallgate.v1.LendingService": EVERY_SERVICE_NEEDS,
    "hallgate.v1.IncidentService": EVERY_SERVICE_NEEDS,
    READY: EVERY_SERVICE_NEEDS,
}


def redis_check(client: Any) -> Check:
    async def check() -> bool:
        await client.ping()
        return True

    return check


def billing_check(billing: Any) -> Check:
    """Billing answers now, asked through the very channel the calls use: a second channel of its
    own would reconnect on its own schedule and report SERVING while the calls' channel is still
    backing off, and a stopped (not dead) billing would look connected."""

    async def check() -> bool:
        return bool(await billing.probe())

    return check


def deny_list_check(revocations: Any) -> Check:
    """The deny-list has been loaded at least once (until then every call with an identity is
    refused: it fails closed)."""

    async def check() -> bool:
        if not revocations.loaded:
            raise LookupError("not loaded yet")
        return True

    return check


def store_check(store: Any) -> Check:
    """A store with its own `async check()` (raising, or returning False, when it cannot answer)."""

    async def check() -> bool:
        return await store.check() is not False

    return check


def archive_check(archive: Any) -> Check:
    """The audit archive answers: its own check when it has one, else one `SELECT 1` on a pooled
    connection (adapters/audit/archive.py keeps them)."""
    if hasattr(archive, "check"):
        return store_check(archive)

    async def check() -> bool:
        async with archive.connection() as conn:
            await conn.execute("SELECT 1")
        return True

    return check


def dependency_checks(redis: Any, billing: Any, *, revocations: Any = None, documents: Any = None,
                      archive: Any = None) -> dict[str, Check]:
    """The checks: Redis (given its client), billing (given a remote billing client), the deny-list
    (given one that says whether it is `loaded`), the document store (when it has a `check()`) and
    the audit archive (when one is configured)."""
    checks: dict[str, Check] = {}
    if redis is not None:
        checks["redis"] = redis_check(redis)
    if revocations is not None and hasattr(revocations, "loaded"):
        checks["deny_list"] = deny_list_check(revocations)
    if billing is not None and str(getattr(billing, "target", "")) and hasattr(billing, "probe"):
        checks["billing"] = billing_check(billing)
    if documents is not None and callable(getattr(documents, "check", None)):
        checks["documents"] = store_check(documents)
    if archive is not None:
        checks["archive"] = archive_check(archive)
    return checks


def needs(service: str, available: Iterable[str]) -> list[str]:
    """The checks `service` follows: those of SERVICE_NEEDS that exist; a service it does not name
    follows every check."""
    wanted = SERVICE_NEEDS.get(service)
    return [n for n in available if wanted is None or n in wanted]


async def _attempt(check: Check, seconds: float) -> str:
    """"" when the check passes, else why not (for the log line)."""
    try:
        if await asyncio.wait_for(check(), seconds):
            return ""
        return "not ready"
    except TimeoutError:
        return f"no answer within {seconds:g}s"
    except Exception as err:
        return f"{type(err).__name__}: {err}"[:200]


async def _probe(check: Check, seconds: float) -> bool:
    return not await _attempt(check, seconds)


async def watch_readiness(health_servicer: health.aio.HealthServicer, services: Iterable[str],
                          checks: Mapping[str, Check], every: float = 0.25, probe_seconds: float = 0.5) -> None:
    """Readiness: each service NOT_SERVING while a dependency it needs (SERVICE_NEEDS) fails, since
    it would only fail closed; the others keep serving. Every service starts NOT_SERVING until the
    first round of checks. The server-wide status "" is left alone: it is liveness. Also sets
    hallgate_dependency_up, and logs one line whenever the set of failing dependencies changes,
    saying why. A change shows within `every` + `probe_seconds` (under a second), both ways."""
    from grpc_health.v1 import health_pb2

    serving_status, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    names = list(checks)
    plan = {service: needs(service, names) for service in services}
    status: dict[str, bool] = {}
    for service in plan:
        await health_servicer.set(service, not_serving)
        status[service] = False
    down_before: frozenset[str] | None = None
    while True:
        why = await asyncio.gather(*(_attempt(checks[n], probe_seconds) for n in names))
        for name, reason in zip(names, why, strict=True):
            DEPENDENCY_UP.labels(name).set(0 if reason else 1)
        down = frozenset(n for n, reason in zip(names, why, strict=True) if reason)
        for service, wanted in plan.items():
            ok = not down.intersection(wanted)
            if ok != status[service]:
                status[service] = ok
                await health_servicer.set(service, serving_status if ok else not_serving)
        if down != down_before:
            if down_before is not None or down:
                (log.warning if down else log.info)(
                    "readiness", ready=not down, down=sorted(down),
                    why={n: reason for n, reason in zip(names, why, strict=True) if reason},
                    not_serving=sorted(s for s, ok in status.items() if not ok))
            down_before = down
        await asyncio.sleep(every)


# --- the endpoint ------------------------------------------------------------------------------


@dataclass
class MetricsEndpoint:
    """The HTTP server behind /metrics (a daemon thread of prometheus_client's)."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise RuntimeError(f"metrics address {listen!r}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def registry_for(multiproc_dir: str | None = None) -> CollectorRegistry:
    """What to expose: this process's metrics, or with a multiprocess directory (given, or from
    PROMETHEUS_MULTIPROC_DIR) the sum over every process writing there."""
    path = multiproc_dir or os.environ.get(MULTIPROC_ENV)
    if not path:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return registry


def start_metrics_server(listen: str, multiproc_dir: str | None = None) -> MetricsEndpoint:
    """Serve Prometheus metrics over plain HTTP on `listen` (host:port; port 0 picks one)."""
    host, port = split_listen(listen)
    try:
        server, thread = start_http_server(port, host, registry=registry_for(multiproc_dir))
    except OSError as err:
        raise RuntimeError(f"cannot serve metrics on {listen}: {err}") from err
    log.info("metrics_serving", address=f"{host}:{server.server_port}", multiprocess=bool(multiproc_dir))
    return MetricsEndpoint(server, thread)


def mark_process_dead(pid: int, multiproc_dir: str) -> None:
    """A worker has exited: drop its live gauges from the multiprocess directory."""
    multiprocess.mark_process_dead(pid, multiproc_dir)
