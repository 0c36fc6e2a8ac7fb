"""The audit trail's archive tier on PostgreSQL (psycopg 3, async): sealed events older than the hot
window, moved there from Redis by adapters/audit/archiving.py. See docs/audit.md, *Archive*.

Schema (created idempotently by `ensure_schema`):

    audit_events             PARTITION BY RANGE (stream_time), one partition per UTC month, created on
                             demand: audit_events_2026_11 holds [2026-11-01, 2026-12-01) of every chain
      chain, seq             the chain and the event's seq; primary key (chain, seq, stream_time), as a
                             partitioned table's key must hold the partition column
      stream_id              the Redis stream id the event had (its time and order in the chain)
      stream_time            that id's milliseconds as a time: what query ranges and retention use
      fields                 JSONB: every stored field exactly as Redis held it (seal fields included),
                             so a row turns back into the same map and its mac verifies
      names                  the fields' order in Redis, so a record reads back in the same order
      subscriber_refs text[] the keyed pseudonyms the event names (GIN index)
      staff_id, terminal, hall, call   each indexed together with chain and stream_time
    audit_archive_chains     one row per chain: the archive's first and last seq and the last event's
                             mac and stream id (its head), and the anchor the first archived event
                             follows (genesis, or the Redis checkpoint it was archived after)

Every write of a chain takes its `audit_archive_chains` row FOR UPDATE, so writers of one chain run
one after the other; new events must continue the archive's head (seq + 1, prev = its mac): the
archive refuses gaps and forks. Storing an event that is already there with the same fields is a
no-op; with different fields it raises ArchiveConflict (tampering, or a bug).

Values are what Redis holds: no numbers or secrets are added, only the columns above copied from the
event's own fields.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from adapters.audit.keys import INDEX_FIELD, seq_of
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable

PARENT = "audit_events"
CHAINS = "audit_archive_chains"

# Outages of the archive, as opposed to bugs and to refusals (ArchiveConflict).
ARCHIVE_OUTAGE: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError, OSError)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS audit_events (
        chain text NOT NULL,
        seq bigint NOT NULL,
        stream_id text NOT NULL,
        stream_time timestamptz NOT NULL,
        fields jsonb NOT NULL,
        names text[] NOT NULL,
        subscriber_refs text[] NOT NULL DEFAULT '{}',
        staff_id text,
        terminal text,
        hall text,
        call text,
        PRIMARY KEY (chain, seq, stream_time)
    ) PARTITION BY RANGE (stream_time)""",
    "CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (chain, stream_time)",
    "CREATE INDEX IF NOT EXISTS audit_events_sub ON audit_events USING gin (subscriber_refs)",
    "CREATE INDEX IF NOT EXISTS audit_events_staff ON audit_events (chain, staff_id, stream_time) "
    "WHERE staff_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS audit_events_term ON audit_events (chain, terminal, stream_time) "
    "WHERE terminal IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS audit_events_hall ON audit_events (chain, hall, stream_time) "
    "WHERE hall IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS audit_events_call ON audit_events (chain, call, stream_time) "
    "WHERE call IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS audit_archive_chains (
        chain text PRIMARY KEY,
        first_seq bigint,
        last_seq bigint,
        last_mac text,
        last_id text,
        anchor jsonb
    )""",
]

# (column, event field) for the single-valued indexed keys
COLUMNS = (("staff_id", INDEX_FIELD["staff"]), ("terminal", INDEX_FIELD["term"]), ("hall", INDEX_FIELD["hall"]),
           ("call", INDEX_FIELD["req"]))


class ArchiveConflict(Exception):
    """The archive refuses these records: a seq stored with other fields, or records that do not
    continue the archived chain (a gap or a fork). Evidence to look at, never to retry."""


@dataclass(frozen=True, slots=True)
class ArchiveHead:
    first_seq: int
    last_seq: int
    last_mac: str
    last_id: str
    anchor: dict[str, str] | None  # the Redis checkpoint the first archived event followed; None: genesis


@dataclass(frozen=True, slots=True)
class StoreResult:
    inserted: int
    present: int  # already archived with identical fields


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}_{moment.month:02d}"


def month_bounds(month: str) -> tuple[datetime, datetime]:
    year, mon = (int(p) for p in month.split("_"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _check_month(month: str) -> str:
    try:
        start, _ = month_bounds(month)
    except ValueError:
        raise ValueError(f"bad month {month!r}: use YYYY_MM") from None
    if month_of(start) != month:
        raise ValueError(f"bad month {month!r}: use YYYY_MM")
    return month


def _partition(month: str) -> sql.Identifier:
    return sql.Identifier(f"{PARENT}_{_check_month(month)}")


def _row(chain: str, entry_id: str, fields: Mapping[str, str]) -> tuple[Any, ...]:
    seq = seq_of(fields.get("seq"))
    if seq is None:
        raise ArchiveConflict(f"{chain} {entry_id}: no readable seq")
    refs = [r for r in dict.fromkeys(fields.get(INDEX_FIELD["sub"], "").split(",")) if r]
    return (chain, seq, entry_id, ac.time_of(entry_id), Jsonb(dict(fields)), list(fields), refs,
            *((fields.get(name) or None) for _, name in COLUMNS))


def _fields(names: Sequence[str], stored: Mapping[str, Any]) -> dict[str, str]:
    """The stored map in its Redis order (names missing from `names`, if any, after)."""
    out = {n: str(stored[n]) for n in names if n in stored}
    out.update({str(k): str(v) for k, v in stored.items() if k not in out})
    return out


class PgAuditArchive:
    """The archive on one PostgreSQL database (a libpq conninfo or URI). Connections are opened on
    first use inside the running event loop and kept (up to `pool` idle ones). Outages raise
    DependencyUnavailable("audit-archive")."""

    def __init__(self, url: str, *, pool: int = 4, connect_timeout: float = 5.0, batch: int = 500) -> None:
        self.url = url
        self.pool = pool
        self.connect_timeout = connect_timeout
        self.batch = batch
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._schema_ready = False
        self._months: set[str] = set()
        self._lock: asyncio.Lock | None = None

    # -- connections ------------------------------------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection from the pool (broken ones are dropped); outages become DependencyUnavailable."""
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while self._idle and conn is None:
                c = self._idle.pop()
                if not c.closed:
                    conn = c
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=int(self.connect_timeout))
                await conn.execute("SET TIME ZONE 'UTC'")
                # Plans for the actual values: a generic plan of a cached prepared statement reads a
                # subscriber's whole time range partition by partition instead of using its index,
                # so cost would grow with the archive (bench/audit_scale.py, docs/audit.md Sizing).
                await conn.execute("SET plan_cache_mode = force_custom_plan")
                await conn.commit()
            yield conn
        except ARCHIVE_OUTAGE as e:
            if conn is not None:
                await conn.close()
                conn = None
            raise DependencyUnavailable("audit-archive") from e
        except BaseException:
            if conn is not None:
                await conn.close()
                conn = None
            raise
        finally:
            if conn is not None:
                if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE \
                        and len(self._idle) < self.pool:
                    self._idle.append(conn)
                else:
                    await conn.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    # -- schema and partitions --------------------------------------------------------------------

    async def ensure_schema(self) -> None:
        if self._schema_ready:
            return
        async with self.connection() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hallgate/audit-archive/schema'))")
                for stmt in SCHEMA:
                    await conn.execute(stmt)
        self._schema_ready = True

    async def _ensure_month(self, conn: psycopg.AsyncConnection[Any], month: str) -> None:
        """The month's partition, created if missing (inside the caller's transaction)."""
        if month in self._months:
            return
        start, end = month_bounds(month)
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hallgate/audit-archive/schema'))")
        await conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF audit_events "
                                   "FOR VALUES FROM ({}) TO ({})")
                           .format(_partition(month), sql.Literal(start), sql.Literal(end)))
        self._months.add(month)

    # -- writing ----------------------------------------------------------------------------------

    async def store(self, chain: str, records: Iterable[Mapping[str, str]],
                    anchor: Mapping[str, str] | None = None) -> StoreResult:
        """Archive records (`{"chain", "id", <stored fields>}` as adapters.audit.queries yields, or
        `{"id", ...}`) in one transaction. Already archived with the same fields: skipped. Already
        archived with other fields, or not continuing the archive's head (seq + 1, prev = its mac):
        ArchiveConflict, and nothing of the call is stored. `anchor` (the Redis checkpoint's fields)
        is recorded with the first records of a chain whose first seq is not 1."""
        ac.check_chain_name(chain)
        await self.ensure_schema()
        rows = []
        for rec in records:
            entry_id = rec["id"]
            fields = {k: v for k, v in rec.items() if k not in ac.RECORD_FIELDS}
            if rec.get("chain", chain) != chain:
                raise ArchiveConflict(f"a record of chain {rec.get('chain')!r} offered to chain {chain!r}")
            rows.append(_row(chain, entry_id, fields))
        if not rows:
            return StoreResult(0, 0)
        rows.sort(key=lambda r: r[1])
        async with self.connection() as conn:
            try:
                async with conn.transaction():
                    return await self._store(conn, chain, rows, anchor)
            except psycopg.errors.UntranslatableCharacter as e:  # a NUL in a value: JSONB cannot hold it
                raise ArchiveConflict(f"{chain}: a value PostgreSQL cannot store: {e}") from e

    async def _store(self, conn: psycopg.AsyncConnection[Any], chain: str, rows: list[tuple[Any, ...]],
                     anchor: Mapping[str, str] | None) -> StoreResult:
        await conn.execute("INSERT INTO audit_archive_chains (chain) VALUES (%s) ON CONFLICT DO NOTHING", (chain,))
        cur = await conn.execute("SELECT first_seq, last_seq, last_mac FROM audit_archive_chains "
                                 "WHERE chain = %s FOR UPDATE", (chain,))
        first_seq, last_seq, last_mac = await cur.fetchone() or (None, None, None)
        seqs = [r[1] for r in rows]
        cur = await conn.execute("SELECT seq, stream_id, fields FROM audit_events WHERE chain = %s AND seq = ANY(%s)",
                                 (chain, seqs))
        existing = {seq: (sid, f) for seq, sid, f in await cur.fetchall()}
        new = []
        for r in rows:
            have = existing.get(r[1])
            if have is None:
                new.append(r)
            elif have[0] != r[2] or have[1] != r[4].obj:
                raise ArchiveConflict(f"{chain} seq {r[1]}: archived with other content than offered now "
                                      f"(archived {have[0]}, offered {r[2]})")
        if not new:
            return StoreResult(0, len(rows))
        expect_seq, expect_prev = (last_seq + 1, last_mac) if last_seq is not None else (new[0][1], None)
        for r in new:
            f = r[4].obj
            if r[1] != expect_seq or (expect_prev is not None and f.get("prev", "") != expect_prev):
                what = "a gap" if r[1] != expect_seq else "a fork"
                raise ArchiveConflict(f"{chain} seq {r[1]}: {what}; the archive expects seq {expect_seq} next")
            expect_seq, expect_prev = r[1] + 1, f.get("mac", "")
        for month in sorted({month_of(r[3]) for r in new}):
            await self._ensure_month(conn, month)
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO audit_events (chain, seq, stream_id, stream_time, fields, names, subscriber_refs, "
                "staff_id, terminal, hall, call) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", new)
        last = new[-1]
        await conn.execute(
            "UPDATE audit_archive_chains SET first_seq = coalesce(first_seq, %s), last_seq = %s, last_mac = %s, "
            "last_id = %s, anchor = CASE WHEN first_seq IS NULL THEN %s ELSE anchor END WHERE chain = %s",
            (new[0][1], last[1], last[4].obj.get("mac", ""), last[2],
             Jsonb(dict(anchor)) if anchor and first_seq is None else None, chain))
        return StoreResult(len(new), len(rows) - len(new))

    # -- reading ----------------------------------------------------------------------------------

    async def head(self, chain: str) -> ArchiveHead | None:
        await self.ensure_schema()
        async with self.connection() as conn:
            cur = await conn.execute("SELECT first_seq, last_seq, last_mac, last_id, anchor FROM audit_archive_chains "
                                     "WHERE chain = %s", (chain,))
            row = await cur.fetchone()
            await conn.commit()
        if row is None or row[1] is None:
            return None
        return ArchiveHead(row[0], row[1], row[2] or "", row[3] or "",
                           {str(k): str(v) for k, v in row[4].items()} if row[4] else None)

    async def last_seq(self, chain: str) -> int | None:
        """The newest archived seq of the chain, None when nothing is archived."""
        h = await self.head(chain)
        return h.last_seq if h is not None else None

    async def _pages(self, statement: str, params: Sequence[Any], batch: int
                     ) -> AsyncIterator[list[tuple[int, str, Any, list[str]]]]:
        """Keyset pages (seq > last) of (seq, stream_id, fields, names) rows, each its own short
        statement, so a long read holds no transaction open."""
        after = -1
        while True:
            async with self.connection() as conn:
                cur = await conn.execute(statement + " AND seq > %s ORDER BY seq LIMIT %s", (*params, after, batch))
                rows = await cur.fetchall()
                await conn.commit()
            if rows:
                yield rows
                after = rows[-1][0]
            if len(rows) < batch:
                return

    async def iter_from(self, chain: str, seq: int = 1, *, batch: int | None = None
                        ) -> AsyncIterator[tuple[str, dict[str, str]]]:
        """(stream id, stored fields) of archived events from `seq` on, in seq order."""
        await self.ensure_schema()
        statement = "SELECT seq, stream_id, fields, names FROM audit_events WHERE chain = %s AND seq >= %s"
        async for rows in self._pages(statement, (chain, seq), batch or self.batch):
            for _, sid, stored, names in rows:
                yield sid, _fields(names, stored)

    async def query(self, chain: str, where: ac.AuditFilter | None = None, limit: int | None = None, *,
                    before: str | None = None, after: str | None = None, batch: int | None = None
                    ) -> AsyncIterator[dict[str, str]]:
        """Records (`{"chain", "id", <stored fields>}`, as adapters.audit.queries.query yields) matching
        `where`, oldest first. The indexed keys (subscriber_ref, staff_id, terminal, hall, the call id
        in `extra`) and the time range go to indexes; every criterion is then checked exactly as Redis
        answers it (AuditFilter.matches). `before`/`after`: only stream ids below / at or above
        (the tier boundary)."""
        where = where or ac.AuditFilter()
        await self.ensure_schema()
        parts = ["SELECT seq, stream_id, fields, names FROM audit_events WHERE chain = %s"]
        params: list[Any] = [chain]
        if where.start is not None:
            parts.append("AND stream_time >= %s")
            params.append(ac.time_of(ac.stream_id_at(where.start)))
        if where.end is not None:
            parts.append("AND stream_time < %s")
            params.append(ac.time_of(ac.stream_id_at(where.end)))
        if before is not None:
            parts.append("AND stream_time <= %s")
            params.append(ac.time_of(before))
        if after is not None:
            parts.append("AND stream_time >= %s")
            params.append(ac.time_of(after))
        if where.subscriber_ref:
            parts.append("AND subscriber_refs @> %s")
            params.append([where.subscriber_ref])
        for column, name in COLUMNS:
            value = getattr(where, name, None) if name != "call" else dict(where.extra).get("call")
            if value:
                parts.append(f"AND {column} = %s")
                params.append(value)
        other = {k: v for k, v in where.criteria().items() if v and k not in dict(COLUMNS).values()}
        if other:
            parts.append("AND fields @> %s")
            params.append(Jsonb(other))
        low = ac.parse_stream_id(before) if before is not None else None
        high = ac.parse_stream_id(after) if after is not None else None
        n = 0
        async for rows in self._pages(" ".join(parts), params, batch or self.batch):
            for _, sid, stored, names in rows:
                order = ac.parse_stream_id(sid)
                if (low is not None and order >= low) or (high is not None and order < high):
                    continue
                fields = _fields(names, stored)
                if where.matches(sid, fields):
                    yield ac.record(chain, sid, fields)
                    n += 1
                    if limit is not None and n >= limit:
                        return

    # -- months -----------------------------------------------------------------------------------

    async def months(self, chain: str) -> list[str]:
        """The months (YYYY_MM) holding archived events of the chain, oldest first."""
        await self.ensure_schema()
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s ORDER BY c.relname", (PARENT,))
            names = [r[0] for r in await cur.fetchall()]
            out = []
            for name in names:
                month = name.removeprefix(PARENT + "_")
                cur = await conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE chain = %s)")
                                         .format(_partition(month)), (chain,))
                row = await cur.fetchone()
                if row and row[0]:
                    out.append(month)
            await conn.commit()
        return out

    async def drop_month(self, chain: str, month: str) -> int:
        """Delete the chain's events of one month (YYYY_MM); the partition itself is dropped once no
        chain has events in it. Returns the events deleted. Disposal's record and checkpoint are the
        caller's (issue 13, part 4)."""
        _check_month(month)
        await self.ensure_schema()
        table = _partition(month)
        async with self.connection() as conn:
            async with conn.transaction():
                cur = await conn.execute("SELECT to_regclass(%s)", (f"{PARENT}_{month}",))
                row = await cur.fetchone()
                if row is None or row[0] is None:
                    return 0
                await conn.execute("SELECT 1 FROM audit_archive_chains WHERE chain = %s FOR UPDATE", (chain,))
                cur = await conn.execute(sql.SQL("DELETE FROM {} WHERE chain = %s").format(table), (chain,))
                deleted = cur.rowcount
                cur = await conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table))
                row = await cur.fetchone()
                if row is not None and not row[0]:
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hallgate/audit-archive/schema'))")
                    await conn.execute(sql.SQL("DROP TABLE {}").format(table))
                    self._months.discard(month)
                await conn.execute("UPDATE audit_archive_chains SET first_seq = "
                                   "(SELECT min(seq) FROM audit_events WHERE chain = %s) WHERE chain = %s",
                                   (chain, chain))
        return deleted


    # -- disposal (adapters/audit/disposal.py) ----------------------------------------------------

    @asynccontextmanager
    async def disposal_lock(self, chain: str) -> AsyncIterator[bool]:
        """A session-level advisory lock, so that one disposal of a chain runs at a time: yields
        whether it was taken (False: another disposal holds it). Released at the end, or by
        PostgreSQL itself when the holder's connection dies."""
        await self.ensure_schema()
        name = f"hallgate/audit-archive/dispose/{ac.check_chain_name(chain)}"
        async with self.connection() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (name,))
            row = await cur.fetchone()
            await conn.commit()
            got = bool(row and row[0])
            try:
                yield got
            finally:
                if got and not conn.closed:
                    try:
                        await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))
                        await conn.commit()
                    except ARCHIVE_OUTAGE:
                        await conn.close()  # the session ends, and the lock with it

    async def month_span(self, chain: str, month: str) -> tuple[int, int, int] | None:
        """(first seq, last seq, rows) of the chain in one month, None when it holds none."""
        _check_month(month)
        await self.ensure_schema()
        async with self.connection() as conn:
            span = await self._span(conn, chain, month)
            await conn.commit()
        return span

    async def _span(self, conn: psycopg.AsyncConnection[Any], chain: str, month: str) -> tuple[int, int, int] | None:
        cur = await conn.execute("SELECT to_regclass(%s)", (f"{PARENT}_{month}",))
        row = await cur.fetchone()
        if row is None or row[0] is None:
            return None
        cur = await conn.execute(sql.SQL("SELECT min(seq), max(seq), count(*) FROM {} WHERE chain = %s")
                                 .format(_partition(month)), (chain,))
        row = await cur.fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1]), int(row[2])

    async def dispose_month(self, chain: str, month: str, *, span: tuple[int, int, int],
                            expect_anchor: Mapping[str, str] | None, anchor: Mapping[str, str],
                            hook: Callable[[str], Awaitable[None]] | None = None) -> int:
        """Destroy the chain's events of one month and record the new anchor, in ONE transaction
        (DROP TABLE and DELETE are transactional in PostgreSQL): committed, the month is gone and the
        anchor is `anchor`; interrupted anywhere (a crash, an outage, `hook` raising), the month is
        there and the anchor is the old one. Compare-and-set: the chain's row must still start at the
        month's first seq with `expect_anchor`, and the month must still hold exactly `span`
        (first seq, last seq, rows), else ArchiveConflict and nothing changes. The partition is
        dropped when no other chain has events in it, else the chain's rows are deleted from it.
        Returns the events destroyed. `hook` (tests) is awaited with "anchored" and "dropped"."""
        _check_month(month)
        await self.ensure_schema()
        table = _partition(month)
        async with self.connection() as conn:
            async with conn.transaction():
                cur = await conn.execute("SELECT first_seq, anchor FROM audit_archive_chains WHERE chain = %s "
                                         "FOR UPDATE", (chain,))
                row = await cur.fetchone()
                held = {str(k): str(v) for k, v in row[1].items()} if row is not None and row[1] else None
                if row is None or row[0] != span[0] or held != (dict(expect_anchor) if expect_anchor else None):
                    raise ArchiveConflict(f"{chain}: the archive's start changed since month {month} was verified "
                                          "(another disposal?); nothing disposed")
                # the whole archive, parent first (as readers and writers lock it), so that neither a
                # store of another chain nor a reader interleaves with the drop
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hallgate/audit-archive/schema'))")
                await conn.execute("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
                if await self._span(conn, chain, month) != tuple(span):
                    raise ArchiveConflict(f"{chain}: month {month} changed since it was verified; nothing disposed")
                await conn.execute("UPDATE audit_archive_chains SET anchor = %s WHERE chain = %s",
                                   (Jsonb(dict(anchor)), chain))
                if hook is not None:
                    await hook("anchored")
                cur = await conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE chain <> %s)").format(table),
                                         (chain,))
                shared = await cur.fetchone()
                if shared is not None and shared[0]:
                    await conn.execute(sql.SQL("DELETE FROM {} WHERE chain = %s").format(table), (chain,))
                else:
                    await conn.execute(sql.SQL("DROP TABLE {}").format(table))
                # the first seq the archive holds, or would hold next when nothing is left
                await conn.execute("UPDATE audit_archive_chains SET first_seq = coalesce((SELECT min(seq) FROM "
                                   "audit_events WHERE chain = %s), last_seq + 1) WHERE chain = %s", (chain, chain))
                if hook is not None:
                    await hook("dropped")
        self._months.discard(month)
        return span[2]
