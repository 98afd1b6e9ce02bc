"""How a database gets to the newest schema (cloud/db/schema.py has version 1), on SQLite and
on PostgreSQL.

Versions are kept in `schema_version`. Version 1 is the schema as it was when versions began
(2026-12): a SQLite database made before that (it has tables, no `schema_version`) gains the
columns and indexes added since it was made, then counts as version 1. A PostgreSQL database is
always made at version 1 or later. Each later change is a step in `MIGRATIONS`, run once, in
order, in the transaction that records it (PostgreSQL's DDL is transactional, as SQLite's).

How to write a step, so that one step serves both backends: `step(conn, dialect)`.
- DDL is written for SQLite and passed through `dialect.ddl(sql)`, which returns it unchanged
  on SQLite and translated on PostgreSQL (types, identity ids: cloud/db/dialect.py; it refuses
  what it cannot translate). `ALTER TABLE t ADD COLUMN c …` and `CREATE INDEX IF NOT EXISTS …`
  run on both; `dialect.columns(conn, table)` tells which columns a table has.
- Data changes are written in SQL both run (cloud/db/postgres.py lists the differences that
  matter; `INSERT … ON CONFLICT`, not `INSERT OR …`).
- Only where no such SQL exists, branch on `dialect.name` ("sqlite" or "postgresql"). SQLite
  cannot change a column's type in place: such a step rebuilds the table on SQLite
  (create new, copy, drop, rename) and may use `ALTER TABLE … ALTER COLUMN` on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloud.db.dialect import Dialect
from cloud.db.schema import version_1
from cloud.db.schema_duty import duty_tables


def _notification_sends(conn: Any, dialect: Dialect) -> None:
    """The vendor channels (issue 14): a send under way (never sent twice), the vendor's id of
    what was sent, and a call's result from the vendor's receipt."""
    have = dialect.columns(conn, "notifications")
    for name, declaration in (
        ("sending_since", "REAL"),
        ("vendor_ref", "TEXT"),
        ("call_result", "TEXT"),
    ):
        if name not in have:
            conn.execute(dialect.ddl(f"ALTER TABLE notifications ADD COLUMN {name} {declaration}"))
    conn.execute(
        "CREATE INDEX IF NOT EXISTS notifications_by_ref ON notifications (vendor_ref)"
        " WHERE vendor_ref IS NOT NULL"
    )


def _notification_leases(conn: Any, dialect: Dialect) -> None:
    """A notification taken for delivery is leased to the process sending it: two cloud
    processes on one database (a rolling restart, several workers) never send it both."""
    if "leased_until" not in dialect.columns(conn, "notifications"):
        conn.execute(dialect.ddl("ALTER TABLE notifications ADD COLUMN leased_until REAL"))


def _rabbit_hashes(conn: Any, dialect: Dialect) -> None:
    """A gateway credential's hash as RabbitMQ keeps it too (the cluster shape's accounts,
    cloud/access/rabbit_accounts.py); a credential issued before has none (issue it again)."""
    if "rabbit_hash" not in dialect.columns(conn, "gateway_credentials"):
        conn.execute(dialect.ddl("ALTER TABLE gateway_credentials ADD COLUMN rabbit_hash TEXT"))


#: Steps after version 1: (version, what it does, the step). Never edit a step that shipped.
def _batch_ids_by_time(conn: Any, dialect: Dialect) -> None:
    """Telemetry batch ids are forgotten after a while (cloud/ingest/batch_ids.py): by time."""
    conn.execute(
        "CREATE INDEX IF NOT EXISTS telemetry_batches_by_time ON telemetry_batches (received_at)"
    )


def _voice_calls(conn: Any, dialect: Dialect) -> None:
    """Voice calls in the database, shared by every cloud process (cloud/voice/calls_table.py)."""
    conn.execute(
        dialect.ddl(
            "CREATE TABLE IF NOT EXISTS voice_calls ("
            " id TEXT PRIMARY KEY, alarm_id INTEGER NOT NULL, gateway TEXT NOT NULL,"
            " device TEXT NOT NULL, status TEXT NOT NULL, sdp TEXT, offered_at REAL NOT NULL,"
            " answered_at REAL, answered_by TEXT, connected_at REAL, ended_at REAL,"
            " ended_by TEXT, reason TEXT NOT NULL DEFAULT '',"
            " prompt_played INTEGER NOT NULL DEFAULT 0, callback_by TEXT, offer_command TEXT)"
        )
    )
    for index in (
        "voice_calls_live ON voice_calls (gateway, status) WHERE ended_at IS NULL",
        "voice_calls_by_alarm ON voice_calls (alarm_id)",
        "voice_calls_by_offer ON voice_calls (offer_command)",
        "voice_calls_by_end ON voice_calls (ended_at)",
    ):
        conn.execute(f"CREATE INDEX IF NOT EXISTS {index}")


MIGRATIONS: list[tuple[int, str, Callable[[Any, Dialect], None]]] = [
    (2, "notifications: sending_since, vendor_ref, call_result", _notification_sends),
    (3, "duty rosters, shift handovers, daily check-in", duty_tables),
    (4, "notifications: leased_until", _notification_leases),
    (5, "gateway_credentials: rabbit_hash", _rabbit_hashes),
    (6, "telemetry_batches: by received_at", _batch_ids_by_time),
    (7, "voice_calls", _voice_calls),
]


def migrate(conn: Any, now: float, dialect: Dialect) -> int:
    """Bring the database to the newest version (the connection in autocommit mode; each step
    is its own transaction); returns the version it is at.

    Each step reads the version again inside its transaction, after `BEGIN IMMEDIATE` took the
    writer lock: two processes opening the same database at once run each step once."""
    steps: list[tuple[int, str, Callable[[Any, Dialect], None]]] = [
        (1, "the schema of 2026-12", version_1),
        *MIGRATIONS,
    ]
    version = 0
    for step_version, what, step in steps:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _version(conn, dialect)
            if step_version > version:
                step(conn, dialect)
                conn.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)", (step_version, now, what)
                )
                version = step_version
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return version


def _version(conn: Any, dialect: Dialect) -> int:
    conn.execute(
        dialect.ddl(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL, what TEXT NOT NULL)"
        )
    )
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row[0] is not None else 0
