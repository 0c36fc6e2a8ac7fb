"""The server's TLS material from files, reloaded when they change: no restart for a renewed
certificate (cert-manager), a new key or a changed hall CA bundle.

gRPC asks the credentials' fetcher before every TLS handshake (grpc.dynamic_ssl_server_credentials); it
looks at the files at most every `every` seconds (their inode, size and mtime), and only when
one changed reads them, checks them (the certificate chain and the key parse and belong together,
the CA bundle holds at least one certificate) and hands gRPC the new configuration. A half-written
renewal, a key that does not match, an empty bundle: the old configuration stays, with a warning,
until the files are right again. Connections already open keep the certificates they were made
with; new ones get the new ones.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = structlog.get_logger("hallgate.tls")


class InvalidTlsFiles(ValueError):
    """The files cannot make a server configuration (the message says which and why)."""


@dataclass(frozen=True)
class TlsMaterial:
    """Checked PEM bytes: the server's chain and key, and the CA bundle client certificates must chain to."""

    chain: bytes
    key: bytes
    client_ca: bytes

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.chain, self.key, self.client_ca):
            h.update(hashlib.sha256(part).digest())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, object]:
        """What a log line may say: subject, serial and expiry of the leaf, the CA count; no key."""
        leaf = x509.load_pem_x509_certificates(self.chain)[0]
        return {"subject": leaf.subject.rfc4514_string(), "serial": format(leaf.serial_number, "x"),
                "not_after": leaf.not_valid_after_utc.isoformat(),
                "client_cas": len(x509.load_pem_x509_certificates(self.client_ca))}

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(self.key, self.chain)], root_certificates=self.client_ca)


def read_ca(path: str | Path, what: str = "CA bundle") -> bytes:
    """A PEM bundle holding at least one certificate; InvalidTlsFiles says what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InvalidTlsFiles(f"{what} {path}: {err.strerror or err}") from None
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InvalidTlsFiles(f"{what} {path}: no PEM certificate") from None
    return data


def read_pair(cert: str | Path, key: str | Path) -> tuple[bytes, bytes]:
    """(chain, key) PEM bytes, checked: the chain parses and the key is its leaf's; InvalidTlsFiles
    says what is wrong."""
    parts = {}
    for what, path in (("certificate", cert), ("key", key)):
        try:
            parts[what] = Path(path).read_bytes()
        except OSError as err:
            raise InvalidTlsFiles(f"{what} {path}: {err.strerror or err}") from None
    try:
        chain = x509.load_pem_x509_certificates(parts["certificate"])
    except ValueError:
        raise InvalidTlsFiles(f"certificate {cert}: no PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(parts["key"], password=None)
    except (ValueError, TypeError):
        raise InvalidTlsFiles(f"key {key}: no unencrypted PEM private key") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if (private.public_key().public_bytes(serialization.Encoding.DER, pub)
            != chain[0].public_key().public_bytes(serialization.Encoding.DER, pub)):
        raise InvalidTlsFiles(f"key {key} does not belong to certificate {cert}")
    return parts["certificate"], parts["key"]


def read_material(cert: str | Path, key: str | Path, client_ca: str | Path,
                  ca_what: str = "client CA bundle") -> TlsMaterial:
    """Read and check the three files; InvalidTlsFiles says what is wrong (`ca_what` names the
    bundle: the CA a peer's certificate must chain to)."""
    chain, private = read_pair(cert, key)
    return TlsMaterial(chain, private, read_ca(client_ca, ca_what))


def file_stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a Kubernetes secret volume swaps its ..data link
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class FileWatch:
    """Files looked at (their stamps) at most every `every` seconds: what both TLS reloaders share.
    A change is answered until the caller accepts it; a rejected one is reported once, not on every
    look, until the files change again."""

    def __init__(self, paths: tuple[Path, ...], every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.paths, self.every, self.clock = paths, every, clock
        self._stamps = self._now()
        self._next = clock() + every
        self._rejected: tuple[object, ...] | None = None  # the stamps of files already reported

    def _now(self) -> tuple[object, ...]:
        return tuple(file_stamp(p) for p in self.paths)

    def changed(self, force: bool = False) -> tuple[object, ...] | None:
        """The files' stamps if due (or `force`) and they changed since the last accepted ones."""
        now = self.clock()
        if not force and now < self._next:
            return None
        self._next = now + self.every
        stamps = self._now()
        return None if stamps == self._stamps else stamps

    def first_rejection(self, stamps: tuple[object, ...]) -> bool:
        """Whether these stamps are rejected for the first time (say so once per change)."""
        first, self._rejected = stamps != self._rejected, stamps
        return first

    def accept(self, stamps: tuple[object, ...]) -> None:
        self._stamps, self._rejected = stamps, None


class TlsFiles:
    """The server credentials over three files, re-read when they change (see the module)."""

    def __init__(self, cert: str | Path, key: str | Path, client_ca: str | Path, every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.paths = (Path(cert), Path(key), Path(client_ca))
        self._lock = threading.RLock()  # gRPC calls `fetch` from its own threads
        try:
            self.current = read_material(*self.paths)
        except InvalidTlsFiles as err:
            raise RuntimeError(f"TLS: {err}") from None
        self.watch = FileWatch(self.paths, every, clock)
        self.generation = 0  # counts the reloads

    @property
    def every(self) -> float:
        """Seconds between looks at the files (0: never)."""
        return self.watch.every

    def credentials(self) -> grpc.ServerCredentials:
        """Mutual TLS: a client must present a certificate the (current) CA bundle vouches for.
        One per listening port: each port's TLS state asks its own fetcher, and each must be
        handed a new configuration once."""
        handed = [self.generation]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            """gRPC's question before a handshake: a new configuration, or None to keep the current
            one. Never raises (an exception here would fail the handshake)."""
            try:
                self.check()
                with self._lock:
                    if handed[0] == self.generation:
                        return None
                    handed[0] = self.generation
                    return self.current.configuration()
            except Exception as err:
                log.warning("tls_reload_failed", error=type(err).__name__)
                return None

        return grpc.dynamic_ssl_server_credentials(self.current.configuration(), fetch,
                                                   require_client_authentication=True)

    def check(self, force: bool = False) -> TlsMaterial | None:
        """The new material if the files changed into a valid set since the last look (at most every
        `every` seconds unless `force`), else None."""
        with self._lock:
            stamps = self.watch.changed(force)
            if stamps is None:
                return None
            try:
                material = read_material(*self.paths)
            except InvalidTlsFiles as err:
                if self.watch.first_rejection(stamps):
                    log.warning("tls_reload_rejected", error=str(err), keeping=self.current.digest,
                                hint="the files are checked again on every change")
                return None
            self.watch.accept(stamps)
            if material.digest == self.current.digest:
                return None  # touched, not changed
            previous, self.current = self.current, material
            self.generation += 1
        log.info("tls_reloaded", previous=previous.digest, current=material.digest, **material.describe())
        return material
