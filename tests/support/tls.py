"""The test hall's trust domain, the demo terminal certificates (adapters/dev_pki.py makes them
under the session's `pki` fixture) and what a client or a production `hallgate serve` needs."""

from __future__ import annotations

from pathlib import Path

import grpc

from gateway.domain import delivery

TRUST_DOMAIN = "hallgate.test"

KIOSK_CERT = "kiosk-H001-K01"
CLERK_CERT = "clerk-H001-T07"
LEGAL_CERT = "legal-B01-L01"
AUDIT_CERT = "audit-B01-A01"


def client_credentials(pki: Path, name: str) -> grpc.ChannelCredentials:
    """Mutual TLS presenting the demo certificate `name`, trusting the hall CA."""
    return grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes(), (pki / f"{name}.key").read_bytes(),
                                        (pki / f"{name}.crt").read_bytes())


def tls_env(pki: Path) -> dict[str, str]:
    """What a production `hallgate serve` needs (no --dev): the TLS material and a legal signing key."""
    signing_key = pki / "legal-signing.pem"
    delivery.load_or_create_private_key(signing_key)
    return {"HALLGATE_TLS_CERT": str(pki / "server.crt"), "HALLGATE_TLS_KEY": str(pki / "server.key"),
            "HALLGATE_TLS_CLIENT_CA": str(pki / "ca.crt"), "HALLGATE_TRUST_DOMAIN": TRUST_DOMAIN,
            "HALLGATE_LEGAL_SIGNING_KEY": str(signing_key)}
