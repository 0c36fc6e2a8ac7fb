"""The link to billing, wired from the settings: TLS, mutual when the gateway has a client
certificate, on any link that leaves this host.

Call lists, customer profiles and service-password checks cross this link, so a billing_target
on another host gets TLS (billing_tls_ca: the CA billing's certificate must chain to; its name
is checked, billing_tls_server_name when it is not the target's host), or the operator says in
so many words that the link is protected some other way (billing_plaintext: a service mesh's
mutual TLS, IPsec). A gateway with neither refuses to start, naming both. A target on this host
(loopback, a unix socket: a mesh sidecar, the embedded simulator) may stay plaintext.

The TLS files are looked at again every tls_reload seconds, from the call path (their inode,
size and mtime, as the hall side's are): a renewed client certificate and key, or a new CA
bundle, are read, checked and used for the calls after it without a restart; calls already on
the old channel finish on it. A set that does not check out (half-written, a key that is not the
certificate's) keeps the link as it was, with one warning per change.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import structlog
from cryptography import x509

from adapters.billing_client import GrpcBilling
from gateway.runtime.settings import Settings, env_name
from gateway.transport.tls_files import FileWatch, InvalidTlsFiles, read_ca, read_material

CA_WHAT = "billing CA bundle"
log = structlog.get_logger("hallgate.tls")


def _hosts(target: str) -> list[str] | None:
    """The hosts a gRPC target names (its name syntax: host:port, [v6]:port, dns:[//authority/]host:port,
    ipv4:a:port,b:port, ipv6:[a]:port); None for a unix socket; [] when it cannot be told."""
    scheme, sep, rest = target.partition(":")
    if sep and scheme in ("unix", "unix-abstract"):
        return None
    if sep and scheme == "dns":
        rest = rest.removeprefix("//").rpartition("/")[2] if rest.startswith("//") else rest
        names = [rest]
    elif sep and scheme in ("ipv4", "ipv6"):
        names = rest.split(",")
    else:
        names = [target]
    hosts = []
    for name in names:
        if name.startswith("["):
            host, close, _ = name[1:].partition("]")
            if not close:
                return []
        else:
            host = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
        hosts.append(host)
    return hosts


def on_this_host(target: str) -> bool:
    """Does `target` stay on this host (loopback addresses, localhost, a unix socket)? Anything
    that cannot be told counts as another host."""
    hosts = _hosts(target)
    if hosts is None:
        return True
    if not hosts:
        return False
    for host in hosts:
        if host.lower() == "localhost":
            continue
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:
            return False
    return True


def check(s: Settings) -> None:
    """A one-line ValueError if the billing link's settings cannot make a safe link."""
    ca, cert, key = s.billing_tls_ca, s.billing_tls_cert, s.billing_tls_key
    if bool(cert) != bool(key):
        raise ValueError(f"{env_name('billing_tls_cert')} and {env_name('billing_tls_key')} go together "
                         "(the gateway's client certificate for billing and its key)")
    if (cert or s.billing_tls_server_name) and not ca:
        raise ValueError(f"{env_name('billing_tls_cert' if cert else 'billing_tls_server_name')} is set but "
                         f"{env_name('billing_tls_ca')} is not: TLS to billing needs the CA its certificate "
                         "chains to")
    if ca and s.billing_plaintext:
        raise ValueError(f"{env_name('billing_tls_ca')} and {env_name('billing_plaintext')} are both set: "
                         "choose TLS or plaintext to billing")
    if not s.billing_target:
        if ca or s.billing_plaintext:
            raise ValueError(f"{env_name('billing_tls_ca') if ca else env_name('billing_plaintext')} is set "
                             f"but {env_name('billing_target')} is not (the embedded simulator is plaintext on "
                             "loopback)")
        return
    if not ca and not s.billing_plaintext and not on_this_host(s.billing_target):
        raise ValueError(f"billing at {s.billing_target} is on another host and the link would be plaintext: "
                         f"set {env_name('billing_tls_ca')} (with {env_name('billing_tls_cert')} and "
                         f"{env_name('billing_tls_key')} for mutual TLS), or {env_name('billing_plaintext')}=1 "
                         "where the link is protected otherwise")
    try:
        credentials(s)
    except InvalidTlsFiles as e:
        raise ValueError(f"TLS to billing: {e}") from None


def _read(s: Settings) -> tuple[grpc.ChannelCredentials, str, dict[str, Any]]:
    """The credentials billing_tls_* make, a digest of the files' contents, and what a log line
    may say of them (the certificate's subject, serial and expiry, the CA count; never the key)."""
    if s.billing_tls_cert:
        m = read_material(s.billing_tls_cert, s.billing_tls_key, s.billing_tls_ca, ca_what=CA_WHAT)
        leaf = x509.load_pem_x509_certificates(m.chain)[0]
        facts: dict[str, Any] = {"subject": leaf.subject.rfc4514_string(), "serial": format(leaf.serial_number, "x"),
                                 "not_after": leaf.not_valid_after_utc.isoformat()}
        ca, digest = m.client_ca, m.digest
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=m.key, certificate_chain=m.chain)
    else:
        ca = read_ca(s.billing_tls_ca, CA_WHAT)
        facts, digest = {}, hashlib.sha256(ca).hexdigest()[:16]
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
    return creds, digest, facts | {"billing_cas": len(x509.load_pem_x509_certificates(ca))}


def credentials(s: Settings) -> grpc.ChannelCredentials | None:
    """The channel credentials billing_tls_* make (None: plaintext); InvalidTlsFiles if a file is
    missing, unreadable, not PEM, or the key is not the certificate's."""
    if not s.billing_tls_ca:
        return None
    return _read(s)[0]


class RenewedCredentials:
    """billing_tls_* looked at again at most every `every` seconds (see the module): called before
    each billing call, it answers new credentials once after the files changed into a valid set,
    else None."""

    def __init__(self, s: Settings, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.s = s
        paths = tuple(Path(p) for p in (s.billing_tls_cert, s.billing_tls_key, s.billing_tls_ca) if p)
        self.current, self.digest, _ = _read(s)
        self.watch = FileWatch(paths, every, clock)

    def __call__(self) -> grpc.ChannelCredentials | None:
        stamps = self.watch.changed()
        if stamps is None:
            return None
        try:
            creds, digest, facts = _read(self.s)
        except InvalidTlsFiles as err:
            if self.watch.first_rejection(stamps):
                log.warning("billing_tls_reload_rejected", error=str(err), keeping=self.digest,
                            hint="the files are checked again on every change")
            return None
        self.watch.accept(stamps)
        if digest == self.digest:
            return None  # touched, not changed
        previous, self.current, self.digest = self.digest, creds, digest
        log.info("billing_tls_reloaded", previous=previous, current=digest, **facts)
        return creds


def billing_client(s: Settings, target: str | None = None) -> GrpcBilling:
    """The Billing port over the link the settings describe, to `target` (default billing_target);
    its TLS files renewed without a restart unless tls_reload is 0."""
    renew = RenewedCredentials(s, s.tls_reload) if s.billing_tls_ca and s.tls_reload > 0 else None
    return GrpcBilling(target or s.billing_target, timeout=s.billing_timeout, page_size=s.billing_page_size,
                       credentials=renew.current if renew is not None else credentials(s),
                       server_name=s.billing_tls_server_name, renew=renew)
