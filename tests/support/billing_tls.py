"""The operator's billing PKI as the billing-link tests need it: a CA of its own (not the hall
CA), billing's server certificates (for 127.0.0.1 and localhost, and one carrying only a DNS name),
the gateway's client certificate for billing, and a CA that vouches for none of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from adapters.billing_sim.server import server_credentials
from adapters.dev_pki import Issued, issue, make_ca

BILLING_NAME = "billing.operator.test"


@dataclass(frozen=True)
class BillingPki:
    directory: Path

    def path(self, name: str) -> str:
        return str(self.directory / name)

    def gateway_settings(self, ca: str = "ca.crt", client: bool = True, **more: Any) -> dict[str, Any]:
        """make_gateway(**...): TLS to billing trusting `ca`, with the gateway's client certificate."""
        settings: dict[str, Any] = {"billing_tls_ca": self.path(ca)}
        if client:
            settings |= {"billing_tls_cert": self.path("gateway.crt"), "billing_tls_key": self.path("gateway.key")}
        return settings | more

    def env(self) -> dict[str, str]:
        """The same for a `hallgate serve` process."""
        return {"HALLGATE_BILLING_TLS_CA": self.path("ca.crt"), "HALLGATE_BILLING_TLS_CERT": self.path("gateway.crt"),
                "HALLGATE_BILLING_TLS_KEY": self.path("gateway.key")}

    def server(self, name: str = "billing", mutual: bool = True) -> grpc.ServerCredentials:
        """Billing's TLS: certificate `name` ("billing": 127.0.0.1/localhost; "billing-named": only
        BILLING_NAME); `mutual`: a client certificate from the billing CA is required."""
        ca = (self.directory / "ca.crt").read_bytes() if mutual else None
        return server_credentials((self.directory / f"{name}.crt").read_bytes(),
                                  (self.directory / f"{name}.key").read_bytes(), ca)

    def sim_flags(self) -> tuple[str, ...]:
        """`hallgate billing-sim` flags: mutual TLS with the billing certificate."""
        return ("--tls-cert", self.path("billing.crt"), "--tls-key", self.path("billing.key"),
                "--tls-client-ca", self.path("ca.crt"))

    def renewed_client(self) -> Issued:
        """A new client certificate and key for the gateway from the billing CA, as a renewal makes."""
        ca = Issued((self.directory / "ca.crt").read_bytes(), (self.directory / "ca.key").read_bytes(), 0)
        return issue(ca, "hallgate billing client")

    def client(self) -> grpc.ChannelCredentials:
        """What the gateway presents to billing, for a test's own channel."""
        return grpc.ssl_channel_credentials((self.directory / "ca.crt").read_bytes(),
                                            (self.directory / "gateway.key").read_bytes(),
                                            (self.directory / "gateway.crt").read_bytes())


def make_billing_pki(directory: Path) -> BillingPki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, stranger = make_ca("operator billing CA"), make_ca("a CA billing never used")

    def write(name: str, issued: Issued) -> None:
        (directory / f"{name}.crt").write_bytes(issued.cert_pem)
        (directory / f"{name}.key").write_bytes(issued.key_pem)

    write("ca", ca)
    write("stranger-ca", stranger)
    write("billing", issue(ca, "billing", server=True))
    write("billing-named", issue(ca, "billing", server=True, hosts=(BILLING_NAME,)))
    write("gateway", issue(ca, "hallgate billing client"))
    write("stranger-gateway", issue(stranger, "hallgate billing client"))
    return BillingPki(directory)
