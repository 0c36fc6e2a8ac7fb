"""The shared letter store (adapters/pg_documents.py) on a real PostgreSQL: content-addressed round
trips, insert-if-absent (also from two stores at once, on a database without the table yet), a
damaged row repaired by the next put, refusals of bad references before any connection, and every
kind of outage (nothing listening, the server stopped and started again, a statement that does not
finish) as DependencyUnavailable("documents"), bounded in time, with reconnection afterwards; and
`hallgate legal import-letters`, which moves a pod's file store into the shared store."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from adapters.document_store import FileDocumentStore
from adapters.pg_documents import PgDocumentStore
from adapters.redis_server import free_port
from gateway.cli.main import main as cli_main
from gateway.domain.errors import DependencyUnavailable
from tests.support.legal import PDF
from tests.support.postgres import start_server

LETTER = PDF + bytes(range(256)) * 4  # every byte value, NUL included


@pytest.fixture
async def store(archive_url: str) -> AsyncIterator[PgDocumentStore]:
    s = PgDocumentStore(archive_url)
    yield s
    await s.close()


def rows(url: str) -> list[tuple[str, int, int]]:
    with psycopg.connect(url) as conn:
        return [(r[0], r[1], r[2]) for r in
                conn.execute("SELECT sha256, size_bytes, length(content) FROM legal_documents ORDER BY sha256")]


async def test_put_then_get_returns_the_same_bytes_under_their_sha256(store: PgDocumentStore, archive_url: str
                                                                     ) -> None:
    ref = await store.put(LETTER)
    assert ref == hashlib.sha256(LETTER).hexdigest()
    assert await store.get(ref) == LETTER
    big = os.urandom(8 * 1024 * 1024)  # the largest letter RegisterRequest takes
    big_ref = await store.put(big)
    assert await store.get(big_ref) == big
    assert rows(archive_url) == sorted([(ref, len(LETTER), len(LETTER)), (big_ref, len(big), len(big))])
    other = PgDocumentStore(archive_url)  # another gateway's store sees the same letters
    try:
        assert await other.get(ref) == LETTER
    finally:
        await other.close()


async def test_put_is_idempotent(store: PgDocumentStore, archive_url: str) -> None:
    refs = [await store.put(LETTER) for _ in range(3)]
    assert len(set(refs)) == 1
    assert rows(archive_url) == [(refs[0], len(LETTER), len(LETTER))]
    assert await store.get(refs[0]) == LETTER


async def test_unknown_reference_is_none(store: PgDocumentStore) -> None:
    assert await store.get(hashlib.sha256(b"never stored").hexdigest()) is None  # before the table exists too
    await store.put(LETTER)
    assert await store.get(hashlib.sha256(b"never stored").hexdigest()) is None


@pytest.mark.parametrize("ref", ["", "abc", hashlib.sha256(b"x").hexdigest().upper(),
                                 hashlib.sha256(b"x").hexdigest() + "0", "../" + "0" * 61,
                                 "z" * 64, "0" * 63 + "\n"])
async def test_a_bad_reference_is_refused_before_any_connection(ref: str) -> None:
    nowhere = PgDocumentStore(f"postgresql://hallgate@127.0.0.1:{free_port()}/hallgate")  # nothing listens
    with pytest.raises(ValueError):
        await nowhere.get(ref)
    await nowhere.close()


async def test_a_damaged_row_is_returned_as_stored_and_repaired_by_the_next_put(store: PgDocumentStore,
                                                                              archive_url: str) -> None:
    ref = await store.put(LETTER)
    with psycopg.connect(archive_url) as conn:
        conn.execute("UPDATE legal_documents SET content = %b WHERE sha256 = %s", (LETTER[:-1] + b"!", ref))
    damaged = await store.get(ref)
    assert damaged is not None and hashlib.sha256(damaged).hexdigest() != ref  # the caller's check finds it
    assert await store.put(LETTER) == ref
    assert await store.get(ref) == LETTER


async def test_concurrent_puts_of_one_letter_from_two_stores_store_it_once(archive_url: str) -> None:
    """Two gateways registering the same letter at once, on a database without the table yet: the
    schema is made once, every put succeeds, one row."""
    a, b = PgDocumentStore(archive_url), PgDocumentStore(archive_url)
    try:
        refs = await asyncio.gather(*(s.put(LETTER) for _ in range(10) for s in (a, b)))
        assert set(refs) == {hashlib.sha256(LETTER).hexdigest()}
        assert rows(archive_url) == [(refs[0], len(LETTER), len(LETTER))]
        assert await a.get(refs[0]) == await b.get(refs[0]) == LETTER
    finally:
        await a.close()
        await b.close()


async def test_nothing_listening_is_dependency_unavailable() -> None:
    nowhere = PgDocumentStore(f"postgresql://hallgate@127.0.0.1:{free_port()}/hallgate", connect_timeout=2)
    try:
        for call in (nowhere.put(LETTER), nowhere.get(hashlib.sha256(LETTER).hexdigest()), nowhere.check()):
            with pytest.raises(DependencyUnavailable) as err:
                await call
            assert err.value.dependency == "documents"
    finally:
        await nowhere.close()


async def test_server_stopped_then_started_again_fails_closed_then_reconnects() -> None:
    server = await asyncio.to_thread(start_server)
    store = PgDocumentStore(server.url, connect_timeout=2)
    try:
        ref = await store.put(LETTER)
        assert await store.check() is True
        pid = server.pid
        assert pid is not None
        await asyncio.to_thread(server.stop)  # by its pid: fast shutdown, our sessions are ended
        for call in (store.get(ref), store.put(LETTER), store.check()):
            with pytest.raises(DependencyUnavailable):
                await call
        await asyncio.to_thread(server.start)
        assert await store.get(ref) == LETTER  # the same store object connects again
        assert await store.check() is True
    finally:
        await store.close()
        await asyncio.to_thread(server.remove)


async def test_a_statement_that_does_not_finish_is_cut_off_by_the_timeout(store: PgDocumentStore,
                                                                          archive_url: str) -> None:
    """Another session holds the table locked: the read waits, and gives up after `timeout` as an
    outage, not forever; once the lock is gone the store answers again on a new connection."""
    ref = await store.put(LETTER)
    short = PgDocumentStore(archive_url, timeout=1.0)
    try:
        assert await short.get(ref) == LETTER
        async with await psycopg.AsyncConnection.connect(archive_url) as blocker:
            await blocker.execute("LOCK TABLE legal_documents IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(DependencyUnavailable):
                await short.get(ref)
            assert time.monotonic() - started < 8
            assert await short.check() is True  # the database itself answers: readiness is not the lock
            await blocker.rollback()
        assert await short.get(ref) == LETTER
    finally:
        await short.close()


# --- `hallgate legal import-letters`: a pod's file store into the shared store ---------------------


def test_import_letters_copies_a_file_store_into_the_shared_store_idempotently(
        archive_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "documents"
    files = FileDocumentStore(source)
    letters = [LETTER, PDF + b"% second\n", os.urandom(300_000)]
    refs = [asyncio.run(files.put(data)) for data in letters]
    bad_ref = hashlib.sha256(b"what the letter said").hexdigest()
    (source / bad_ref[:2]).mkdir(mode=0o700, exist_ok=True)
    (source / bad_ref[:2] / bad_ref).write_bytes(b"what it says now")  # bit rot: not copied
    (source / refs[0][:2] / f".{refs[0]}.x1.tmp").write_bytes(b"half a letter")  # an interrupted write
    monkeypatch.setenv("HALLGATE_LEGAL_DOCUMENT_URL", archive_url)

    def run() -> tuple[int, str, str]:
        rc = cli_main(["legal", "import-letters", "--from", str(source)])
        out = capsys.readouterr()
        return rc, out.out.strip(), out.err

    rc, out, err = run()
    assert (rc, out) == (1, "3 letters copied, 0 already in the shared store, 1 damaged")
    assert f"DAMAGED {bad_ref}" in err and "ignored" in err and "half a letter" not in err + out
    assert rows(archive_url) == sorted((r, len(d), len(d)) for r, d in zip(refs, letters, strict=True))

    with psycopg.connect(archive_url) as conn:  # a row damaged in the shared store is put right
        conn.execute("UPDATE legal_documents SET content = 'x'::bytea WHERE sha256 = %s", (refs[2],))
    (source / bad_ref[:2] / bad_ref).unlink()
    assert run()[:2] == (0, "1 letters copied, 2 already in the shared store, 0 damaged")
    assert run()[:2] == (0, "0 letters copied, 3 already in the shared store, 0 damaged")
    store = PgDocumentStore(archive_url)
    try:
        assert [asyncio.run(store.get(r)) for r in refs] == letters
    finally:
        asyncio.run(store.close())


def test_import_letters_needs_a_shared_store_that_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "documents"
    asyncio.run(FileDocumentStore(source).put(LETTER))
    monkeypatch.delenv("HALLGATE_LEGAL_DOCUMENT_URL", raising=False)
    assert cli_main(["legal", "import-letters", "--from", str(source)]) == 2
    assert "HALLGATE_LEGAL_DOCUMENT_URL" in capsys.readouterr().err
    monkeypatch.setenv("HALLGATE_LEGAL_DOCUMENT_URL", f"postgresql://hallgate@127.0.0.1:{free_port()}/hallgate")
    assert cli_main(["legal", "import-letters", "--from", str(tmp_path / "nowhere")]) == 2
    assert cli_main(["legal", "import-letters", "--from", str(source)]) == 1
    assert "unavailable" in capsys.readouterr().err
