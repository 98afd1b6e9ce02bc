"""The system of record on each backend: one PostgreSQL server per test session, and a fresh
database per test on SQLite or on PostgreSQL.

A test (or fixture) that asks for `database_url` runs once per backend:

    async def test_something(database_url: str) -> None:
        db = await Database.open(database_url)

Every behaviour test under tests/cloud and tests/security that runs a cloud or opens its
database does so through `database_url` (the `cloud` and `managed` fixtures take it; a test
that starts its own cloud passes `database=database_url` to `cloud_settings`); a test that needs
several databases (one per Hypothesis example) takes `new_database`. Pure tests that never
touch the database (the rules engine, fair shares, parsing) run once. What a test checks in
the database it reads through `Database` or the cloud's services, or, where no event loop is
(paho's thread, a cloud in another process), through `outside_connection`; never the SQLite
file by itself.

A test that is about one backend only says so by parametrizing `db_backend` itself, e.g.
`@pytest.mark.parametrize("db_backend", ["sqlite"])` for SQLite's query plans.

Left on SQLite, the embedded default, and run once: tests/e2e (Chromium), tests/test_demo.py,
tests/faults and tests/gateway — they are about the browser, the demo, crashes of whole
processes and the gateway, not about the database the cloud keeps its records in.

`tests/conftest.py` imports these fixtures, so every test can use them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloud.db import postgres
from cloud.db.dialect import POSTGRESQL
from cloud.db.migrations import migrate
from cloud.db.url import DatabaseUrl
from tests.servers import PostgreSQL

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgreSQL]:
    """One PostgreSQL server for the session (started on first use)."""
    server = PostgreSQL()
    server.start()
    yield server
    server.cleanup()


class PgDatabases:
    """Databases on the session's PostgreSQL with the newest schema, handed to one test at a
    time and emptied for the next: deleting a test's few rows costs a few milliseconds, where a
    new database (CREATE DATABASE copies a template's files) and its schema cost ~0.15–0.4 s
    here. A database whose schema a test changed is dropped, not handed out again."""

    def __init__(self, server: PostgreSQL) -> None:
        self.server = server
        self._free: list[str] = []
        self._clean: str | None = None  # the schema of a database just made (`_shape`)

    def take(self) -> str:
        """The name of an empty database with the newest schema, for one test."""
        if self._free:
            return self._free.pop()
        name = f"test_{uuid.uuid4().hex[:12]}"
        self.server.create_database(name)
        with contextlib.closing(postgres.connect(self.server.url(name))) as conn:
            migrate(conn, time.time(), POSTGRESQL)
            if self._clean is None:
                self._clean = _shape(conn)
        return name

    def give_back(self, name: str) -> None:
        """Empty `name` for the next test: its connections ended, every row deleted, every id
        sequence back at 1 (or the database dropped if its schema is no longer the newest)."""
        with contextlib.closing(postgres.connect(self.server.url())) as admin:
            _end_connections(admin, name)
        with contextlib.closing(postgres.connect(self.server.url(name))) as conn:
            if _shape(conn) == self._clean:
                conn.execute("SET session_replication_role = replica")  # no foreign-key checks
                conn.raw.execute("BEGIN")
                for (table,) in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    " AND tablename <> 'schema_version'"
                ).fetchall():
                    conn.execute(f'DELETE FROM "{table}"')
                conn.execute(
                    "SELECT setval(format('%I', sequencename), 1, false) FROM pg_sequences"
                    " WHERE schemaname = 'public'"
                )
                conn.commit()
                self._free.append(name)
                return
        self.server.drop_database(name)


def _shape(conn: Any) -> str | None:
    """The database's tables, columns, indexes, constraints and schema versions, as text (None
    if it has no schema_version)."""
    try:
        row = conn.execute(_SHAPE).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return str(row[0])


_SHAPE = """
SELECT string_agg(item, E'\\n' ORDER BY item) FROM (
    SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, is_nullable,
                  column_default) AS item
    FROM information_schema.columns WHERE table_schema = 'public'
    UNION ALL
    SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL
    SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('version %s %s', version, what) FROM schema_version
) AS shape
"""


def _end_connections(admin: Any, name: str, timeout: float = 10.0) -> None:
    """End every connection to database `name` (a cloud the test left open) and wait until
    they are gone: a backend exits a moment after its client hangs up."""
    others = "datname = ? AND pid <> pg_backend_pid()"
    admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}", (name,))
    deadline = time.monotonic() + timeout
    while admin.execute(
        f"SELECT count(*) FROM pg_stat_activity WHERE {others}", (name,)
    ).fetchone()[0]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"connections to {name} did not end within {timeout} s")
        time.sleep(0.005)


@pytest.fixture(scope="session")
def postgresql_databases(postgresql: PostgreSQL) -> PgDatabases:
    return PgDatabases(postgresql)


def fresh_database_url(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no rows on `backend` for this test (or module: `request`'s scope): a new
    file in `tmp_path`, or a database of the session's PostgreSQL with the newest schema made
    (emptied again after the test: `PgDatabases`)."""
    if db_backend == "sqlite":
        return f"sqlite://{tmp_path / 'cloud.db'}"
    databases: PgDatabases = request.getfixturevalue("postgresql_databases")
    name = databases.take()
    request.addfinalizer(lambda: databases.give_back(name))
    return databases.server.url(name)


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """The backend: `sqlite` or `postgresql` (the test runs once with each)."""
    return str(request.param)


@pytest.fixture
def database_url(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no rows, on each backend in turn (`SC_CLOUD_DATABASE` as the cloud reads
    it): a new SQLite file, or on PostgreSQL one with the newest schema already made."""
    return fresh_database_url(db_backend, request, tmp_path)


@pytest.fixture
def empty_database_url(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing in it, not even tables, on each backend in turn: for the tests
    of how a new database gets its schema."""
    if db_backend == "sqlite":
        return f"sqlite://{tmp_path / 'new.db'}"
    server: PostgreSQL = request.getfixturevalue("postgresql")
    name = f"new_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    request.addfinalizer(lambda: server.drop_database(name))
    return url


@pytest.fixture
def new_database(
    db_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], AbstractContextManager[str]]:
    """Hands out a database with no rows on each backend in turn, as often as the test asks
    (one per Hypothesis example): `with new_database() as url: …`; emptied after the `with`."""
    databases: PgDatabases | None = (
        request.getfixturevalue("postgresql_databases") if db_backend == "postgresql" else None
    )

    @contextlib.contextmanager
    def one() -> Iterator[str]:
        if databases is None:
            with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
                yield f"sqlite://{Path(folder) / 'cloud.db'}"
            return
        name = databases.take()
        try:
            yield databases.server.url(name)
        finally:
            databases.give_back(name)

    return one


def outside_connection(url: str) -> Any:
    """A plain, read-only connection to the database `url` names, beside the cloud's own (for a
    check that must run where no event loop is, e.g. in paho's thread): it sees only what was
    committed. sqlite3's, or cloud/db/postgres.py's of the same shape; close it when done."""
    parsed = DatabaseUrl.parse(url)
    if parsed.backend == "postgresql":
        return postgres.connect(parsed.target, read_only=True, application_name="test-outside")
    return sqlite3.connect(f"file:{parsed.target}?mode=ro", uri=True, timeout=10)
