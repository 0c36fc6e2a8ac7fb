"""Letters shared by every gateway of a deployment (issue 14): two gateways with data directories of
their own on one Redis and one PostgreSQL letter store (adapters/pg_documents.py), the same secret
and signing key. A request registered on one is approved and fulfilled on the other; both are shut
down, two new ones start on new data directories, and a request registered before the restart is
fulfilled. No data directory holds a letter. Without the shared store, the same path fails as it did
in the cluster (`letter_missing`)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import psycopg

from adapters.pg_documents import PgDocumentStore
from gateway.domain import delivery
from tests.support.legal import PDF, Desk, S, desk, letter, register_message
from tests.support.status import reason, refused
from tests.support.subscribers import ORDINARY, OTHER
from tests.support.tls import LEGAL_CERT

Factory = Callable[..., Awaitable[Any]]
SECOND_LETTER = PDF + b"% the second agency letter\n"


def on(gw: Any, d: Desk) -> Desk:
    """The same person on another gateway: staff sessions live in Redis, so the token of one gateway
    is good on every gateway (from the same terminal)."""
    return Desk(gw, d.staff_id, d.md, LEGAL_CERT, d.secret)


async def shut(gw: Any) -> None:
    """Stop a gateway for good (server, channels, billing, Redis client, its letter store)."""
    closers, gw.closers = gw.closers, []
    for close in closers:
        await close()
    close_store = getattr(gw.deps.documents, "close", None)
    if close_store is not None:
        await close_store()


def letters_on_disk(*data_dirs: str) -> list[Path]:
    return [p for d in data_dirs for p in Path(d).rglob("*") if p.is_file() and len(p.name) == 64]


async def fulfil_and_verify(officer: Desk, request_id: str, letter_sha256: str, public_pem: bytes) -> dict[str, Any]:
    """Fulfil on the officer's gateway; the package verifies with the deployment's public key."""
    parts = await officer.fulfil(request_id)
    kinds = [p.WhichOneof("part") for p in parts]
    assert kinds[0] == "header" and kinds[-1] == "manifest" and set(kinds[1:-1]) == {"records"}
    m = parts[-1].manifest
    doc = delivery.verify_delivery(m.manifest_json, m.signature, public_pem, [p.records for p in parts[1:-1]])
    assert doc["request_id"] == request_id and doc["letter_sha256"] == letter_sha256
    assert (await officer.get(request_id)).state == S.REQUEST_STATE_DISCLOSED
    return doc


async def test_register_on_one_gateway_fulfil_on_another_and_after_both_restart(
        make_gateway: Factory, archive_url: str, tmp_path: Path) -> None:
    key = tmp_path / "legal-signing.pem"
    pem = delivery.Signer(delivery.load_or_create_private_key(key)).public_pem()
    dirs = [str(tmp_path / f"data-{n}") for n in range(1, 5)]

    def gateway(n: int) -> Awaitable[Any]:  # the same Redis, secret, letter store and signing key
        return make_gateway(data_dir=dirs[n - 1], legal_document_url=archive_url, legal_signing_key=str(key))

    gw1, gw2 = await gateway(1), await gateway(2)
    assert isinstance(gw1.deps.documents, PgDocumentStore) and isinstance(gw2.deps.documents, PgDocumentStore)
    officer = await desk(gw1, "L001", "legal_officer")  # signed in on gateway 1
    approver = await desk(gw2, "A001", "legal_approver")  # another person, signed in on gateway 2

    first = await officer.register(register_message())  # the letter goes in through gateway 1
    second = await on(gw2, officer).register(register_message(
        targets=(OTHER,), case_number="SH-2026-0114", letter=letter(content=SECOND_LETTER)))
    assert first.letter.sha256 == hashlib.sha256(PDF).hexdigest()
    assert second.letter.sha256 == hashlib.sha256(SECOND_LETTER).hexdigest()

    await approver.approve(first.request_id)  # on gateway 2, which never saw the letter
    await fulfil_and_verify(on(gw2, officer), first.request_id, first.letter.sha256, pem)

    # Both gateways go away (a rollout); two new ones start on new, empty data directories.
    await shut(gw1)
    await shut(gw2)
    gw3, gw4 = await gateway(3), await gateway(4)
    await on(gw3, approver).approve(second.request_id)
    doc = await fulfil_and_verify(on(gw4, officer), second.request_id, second.letter.sha256, pem)
    assert [t["target"] for t in doc["per_target"]] == [OTHER]

    assert letters_on_disk(*dirs) == []  # no pod kept a letter
    with psycopg.connect(archive_url) as conn:
        stored = sorted(r[0] for r in conn.execute("SELECT sha256 FROM legal_documents"))
    assert stored == sorted([first.letter.sha256, second.letter.sha256])
    for gw in (gw3, gw4):
        await shut(gw)


async def test_without_the_shared_store_the_letter_is_missing_on_the_other_gateway(
        make_gateway: Factory, tmp_path: Path) -> None:
    """The failure of issue 14, kept as the control: letters in each gateway's own data directory."""
    key = tmp_path / "legal-signing.pem"
    delivery.load_or_create_private_key(key)
    gw1 = await make_gateway(data_dir=str(tmp_path / "a"), legal_signing_key=str(key))
    gw2 = await make_gateway(data_dir=str(tmp_path / "b"), legal_signing_key=str(key))
    officer = await desk(gw1, "L001", "legal_officer")
    approver = await desk(gw2, "A001", "legal_approver")
    reg = await officer.register(register_message(targets=(ORDINARY,)))
    await approver.approve(reg.request_id)
    err = await refused(on(gw2, officer).fulfil(reg.request_id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(err) == "LETTER_MISSING"
    assert (await on(gw1, officer).fulfil(reg.request_id))[-1].WhichOneof("part") == "manifest"
