"""A PostgreSQL server for the suite (adapters/postgres_server.py) and a fresh database per test."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from adapters.postgres_server import PostgresServerProcess

_names = itertools.count(1)


def start_server(fsync: bool = False) -> PostgresServerProcess:
    """A server of its own in a new private directory under the system's temporary directory (not
    pytest's, which is 0700 to root while a root-started server runs as `postgres`). `fsync` off: the
    suite's shared server need not survive a power loss; a test that kills PostgreSQL starts its own."""
    return PostgresServerProcess(Path(tempfile.mkdtemp(prefix="hallgate-pg-")), fsync=fsync).start()


def fresh_database(server: PostgresServerProcess) -> Iterator[str]:
    """A new empty database on `server` for one test (its URL), dropped afterwards."""
    name = f"t{next(_names)}"
    with psycopg.connect(server.url_for("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.url_for(name)
    finally:
        with psycopg.connect(server.url_for("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
