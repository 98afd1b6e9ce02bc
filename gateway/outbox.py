"""The durable outbox: every message is written here before it is sent, and deleted only
once it is delivered. A power cut (kill -9) loses nothing that `put` returned for; a
restarted agent sends what is left, oldest first.

Two kinds of delivery:
- **Events** are put with their `(boot, seq)` and deleted only when the cloud acknowledges
  them as committed to its system of record (`ack_stream`, from the cloud's `cmd/ack`). A
  broker's PUBACK says only that the broker has the message, perhaps only in memory: it
  frees the uplink's in-flight window, nothing more.
- **Everything else** (telemetry batches, replies) is deleted on the broker's PUBACK
  (`ack_rows`): losing a reading in a broker crash is tolerated, losing an alarm is not.

SQLite in WAL mode with `synchronous=FULL` (gateway/outbox_db.py), so a committed `put`
survives a power cut, not just a process crash. Row ids are AUTOINCREMENT: never reused, so
id order is put order across restarts. One connection, one lock: safe to call from any
thread.

A disk budget (`budget_bytes`, counted as topic + payload + a fixed overhead per row) bounds
it through a long outage: once a `put` takes it over the budget, **telemetry** is thinned,
oldest first, down to 90 % of it. Events (alarms, calls, faults, …) and replies are never
dropped: if they alone exceed the budget, the outbox grows past it (and says so in the log).
The disk itself may fill first (a small SD card, logs, another program): `gateway/disk_room.py`
keeps a reserve for that and a floor for the deletes that make room again. When SQLite says the
disk is full (SQLITE_FULL), the reserve is given back, the WAL is checkpointed and truncated,
telemetry is thinned, and the write is tried again, so events go on being stored. Only when even
that fails does `put` raise `OutboxFull` (the agent keeps such events in memory, in order, and
tries again). The database gives freed pages back to the filesystem (incremental auto-vacuum)
after deletes while the disk is tight. A small `meta` table keeps state that must survive a
restart (the uplink's outage start); failing to write it is logged, not raised.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.disk_room import DiskRoom
from gateway.outbox_db import CHECKPOINT_PAGES, open_database

log = logging.getLogger(__name__)

#: What a row costs besides its topic and payload (row id, qos, time, b-tree), for the budget.
ROW_OVERHEAD = 48
#: Thinning frees telemetry down to this share of the budget, so it does not run every put.
LOW_WATER = 0.9
_SIZE = f"LENGTH(payload) + LENGTH(topic) + {ROW_OVERHEAD}"
_TELEMETRY = "topic LIKE '%/telemetry'"
#: Rows deleted per transaction when the cloud acknowledges a long run of events.
DELETE_CHUNK = 200
#: WAL pages between checkpoints while the disk is full (~32 KB; normally CHECKPOINT_PAGES).
TIGHT_CHECKPOINT_PAGES = 8


class OutboxFull(Exception):
    """The disk is full even after the reserve was given back and telemetry thinned."""


@dataclass(frozen=True, slots=True)
class Entry:
    row: int
    topic: str
    payload: bytes
    qos: int
    created: float  # UNIX seconds when it was put
    boot: str | None = None  # an event's stream: kept until the cloud acknowledges it
    seq: int | None = None

    @property
    def awaits_cloud(self) -> bool:
        """Deleted on the cloud's acknowledgement, not on the broker's."""
        return self.boot is not None


@dataclass
class OutboxStats:
    thinned_rows: int = 0  # telemetry batches dropped to keep to the budget
    thinned_bytes: int = 0
    over_budget: int = 0  # puts that left it over budget (nothing left to thin)
    disk_full: int = 0  # writes SQLite refused for a full disk
    reserve_released: int = 0  # times the reserve was given back to make room


class Outbox:
    def __init__(
        self,
        path: Path | str,
        *,
        budget_bytes: int | None = None,
        reserve_bytes: int | None = None,
        floor_bytes: int | None = None,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.budget_bytes = budget_bytes
        self.stats = OutboxStats()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = open_database(self.path)
        self._bytes = int(
            self._db.execute(f"SELECT COALESCE(SUM({_SIZE}), 0) FROM outbox").fetchone()[0]
        )
        self.room = DiskRoom(
            self.path.with_name(self.path.name + ".reserve"),
            reserve_bytes=reserve_bytes,
            floor_bytes=floor_bytes,
        )

    @property
    def reserve(self) -> Path:
        return self.room.reserve

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"outbox {self.path} is closed")
        return self._db

    @property
    def size_bytes(self) -> int:
        """What the stored messages count against the budget."""
        with self._lock:
            return self._bytes

    def put(
        self, topic: str, payload: bytes, qos: int = 1, *, stream: tuple[str, int] | None = None
    ) -> int:
        """Store one message durably; returns its row id (the send order). With `stream`
        (the event's boot and seq) it is kept until the cloud acknowledges it."""
        size = len(payload) + len(topic.encode()) + ROW_OVERHEAD
        boot, seq = stream if stream is not None else (None, None)
        with self._lock:
            db = self._conn()
            insert = (
                "INSERT INTO outbox (topic, payload, qos, created, boot, seq)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (topic, payload, qos, time.time(), boot, seq),
            )
            if self.room.tight and not self.room.may_grow(self._free_pages(db)):
                self.stats.disk_full += 1
                raise OutboxFull("the disk is full (the room left is kept for deletes)")
            try:
                cur = db.execute(*insert)
            except sqlite3.OperationalError as exc:
                if "full" not in str(exc):
                    raise
                # The disk (or the database's page limit) is full: make room, then try again.
                self.stats.disk_full += 1
                released = self.room.release()
                self.stats.reserve_released = self.room.released
                try:
                    # the WAL holds pages per change since its last checkpoint: moving them into
                    # the database and truncating it gives most of that space back; while the
                    # disk is tight, it is checkpointed every few pages
                    db.execute(f"PRAGMA wal_autocheckpoint={TIGHT_CHECKPOINT_PAGES}")
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.OperationalError as again:
                    log.error("outbox could not checkpoint on a full disk error=%r", str(again))
                try:
                    freed = self._thin(max(size * 64, self._bytes // 10))
                    if freed:
                        self._give_back(db)
                except sqlite3.OperationalError as again:
                    freed = 0
                    log.error("outbox could not thin on a full disk error=%r", str(again))
                log.error(
                    "outbox disk full error=%r reserve_released=%s thinned_bytes=%d",
                    str(exc),
                    released,
                    freed,
                )
                try:
                    cur = db.execute(*insert)
                except sqlite3.OperationalError as still:
                    raise OutboxFull(str(still)) from still
            assert cur.lastrowid is not None
            self._bytes += size
            if self.budget_bytes is not None and self._bytes > self.budget_bytes:
                self._thin(self._bytes - int(self.budget_bytes * LOW_WATER))
                if self._bytes > self.budget_bytes:
                    self.stats.over_budget += 1
                    if self.stats.over_budget == 1 or self.stats.over_budget % 1000 == 0:
                        log.warning(
                            "outbox over budget with no telemetry left to thin "
                            "size_bytes=%d budget_bytes=%d",
                            self._bytes,
                            self.budget_bytes,
                        )
            return cur.lastrowid

    def _thin(self, goal: int) -> int:
        """Drop the oldest telemetry until `goal` bytes are freed (lock held); returns freed."""
        db = self._conn()
        freed = 0
        while freed < goal:
            rows = db.execute(
                f"SELECT row, {_SIZE} FROM outbox WHERE {_TELEMETRY} ORDER BY row LIMIT 256"
            ).fetchall()
            if not rows:
                break
            take: list[tuple[int]] = []
            for row, size in rows:
                take.append((row,))
                freed += size
                if freed >= goal:
                    break
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM outbox WHERE row = ?", take)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite rolls back by itself on SQLITE_FULL
                    db.execute("ROLLBACK")
                raise
            self.stats.thinned_rows += len(take)
        self._bytes -= freed
        self.stats.thinned_bytes += freed
        if freed:
            log.warning(
                "outbox thinned telemetry oldest first thinned_bytes=%d size_bytes=%d",
                freed,
                self._bytes,
            )
        return freed

    @staticmethod
    def _free_pages(db: sqlite3.Connection) -> int:
        return int(db.execute("PRAGMA freelist_count").fetchone()[0])

    def _give_back(self, db: sqlite3.Connection) -> None:
        """Free pages back to the filesystem, the WAL checkpointed and truncated (lock held)."""
        try:
            db.execute("PRAGMA incremental_vacuum")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:
            log.warning("outbox could not give space back error=%r", str(exc))

    def _after_delete(self, db: sqlite3.Connection) -> None:
        """Rows were deleted: while the disk is tight, give their space back and try to make
        the reserve again (then the usual checkpoints)."""
        if not self.room.tight:
            return
        self._give_back(db)
        if self.room.make_reserve():
            db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")

    def pending(self, limit: int = 100, after: int = 0) -> list[Entry]:
        """Up to `limit` undelivered messages with row id > `after`, oldest first."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT row, topic, payload, qos, created, boot, seq FROM outbox WHERE row > ? "
                "ORDER BY row LIMIT ?",
                (after, limit),
            )
            return [Entry(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6]) for r in rows.fetchall()]

    def first_unacked(self, boot: str | None = None, after_seq: int = 0) -> int | None:
        """The row of the oldest message that waits for the cloud's acknowledgement (of one
        boot, past `after_seq`, if given); None if there is none."""
        with self._lock:
            if boot is None:
                found = (
                    self._conn()
                    .execute("SELECT row FROM outbox WHERE boot IS NOT NULL ORDER BY row LIMIT 1")
                    .fetchone()
                )
            else:
                found = (
                    self._conn()
                    .execute(
                        "SELECT MIN(row) FROM outbox WHERE boot = ? AND seq > ?", (boot, after_seq)
                    )
                    .fetchone()
                )
            return None if found is None or found[0] is None else int(found[0])

    def ack_stream(self, boot: str, upto: int) -> int:
        """The cloud committed every event of `boot` with seq ≤ `upto`: delete them; returns
        how many were deleted. In chunks of `DELETE_CHUNK` rows, each its own transaction: a
        day's backlog acknowledged at once must not need more room than a full disk has."""

        def delete(db: sqlite3.Connection) -> tuple[int, int]:
            rows = [
                r[0]
                for r in db.execute(
                    "SELECT row FROM outbox WHERE boot = ? AND seq <= ? ORDER BY row LIMIT ?",
                    (boot, upto, DELETE_CHUNK),
                )
            ]
            if not rows:
                return 0, 0
            marks = ",".join("?" * len(rows))
            size = db.execute(
                f"SELECT COALESCE(SUM({_SIZE}), 0) FROM outbox WHERE row IN ({marks})", rows
            ).fetchone()[0]
            db.execute(f"DELETE FROM outbox WHERE row IN ({marks})", rows)
            return int(size), len(rows)

        total = 0
        while deleted := self._delete(delete):
            total += deleted
        return total

    def ack_rows(self, rows: Iterable[int]) -> int:
        """Delete delivered messages by row (one transaction); returns how many were
        deleted. For what the broker's PUBACK completes (telemetry, replies) and for what can
        never be sent; never call it for an event the cloud has not acknowledged."""
        ids = [(row,) for row in rows]
        if not ids:
            return 0

        def delete(db: sqlite3.Connection) -> tuple[int, int]:
            freed = deleted = 0
            for (row,) in ids:
                size = db.execute(f"SELECT {_SIZE} FROM outbox WHERE row = ?", (row,)).fetchone()
                if size is not None:
                    db.execute("DELETE FROM outbox WHERE row = ?", (row,))
                    freed += size[0]
                    deleted += 1
            return freed, deleted

        return self._delete(delete)

    def _delete(self, delete: Callable[[sqlite3.Connection], tuple[int, int]]) -> int:
        """One deleting transaction; on a full disk, space is given back and it is tried once
        more. Returns how many rows went."""
        with self._lock:
            db = self._conn()
            for attempt in (1, 2):
                db.execute("BEGIN IMMEDIATE")
                try:
                    freed, deleted = delete(db)
                    db.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    if attempt == 2 or "full" not in str(exc):
                        raise
                    self._give_back(db)
                    continue
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                self._bytes -= freed
                if deleted:
                    self._after_delete(db)
                return deleted
            raise AssertionError("unreachable")

    def last_row(self) -> int:
        """The newest row id in the outbox (0 if empty)."""
        with self._lock:
            return int(
                self._conn().execute("SELECT COALESCE(MAX(row), 0) FROM outbox").fetchone()[0]
            )

    def count(self) -> int:
        with self._lock:
            return int(self._conn().execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def count_events(self) -> int:
        """Messages on event topics (alarms, calls, faults, …) not yet delivered."""
        with self._lock:
            return int(
                self._conn()
                .execute("SELECT COUNT(*) FROM outbox WHERE topic LIKE '%/event'")
                .fetchone()[0]
            )

    # -- meta: small state that must survive a restart -----------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> bool:
        """Set (or with None delete) a value, durably; False (logged) if the disk refused."""
        with self._lock:
            try:
                if value is None:
                    self._conn().execute("DELETE FROM meta WHERE key = ?", (key,))
                else:
                    self._conn().execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
                    )
            except sqlite3.OperationalError as exc:
                log.error("outbox meta not written key=%s error=%r", key, str(exc))
                return False
            return True

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
