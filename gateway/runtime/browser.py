"""The browser listener, composed from the settings (docs/browser.md): the site over the one call
pipeline and the very servicers gRPC serves, on its own address and certificate."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.domain import rules
from gateway.domain.client_address import networks
from gateway.pipeline.run import Pipeline
from gateway.pipeline.web_gate import WebConfig
from gateway.runtime.edge import Edge
from gateway.runtime.settings import Settings
from gateway.runtime.worker_role import reuse_port
from gateway.transport.browser.connect import BrowserConfig, ConnectTransport
from gateway.transport.browser.listener import BrowserListener, files_of
from gateway.transport.browser.site import PageConfig, Site

REGISTER_LEGAL_REQUEST_MESSAGE = "hallgate.v1.RegisterRequestRequest"


def origins(settings: Settings) -> frozenset[str]:
    return frozenset(o.strip().rstrip("/") for o in settings.web_origins.split(",") if o.strip())


def web_config(settings: Settings) -> WebConfig:
    """The website channel's part of the policy (gateway/pipeline/web_gate.py)."""
    return WebConfig(enabled=settings.web_channel, origins=origins(settings),
                     calls_per_minute=settings.web_calls_per_minute, proofs_per_hour=settings.web_proofs_per_hour)


def check(settings: Settings) -> None:
    """ValueError naming what is wrong with the browser settings (startup.check calls it)."""
    networks(settings.web_trusted_proxies)
    for origin in origins(settings):
        if not origin.startswith("https://") or origin.count("/") != 2:
            raise ValueError(f"HALLGATE_WEB_ORIGINS: {origin!r} is not an origin like https://host[:port]")
    if settings.web_channel and not settings.web_challenge:
        raise ValueError("HALLGATE_WEB_CHANNEL needs a bot challenge (HALLGATE_WEB_CHALLENGE); "
                         "docs/browser.md, Bot defence")
    if settings.web_challenge.startswith("dev-") and not settings.dev:
        raise ValueError(f"HALLGATE_WEB_CHALLENGE={settings.web_challenge} is the development challenge: "
                         "only with --dev")
    will_have_tls = settings.browser_tls_cert or settings.tls_cert or (settings.dev and not settings.insecure_dev)
    if settings.browser_listen and not will_have_tls:
        raise ValueError("HALLGATE_BROWSER_LISTEN needs TLS (HALLGATE_BROWSER_TLS_CERT/KEY or HALLGATE_TLS_CERT/KEY): "
                         "browsers get the session cookie only over HTTPS")
    Edge.for_browsers(settings)  # browser_proxy_listen's own checks


def browser_listener(settings: Settings, pipeline: Pipeline, services: Mapping[str, Any]) -> BrowserListener | None:
    """The listener, not yet started, or None without browser_listen."""
    if not settings.browser_listen:
        return None
    large = {REGISTER_LEGAL_REQUEST_MESSAGE: settings.legal_max_letter_bytes + 64 * 1024}
    config = BrowserConfig(proxies=networks(settings.web_trusted_proxies),
                           client_ip_header=settings.web_client_ip_header.lower(),
                           max_bytes=settings.max_message_bytes, limits=large,
                           ceiling=max(settings.max_message_bytes, *large.values()))
    site = Site(ConnectTransport(pipeline, services, config),
                PageConfig(web_channel=settings.web_channel, idle_timeout=settings.browser_idle_timeout,
                           retention_months=settings.retention_months, challenge=settings.web_challenge,
                           # the month window as the server checks it: in the operator's time zone
                           today=lambda: rules.local_today(datetime.now(UTC), settings.timezone),
                           trust_domain=settings.trust_domain),
                origins=origins(settings))
    files = files_of(settings.browser_tls_cert or settings.tls_cert, settings.browser_tls_key or settings.tls_key,
                     settings.tls_client_ca, settings.tls_reload)
    return BrowserListener(site, settings.browser_listen, files, reuse_port=bool(reuse_port(settings)))


async def start_browsers(listener: BrowserListener, settings: Settings) -> Edge | None:
    """Start the listener and, with browser_proxy_listen, the edge front relaying to it (returned:
    the caller closes it after the listener)."""
    await listener.start()
    edge = Edge.for_browsers(settings)
    if edge is None:
        return None
    edge.upstream_port = await listener.relay_port(edge.peers)
    try:
        await edge.start()
    except BaseException:
        await listener.close(0)
        raise
    return edge
