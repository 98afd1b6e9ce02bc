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
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

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


def fresh_database_url(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database on `backend` for this test: a file in its temp folder, or a
    database of its own on the session's PostgreSQL (dropped after the test)."""
    if db_backend == "sqlite":
        return f"sqlite://{tmp_path / 'cloud.db'}"
    server: PostgreSQL = request.getfixturevalue("postgresql")
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    request.addfinalizer(lambda: server.drop_database(name))
    return url


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """The backend: `sqlite` or `postgresql` (the test runs once with each)."""
    return str(request.param)


@pytest.fixture
def database_url(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend in turn (`SC_CLOUD_DATABASE` as the cloud reads it)."""
    return fresh_database_url(db_backend, request, tmp_path)


@pytest.fixture
def new_database(
    db_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], AbstractContextManager[str]]:
    """Makes a fresh, empty database on each backend in turn, as often as the test asks (one
    per Hypothesis example): `with new_database() as url: …`; gone after the `with`."""
    server: PostgreSQL | None = (
        request.getfixturevalue("postgresql") if db_backend == "postgresql" else None
    )

    @contextlib.contextmanager
    def one() -> Iterator[str]:
        if server is None:
            with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
                yield f"sqlite://{Path(folder) / 'cloud.db'}"
            return
        name = f"test_{uuid.uuid4().hex[:12]}"
        url = server.create_database(name)
        try:
            yield url
        finally:
            server.drop_database(name)

    return one


def outside_connection(url: str) -> Any:
    """A plain, read-only connection to the database `url` names, beside the cloud's own (for a
    check that must run where no event loop is, e.g. in paho's thread): it sees only what was
    committed. sqlite3's, or cloud/db/postgres.py's of the same shape; close it when done."""
    parsed = DatabaseUrl.parse(url)
    if parsed.backend == "postgresql":
        from cloud.db import postgres

        return postgres.connect(parsed.target, read_only=True, application_name="test-outside")
    return sqlite3.connect(f"file:{parsed.target}?mode=ro", uri=True, timeout=10)
