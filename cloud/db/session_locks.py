"""Session-level advisory locks on PostgreSQL: which cloud process holds which ingest shard
(cloud/ingest/shards.py), and how many processes are there to share them.

A lock belongs to a database session, not to a transaction: it is held until it is given
back or the session ends — when its process dies (kill -9 closes the socket at once) or is
cut off (the TCP keepalives of `cloud.db.postgres.connect` notice in about 11 s). Every
process holds one *presence* lock of its own (a random number under the workers' key) for as
long as its session lives, so `workers()` counts the live processes; each shard is one lock
under the shards' key. Keys are PostgreSQL's two-number form: (space, number).

The session is its own connection, used from one thread of its own (the event loop never
waits on it). When the session is lost, so is every lock it held: the call that finds out
raises `LocksLost`, and the next call opens a new session (no lock held) and takes the
presence lock again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cloud.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

#: the lock spaces ("sc" and a number: positive, as pg_locks shows them as oids)
PRESENCE = 0x5C_00_00_01
SHARDS = 0x5C_00_00_02

_COUNT = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND classid = CAST(? AS oid)"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class LocksLost(Exception):
    """The session that held the locks ended: none is held any more."""


class SessionLocks:
    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None  # cloud.db.postgres.PgConnection, opened on first use
        self._me = secrets.randbelow(2**31 - 1) + 1
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-locks")

    async def _call(self, sql: str, params: tuple[int, ...]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._on_thread, sql, params)

    def _on_thread(self, sql: str, params: tuple[int, ...]) -> Any:
        from cloud.db import postgres  # psycopg: only where PostgreSQL is used

        try:
            if self._conn is None:
                self._conn = postgres.connect(self.url, application_name="sc-cloud-locks")
                self._conn.execute("SELECT pg_advisory_lock(?, ?)", (PRESENCE, self._me))
            conn = self._conn
            value = conn.execute(sql, params).fetchone()[0]
            if conn.reconnects == 0:
                return value
            error = "the database session was opened again"  # what it held is gone
        except DatabaseUnavailable as exc:
            error = str(exc)
        self._drop()
        raise LocksLost(error)

    def _drop(self) -> None:
        """Forget the session (a new one is opened by the next call, holding nothing)."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # already broken: nothing to give back
                log.debug("closing the locks' session: %r", exc)
            self._conn = None

    async def workers(self) -> int:
        """How many processes hold a presence lock in this database (this one included)."""
        return int(await self._call(_COUNT, (PRESENCE,)))

    async def try_lock(self, shard: int) -> bool:
        return bool(await self._call("SELECT pg_try_advisory_lock(?, ?)", (SHARDS, shard)))

    async def unlock(self, shard: int) -> None:
        await self._call("SELECT pg_advisory_unlock(?, ?)", (SHARDS, shard))

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._drop)
        self._thread.shutdown(wait=False)
