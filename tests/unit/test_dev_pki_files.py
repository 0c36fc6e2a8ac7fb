"""The development PKI's files appear whole or not at all: ca.crt marks a complete directory, and a
client loads it as soon as it exists (a test once read it empty, under load, and failed its TLS)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adapters import dev_pki


def test_every_file_is_whole_private_and_nothing_half_written_is_left(tmp_path: Path) -> None:
    pki = dev_pki.ensure_dev_pki(tmp_path / "pki", "hall.example")
    names = sorted(p.name for p in pki.iterdir())
    assert "ca.crt" in names and not [n for n in names if n.endswith(".part")]
    for p in pki.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600 and p.read_bytes().startswith(b"-----BEGIN ")


def test_a_write_that_fails_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "ca.crt"
    target.write_bytes(b"before")
    with pytest.raises(TypeError):
        dev_pki._write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"before" and sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt"]
    dev_pki._write(target, b"after")
    assert target.read_bytes() == b"after"
