"""The SMS path of one process, from the settings: the queue every call enqueues to, the
dispatchers that empty it, the sweep that tells the release notices of expired kiosk sessions,
and the `hallgate.sms` health status (SERVING while every dispatcher is bound to the SMSC).

The gateway's own readiness does not follow the SMSC: messages wait, sealed, in the queue, and a
kiosk's answer never depends on the SMS centre. An unbound SMSC shows in this health status, in
`hallgate_sms_link_up` and in the log (docs/sms.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import redis.asyncio as aioredis
import structlog
from grpc_health.v1 import health, health_pb2_grpc

from adapters.redis_client import connect
from adapters.sms.dispatcher import DispatchConfig, Dispatcher
from adapters.sms.events import SmsEvents
from adapters.sms.queue import RedisSmsQueue
from adapters.sms.smpp import SmppConfig, SmppTransport
from adapters.sms.transport import FileTransport, SmsTransport
from gateway.domain.notices import NoticeConfig, Notices
from gateway.domain.secretbox import SecretBox
from gateway.runtime import startup
from gateway.runtime.metrics import start_metrics_server
from gateway.runtime.settings import Settings
from gateway.runtime.sms_metrics import PrometheusSmsEvents

log = structlog.get_logger("hallgate.sms")
HEALTH_SERVICE = "hallgate.sms"


def sms_password(settings: Settings) -> str:
    if settings.sms_password_file:
        return Path(settings.sms_password_file).read_text().strip()
    return settings.sms_password


def check_url(url: str) -> None:
    """Refuse a URL the gateway cannot use, at start, with the reason."""
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme == "outbox":
        return
    if parts.scheme == "smpps":
        raise startup.StartupRefused("HALLGATE_SMS_URL: smpps:// (SMPP over TLS) is not supported by the SMPP "
                                     "library in use; reach the SMSC over a TLS tunnel or a private network")
    if parts.scheme != "smpp" or not parts.hostname or not parts.port:
        raise startup.StartupRefused(f"HALLGATE_SMS_URL={url!r}: expected smpp://host:port or outbox:PATH")


def transport(settings: Settings, events: SmsEvents) -> SmsTransport:
    """The way to the SMSC the settings name (HALLGATE_SMS_URL, resolved by the Runtime)."""
    url = settings.sms_url
    check_url(url)
    parts = urlsplit(url)
    if parts.scheme == "outbox":
        return FileTransport(Path(parts.path) if parts.path else startup.outbox_path(settings))
    assert parts.hostname is not None and parts.port is not None
    return SmppTransport(SmppConfig(
        host=parts.hostname, port=parts.port, system_id=settings.sms_system_id, password=sms_password(settings),
        source=settings.sms_source_addr, window=settings.sms_window, throughput=settings.sms_throughput,
        submit_timeout=settings.sms_submit_timeout), events)


def sms_queue(settings: Settings, client: aioredis.Redis, events: SmsEvents) -> RedisSmsQueue:
    """The queue: texts and numbers sealed under a key derived (HKDF) from the server secret."""
    key = settings.key_bytes()
    return RedisSmsQueue(client, SecretBox(key), key, events=events, timezone=settings.timezone)


def dispatch_config(settings: Settings) -> DispatchConfig:
    return DispatchConfig(max_attempts=settings.sms_max_attempts, receipt_timeout=settings.sms_receipt_timeout,
                          window=settings.sms_window, claim_idle=settings.sms_claim_idle,
                          poll=min(0.5, settings.redis_timeout / 2))


@dataclass
class SmsWorker:
    """Dispatchers and the fold sweep of one process, started and stopped together."""

    dispatchers: list[Dispatcher]
    notices: Notices
    sweep_every: float = 2.0
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings, queue: RedisSmsQueue, notices: Notices, events: SmsEvents,
                      count: int | None = None) -> SmsWorker:
        n = settings.sms_dispatchers if count is None else count
        return cls([Dispatcher(queue, transport(settings, events), dispatch_config(settings), events)
                    for _ in range(n)], notices)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(d.run()) for d in self.dispatchers] + [loop.create_task(self._sweep())]

    async def stop(self) -> None:
        for d in self.dispatchers:
            await d.stop()
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def ready(self) -> bool:
        return all(d.transport.ready and d.redis_ok for d in self.dispatchers)

    def status(self) -> str:
        return "; ".join(sorted({d.status() for d in self.dispatchers})) or "no dispatcher in this process"

    async def _sweep(self) -> None:
        failing = False  # logged when it starts and when it ends, not at every sweep while Redis is away
        while True:
            await asyncio.sleep(self.sweep_every)
            try:
                await self.notices.sweep()
            except Exception as err:  # Redis away: the folds wait for the next sweep
                if not failing:
                    failing = True
                    log.warning("release_notice_sweep_failed", error_type=type(err).__name__)
                continue
            if failing:
                failing = False
                log.info("release_notice_sweep_recovered")

    async def watch_health(self, health_servicer: Any, every: float = 0.5) -> None:
        """`hallgate.sms`: SERVING while bound, NOT_SERVING otherwise (the status line is logged)."""
        from grpc_health.v1 import health_pb2

        serving: bool | None = None
        while True:
            ready = self.ready() if self.dispatchers else True
            if ready != serving:
                # Not bound yet at start is normal for a moment: only a lost or refused link warns.
                quiet = ready or (serving is None and self.status() == "connecting")
                serving = ready
                (log.info if quiet else log.warning)("sms_link", ready=ready, status=self.status())
                await health_servicer.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING if ready
                                          else health_pb2.HealthCheckResponse.NOT_SERVING)
            await asyncio.sleep(every)


async def run_dispatch(settings: Settings) -> int:
    """`hallgate sms-dispatch`: dispatchers and the sweep, no gRPC, until SIGTERM or SIGINT."""
    if not settings.redis_url or not settings.sms_url:
        raise startup.StartupRefused("sms-dispatch needs HALLGATE_REDIS_URL and HALLGATE_SMS_URL")
    if not settings.secret_key and not (Path(settings.data_dir) / "secret.key").exists():
        # A key of its own would open nothing the gateways sealed: every message would be dead-lettered.
        raise startup.StartupRefused("sms-dispatch needs the gateways' HALLGATE_SECRET_KEY (it opens the sealed "
                                     "queue), or --data-dir pointing at the gateway's data directory")
    check_url(settings.sms_url)
    client = connect(settings.redis_url, settings.redis_timeout)
    events = PrometheusSmsEvents()
    queue = sms_queue(settings, client, events)
    worker = SmsWorker.from_settings(settings, queue, Notices(NoticeConfig.from_settings(settings), queue, queue),
                                     events, count=max(1, settings.sms_dispatchers))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    endpoint = start_metrics_server(settings.metrics_listen) if settings.metrics_listen else None
    probes, tasks = None, []
    if settings.health_listen:  # `hallgate.sms` (and "" for liveness) for the orchestrator's probes
        probes = grpc.aio.server()
        servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, probes)
        if probes.add_insecure_port(settings.health_listen) == 0:
            raise RuntimeError(f"cannot listen on {settings.health_listen}")
        await probes.start()
        tasks.append(loop.create_task(worker.watch_health(servicer)))
    worker.start()
    log.info("sms_dispatch_started", dispatchers=len(worker.dispatchers), sms_url=settings.sms_url)
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await worker.stop()
        if probes is not None:
            await probes.stop(0)
        if endpoint is not None:
            endpoint.close()
        await client.aclose()
    return 0
