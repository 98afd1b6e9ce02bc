"""The system of record: one `Database` owns the connection, the one thread that uses it, the
transactions and the clock. Everything else hands it units of work.

A unit of work is a plain function of a connection (`fn(conn) -> T`), run on the database's own
thread — never on the event loop's — in ONE round trip, however many statements it holds:

- `write(fn)` runs it in a transaction (`BEGIN IMMEDIATE` … `COMMIT`; rolled back if it
  raises), one unit at a time, in the order they were handed in;
- `run(fn)` runs it on the same thread and connection, in that same order, without a
  transaction of its own: for a unit that begins and commits its own (the alarm book's group
  commit, the schema's migrations);
- `read(fn)` runs it read-only, every statement seeing one snapshot (a statement that would
  write fails, on both backends); on PostgreSQL on reader connections of its own, so reads
  never wait behind writes: a read sees every write that finished (was awaited) before it was
  handed in, not one still queued;
- `fetch_all`, `fetch_one` and `fetch_value` are one-statement reads, `execute` and
  `execute_many` one-statement writes.

Writing units run one after another, so each is atomic against the others; a component that
must read, decide on the event loop, then write (the alarm book's group commit) keeps its own
lock around those steps. `fn` must touch only the connection and its arguments (no asyncio, no state
the event loop changes meanwhile). Rows support `row["name"]`, `row[0]` and `row.keys()`.

SQLite (the embedded default, `sqlite:///path` or a path) runs in WAL mode with
`synchronous=FULL`: a committed alarm survives a power cut. PostgreSQL
(`postgresql://user:password@host:port/database`, cloud/db/postgres.py) gets the same units of
work through a connection that behaves as sqlite3's; `write` there takes the database's writer
lock, so one unit writes at a time across every process using it. Write SQL that both run
(`?` placeholders, `INSERT … ON CONFLICT`, `INSERT … RETURNING id` for a new id). The schema
is in `cloud/db/schema.py`, its versions in `cloud/db/migrations.py`; which database when:
docs/deploy.md.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cloud.db.dialect import POSTGRESQL, SQLITE, Dialect
from cloud.db.migrations import migrate
from cloud.db.url import DatabaseUrl

T = TypeVar("T")

#: The connection a unit of work gets: sqlite3's, or on PostgreSQL one of the same shape
#: (cloud/db/postgres.py: PgConnection, whose rows are postgres.Row).
Conn = sqlite3.Connection
Row = sqlite3.Row


class Database:
    def __init__(
        self,
        conn: Conn,
        *,
        clock: Callable[[], float] = time.time,
        dialect: Dialect = SQLITE,
        readers: Sequence[Conn] = (),
    ) -> None:
        self.clock = clock
        self.dialect = dialect
        self._conn = conn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db")
        # read-only connections of their own (PostgreSQL), each used by one thread at a time
        self._readers: queue.SimpleQueue[Conn] = queue.SimpleQueue()
        for reader in readers:
            self._readers.put(reader)
        self._reader_count = len(readers)
        self._reading = (
            ThreadPoolExecutor(max_workers=len(readers), thread_name_prefix="db-read")
            if readers
            else None
        )
        self._closed = False
        self.version = 0

    @classmethod
    async def open(
        cls,
        target: Path | str | DatabaseUrl,
        *,
        clock: Callable[[], float] = time.time,
        readers: int = 2,
    ) -> Database:
        """Open (or make) the database `target` names (a path, `sqlite://…` or
        `postgresql://…`: cloud/db/url.py) and bring its schema to the newest version.

        On PostgreSQL, `readers` more connections serve `read` and `fetch_*`, each on a thread
        of its own (SQLite: one connection does everything)."""
        url = target if isinstance(target, DatabaseUrl) else DatabaseUrl.parse(target)
        if url.backend == "postgresql":
            from cloud.db import postgres  # psycopg: only where PostgreSQL is used

            made = await asyncio.gather(
                asyncio.to_thread(postgres.connect, url.target),
                *(
                    asyncio.to_thread(postgres.connect, url.target, read_only=True)
                    for _ in range(readers)
                ),
                return_exceptions=True,
            )
            failed = [c for c in made if isinstance(c, BaseException)]
            conns: list[Any] = [c for c in made if not isinstance(c, BaseException)]
            if failed:
                for conn in conns:
                    conn.close()
                raise failed[0]
            db = cls(conns[0], clock=clock, dialect=POSTGRESQL, readers=conns[1:])
        else:
            db = cls(await asyncio.to_thread(_sqlite, url.target), clock=clock)
        try:
            db.version = await db.run(lambda c: migrate(c, clock(), db.dialect))
        except BaseException:
            await db.close()
            raise
        return db

    # ---- units of work --------------------------------------------------------------------

    async def read(self, fn: Callable[[Conn], T]) -> T:
        """`fn(conn)` in a read-only transaction: every statement sees the same snapshot, and
        one that would write fails. On PostgreSQL on a reader connection (never queued behind
        writes); it sees every write that finished before it was handed in (awaited)."""
        if self._reading is not None:
            return await self._read(_snapshot_pg(fn))
        return await self._run(self._snapshot(fn))

    async def write(self, fn: Callable[[Conn], T]) -> T:
        """`fn(conn)` on the database thread in one transaction, committed when it returns
        (rolled back, and the error raised, if it raises)."""

        def unit(conn: Conn) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        return await self._run(unit)

    async def run(self, fn: Callable[[Conn], T]) -> T:
        """`fn(conn)` on the database thread (the writer's connection), outside any
        transaction: for a unit that begins and commits its own (`BEGIN IMMEDIATE` … `COMMIT`,
        e.g. several transactions in a row); in the order handed in, as `write` units."""
        return await self._run(fn)

    async def _run(self, fn: Callable[[Conn], T]) -> T:
        if self._closed:
            raise RuntimeError("the database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self._conn)

    async def _read(self, fn: Callable[[Conn], T]) -> T:
        """`fn(conn)` on a free reader connection (PostgreSQL)."""
        if self._closed:
            raise RuntimeError("the database is closed")
        assert self._reading is not None

        def on_reader() -> T:
            conn = self._readers.get()
            try:
                return fn(conn)
            finally:
                self._readers.put(conn)

        return await asyncio.get_running_loop().run_in_executor(self._reading, on_reader)

    # ---- one statement ----------------------------------------------------------------------

    async def _fetch(self, fn: Callable[[Conn], T]) -> T:
        """One reading statement: as `read`, without a transaction around it on PostgreSQL
        (the reader connections are read-only)."""
        if self._reading is not None:
            return await self._read(fn)
        return await self._run(self._snapshot(fn))

    def _snapshot(self, fn: Callable[[Conn], T]) -> Callable[[Conn], T]:
        """`fn` read-only, in one snapshot, on the writer's connection."""
        return _snapshot_sqlite(fn) if self.dialect is SQLITE else _snapshot_pg(fn)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._fetch(lambda c: c.execute(sql, params).fetchall())

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self._fetch(lambda c: c.execute(sql, params).fetchone())
        return row

    async def fetch_value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One writing statement in a transaction of its own; how many rows it touched."""
        return await self.write(lambda c: c.execute(sql, params).rowcount)

    async def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        await self.write(lambda c: c.executemany(sql, rows))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)
        if self._reading is not None:
            self._reading.shutdown(wait=True)
            for _ in range(self._reader_count):
                self._readers.get_nowait().close()


def _snapshot_sqlite(fn: Callable[[Conn], T]) -> Callable[[Conn], T]:
    def unit(conn: Conn) -> T:
        conn.execute("PRAGMA query_only = ON")
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        finally:
            conn.execute("PRAGMA query_only = OFF")

    return unit


def _snapshot_pg(fn: Callable[[Any], T]) -> Callable[[Any], T]:
    def unit(conn: Any) -> T:
        conn.begin_snapshot()
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:
                conn.rollback()

    return unit


def _sqlite(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    _wal(conn)
    # FULL: a committed alarm survives a power cut; alarms are few, the cost is small
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _wal(conn: sqlite3.Connection, timeout: float = 5.0) -> None:
    """WAL mode. Two connections switching a new file at once: one gets "database is locked"
    at once (SQLite calls no busy handler here), so it tries again, for `timeout` at most."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)
