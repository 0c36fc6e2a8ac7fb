"""Scanned letters on PostgreSQL (psycopg 3, async), so every gateway of a deployment sees every
letter: registered on one replica, fulfilled on another, still there after a rollout.

Schema (created idempotently on first use, under an advisory lock; skipped when the table exists,
so a gateway whose role may not create tables works against one made by the DBA):

    legal_documents
      sha256      text PRIMARY KEY   the reference: lower-case hex SHA-256 of `content`
      content     bytea              the letter's bytes, exactly as registered
      size_bytes  bigint             len(content), for operators (no need to read the letter)
      stored_at   timestamptz        when it was first stored

Content-addressed like adapters/document_store.py (FileDocumentStore): `put` inserts if absent
(the same bytes stored twice, by one gateway or by two at once, are one row); a row whose content
no longer matches its key is replaced by the intact bytes. Reads return what is stored: the caller
checks the digest (the legal desk refuses to disclose on a mismatch). Contents are never logged and
never appear in an error. `delete` destroys a letter (disposal, R8).

One connection per store for the letters, opened on first use inside the running event loop and
kept, used by one call at a time (a lock: legal traffic is a few calls per hour), and a second one
for `check()` (readiness), so a large letter in transit never makes the store look down. Every
operation is bounded by `timeout`; an outage (refused, dropped, timed out) closes the connection,
raises DependencyUnavailable("documents"), and the next call connects again.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg

from gateway.domain.errors import DependencyUnavailable

REF_RE = re.compile(r"[0-9a-f]{64}")
TABLE = "legal_documents"
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('hallgate/legal-documents/schema'))"
SCHEMA = """CREATE TABLE IF NOT EXISTS legal_documents (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content bytea NOT NULL,
    size_bytes bigint NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
)"""
# Insert if absent; a stored row that is not what its key says (damaged, edited) gets the intact bytes.
PUT = ("INSERT INTO legal_documents (sha256, content, size_bytes) VALUES (%s, %b, %s) "
       "ON CONFLICT (sha256) DO UPDATE SET content = EXCLUDED.content, size_bytes = EXCLUDED.size_bytes "
       "WHERE encode(sha256(legal_documents.content), 'hex') <> legal_documents.sha256")
GET = "SELECT content FROM legal_documents WHERE sha256 = %s"
DELETE = "DELETE FROM legal_documents WHERE sha256 = %s"

# Outages, as opposed to bugs: the connection is dropped and the caller told the store is unavailable.
# A read-only server is a primary demoted by a failover: the next connection finds the new one (with
# `target_session_attrs=read-write` in the URL when it names several hosts).
OUTAGE: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError,
                                           psycopg.errors.ReadOnlySqlTransaction, OSError, TimeoutError)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]


def check_ref(ref: str) -> str:
    if not REF_RE.fullmatch(ref):
        raise ValueError("a document reference is a lower-case hex SHA-256")
    return ref


class _Link:
    """One lazily opened autocommit connection, used by one caller at a time."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        self.url, self.connect_timeout = url, connect_timeout
        self.conn: Conn | None = None
        self._lock: asyncio.Lock | None = None  # made inside the loop that uses it

    async def run(self, work: Callable[[Conn], Awaitable[T]], seconds: float) -> T:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                async with asyncio.timeout(seconds):
                    if self.conn is None or self.conn.closed:
                        self.conn = await psycopg.AsyncConnection.connect(
                            self.url, autocommit=True, connect_timeout=max(2, int(self.connect_timeout)))
                    return await work(self.conn)
            except OUTAGE as e:
                await self.drop()
                raise DependencyUnavailable("documents") from e
            except asyncio.CancelledError:
                await self.drop()  # cancelled mid-statement: the connection's state is unknown
                raise

    async def drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: S110 - closing a broken connection; it is gone either way
                pass


class PgDocumentStore:
    """The DocumentStore port (gateway/domain/legal/ports.py) on one PostgreSQL database (a libpq
    conninfo or URI, `legal_document_url`)."""

    def __init__(self, url: str, *, timeout: float = 10.0, connect_timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._data = _Link(url, connect_timeout)
        self._probe = _Link(url, connect_timeout)
        self._schema_ready = False

    async def _ensure_schema(self, conn: Conn) -> None:
        if self._schema_ready:
            return
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,))
        row = await cur.fetchone()
        if not (row and row[0]):
            async with conn.transaction():
                await conn.execute(SCHEMA_LOCK)
                await conn.execute(SCHEMA)
        self._schema_ready = True

    async def ensure_schema(self) -> None:
        await self._data.run(self._ensure_schema, self.timeout)

    async def put(self, data: bytes) -> str:
        """Store `data` (if absent); returns its lower-case hex SHA-256."""
        ref = hashlib.sha256(data).hexdigest()

        async def work(conn: Conn) -> None:
            await self._ensure_schema(conn)
            await conn.execute(PUT, (ref, bytes(data), len(data)))

        await self._data.run(work, self.timeout)
        return ref

    async def get(self, ref: str) -> bytes | None:
        """The stored bytes, None if there are none. Not checked here: the caller checks the digest."""
        check_ref(ref)

        async def work(conn: Conn) -> bytes | None:
            await self._ensure_schema(conn)
            cur = await conn.execute(GET, (ref,), binary=True)
            row = await cur.fetchone()
            return None if row is None else bytes(row[0])

        return await self._data.run(work, self.timeout)

    async def delete(self, ref: str) -> bool:
        """Destroy a letter (disposal, R8): True if it was there, False if it was already gone. One
        autocommit statement, so idempotent. The caller decides that no request still references it."""
        check_ref(ref)

        async def work(conn: Conn) -> bool:
            await self._ensure_schema(conn)
            cur = await conn.execute(DELETE, (ref,))
            return cur.rowcount > 0

        return await self._data.run(work, self.timeout)

    async def check(self) -> bool:
        """Readiness: the database answers (`SELECT 1` on a connection of its own)."""

        async def work(conn: Conn) -> bool:
            await conn.execute("SELECT 1")
            return True

        return await self._probe.run(work, self.timeout)

    async def close(self) -> None:
        await self._data.drop()
        await self._probe.drop()
