"""The composition root: the only module that picks concrete adapters and wires them together.

`create_server(settings, deps)` builds the gRPC server (tests call it with port 0 and a real
channel); `Runtime` owns whatever embedded children the settings ask for; `serve` runs it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import redis.asyncio as aioredis
import structlog
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from adapters.audit.archive import PgAuditArchive
from adapters.audit.sink import ChainedAuditSink
from adapters.audit_reader import ChainAuditReader
from adapters.billing_client import GrpcBilling
from adapters.data_dir import ServeLock, check_supervised, tighten
from adapters.document_store import FileDocumentStore
from adapters.legal_store import RedisLegalStore
from adapters.pg_documents import PgDocumentStore
from adapters.pseudonyms import RedisPseudonymDirectory
from adapters.redis_client import connect
from adapters.redis_incidents import RedisIncidentStore
from adapters.redis_lending import RedisLendingStore
from adapters.redis_server import RedisServerProcess
from adapters.redis_staff import RedisStaffStore
from adapters.redis_state import RedisSignInState
from adapters.redis_throttle import RedisThrottle
from adapters.revocations import RevocationList
from adapters.sms.queue import RedisSmsQueue
from adapters.sms.sim_process import SmscSimProcess
from gateway.api.audit import AuditServicer
from gateway.api.clerk import ClerkServicer
from gateway.api.incident import IncidentServicer
from gateway.api.kiosk import KioskServicer
from gateway.api.legal import LegalServicer
from gateway.api.lending import LendingServicer
from gateway.api.staff import StaffServicer
from gateway.domain import delivery, effects
from gateway.domain.clerk import ClerkConfig, ClerkDesk
from gateway.domain.effects import DeferredSms
from gateway.domain.incidents import IncidentConfig, IncidentDesk
from gateway.domain.kiosk import KioskConfig, KioskFlows
from gateway.domain.legal import LegalConfig, LegalDesk
from gateway.domain.legal.ports import DocumentStore, LegalStore
from gateway.domain.lending import LendingConfig, LendingDesk
from gateway.domain.notices import NoticeConfig, Notices
from gateway.domain.ports import (
    AuditSink,
    AuditTrailReader,
    Billing,
    Challenge,
    Revocations,
    Sessions,
    SignInState,
    SmsOutbox,
    StaffDirectory,
    Throttle,
)
from gateway.domain.secretbox import staff_box
from gateway.domain.staff import StaffConfig, StaffDesk
from gateway.pipeline.audit import Recorder
from gateway.pipeline.authorize import AccessConfig, Authorizer
from gateway.pipeline.run import Pipeline
from gateway.pipeline.web_gate import WebGate
from gateway.runtime import billing_link, logs, startup
from gateway.runtime.browser import browser_listener, challenge, start_browsers, web_config
from gateway.runtime.edge import Edge
from gateway.runtime.incidents import IncidentAlerts, IncidentCheck
from gateway.runtime.lending import OverdueSweep
from gateway.runtime.metrics import READY, CountingLegalStore, TimedAuditSink, dependency_checks, start_metrics_server
from gateway.runtime.metrics import watch_readiness as watch_dependencies
from gateway.runtime.settings import Settings
from gateway.runtime.sms import SmsWorker, sms_queue
from gateway.runtime.sms_metrics import PrometheusSmsEvents
from gateway.runtime.worker_role import is_worker, reuse_port
from gateway.transport.grpc_server import GrpcTransport
from gateway.transport.tls_files import TlsFiles
from hallgate_pb.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    clerk_pb2,
    clerk_pb2_grpc,
    incident_pb2,
    incident_pb2_grpc,
    kiosk_pb2,
    kiosk_pb2_grpc,
    legal_pb2,
    legal_pb2_grpc,
    lending_pb2,
    lending_pb2_grpc,
    staff_pb2,
    staff_pb2_grpc,
)

log = structlog.get_logger("hallgate")
SERVICES = [
    kiosk_pb2.DESCRIPTOR.services_by_name["KioskService"].full_name,
    staff_pb2.DESCRIPTOR.services_by_name["StaffService"].full_name,
    clerk_pb2.DESCRIPTOR.services_by_name["ClerkService"].full_name,
    legal_pb2.DESCRIPTOR.services_by_name["LegalService"].full_name,
    audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    lending_pb2.DESCRIPTOR.services_by_name["LendingService"].full_name,
    incident_pb2.DESCRIPTOR.services_by_name["IncidentService"].full_name,
]
REGISTER_LEGAL_REQUEST = "/hallgate.v1.LegalService/RegisterRequest"


@dataclass(frozen=True)
class Deps:
    """The ports the service runs on (gateway/domain/ports.py) and the key its codes and
    pseudonyms are keyed with: nothing else. `build_deps` picks the adapters; any one of them can
    be replaced by name (a test's own billing, a host command's own client)."""

    state: SignInState
    billing: Billing
    sms: SmsOutbox
    audit: AuditSink
    audit_reader: AuditTrailReader
    staff: StaffDirectory
    sessions: Sessions
    revocations: Revocations
    legal_store: LegalStore
    documents: DocumentStore
    signer: delivery.Signer
    key: bytes
    lending: RedisLendingStore
    incidents: RedisIncidentStore
    pseudonyms: RedisPseudonymDirectory  # ref → number, sealed (adapters/pseudonyms.py): RevealNumbers
    throttle: Throttle  # per-address limits of the website channel
    challenge: Challenge | None  # the website's bot challenge (None: no website channel)


def staff_store(settings: Settings, client: aioredis.Redis, create_server_secret: bool = True) -> RedisStaffStore:
    """Staff accounts and sessions; TOTP secrets sealed at rest (docs/secrets.md). A host command
    passes `create_server_secret=False`: it must never seal under a key no gateway holds."""
    return RedisStaffStore(client, staff_box(settings, create_server_secret=create_server_secret))


def audit_sink(settings: Settings, client: aioredis.Redis) -> ChainedAuditSink:
    """The audit chain's writing end, as the settings ask for its durability."""
    keys, kid = settings.audit_keys()
    return ChainedAuditSink(client, keys, kid, settings.audit_chain, durability=settings.audit_durability,
                            replicas=settings.audit_replicas)


def audit_archive(settings: Settings) -> PgAuditArchive | None:
    """The audit trail's PostgreSQL archive tier when `audit_archive_url` names one (docs/audit.md,
    Archive); None: the trail lives in Redis only."""
    if not settings.audit_archive_url:
        return None
    return PgAuditArchive(settings.audit_archive_url)


def document_store(settings: Settings) -> DocumentStore:
    """Scanned letters: on PostgreSQL when `legal_document_url` names it (every gateway of a deployment
    sees every letter), else files under `legal_document_dir` (one host only; README.md, Where letters live)."""
    if settings.legal_document_url:
        return PgDocumentStore(settings.legal_document_url)
    return FileDocumentStore(settings.legal_document_dir or Path(settings.data_dir) / "documents")


def signer(settings: Settings) -> delivery.Signer:
    """The legal delivery signing key: the configured one, or (development) one in the data dir."""
    key = (delivery.load_private_key(settings.legal_signing_key) if settings.legal_signing_key
           else delivery.load_or_create_private_key(Path(settings.data_dir) / "legal-signing.pem"))
    return delivery.Signer(key)


def build_deps(settings: Settings, client: aioredis.Redis, billing: Billing, **overrides: Any) -> Deps:
    """Every port from the settings, one Redis client and the billing client; `overrides` replace
    any of them by field name. Blocking (it may read or make key files): call it off the loop."""
    staff = staff_store(settings, client)
    keys, kid = settings.audit_keys()
    made: dict[str, Any] = {
        "state": RedisSignInState(client), "billing": billing,
        "sms": sms_queue(settings, client, PrometheusSmsEvents()),
        "audit": audit_sink(settings, client),
        "audit_reader": ChainAuditReader(client, settings.audit_chain, keys, archive=audit_archive(settings),
                                         kid=kid),
        "staff": staff, "sessions": staff, "revocations": RevocationList(client),
        "legal_store": CountingLegalStore(RedisLegalStore(client)),
        "documents": document_store(settings),
        "signer": signer(settings), "key": settings.key_bytes(),
        "lending": RedisLendingStore(client),
        "incidents": RedisIncidentStore(client), "pseudonyms": RedisPseudonymDirectory(client, settings.key_bytes()),
        "throttle": RedisThrottle(client),
        "challenge": challenge(settings),
    }
    unknown = set(overrides) - set(made)
    if unknown:
        raise TypeError(f"build_deps: no such dependency {sorted(unknown)}")
    return Deps(**(made | overrides))


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Mutual TLS with the hall CA, re-read when the files change (gateway/transport/tls_files.py),
    or None for plaintext, which only development mode on a loopback address may have."""
    if settings.tls_cert:
        return TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca, settings.tls_reload).credentials()
    host = settings.listen.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not (settings.insecure_dev and loopback):
        raise RuntimeError("refusing to serve plaintext: set HALLGATE_TLS_CERT/KEY/CLIENT_CA, or use "
                           "--insecure-dev on a loopback address for development")
    return None


def call_pipeline(settings: Settings, deps: Deps) -> Pipeline:
    """The one call pipeline (gateway/pipeline/), which every transport hands its calls to."""
    access = AccessConfig(trust_domain=settings.trust_domain, insecure_dev=settings.insecure_dev,
                          staff_idle=settings.staff_idle, customer_session_idle=settings.customer_session_idle)
    return Pipeline(Authorizer(access, deps.sessions, deps.revocations, deps.staff,
                               web=WebGate(web_config(settings), deps.throttle, deps.challenge)),
                    Recorder(TimedAuditSink(deps.audit), deps.key, pseudonyms=deps.pseudonyms))


@dataclass(frozen=True)
class Services:
    """The API handlers (the servicers) over the use cases, by full service name. Built once and
    given to every transport, so gRPC and any later one serve the very same objects."""

    kiosk: KioskServicer
    staff: StaffServicer
    clerk: ClerkServicer
    legal: LegalServicer
    audit: AuditServicer
    lending: LendingServicer
    incident: IncidentServicer

    def by_name(self) -> dict[str, Any]:
        return dict(zip(SERVICES, (self.kiosk, self.staff, self.clerk, self.legal, self.audit, self.lending,
                                      self.incident),
                        strict=True))


def notices(settings: Settings, deps: Deps) -> Notices:
    """Every SMS to a subscriber; inside a call it leaves only once the call is on record."""
    return Notices(NoticeConfig.from_settings(settings), DeferredSms(deps.sms), deps.sms)


def sms_worker(settings: Settings, deps: Deps) -> SmsWorker:
    """This process's SMS dispatchers and release-notice sweep (gateway/runtime/sms.py)."""
    if not isinstance(deps.sms, RedisSmsQueue):
        raise TypeError("dispatchers need the Redis SMS queue")
    return SmsWorker.from_settings(settings, deps.sms, notices(settings, deps), PrometheusSmsEvents())


def overdue_sweep(settings: Settings, deps: Deps) -> OverdueSweep:
    """This process's check for overdue archive loans (gateway/runtime/lending.py): each alerted
    at most once a day across every process."""
    return OverdueSweep(deps.lending, deps.audit, LendingConfig.from_settings(settings),
                        every=settings.loan_overdue_check)


def incident_desk(settings: Settings, deps: Deps) -> IncidentDesk:
    """Breach response (R10): the register, the trail it reads who was affected from, the sealed
    pseudonym directory for reveals, and the information supervisor's alerts (gateway/runtime/incidents.py)."""
    config = IncidentConfig.from_settings(settings)
    return IncidentDesk(deps.incidents, deps.audit_reader, deps.pseudonyms, IncidentAlerts(deps.audit, config), config)


def build_services(settings: Settings, deps: Deps) -> Services:
    """The use cases over the ports, and their API handlers."""
    kiosk = KioskFlows(KioskConfig.from_settings(settings), deps.state, deps.billing, notices(settings, deps), deps.key,
                       access_log=deps.audit_reader)
    return Services(
        kiosk=KioskServicer(kiosk),
        staff=StaffServicer(StaffDesk(StaffConfig.from_settings(settings), deps.staff, deps.state, deps.sessions)),
        clerk=ClerkServicer(ClerkDesk(ClerkConfig.from_settings(settings), kiosk.proof, deps.billing,
                                      kiosk.notices, deps.sessions)),
        legal=LegalServicer(LegalDesk(deps.legal_store, deps.documents, deps.billing, deps.signer,
                                      LegalConfig.from_settings(settings), people=deps.staff)),
        audit=AuditServicer(deps.audit_reader, deps.key),
        lending=LendingServicer(LendingDesk(deps.lending, LendingConfig.from_settings(settings), people=deps.staff)),
        incident=IncidentServicer(incident_desk(settings, deps)))


def connection_age_options(settings: Settings) -> list[tuple[str, int]]:
    """A client connection lives `max_connection_age` seconds (gRPC adds +-10% jitter), then gets
    GOAWAY and reconnects, perhaps to a newer pod; calls on it get `max_connection_age_grace` more
    seconds to finish. 0 turns either off."""
    options = []
    if settings.max_connection_age > 0:
        options.append(("grpc.max_connection_age_ms", max(1, int(settings.max_connection_age * 1000))))
        if settings.max_connection_age_grace > 0:
            options.append(("grpc.max_connection_age_grace_ms", max(1, int(settings.max_connection_age_grace * 1000))))
    return options


def create_server(settings: Settings, deps: Deps, services: Services | None = None, edge: Edge | None = None
                  ) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A configured, not yet started server bound to `settings.listen` (port 0 picks a free one).
    With an `edge` (proxy_listen, gateway/runtime/edge.py) peers are resolved through its PeerMap and
    the server gets the edge front's own loopback port too."""
    credentials = server_credentials(settings)
    large = {REGISTER_LEGAL_REQUEST: settings.legal_max_letter_bytes + 64 * 1024}
    server = grpc.aio.server(
        interceptors=[GrpcTransport(call_pipeline(settings, deps), settings.max_message_bytes, large,
                                    peers=edge.peers if edge is not None else None)],
        options=[("grpc.max_receive_message_length", max(settings.max_message_bytes, *large.values())),
                 ("grpc.so_reuseport", reuse_port(settings)), *connection_age_options(settings)],
    )
    services = services or build_services(settings, deps)
    kiosk_pb2_grpc.add_KioskServiceServicer_to_server(services.kiosk, server)
    staff_pb2_grpc.add_StaffServiceServicer_to_server(services.staff, server)
    clerk_pb2_grpc.add_ClerkServiceServicer_to_server(services.clerk, server)
    legal_pb2_grpc.add_LegalServiceServicer_to_server(services.legal, server)
    audit_pb2_grpc.add_AuditServiceServicer_to_server(services.audit, server)
    lending_pb2_grpc.add_LendingServiceServicer_to_server(services.lending, server)
    incident_pb2_grpc.add_IncidentServiceServicer_to_server(services.incident, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    if credentials is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, credentials)
    if port == 0:
        raise RuntimeError(f"cannot listen on {settings.listen}")
    if edge is not None:
        edge.bind(server, server_credentials(settings))  # credentials of its own: one per port (tls_files.py)
    return server, port, health_servicer


def health_server(settings: Settings, servicer: health.aio.HealthServicer) -> grpc.aio.Server | None:
    """A plaintext server with nothing but the health service, for probes without certificates.
    It shares the main server's health state, so it answers for the gateway, not for itself."""
    if not settings.health_listen:
        return None
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if server.add_insecure_port(settings.health_listen) == 0:
        raise RuntimeError(f"cannot listen on {settings.health_listen}")
    return server


class Runtime:
    """Starts the dependencies the settings name, embedded ones included, and stops them again.

    In this order, so that a refusal touches nothing: the settings are checked (gateway/runtime/startup.py:
    production needs TLS material and the legal signing key unless --dev); the data directory is
    locked (adapters/data_dir.py: one gateway per directory; a supervisor's worker only checks
    that its supervisor holds the lock); then, with umask 077, older files are tightened, and only
    then is anything made or started. The lock is released last, after the embedded redis-server
    has stopped."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.redis_child: RedisServerProcess | None = None
        self.billing_server: grpc.aio.Server | None = None
        self.smsc_child: SmscSimProcess | None = None
        self.closers: list[Any] = []
        self.lock: ServeLock | None = None
        self._umask: int | None = None
        self.client: aioredis.Redis | None = None  # for readiness: the client the ports use
        self.billing: GrpcBilling | None = None
        self.demo: list[tuple[str, str, str]] = []  # development: demo subscribers and staff, for the banner
        self.demo_staff: list[tuple[str, str, str, str]] = []

    def checks(self, deps: Deps | None = None) -> dict[str, Any]:
        """Readiness: Redis and billing, asked through the very clients the calls use; with the
        deps, also the deny-list loaded, the document store (if it has a check) and the audit
        archive (if configured). Each service follows only what it needs (metrics.SERVICE_NEEDS)."""
        if deps is None:
            return dependency_checks(self.client, self.billing)
        return dependency_checks(self.client, self.billing, revocations=deps.revocations, documents=deps.documents,
                                 archive=getattr(deps.audit_reader, "archive", None))

    async def start(self) -> Deps:
        startup.check(self.s)
        data = Path(self.s.data_dir)
        if is_worker():
            await asyncio.to_thread(check_supervised, data)
        else:
            self.lock = await asyncio.to_thread(ServeLock.acquire, data)
        try:
            return await self._start(data)
        except BaseException:
            await self.close()
            raise

    async def _start(self, data: Path) -> Deps:
        self._umask = os.umask(0o077)  # everything this process writes is the owner's alone
        if self.lock is not None:
            await asyncio.to_thread(tighten, data)
        if self.s.dev:
            self.s = await asyncio.to_thread(startup.dev_material, self.s)
        elif not self.s.secret_key and not is_worker():
            log.warning("secret_key_in_data_dir", path=str(data / "secret.key"),
                        hint="gateways sharing one Redis need one HALLGATE_SECRET_KEY")
        url = self.s.redis_url
        if not url:
            # fsync on every write: an audit event is acknowledged only once it is on disk.
            self.redis_child = RedisServerProcess(data / "redis", unix_socket=data / "redis" / "redis.sock",
                                                  appendfsync="always")
            self.redis_child.start()  # from the main thread: the child's death signal is tied to it
            url = self.redis_child.url
        client = connect(url, self.s.redis_timeout)
        self.closers.append(client.aclose)
        if not self.s.sms_url:
            # The embedded SMS centre: a separate process speaking SMPP, writing what phones get to the outbox.
            self.smsc_child = await asyncio.to_thread(
                SmscSimProcess(startup.outbox_path(self.s), system_id=self.s.sms_system_id,
                               log_json=logs.is_json()).start)
            self.s = self.s.with_(sms_url=self.smsc_child.url, sms_password=self.smsc_child.password,
                                  sms_password_file="")
            if not self.s.dev and not is_worker():
                log.warning("sms_simulated", hint="no HALLGATE_SMS_URL: codes go to the embedded SMSC simulator, "
                                                  "no phone gets them (docs/sms.md)")
        target, demo = self.s.billing_target, list[tuple[str, str, str]]()
        if not target:
            target, demo = await self._start_billing_sim()
        billing = billing_link.billing_client(self.s, target)
        self.closers.append(billing.close)
        deps = await asyncio.to_thread(build_deps, self.s, client, billing)
        if isinstance(deps.documents, PgDocumentStore):
            self.closers.append(deps.documents.close)
        self.client, self.billing = client, billing
        self.demo = demo if self.s.dev else []
        if self.s.dev and not self.s.billing_target:
            from gateway.runtime.demo import seed_demo_staff

            self.demo_staff = await seed_demo_staff(deps.staff, self.s.staff_hash_n)
        if self.lock is not None:
            await asyncio.to_thread(tighten, data)  # what was made just now (a signing key's .pub)
        return deps

    async def _start_billing_sim(self) -> tuple[str, list[tuple[str, str, str]]]:
        from adapters.billing_sim.data import SeededBilling
        from adapters.billing_sim.server import start_billing_sim

        data = SeededBilling(seed=self.s.sim_seed, subscribers=self.s.sim_subscribers,
                             hash_n=self.s.sim_hash_n, tz=self.s.timezone)
        self.billing_server, port = await start_billing_sim(data)
        return f"127.0.0.1:{port}", data.demo_subscribers()

    async def close(self) -> None:
        """Stop what `start` started; safe to call again (a supervisor does after a failed start)."""
        closers, self.closers = self.closers, []
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()
        if self.billing_server is not None:
            await self.billing_server.stop(1)
        if self.smsc_child is not None:
            await asyncio.to_thread(self.smsc_child.stop)
        if self.redis_child is not None:
            await asyncio.to_thread(self.redis_child.stop)
        if self.lock is not None:  # last: nobody may start on this directory while our Redis runs
            self.lock.release()
        if self._umask is not None:
            os.umask(self._umask)
            self._umask = None


async def serve(settings: Settings, banner: bool = True) -> None:
    """Run until SIGTERM or SIGINT, then let in-flight calls finish within the grace period."""
    runtime = Runtime(settings)
    deps = await runtime.start()
    settings = runtime.s
    endpoint = None
    try:
        if settings.metrics_listen:
            endpoint = start_metrics_server(settings.metrics_listen)
        edge = Edge.of(settings)  # the PROXY-protocol front for the edge proxies, if proxy_listen is set
        services = build_services(settings, deps)  # the very objects every transport serves
        server, port, health_servicer = create_server(settings, deps, services, edge=edge)
        probes = health_server(settings, health_servicer)
        browser = browser_listener(settings, call_pipeline(settings, deps), services.by_name())
        sms = sms_worker(settings, deps)
        sms.start()
        overdue = overdue_sweep(settings, deps)
        overdue.start()
        incident_check = IncidentCheck(incident_desk(settings, deps))  # deadlines: alerted once a day
        incident_check.start()
        # Nothing here waits for Redis or billing: with either down the gateway serves, its
        # services NOT_SERVING (readiness) until they come; the deny-list loads in the background
        # and refuses calls until it has (fails closed).
        tasks = [asyncio.create_task(watch_dependencies(health_servicer, [*SERVICES, READY], runtime.checks(deps))),
                 asyncio.create_task(deps.revocations.run(settings.revocation_refresh)),
                 asyncio.create_task(sms.watch_health(health_servicer))]
        await server.start()
        if edge is not None:
            await edge.start()
        browser_edge = await start_browsers(browser, settings) if browser is not None else None
        if probes is not None:
            await probes.start()
        host = settings.listen.rsplit(":", 1)[0]
        log.info("serving", address=f"{host}:{port}", tls=bool(settings.tls_cert),
                 redis="embedded" if runtime.redis_child else "external",
                 billing="embedded simulator" if runtime.billing_server else settings.billing_target,
                 mode="development" if settings.dev or not settings.tls_cert else "production",
                 health=settings.health_listen or None, ready_service=READY,
                 sms="embedded simulator" if runtime.smsc_child is not None else no_userinfo(settings.sms_url))
        if browser is not None:
            log.info("serving_browsers", address=f"{settings.browser_listen.rsplit(':', 1)[0]}:{browser.port}",
                     web_channel=settings.web_channel,
                     edge=settings.browser_proxy_listen if browser_edge is not None else None)
        if banner:
            print_banner(f"{host}:{port}", settings, runtime.demo, runtime.demo_staff, runtime.smsc_child is not None,
                         browser_port=browser.port if browser is not None else 0)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping", grace_period=settings.grace_period)
        for task in tasks:
            task.cancel()
        await health_servicer.enter_graceful_shutdown()
        # Both transports stop taking calls at once and give the running ones the same grace period.
        await asyncio.gather(server.stop(settings.grace_period),
                             browser.close(settings.grace_period) if browser is not None else asyncio.sleep(0))
        for front in (edge, browser_edge):
            if front is not None:
                await front.close()
        await effects.drain()  # the SMS the last calls asked for are queued before the dispatchers stop
        await sms.stop()
        await overdue.stop()
        await incident_check.stop()
        if probes is not None:
            await probes.stop(0)
    finally:
        if endpoint is not None:
            endpoint.close()
        await runtime.close()
    log.info("stopped")


def no_userinfo(url: str) -> str:
    """A URL fit for a log line: without user and password."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def print_banner(address: str, settings: Settings, demo: list[tuple[str, str, str]],
                 staff: list[tuple[str, str, str, str]] | None = None, simulated_sms: bool = False,
                 browser_port: int = 0) -> None:
    """What a person starting the gateway needs. Demo secrets only in development mode (--dev)."""
    transport = "mutual TLS" if settings.tls_cert else "PLAINTEXT"
    dev = settings.dev or not settings.tls_cert
    lines = [f"hallgate is serving on {address} ({transport}{', development mode' if dev else ''})"]
    if browser_port:
        where = f"https://{settings.browser_listen.rsplit(':', 1)[0]}:{browser_port}/"
        lines.append(f"Browsers: {where} (Connect, gRPC-Web; the self-service page; "
                     f"website channel {'on' if settings.web_channel else 'off'}; docs/browser.md)")
    if simulated_sms or not settings.sms_url.startswith("smpp://"):
        lines.append(f"SMS: {'the embedded SMSC simulator' if simulated_sms else settings.sms_url}; no real phone "
                     f"gets them. What the phones would show: {startup.outbox_path(settings)}   "
                     "(hallgate sms outbox NUMBER)")
    else:
        lines.append(f"SMS centre: {settings.sms_url}   (docs/sms.md)")
    if settings.dev:
        lines.append("DEVELOPMENT mode (--dev): development keys and demo accounts; never use it in production")
    if settings.tls_cert and Path(settings.tls_cert).parent == Path(settings.data_dir) / "pki":
        lines.append(f"Development CA and terminal certificates: {Path(settings.data_dir) / 'pki'}")
    if demo and settings.dev:
        lines.append("Demo subscribers of the embedded billing simulator (number / service password):")
        lines += [f"  {m}  {p}  {note}" for m, p, note in demo]
    if staff and settings.dev:
        lines.append("Demo staff (id / role / hall / TOTP secret; password hallgate2026):")
        lines += [f"  {i:6} {role:15} {hall:5} {secret}" for i, role, hall, secret in staff]
    print("\n".join(lines), flush=True)
