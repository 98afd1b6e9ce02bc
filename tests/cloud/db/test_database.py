"""The Database API on both backends (SQLite and a real PostgreSQL): units of work, one writer
at a time, savepoints, rows, new ids, the one-statement shorthands, the schema's versions and
closing. Each test runs once per backend (the `database_url` fixture)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloud.db.database import Database, _sqlite
from cloud.db.migrations import MIGRATIONS
from cloud.db.schema import ALARM_COLUMNS, SCHEMA, USER_COLUMNS
from cloud.db.url import DatabaseUrl, DatabaseUrlError
from cloud.errors import DatabaseUnavailable
from tests.servers import PostgreSQL, free_port

INTEGRITY = (sqlite3.IntegrityError, psycopg.IntegrityError)
READ_ONLY = (sqlite3.OperationalError, psycopg.errors.ReadOnlySqlTransaction)
NEWEST = max([1, *(version for version, _, _ in MIGRATIONS)])


def add_entry(conn: Any, actor: str, detail: str = "", at: float = 1.0) -> int:
    row = conn.execute(
        "INSERT INTO audit (at, actor, action, detail) VALUES (?, ?, 'test', ?) RETURNING id",
        (at, actor, detail),
    ).fetchone()
    return int(row[0])


async def actors(db: Database) -> list[str]:
    return [r["actor"] for r in await db.fetch_all("SELECT actor FROM audit ORDER BY id")]


@pytest.fixture
async def db(database_url: str) -> Any:
    database = await Database.open(database_url)
    yield database
    await database.close()


# ---- units of work ----------------------------------------------------------------------------


async def test_a_unit_of_work_commits_when_it_returns(db: Database, database_url: str) -> None:
    result = await db.write(lambda c: [add_entry(c, "op"), add_entry(c, "sup")])
    assert result == [1, 2]
    # seen by another connection: committed, not only visible to the writer
    other = await Database.open(database_url)
    try:
        assert await actors(other) == ["op", "sup"]
    finally:
        await other.close()


async def test_a_unit_that_raises_leaves_nothing_behind(db: Database) -> None:
    await db.write(lambda c: add_entry(c, "before"))

    def half_done(conn: Any) -> None:
        add_entry(conn, "lost")
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        await db.write(half_done)
    assert await actors(db) == ["before"]
    # the connection is usable again: no transaction was left open
    await db.write(lambda c: add_entry(c, "after"))
    assert await actors(db) == ["before", "after"]


async def test_a_failing_statement_rolls_back_its_whole_unit(db: Database) -> None:
    def duplicate(conn: Any) -> None:
        conn.execute(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ('a','op','h',1)"
        )
        conn.execute(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ('a','op','h',1)"
        )

    with pytest.raises(INTEGRITY):
        await db.write(duplicate)
    assert await db.fetch_value("SELECT count(*) FROM users") == 0


async def test_units_run_one_at_a_time_in_the_order_given(db: Database) -> None:
    steps: list[tuple[str, int]] = []

    def unit(name: str) -> Any:
        def run(conn: Any) -> None:
            for step in range(3):
                steps.append((name, step))
                add_entry(conn, name)

        return run

    await asyncio.gather(db.write(unit("a")), db.write(unit("b")), db.run(unit("c")))
    assert steps == [(name, step) for name in "abc" for step in range(3)]


async def test_writers_on_two_connections_never_interleave(database_url: str) -> None:
    """Two processes on one database (two Database objects): units that read a number, then
    write it plus one, run at once; one writer at a time means no increment is lost."""
    first, second = Database.open(database_url), Database.open(database_url)
    dbs = await asyncio.gather(first, second)
    try:
        await dbs[0].execute(
            "INSERT INTO reject_counts (gateway, reason, count) VALUES ('gw', 'r', 0)"
        )
        inside = threading.Event()

        def increment(conn: Any) -> None:
            count = conn.execute("SELECT count FROM reject_counts WHERE gateway = 'gw'").fetchone()
            inside.set()
            # the other connection tries to write meanwhile; it must wait for this unit
            threading.Event().wait(0.002)
            conn.execute("UPDATE reject_counts SET count = ? WHERE gateway = 'gw'", (count[0] + 1,))

        rounds = 25
        await asyncio.gather(*(db.write(increment) for db in dbs for _ in range(rounds)))
        assert inside.is_set()
        assert await dbs[1].fetch_value("SELECT count FROM reject_counts") == 2 * rounds
    finally:
        for db in dbs:
            await db.close()


async def test_savepoints_roll_back_part_of_a_unit(db: Database) -> None:
    """The alarm book's group commit: each message in a savepoint; one that fails is rolled
    back to it and the others are kept (on PostgreSQL the failed statement would otherwise
    spoil the rest of the transaction)."""

    def batch(conn: Any) -> list[str]:
        out = []
        for actor in ("one", "dup", "two"):
            conn.execute("SAVEPOINT arrival")
            try:
                conn.execute(
                    "INSERT INTO users (name, role, password_hash, created_at)"
                    " VALUES (?, 'op', 'h', 1)",
                    ("same" if actor == "dup" else actor,),
                )
                if actor == "dup":
                    conn.execute(
                        "INSERT INTO users (name, role, password_hash, created_at)"
                        " VALUES ('same', 'op', 'h', 1)"
                    )
            except INTEGRITY:
                conn.execute("ROLLBACK TO arrival")
                conn.execute("RELEASE arrival")
                out.append(f"{actor}: refused")
                continue
            conn.execute("RELEASE arrival")
            out.append(f"{actor}: stored")
        return out

    assert await db.write(batch) == ["one: stored", "dup: refused", "two: stored"]
    names = [r[0] for r in await db.fetch_all("SELECT name FROM users ORDER BY name")]
    assert names == ["one", "two"]


async def test_a_unit_may_begin_and_commit_itself(db: Database) -> None:
    """The alarm book's group commit opens its own transaction on the database thread."""

    def own_transaction(conn: Any) -> bool:
        assert not conn.in_transaction
        conn.execute("BEGIN")
        add_entry(conn, "mine")
        assert conn.in_transaction
        conn.commit()
        return conn.in_transaction

    assert await db.run(own_transaction) is False
    assert await actors(db) == ["mine"]

    def rolled_back(conn: Any) -> None:
        conn.execute("BEGIN")
        add_entry(conn, "not kept")
        conn.rollback()

    await db.run(rolled_back)
    assert await actors(db) == ["mine"]


async def test_a_read_unit_cannot_write(db: Database) -> None:
    with pytest.raises(READ_ONLY, match=r"readonly|read-only"):
        await db.read(lambda c: add_entry(c, "sneaky"))
    with pytest.raises(READ_ONLY, match=r"readonly|read-only"):
        await db.fetch_one(
            "INSERT INTO audit (at, actor, action) VALUES (1, 'x', 'y') RETURNING id"
        )
    assert await actors(db) == []
    await db.write(lambda c: add_entry(c, "writer"))  # the writer's connection is not read-only
    assert await db.read(lambda c: [r[0] for r in c.execute("SELECT actor FROM audit")]) == [
        "writer"
    ]


async def test_a_read_unit_sees_one_snapshot(database_url: str) -> None:
    """A count and then the rows agree even if another process commits in between."""
    db = await Database.open(database_url)
    other = await Database.open(database_url)
    try:
        await db.write(lambda c: add_entry(c, "first"))
        counted = threading.Event()
        written = threading.Event()

        def count_then_rows(conn: Any) -> tuple[int, int]:
            total = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
            counted.set()
            assert written.wait(10)
            return total, len(conn.execute("SELECT * FROM audit").fetchall())

        reading = asyncio.create_task(db.read(count_then_rows))
        assert await asyncio.to_thread(counted.wait, 10)
        await other.write(lambda c: add_entry(c, "meanwhile"))
        written.set()
        assert await reading == (1, 1)
        assert await db.fetch_value("SELECT count(*) FROM audit") == 2
    finally:
        await other.close()
        await db.close()


# ---- rows and values --------------------------------------------------------------------------


async def test_rows_by_name_by_position_and_as_dicts(db: Database) -> None:
    await db.write(lambda c: add_entry(c, "op", "hello", at=12.5))
    row = await db.fetch_one("SELECT id, at, actor, detail FROM audit")
    assert row is not None
    assert row["actor"] == "op" and row["ACTOR"] == "op"
    assert row[0] == 1 and row[1] == 12.5 and row[-1] == "hello"
    assert list(row.keys()) == ["id", "at", "actor", "detail"]
    assert dict(row) == {"id": 1, "at": 12.5, "actor": "op", "detail": "hello"}
    ident, at, actor, detail = row
    assert (ident, at, actor, detail) == (1, 12.5, "op", "hello")
    assert len(row) == 4
    with pytest.raises(IndexError):
        row["nope"]


async def test_values_come_back_as_sqlite_gives_them(db: Database) -> None:
    """Epoch seconds to the microsecond, bytes, booleans as 1/0, sums and averages."""
    at = 1796180066.3286295
    payload = bytes(range(256))
    await db.execute(
        "INSERT INTO rejected (at, topic, reason, detail, payload) VALUES (?, ?, ?, ?, ?)",
        (at, "sc/v1/gw/event", "bad_json", "50% off? no", payload),
    )
    await db.execute(
        "INSERT INTO users (name, role, password_hash, created_at, disabled) VALUES (?,?,?,?,?)",
        ("a", "op", "h", 1, True),
    )
    row = await db.fetch_one("SELECT at, payload, detail FROM rejected")
    assert row is not None
    assert row["at"] == at
    assert row["payload"] == payload
    assert row["detail"] == "50% off? no"
    assert await db.fetch_value("SELECT disabled FROM users WHERE name = ?", ("a",)) == 1
    await db.execute_many(
        "INSERT INTO reject_counts (gateway, reason, count) VALUES (?, ?, ?)",
        [("gw1", "r", 2), ("gw2", "r", 3)],
    )
    row = await db.fetch_one("SELECT SUM(count), AVG(count) FROM reject_counts")
    assert row is not None
    total, mean = tuple(row)
    assert (total, type(total)) == (5, int)
    assert (mean, type(mean)) == (2.5, float)
    # a `?` or `%` inside quotes is text, not a placeholder
    assert await db.fetch_value("SELECT '?%' || ?", ("x",)) == "?%x"


async def test_new_ids_from_insert_returning(db: Database, db_backend: str) -> None:
    first = await db.write(lambda c: add_entry(c, "a"))
    second = await db.write(lambda c: add_entry(c, "b"))
    assert (first, second) == (1, 2)
    plain = "INSERT INTO audit (at, actor, action) VALUES (1, 'c', 'test')"
    if db_backend == "sqlite":
        assert await db.write(lambda c: c.execute(plain).lastrowid) == 3
    else:
        with pytest.raises(psycopg.NotSupportedError, match="RETURNING id"):
            await db.write(lambda c: c.execute(plain).lastrowid)
        assert await actors(db) == ["a", "b"]  # the unit was rolled back


async def test_one_statement_shorthands(db: Database) -> None:
    assert await db.fetch_all("SELECT * FROM audit") == []
    assert await db.fetch_one("SELECT * FROM audit") is None
    assert await db.fetch_value("SELECT max(id) FROM audit") is None
    await db.execute_many(
        "INSERT INTO audit (at, actor, action) VALUES (?, ?, 'test')",
        ((float(n), f"user{n}") for n in range(5)),
    )
    assert await db.fetch_value("SELECT count(*) FROM audit WHERE at >= ?", (2,)) == 3
    assert await db.execute("UPDATE audit SET detail = 'x' WHERE at < ?", (3,)) == 3
    assert await db.execute("DELETE FROM audit WHERE actor = ?", ("nobody",)) == 0
    rows = await db.fetch_all("SELECT actor FROM audit WHERE detail = ? ORDER BY id", ("x",))
    assert [r[0] for r in rows] == ["user0", "user1", "user2"]


async def test_upsert_on_conflict(db: Database) -> None:
    """INSERT … ON CONFLICT (the portable INSERT OR IGNORE / OR REPLACE) on both."""
    sql = (
        "INSERT INTO reject_counts (gateway, reason, count) VALUES (?, ?, ?)"
        " ON CONFLICT (gateway, reason) DO UPDATE SET count = reject_counts.count + excluded.count"
    )
    await db.execute(sql, ("gw", "r", 2))
    await db.execute(sql, ("gw", "r", 3))
    ignored = await db.execute(
        "INSERT INTO reject_counts (gateway, reason, count) VALUES ('gw', 'r', 9)"
        " ON CONFLICT DO NOTHING"
    )
    assert ignored == 0
    assert await db.fetch_value("SELECT count FROM reject_counts") == 5


# ---- the schema ---------------------------------------------------------------------------------


async def test_a_new_database_gets_the_newest_schema_and_a_second_open_changes_nothing(
    empty_database_url: str,
) -> None:
    database_url = empty_database_url
    db = await Database.open(database_url, clock=lambda: 1000.0)
    try:
        assert db.version == NEWEST
        versions = [tuple(r) for r in await db.fetch_all("SELECT * FROM schema_version")]
        assert versions[0] == (1, 1000.0, "the schema of 2026-12")
        assert len(versions) == NEWEST
        alarms = db.dialect.columns
        have = await db.read(lambda c: alarms(c, "alarms"))
        assert set(ALARM_COLUMNS) <= have
    finally:
        await db.close()
    again = await Database.open(database_url, clock=lambda: 2000.0)
    try:
        assert again.version == NEWEST
        assert [tuple(r) for r in await again.fetch_all("SELECT * FROM schema_version")] == versions
    finally:
        await again.close()


async def test_two_processes_opening_a_new_database_at_once(empty_database_url: str) -> None:
    dbs = await asyncio.gather(*(Database.open(empty_database_url) for _ in range(3)))
    try:
        assert [db.version for db in dbs] == [NEWEST] * 3
        assert await dbs[0].fetch_value("SELECT count(*) FROM schema_version") == NEWEST
    finally:
        for db in dbs:
            await db.close()


def test_two_processes_making_a_new_sqlite_file_at_once(tmp_path: Path) -> None:
    """Both switch it to WAL; SQLite refuses one of them at once ("database is locked", no
    busy wait) a few times in a hundred: it must try again, not fail the start."""
    failures: list[Exception] = []

    def start(path: Path) -> None:
        try:
            _sqlite(str(path)).close()
        except Exception as exc:
            failures.append(exc)

    for attempt in range(100):
        path = tmp_path / f"{attempt}.db"
        starts = [threading.Thread(target=start, args=(path,)) for _ in range(2)]
        for thread in starts:
            thread.start()
        for thread in starts:
            thread.join()
    assert failures == []


async def test_a_database_from_before_versions_is_upgraded(tmp_path: Path) -> None:
    """A SQLite file made before schema versions (the first tables, an account, an alarm):
    it gains the later columns and indexes, keeps its rows, and counts as version 1."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA)
    old.execute("INSERT INTO users VALUES ('op', 'operator', 'hash', 1.0)")
    old.execute(
        "INSERT INTO alarms (rule, level, kind, gateway, device, model, street_id, community_id,"
        " community, grid_id, grid, building_id, building, home_id, home, title_zh, title_en,"
        " state, device_ts, received_at, stored_at)"
        " VALUES ('smoke', 1, 'smoke', 'gw', 'd', 'm', 's', 'c', 'C', 'g', 'G', 'b', 'B', 'h',"
        " 'H', '烟雾', 'Smoke', 'active', 1, 2, 3)"
    )
    old.commit()
    old.close()

    db = await Database.open(path)
    try:
        assert db.version == NEWEST
        assert set(ALARM_COLUMNS) <= await db.read(lambda c: db.dialect.columns(c, "alarms"))
        assert set(USER_COLUMNS) <= await db.read(lambda c: db.dialect.columns(c, "users"))
        alarm = await db.fetch_one("SELECT title_zh, mode, life_safety, escalations FROM alarms")
        assert alarm is not None and tuple(alarm) == ("烟雾", "live", 0, 0)
        user = await db.fetch_one("SELECT disabled, session_key, created_by FROM users")
        assert user is not None
        assert user["disabled"] == 0 and user["created_by"] == "bootstrap"
        assert len(user["session_key"]) == 32 and int(user["session_key"], 16) >= 0
        indexes = {r[0] for r in await db.fetch_all("SELECT name FROM sqlite_master")}
        assert {"alarms_due", "alarms_by_window", "alarms_unverified"} <= indexes
    finally:
        await db.close()


# ---- closing and failures ------------------------------------------------------------------------


async def test_closing_ends_the_connection(database_url: str, db_backend: str) -> None:
    db = await Database.open(database_url)
    if db_backend == "postgresql":
        watcher = await Database.open(database_url)
        count = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'sc-cloud'"
        )
        assert await watcher.fetch_value(count) == 2 * 3  # a writer and two readers each
    await db.close()
    await db.close()  # a second close is harmless
    with pytest.raises(RuntimeError, match="closed"):
        await db.fetch_all("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        await db.write(lambda c: None)
    if db_backend == "postgresql":
        # the server ends a backend just after its client hung up: wait for that
        for _ in range(1000):  # ~10 s at most
            left = await watcher.fetch_value(count)
            if left == 3:
                break
            await asyncio.sleep(0.01)
        assert left == 3
        await watcher.close()


async def test_a_postgresql_server_that_is_not_there(postgresql: PostgreSQL) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(DatabaseUnavailable, match="refused") as refused:
        await Database.open(url)
    assert refused.value.zh == "数据库暂时无法连接，稍后自动重试"


async def test_a_database_that_does_not_exist(postgresql: PostgreSQL) -> None:
    with pytest.raises(DatabaseUnavailable, match='database "missing" does not exist'):
        await Database.open(postgresql.url("missing"))


def test_a_setting_that_names_no_database() -> None:
    with pytest.raises(DatabaseUrlError, match="unsupported database 'mysql'"):
        DatabaseUrl.parse("mysql://root@localhost/sc")


async def test_reads_do_not_wait_for_a_write_on_postgresql(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A long write unit (a big group commit) is running: the board's reads still answer, from
    the reader connections, and see the write once it is committed."""
    from tests.db_backends import fresh_database_url

    db = await Database.open(fresh_database_url("postgresql", request, tmp_path))
    try:
        inside = threading.Event()
        release = threading.Event()

        def long_write(conn: Any) -> None:
            add_entry(conn, "slow")
            inside.set()
            assert release.wait(10)

        writing = asyncio.create_task(db.write(long_write))
        assert await asyncio.to_thread(inside.wait, 10)
        reads = [db.fetch_value("SELECT count(*) FROM audit"), db.read(lambda c: 7)]
        assert await asyncio.wait_for(asyncio.gather(*reads), 10) == [0, 7]
        release.set()
        await writing
        assert await db.fetch_value("SELECT count(*) FROM audit") == 1
    finally:
        await db.close()


async def test_postgresql_without_reader_connections(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`readers=0`: reads run on the writer's connection, still read-only and consistent."""
    from tests.db_backends import fresh_database_url

    db = await Database.open(fresh_database_url("postgresql", request, tmp_path), readers=0)
    try:
        await db.write(lambda c: add_entry(c, "op"))
        assert await actors(db) == ["op"]
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM audit").fetchone()[0]) == 1
        with pytest.raises(READ_ONLY):
            await db.read(lambda c: add_entry(c, "sneaky"))
        await db.write(lambda c: add_entry(c, "sup"))  # the writer recovered from that
        assert await actors(db) == ["op", "sup"]
    finally:
        await db.close()
