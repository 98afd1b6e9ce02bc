"""The system of record: one `Database` owns the connection, the one thread that uses it, the
transactions and the clock. Everything else hands it units of work.

A unit of work is a plain function of a connection (`fn(conn) -> T`), run on the database's own
thread — never on the event loop's — in ONE round trip, however many statements it holds:

- `write(fn)` runs it in a transaction (`BEGIN IMMEDIATE` … `COMMIT`; rolled back if it
  raises), one unit at a time, in the order they were handed in;
- `read(fn)` runs it without a transaction of its own;
- `fetch_all`, `fetch_one`, `fetch_value` and `execute` are one-statement shorthands.

Units run one after another, so each is atomic against the others; a component that must
read, decide on the event loop, then write (the alarm book's group commit) keeps its own lock
around those steps. `fn` must touch only the connection and its arguments (no asyncio, no state
the event loop changes meanwhile). Rows support `row["name"]`, `row[0]` and `row.keys()`.

SQLite (the embedded default, `sqlite:///path` or a path) runs in WAL mode with
`synchronous=FULL`: a committed alarm survives a power cut. PostgreSQL
(`postgresql://user:password@host:port/database`, cloud/db/postgres.py) gets the same units of
work through a connection that behaves as sqlite3's; `write` there takes the database's writer
lock, so one unit writes at a time across every process using it. Write SQL that both run
(`?` placeholders, `INSERT … ON CONFLICT`, `INSERT … RETURNING id` for a new id). The schema
and its versions are in `cloud/db/schema.py`; which database when: docs/deploy.md.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cloud.db.dialect import POSTGRESQL, SQLITE, Dialect
from cloud.db.schema import migrate
from cloud.db.url import DatabaseUrl

T = TypeVar("T")

#: The connection a unit of work gets: sqlite3's, or on PostgreSQL one of the same shape
#: (cloud/db/postgres.py: PgConnection, whose rows are postgres.Row).
Conn = sqlite3.Connection
Row = sqlite3.Row


class Database:
    def __init__(
        self, conn: Conn, *, clock: Callable[[], float] = time.time, dialect: Dialect = SQLITE
    ) -> None:
        self.clock = clock
        self.dialect = dialect
        self._conn = conn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db")
        self._closed = False
        self.version = 0

    @classmethod
    async def open(
        cls, target: Path | str | DatabaseUrl, *, clock: Callable[[], float] = time.time
    ) -> Database:
        """Open (or make) the database `target` names (a path, `sqlite://…` or
        `postgresql://…`: cloud/db/url.py) and bring its schema to the newest version."""
        url = target if isinstance(target, DatabaseUrl) else DatabaseUrl.parse(target)
        if url.backend == "postgresql":
            from cloud.db import postgres  # psycopg: only where PostgreSQL is used

            conn: Any = await asyncio.to_thread(postgres.connect, url.target)
            db = cls(conn, clock=clock, dialect=POSTGRESQL)
        else:
            db = cls(await asyncio.to_thread(_sqlite, url.target), clock=clock)
        try:
            db.version = await db.read(lambda c: migrate(c, clock(), db.dialect))
        except BaseException:
            await db.close()
            raise
        return db

    # ---- units of work --------------------------------------------------------------------

    async def read(self, fn: Callable[[Conn], T]) -> T:
        """`fn(conn)` on the database thread, outside any transaction of its own."""
        return await self._run(fn)

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

    async def _run(self, fn: Callable[[Conn], T]) -> T:
        if self._closed:
            raise RuntimeError("the database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self._conn)

    # ---- one statement ----------------------------------------------------------------------

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self.read(lambda c: c.execute(sql, params).fetchall())

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self.read(lambda c: c.execute(sql, params).fetchone())
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
        await self._run(lambda c: c.close())
        self._closed = True
        self._executor.shutdown(wait=True)


def _sqlite(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed alarm survives a power cut; alarms are few, the cost is small
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
