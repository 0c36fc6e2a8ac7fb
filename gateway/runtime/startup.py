"""What `hallgate serve` checks and makes before it touches anything: safe defaults.

Production is the default. Without its TLS material (HALLGATE_TLS_CERT, HALLGATE_TLS_KEY,
HALLGATE_TLS_CLIENT_CA) or the legal signing key (HALLGATE_LEGAL_SIGNING_KEY) the gateway refuses
to start, with one line naming what is missing: a gateway that quietly made itself a CA and a
signing key would serve identities and sign deliveries nobody issued. Only the explicit
development flag (`--dev`, HALLGATE_DEV=1) makes a development CA, terminal certificates and a
signing key under the data directory, seeds demo staff and prints demo secrets. `--insecure-dev`
(plaintext on loopback) replaces the TLS material only, not the signing key.
"""

from __future__ import annotations

from pathlib import Path

from adapters.dev_pki import ensure_dev_pki
from adapters.sms_outbox import OUTBOX_NAME
from gateway.domain import delivery
from gateway.runtime import billing_link, browser
from gateway.runtime.edge import Edge
from gateway.runtime.settings import Settings, env_name

TLS_SETTINGS = ("tls_cert", "tls_key", "tls_client_ca")
DEV_SIGNING_KEY = "legal-signing.pem"


class StartupRefused(RuntimeError):
    """The settings cannot make a safe gateway; the message is one line naming the settings."""


def check(settings: Settings) -> None:
    """Refuse settings that would serve unsafely, before anything is started or written."""
    s = settings
    given = [n for n in TLS_SETTINGS if getattr(s, n)]
    if given and len(given) < len(TLS_SETTINGS):
        missing = [env_name(n) for n in TLS_SETTINGS if not getattr(s, n)]
        raise StartupRefused(f"refusing to start: {', '.join(env_name(n) for n in given)} set but "
                             f"{', '.join(missing)} not; mutual TLS needs all three")
    missing = []
    if not (s.dev or s.insecure_dev or given):
        missing += [env_name(n) for n in TLS_SETTINGS]
    if not (s.dev or s.legal_signing_key):
        missing.append(env_name("legal_signing_key"))
    if missing:
        raise StartupRefused(f"refusing to start without {', '.join(missing)}: production needs the hall's TLS "
                             "material and the legal signing key; for development only, --dev (HALLGATE_DEV=1) "
                             "makes them under the data directory")
    try:
        Edge.of(s)  # the edge front's settings (proxy_listen, proxy_trusted), checked before anything starts
        browser.check(s)  # the browser listener's and the website channel's
        billing_link.check(s)  # TLS to a billing on another host, or plaintext said in so many words
    except ValueError as e:
        raise StartupRefused(f"refusing to start: {e}") from None
    for name in (*given, "legal_signing_key"):
        path = getattr(s, name)
        if path and not Path(path).is_file():
            raise StartupRefused(f"refusing to start: {env_name(name)}={path} is not a readable file")


def dev_material(settings: Settings) -> Settings:
    """Development mode only: the settings with a development CA and server certificate, and a
    development signing key, made once under the data directory where none is configured."""
    if not settings.dev:
        raise StartupRefused("development material is made only with --dev")
    s, data = settings, Path(settings.data_dir)
    if not s.tls_cert and not s.insecure_dev:
        pki = ensure_dev_pki(data / "pki", s.trust_domain)
        s = s.with_(tls_cert=str(pki / "server.crt"), tls_key=str(pki / "server.key"),
                    tls_client_ca=str(pki / "ca.crt"))
    if not s.legal_signing_key:
        path = data / DEV_SIGNING_KEY
        delivery.load_or_create_private_key(path)
        s = s.with_(legal_signing_key=str(path))
    return s


def outbox_path(settings: Settings) -> Path:
    """The development SMS outbox: HALLGATE_SMS_OUTBOX, else <data_dir>/sms-outbox.jsonl."""
    return Path(settings.sms_outbox) if settings.sms_outbox else Path(settings.data_dir) / OUTBOX_NAME
