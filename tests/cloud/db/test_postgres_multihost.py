"""The cloud on a libpq multi-host URL with `target_session_attrs=read-write` (docs/deploy.md,
"PostgreSQL high availability"): every session it opens — the writer's and the read-only
readers' — lands on the one server that takes writes, and when that role moves to another
server (a failover) the sessions opened again follow it.

Two real servers stand in for a primary and a standby: libpq tells them apart by what the
server reports at the start of a session (`default_transaction_read_only`, `in_hot_standby`),
so a server whose default is read-only is refused as a standby is. The real failover under
Patroni is the fault suite's `database-failover` (tests/faults/failover.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from cloud.db.database import Database
from cloud.errors import DatabaseUnavailable
from tests.servers import PostgreSQL, free_port

READ_ONLY = psycopg.errors.ReadOnlySqlTransaction
DATABASE = "sc"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PostgreSQL, PostgreSQL]]:
    """Two servers, each with the database `sc`; both take writes until a test says not."""
    made: list[PostgreSQL] = []
    try:
        for _ in range(2):
            server = PostgreSQL()
            made.append(server)
            server.start()
            server.create_database(DATABASE)
        yield made[0], made[1]
    finally:
        for server in made:
            server.cleanup()


def _read_only(server: PostgreSQL, on: bool) -> None:
    """Make `server` refuse writes by default (as a standby) or take them (as a primary), for
    the sessions that start from now on."""
    with psycopg.connect(
        server.url(), autocommit=True, options="-c default_transaction_read_only=off"
    ) as admin:
        admin.execute(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}")
        admin.execute("SELECT pg_reload_conf()")


def _end_sessions(server: PostgreSQL) -> None:
    """End every session on `server` but this one: what a primary's death does to them."""
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (DATABASE,),
        )


def _url(*servers: PostgreSQL, closed_port: int) -> str:
    hosts = ",".join([f"127.0.0.1:{closed_port}", *(f"127.0.0.1:{s.port}" for s in servers)])
    return f"postgresql://postgres@{hosts}/{DATABASE}?target_session_attrs=read-write"


@pytest.fixture
def pair(servers: tuple[PostgreSQL, PostgreSQL]) -> Iterator[tuple[PostgreSQL, PostgreSQL]]:
    """(standby, primary): the first refuses writes; both back to read-write afterwards."""
    standby, primary = servers
    _read_only(standby, True)
    try:
        yield standby, primary
    finally:
        for server in servers:
            _read_only(server, False)


async def _port(db: Database, *, read: bool) -> int:
    sql = "SELECT inet_server_port()"
    if read:
        return int(await db.read(lambda c: c.execute(sql).fetchone()[0]))
    return int(await db.write(lambda c: c.execute(sql).fetchone()[0]))


async def test_every_session_lands_on_the_server_that_takes_writes(
    pair: tuple[PostgreSQL, PostgreSQL],
) -> None:
    standby, primary = pair
    # a host that is down, then the standby, then the primary: libpq tries them in turn
    db = await Database.open(_url(standby, primary, closed_port=free_port()), readers=2)
    try:
        assert await _port(db, read=False) == primary.port
        for _ in range(4):  # both readers, whichever serves
            assert await _port(db, read=True) == primary.port
        with pytest.raises(READ_ONLY):  # the readers are still read-only
            await db.read(lambda c: c.execute("DELETE FROM schema_version"))
        assert await db.fetch_one("SELECT count(*) AS n FROM schema_version") is not None
    finally:
        await db.close()


async def test_the_sessions_follow_the_primary_when_it_moves(
    pair: tuple[PostgreSQL, PostgreSQL],
) -> None:
    standby, primary = pair
    # the other server gets the same schema while it still takes writes (a standby has it
    # by replication)
    _read_only(standby, False)
    await (await Database.open(standby.url(DATABASE), readers=0)).close()
    _read_only(standby, True)
    db = await Database.open(_url(standby, primary, closed_port=free_port()), readers=1)
    try:
        assert await _port(db, read=False) == primary.port
        # the failover: the primary refuses writes and drops its sessions, the standby takes
        # writes
        _read_only(primary, True)
        _end_sessions(primary)
        with pytest.raises(DatabaseUnavailable):  # no server takes writes for the moment
            await _port(db, read=False)
        with pytest.raises(DatabaseUnavailable):
            await _port(db, read=True)
        _read_only(standby, False)
        assert await _port(db, read=False) == standby.port
        assert await _port(db, read=True) == standby.port
    finally:
        await db.close()
