"""The durable outbox: every message is written here before it is sent, and deleted only
after the broker acknowledged it (PUBACK). A power cut (kill -9) loses nothing that `put`
returned for; a restarted agent sends what is left, oldest first.

SQLite in WAL mode with `synchronous=FULL`, so a committed `put` survives a power cut, not
just a process crash. Row ids are AUTOINCREMENT: never reused, so id order is put order
across restarts. One connection, one lock: safe to call from any thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Entry:
    row: int
    topic: str
    payload: bytes
    qos: int
    created: float  # UNIX seconds when it was put


class Outbox:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS outbox (
                row INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL,
                payload BLOB NOT NULL,
                qos INTEGER NOT NULL,
                created REAL NOT NULL
            )"""
        )

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"outbox {self.path} is closed")
        return self._db

    def put(self, topic: str, payload: bytes, qos: int = 1) -> int:
        """Store one message durably; returns its row id (the send order)."""
        with self._lock:
            cur = self._conn().execute(
                "INSERT INTO outbox (topic, payload, qos, created) VALUES (?, ?, ?, ?)",
                (topic, payload, qos, time.time()),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def pending(self, limit: int = 100, after: int = 0) -> list[Entry]:
        """Up to `limit` unacknowledged messages with row id > `after`, oldest first."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT row, topic, payload, qos, created FROM outbox WHERE row > ? "
                "ORDER BY row LIMIT ?",
                (after, limit),
            )
            return [Entry(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows.fetchall()]

    def ack(self, rows: Iterable[int]) -> int:
        """Delete acknowledged messages (one transaction); returns how many were deleted."""
        ids = [(row,) for row in rows]
        if not ids:
            return 0
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                db.executemany("DELETE FROM outbox WHERE row = ?", ids)
                deleted = db.total_changes - before
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return deleted

    def last_row(self) -> int:
        """The newest row id in the outbox (0 if empty)."""
        with self._lock:
            return int(
                self._conn().execute("SELECT COALESCE(MAX(row), 0) FROM outbox").fetchone()[0]
            )

    def count(self) -> int:
        with self._lock:
            return int(self._conn().execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
