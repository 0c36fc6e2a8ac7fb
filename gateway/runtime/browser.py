"""The browser listener, composed from the settings (docs/browser.md): the site over the one call
pipeline and the very servicers gRPC serves, on its own address and certificate."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from adapters.dev_challenge import MODES, DevChallenge
from adapters.siteverify import PROVIDERS, SiteVerify, check_script, check_url, origin_of
from gateway.domain import rules
from gateway.domain.client_address import networks
from gateway.domain.ports import Challenge
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
    if settings.web_challenge and settings.web_challenge not in (*PROVIDERS, *MODES):
        raise ValueError(f"HALLGATE_WEB_CHALLENGE={settings.web_challenge!r}: one of {', '.join(PROVIDERS)} "
                         f"(or {', '.join(MODES)} in development)")
    if settings.web_challenge in PROVIDERS:
        if not settings.web_challenge_site_key or not settings.web_challenge_secret:
            raise ValueError(f"HALLGATE_WEB_CHALLENGE={settings.web_challenge} needs HALLGATE_WEB_CHALLENGE_SITE_KEY "
                             "and HALLGATE_WEB_CHALLENGE_SECRET_FILE (the vendor's keys for this website)")
        check_url(settings.web_challenge_verify_url or PROVIDERS[settings.web_challenge].verify,
                  "HALLGATE_WEB_CHALLENGE_VERIFY_URL")
        check_script(settings.web_challenge_script or PROVIDERS[settings.web_challenge].script,
                     "HALLGATE_WEB_CHALLENGE_SCRIPT")
    will_have_tls = settings.browser_tls_cert or settings.tls_cert or (settings.dev and not settings.insecure_dev)
    if settings.browser_listen and not will_have_tls:
        raise ValueError("HALLGATE_BROWSER_LISTEN needs TLS (HALLGATE_BROWSER_TLS_CERT/KEY or HALLGATE_TLS_CERT/KEY): "
                         "browsers get the session cookie only over HTTPS")
    Edge.for_browsers(settings)  # browser_proxy_listen's own checks


def challenge(settings: Settings) -> Challenge | None:
    """The website's bot challenge: the vendor's siteverify, or the development one; None without one."""
    provider = PROVIDERS.get(settings.web_challenge)
    if provider is not None:
        return SiteVerify(settings.web_challenge_verify_url or provider.verify, settings.web_challenge_secret,
                          settings.web_challenge_timeout,
                          site_key=settings.web_challenge_site_key if provider.sends_sitekey else "")
    return DevChallenge(settings.web_challenge) if settings.web_challenge else None


def page_challenge(settings: Settings) -> dict[str, Any]:
    """What the self-service page needs to render the vendor's widget, and the sources its CSP must
    admit: the vendor's own, and a mirrored script's origin beside them (the widget it draws still
    frames the vendor)."""
    provider = PROVIDERS.get(settings.web_challenge)
    if provider is None:
        return {}
    script = settings.web_challenge_script or provider.script
    sources = tuple(dict.fromkeys([*provider.sources, origin_of(script)]))
    return {"challenge_site_key": settings.web_challenge_site_key, "challenge_script": script,
            "challenge_global": provider.js_global, "challenge_csp": {d: sources for d in provider.csp}}


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
                           trust_domain=settings.trust_domain, **page_challenge(settings)),
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
