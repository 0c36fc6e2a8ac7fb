"""Secrets at rest: AES-256-GCM with a key id on every ciphertext, so keys can be rotated.

Why: a staff member's TOTP secret is a long-lived credential. Whoever reads it (a Redis backup, an
AOF file copied off a host, a replica, `DUMP` on a shared Redis) can mint that person's codes for
as long as the secret lives. Stored sealed, the Redis data alone discloses nothing; the key lives
with the gateway's settings, not in Redis.

A sealed value is one ASCII string, `hgbox1.<key id>.<base64url(nonce | ciphertext | tag)>`. The
key id names the key that sealed it, so a box holding the current key and any retired keys opens
everything sealed before a rotation, and `needs_rekey` tells what is still to be re-sealed under
the current key. Each value is bound to a context (e.g. "staff:C1001:totp_secret") as associated
data: a ciphertext copied into another record or field does not open there.

Key material may be any secret string (`openssl rand -hex 32`); the AES key and the key id are
derived from it with HKDF-SHA256 under labels of their own, so the same server secret can safely
key code hashes elsewhere and seal secrets here.

Values written by versions before this one are plain text. They never start with the prefix
(a base32 TOTP secret has no '.'), `open` returns them as they are, and `needs_rekey` says so.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "hgbox1"
NONCE_BYTES = 12
_KEY_INFO = b"hallgate/secretbox/aes-256-gcm/v1"
_KID_INFO = b"hallgate/secretbox/key-id/v1"


class SecretBoxError(RuntimeError):
    """A sealed value that cannot be opened: sealed under a key this box does not hold (a retired
    key dropped too early, or the wrong key configured), or altered."""


def _hkdf(material: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


def key_id(material: bytes) -> str:
    """A short public name of a key: safe to store and print, says nothing about the key."""
    return _hkdf(material, _KID_INFO, 6).hex()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX + ".")


class SecretBox:
    """Seals with the current key; opens with the current key or any retired one."""

    def __init__(self, current: bytes | str, retired: Iterable[bytes | str] = ()) -> None:
        materials = [m.encode() if isinstance(m, str) else m for m in (current, *retired)]
        if not materials[0]:
            raise ValueError("a secret box needs a non-empty current key")
        self._keys: dict[str, AESGCM] = {}
        for material in reversed(materials):  # the current key wins a (practically impossible) id clash
            if material:
                self._keys[key_id(material)] = AESGCM(_hkdf(material, _KEY_INFO, 32))
        self.current_kid = key_id(materials[0])

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current_kid].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{PREFIX}.{self.current_kid}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, value: str, context: str) -> str:
        """The plaintext of a sealed value; a plain-text value (older versions) as it is."""
        if not is_sealed(value):
            return value
        try:
            _, kid, body = value.split(".", 2)
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, binascii.Error):
            raise SecretBoxError("malformed sealed value") from None
        aes = self._keys.get(kid)
        if aes is None:
            raise SecretBoxError(f"sealed under key id {kid}, which is neither the current nor a retired key")
        try:
            return aes.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except InvalidTag:
            raise SecretBoxError(f"a value sealed under key id {kid} does not open: altered or misplaced") from None

    def needs_rekey(self, value: str) -> bool:
        """Plain text, or sealed under a key other than the current one."""
        return not value.startswith(f"{PREFIX}.{self.current_kid}.")

    def kid_of(self, value: str) -> str:
        """The key id a value is sealed under, "" for plain text."""
        return value.split(".", 2)[1] if is_sealed(value) and value.count(".") >= 2 else ""


def staff_box(settings: Any, *, create_server_secret: bool = True) -> SecretBox:
    """The box sealing staff TOTP secrets, from gateway.runtime.settings.Settings.

    The current key is HALLGATE_STAFF_SECRET_KEY; unset, the server secret (HALLGATE_SECRET_KEY, or
    the data directory's secret.key the gateway makes once, mode 0600), from which HKDF derives a
    separate AES key. HALLGATE_STAFF_SECRET_RETIRED_KEYS still open what older keys sealed. A command
    on the host passes `create_server_secret=False`: pointed at the wrong data directory it must stop,
    not seal under a fresh key no gateway holds."""
    retired = [r.strip() for r in settings.staff_secret_retired_keys.split(",") if r.strip()]
    if settings.staff_secret_key:
        return SecretBox(settings.staff_secret_key, retired)
    if not settings.secret_key and not create_server_secret:
        path = Path(settings.data_dir) / "secret.key"
        if not path.exists():
            raise RuntimeError(f"no staff secret key: {path} does not exist; set HALLGATE_STAFF_SECRET_KEY or "
                               "HALLGATE_SECRET_KEY as the gateway has them, or point --data-dir at its data directory")
    return SecretBox(settings.key_bytes(), retired)
