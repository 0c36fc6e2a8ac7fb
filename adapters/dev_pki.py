"""A development hall CA and demo terminal certificates, made with `cryptography`.

Production certificates come from the operator's hall CA; this exists so `make run` and the tests
use real mutual TLS. Each client certificate names its channel, hall and terminal in a SPIFFE-style
URI SAN: spiffe://<trust domain>/hall/H001/clerk/T07.

Only `hallgate serve --dev` (and the tests) make one. Everything is written owner-only: the
directory 0700, keys and certificates 0600 (the CA key would let anyone mint a terminal identity).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEMO_TERMINALS = [
    ("kiosk-H001-K01", "hall/H001/kiosk/K01"),
    ("kiosk-H001-K02", "hall/H001/kiosk/K02"),
    ("clerk-H001-T07", "hall/H001/clerk/T07"),
    ("clerk-H001-T08", "hall/H001/clerk/T08"),
    ("clerk-H002-T01", "hall/H002/clerk/T01"),
    ("legal-B01-L01", "branch/B01/legal/L01"),
    ("audit-B01-A01", "branch/B01/audit/A01"),
]


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes
    serial: int


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(name: str = "hallgate development hall CA", days: int = 3650) -> Issued:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), cert.serial_number)


def issue(ca: Issued, common_name: str, *, uri: str | None = None, server: bool = False,
          not_before: datetime | None = None, not_after: datetime | None = None,
          hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Issued:
    """A leaf certificate signed by `ca`: a server certificate for `hosts` (names and addresses;
    localhost and 127.0.0.1 unless told), or a client certificate carrying `uri` as its URI SAN."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    key = _key()
    now = datetime.now(UTC)
    names: list[x509.GeneralName] = []
    if server:
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
    if uri:
        names.append(x509.UniformResourceIdentifier(uri))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or now - timedelta(minutes=5))
               .not_valid_after(not_after or now + timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), cert.serial_number)


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: written beside and renamed into place, so a reader (a client loading
    ca.crt as soon as it appears) never sees a file half written, and a crash never leaves an
    empty ca.crt that would mark the directory complete."""
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask, and a file left by an older version too
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def ensure_dev_pki(directory: Path, trust_domain: str) -> Path:
    """Create (once) a CA, a server certificate and the demo terminal certificates in `directory`:
    ca.crt, server.crt/key, and <name>.crt/key per DEMO_TERMINALS."""
    if (directory / "ca.crt").exists():
        return directory
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca = make_ca()
    _write(directory / "ca.key", ca.key_pem)
    server = issue(ca, "hallgate", server=True)
    _write(directory / "server.crt", server.cert_pem)
    _write(directory / "server.key", server.key_pem)
    for name, path in DEMO_TERMINALS:
        leaf = issue(ca, name, uri=f"spiffe://{trust_domain}/{path}")
        _write(directory / f"{name}.crt", leaf.cert_pem)
        _write(directory / f"{name}.key", leaf.key_pem)
    _write(directory / "ca.crt", ca.cert_pem)  # last: its presence marks a complete directory
    return directory


def serial_of(cert_pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(cert_pem).serial_number, "x")
