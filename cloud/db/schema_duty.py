"""Schema step 3 (cloud/db/migrations.py, MIGRATIONS): the tables of the duty desk (cloud/duty/) —
the roster, shift handovers, the daily check-in. Written for SQLite, translated by the dialect."""

from __future__ import annotations

from typing import Any

from cloud.db.dialect import Dialect

#: Duty rosters, shift handovers and the daily check-in (issue 14; cloud/duty/).
DUTY_SCHEMA = """
CREATE TABLE IF NOT EXISTS roster_people (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    phone TEXT NOT NULL,
    -- the person's account in the web app (a grid worker's phone page), if they have one
    account TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL
);
-- the weekly pattern: day_key mon..sun or holiday
CREATE TABLE IF NOT EXISTS roster_weekly (
    day_key TEXT NOT NULL,
    shift TEXT NOT NULL,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    person_id INTEGER NOT NULL REFERENCES roster_people (id),
    updated_at REAL NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (day_key, shift, role, scope)
);
CREATE TABLE IF NOT EXISTS roster_holidays (
    on_day TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL
);
-- one date's swap or cover of one slot (replaces_id: who held it before)
CREATE TABLE IF NOT EXISTS roster_changes (
    on_day TEXT NOT NULL,
    shift TEXT NOT NULL,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    person_id INTEGER NOT NULL REFERENCES roster_people (id),
    replaces_id INTEGER REFERENCES roster_people (id),
    kind TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (on_day, shift, role, scope)
);
-- shift handovers: the summary (JSON) made by the outgoing operator, acknowledged by the incoming
CREATE TABLE IF NOT EXISTS handovers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    on_day TEXT NOT NULL,
    shift TEXT NOT NULL,
    made_at REAL NOT NULL,
    made_by TEXT NOT NULL,
    incoming_expected TEXT,
    summary TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    acknowledged_at REAL,
    acknowledged_by TEXT,
    ack_note TEXT
);
CREATE INDEX IF NOT EXISTS handovers_by_time ON handovers (made_at);
-- a grid worker took a case on their phone page (cloud/duty/field.py)
CREATE TABLE IF NOT EXISTS field_tasks (
    alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    account TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    PRIMARY KEY (alarm_id, account)
);
-- photos a grid worker sent with their feedback
CREATE TABLE IF NOT EXISTS field_photos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    account TEXT NOT NULL,
    at REAL NOT NULL,
    mime TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS field_photos_by_alarm ON field_photos (alarm_id);
-- the daily check-in (平安报): homes enrolled, with the local time a check-in is due by
CREATE TABLE IF NOT EXISTS checkin_homes (
    home_id TEXT PRIMARY KEY,
    due_by TEXT NOT NULL,
    enrolled_at REAL NOT NULL,
    enrolled_by TEXT NOT NULL
);
-- per home and local date: when it checked in, or the visit task raised when it did not
CREATE TABLE IF NOT EXISTS checkin_days (
    home_id TEXT NOT NULL,
    on_day TEXT NOT NULL,
    checked_in_at REAL,
    missed_at REAL,
    alarm_id INTEGER REFERENCES alarms (id),
    PRIMARY KEY (home_id, on_day)
)
"""


def duty_tables(conn: Any, dialect: Dialect) -> None:
    """Duty rosters, shift handovers, the daily check-in (issue 14)."""
    sql = "\n".join(line for line in DUTY_SCHEMA.splitlines() if not line.lstrip().startswith("--"))
    for statement in dialect.ddl(sql).split(";"):
        if statement.strip():
            conn.execute(statement)
