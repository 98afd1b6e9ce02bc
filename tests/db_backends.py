"""The system of record on each backend: one PostgreSQL server per test session, and a fresh
database per test on SQLite or on PostgreSQL.

A test (or fixture) that asks for `database_url` runs once per backend:

    async def test_something(database_url: str) -> None:
        db = await Database.open(database_url)

`tests/conftest.py` imports these fixtures, so every test can use them.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
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


def outside_connection(url: str) -> Any:
    """A plain, read-only connection to the database `url` names, beside the cloud's own (for a
    check that must run where no event loop is, e.g. in paho's thread): it sees only what was
    committed. sqlite3's, or cloud/db/postgres.py's of the same shape; close it when done."""
    parsed = DatabaseUrl.parse(url)
    if parsed.backend == "postgresql":
        from cloud.db import postgres

        return postgres.connect(parsed.target, read_only=True, application_name="test-outside")
    return sqlite3.connect(f"file:{parsed.target}?mode=ro", uri=True, timeout=10)
