"""The system of record's schema: the tables, indexes and columns of version 1 (`SCHEMA`, and the
columns an older SQLite file lacks); how a database gets to the newest version is
cloud/db/migrations.py."""

from __future__ import annotations

from typing import Any

from cloud.db.dialect import Dialect

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    type TEXT NOT NULL,
    "values" TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    replayed INTEGER NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_device ON events (gateway, device, received_at);
CREATE INDEX IF NOT EXISTS events_by_stream ON events (gateway, boot, seq);

CREATE TABLE IF NOT EXISTS telemetry_batches (
    id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    readings INTEGER NOT NULL,
    received_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    level INTEGER NOT NULL,
    kind TEXT NOT NULL,
    gateway TEXT NOT NULL,
    device TEXT NOT NULL,
    model TEXT NOT NULL,
    street_id TEXT NOT NULL,
    community_id TEXT NOT NULL,
    community TEXT NOT NULL,
    grid_id TEXT NOT NULL,
    grid TEXT NOT NULL,
    building_id TEXT NOT NULL,
    building TEXT NOT NULL,
    home_id TEXT NOT NULL,
    home TEXT NOT NULL,
    title_zh TEXT NOT NULL,
    title_en TEXT NOT NULL,
    value REAL,
    first_event_id TEXT,
    last_event_id TEXT,
    repeats INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    -- one open alarm per device and rule: NULL once resolved
    open_key TEXT UNIQUE,
    device_ts REAL NOT NULL,
    received_at REAL NOT NULL,
    stored_at REAL NOT NULL,
    pushed_at REAL,
    shown_at REAL,
    accepted_at REAL,
    accepted_by TEXT,
    resolved_at REAL,
    resolved_by TEXT,
    outcome TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS alarms_by_state ON alarms (state, level, received_at);
-- the ledger: cases by when they were received, newest first
CREATE INDEX IF NOT EXISTS alarms_by_received ON alarms (received_at);

CREATE TABLE IF NOT EXISTS alarm_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alarm_log_by_alarm ON alarm_log (alarm_id, at);

CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    -- alarm/step/target/person/channel: a step that is fired again makes no second row
    key TEXT NOT NULL UNIQUE,
    step INTEGER NOT NULL,
    reason TEXT NOT NULL,
    target TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    phone TEXT,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL,
    delivered_at REAL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS notifications_by_alarm ON notifications (alarm_id, id);

CREATE TABLE IF NOT EXISTS maintenance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mode TEXT NOT NULL,
    gateway TEXT NOT NULL,
    devices TEXT NOT NULL DEFAULT '[]',
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    ended_at REAL,
    ended_by TEXT
);
CREATE INDEX IF NOT EXISTS maintenance_open ON maintenance (ended_at, ends_at);

CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    payload BLOB NOT NULL
);

-- counts of refused messages by gateway (from the topic; '-' if none) and reason
CREATE TABLE IF NOT EXISTS reject_counts (
    gateway TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (gateway, reason)
);

-- end-to-end delivery (cloud/ingest/delivery.py): per gateway boot, every event seq up to `upto` is
-- committed (may lag the events table by a batch; the events table is the truth)
CREATE TABLE IF NOT EXISTS event_streams (
    gateway TEXT NOT NULL,
    boot TEXT NOT NULL,
    upto INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (gateway, boot)
);

CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    boot TEXT NOT NULL,
    since REAL NOT NULL,
    last_seen REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);

-- per-gateway broker credentials (cloud/access/credentials.py): the current one of each gateway;
-- only the hash the broker checks, never the password; history is in the audit
CREATE TABLE IF NOT EXISTS gateway_credentials (
    gateway TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    broker_hash TEXT NOT NULL,
    issued_at REAL NOT NULL,
    issued_by TEXT NOT NULL,
    revoked_at REAL,
    revoked_by TEXT
);

-- the site registry (cloud/site/store.py): every saved version of the whole site document
-- (JSON); the newest is in force. Version 1 is seeded from the site file on first start.
CREATE TABLE IF NOT EXISTS site_versions (
    version INTEGER PRIMARY KEY,
    saved_at REAL NOT NULL,
    saved_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    -- set when the version came from a file: its path and sha256 (seed or re-import)
    source_file TEXT,
    source_sha256 TEXT,
    document TEXT NOT NULL
);

-- a failed device replaced by a new unit, same id, home and history (cloud/site/edit.py)
CREATE TABLE IF NOT EXISTS device_replacements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway TEXT NOT NULL,
    device TEXT NOT NULL,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    old_serial TEXT,
    new_serial TEXT,
    note TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS device_replacements_by_device ON device_replacements (gateway, device);

-- one-time claim codes (cloud/access/claims.py): only a keyed hash of the code is kept
CREATE TABLE IF NOT EXISTS claim_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway TEXT NOT NULL,
    code_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    used_from TEXT,
    voided_at REAL
);
CREATE INDEX IF NOT EXISTS claim_codes_by_gateway ON claim_codes (gateway, used_at);

-- every refused claim code, with the client's address: the guess limits count these
CREATE TABLE IF NOT EXISTS claim_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    client TEXT NOT NULL,
    reason TEXT NOT NULL,
    gateway TEXT
);
CREATE INDEX IF NOT EXISTS claim_failures_by_time ON claim_failures (at);
CREATE INDEX IF NOT EXISTS claim_failures_by_client ON claim_failures (client, at);

-- sign-in attempts (cloud/access/users.py): recorded before the password is checked, removed
-- when it was right; the sign-in limits count these. Rows older than the window are deleted.
CREATE TABLE IF NOT EXISTS login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    client TEXT NOT NULL,
    name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_by_client ON login_failures (client, at);
CREATE INDEX IF NOT EXISTS login_failures_by_name ON login_failures (name, at);

-- signed-out sessions (cloud/access/users.py): a cookie with one of these ids is refused, a
-- copy too, until it would have expired anyway (forget_at: signed out + the session lifetime)
CREATE TABLE IF NOT EXISTS ended_sessions (
    session_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    ended_at REAL NOT NULL,
    forget_at REAL NOT NULL
);
"""


#: Columns added to `alarms` after the first version: name → declaration.
ALARM_COLUMNS = {
    # live (the duty room), walk_test or maintenance (recorded as tests, never pushed)
    "mode": "TEXT NOT NULL DEFAULT 'live'",
    "window_id": "INTEGER",
    "life_safety": "INTEGER NOT NULL DEFAULT 0",
    # building/category for grouping a storm on the board; NULL for life-safety alarms,
    # which are never folded into a group
    "group_key": "TEXT",
    "policy": "TEXT",
    "cleared_at": "REAL",
    "dispatched_at": "REAL",
    "dispatched_by": "TEXT",
    "dispatched_to": "TEXT",
    "feedback_at": "REAL",
    "feedback_by": "TEXT",
    "verified_at": "REAL",
    "verified_by": "TEXT",
    # escalation: the next step of the policy's plan and when it is due (NULL: nothing due)
    "notify_step": "INTEGER",
    "notify_due_at": "REAL",
    "escalations": "INTEGER NOT NULL DEFAULT 0",
    "escalated_at": "REAL",
    # the acceptance budget: received_at + the policy's budget_s, set when it is raised
    "accept_by": "REAL",
    # why a false alarm was one (误触, 设备故障, …): required with outcome false_alarm
    "cause": "TEXT",
}

#: Columns added to `users` after the first version (cloud/access/users.py): name → declaration.
USER_COLUMNS = {
    "disabled": "INTEGER NOT NULL DEFAULT 0",
    # random; in every session cookie; a new one ends the account's sessions
    "session_key": "TEXT NOT NULL DEFAULT ''",
    "created_by": "TEXT NOT NULL DEFAULT 'bootstrap'",
    "password_changed_at": "REAL",
    "sessions_ended_at": "REAL",
}


def _add_columns(conn: Any, dialect: Dialect) -> None:
    """Columns and indexes added by versions from before schema versions were kept (on
    PostgreSQL, where a database is made at version 1, this is how they get there)."""
    have = dialect.columns(conn, "alarms")
    for name, declaration in ALARM_COLUMNS.items():
        if name not in have:
            conn.execute(dialect.ddl(f"ALTER TABLE alarms ADD COLUMN {name} {declaration}"))
    conn.execute(
        "CREATE INDEX IF NOT EXISTS alarms_due ON alarms (notify_due_at) WHERE notify_due_at"
        " IS NOT NULL"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS alarms_by_window ON alarms (window_id)")
    # the supervisor's list (AlarmBook.awaiting_verification): resolved, not verified yet
    conn.execute(
        "CREATE INDEX IF NOT EXISTS alarms_unverified ON alarms (resolved_at)"
        " WHERE verified_at IS NULL AND resolved_at IS NOT NULL"
    )
    have = dialect.columns(conn, "users")
    for name, declaration in USER_COLUMNS.items():
        if name not in have:
            conn.execute(dialect.ddl(f"ALTER TABLE users ADD COLUMN {name} {declaration}"))
    if dialect.name == "sqlite":  # accounts from before session keys (none on PostgreSQL)
        conn.execute(
            "UPDATE users SET session_key = lower(hex(randomblob(16))) WHERE session_key = ''"
        )


def version_1(conn: Any, dialect: Dialect) -> None:
    """Every table and index of version 1 that is missing, and the columns an older database
    lacks (in the caller's transaction: `executescript` would commit it)."""
    sql = "\n".join(line for line in SCHEMA.splitlines() if not line.lstrip().startswith("--"))
    for statement in dialect.ddl(sql).split(";"):
        if statement.strip():
            conn.execute(statement)
    _add_columns(conn, dialect)
