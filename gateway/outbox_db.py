"""The outbox's SQLite file, opened to survive a power cut: WAL mode with `synchronous=FULL`,
freed pages given back to the filesystem (incremental auto-vacuum), a small WAL; its tables
(`outbox`, `meta`), and an outbox of an agent from before the cloud's acks brought up to date.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: WAL pages between checkpoints, normally (~800 KB).
CHECKPOINT_PAGES = 200


def open_database(path: Path) -> sqlite3.Connection:
    """The outbox at `path` (made when missing), one connection for every thread (the
    outbox's lock keeps them apart)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    # pages freed by deletes can go back to the filesystem (a new outbox only: the mode
    # of an existing file is kept)
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    # a small WAL (checkpoint every ~800 KB instead of ~4 MB): an SD card's space goes to
    # messages, not to pages written again and again
    db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    db.execute(
        """CREATE TABLE IF NOT EXISTS outbox (
            row INTEGER PRIMARY KEY AUTOINCREMENT,
            topic TEXT NOT NULL,
            payload BLOB NOT NULL,
            qos INTEGER NOT NULL,
            created REAL NOT NULL
        )"""
    )
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    if "boot" not in columns:  # an outbox of an agent from before the cloud's acks
        db.execute("ALTER TABLE outbox ADD COLUMN boot TEXT")
        db.execute("ALTER TABLE outbox ADD COLUMN seq INTEGER")
    db.execute(
        "CREATE INDEX IF NOT EXISTS outbox_stream ON outbox (boot, seq) WHERE boot IS NOT NULL"
    )
    return db
