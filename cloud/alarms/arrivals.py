"""What arrives at the alarm book to be stored once by its id — an event or a telemetry batch,
with the INSERT that stores it — and which of them the book has already (`known_ids`): only
the new ones are shown to the rules, and what the rules decide is stored in the same unit of
work as the id, so a redelivery is never evaluated twice."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from cloud.db.database import Conn
from contract.models import Event

#: The columns an arrival's row fills, per table (`id` first).
COLUMNS = {
    "events": (
        "id",
        "gateway",
        "device",
        "boot",
        "seq",
        "ts",
        "kind",
        "type",
        '"values"',
        "clock_synced",
        "replayed",
        "received_at",
    ),
    "telemetry_batches": ("id", "gateway", "readings", "received_at"),
}
#: Rows per INSERT (12 values each: well within SQLite's 32,766 and PostgreSQL's 65,535).
ROWS_PER_INSERT = 250


@dataclass(frozen=True, slots=True)
class Arrival:
    """A message to store once by its id (an event or a telemetry batch)."""

    table: str  # events or telemetry_batches
    id: str
    row: tuple[object, ...]  # the values of COLUMNS[table]
    at: float


def event_arrival(event: Event, received_at: float) -> Arrival:
    return Arrival(
        "events",
        event.id,
        (
            event.id,
            event.gateway,
            event.device,
            event.boot,
            event.seq,
            event.ts.timestamp(),
            event.kind.value,
            event.type.value,
            json.dumps(event.values.present()),
            int(event.clock_synced),
            int(event.replayed),
            received_at,
        ),
        received_at,
    )


def batch_arrival(
    batch_id: str,
    gateway: str,
    readings: int,
    at: float,
) -> Arrival:
    return Arrival("telemetry_batches", batch_id, (batch_id, gateway, readings, at), at)


def store_ids(conn: Conn, arrivals: Sequence[Arrival]) -> set[tuple[str, str]]:
    """Stores the arrivals, each unless its id is stored already; (table, id) of those that
    were new. A few statements for a whole batch, not one per message."""
    new: set[tuple[str, str]] = set()
    for table, columns in COLUMNS.items():
        rows = [a.row for a in arrivals if a.table == table]
        names = ", ".join(columns)
        one = "(" + ",".join("?" * len(columns)) + ")"
        for i in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[i : i + ROWS_PER_INSERT]
            values = ",".join([one] * len(chunk))
            sql = (
                f"INSERT INTO {table} ({names}) VALUES {values} ON CONFLICT DO NOTHING RETURNING id"
            )
            for row in conn.execute(sql, [value for r in chunk for value in r]):
                new.add((table, row[0]))
    return new


def known_ids(conn: Conn, arrivals: Sequence[Arrival]) -> set[tuple[str, str]]:
    """(table, id) of the arrivals that are stored already."""
    known: set[tuple[str, str]] = set()
    for table in ("events", "telemetry_batches"):
        ids = list({a.id for a in arrivals if a.table == table})
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk):
                known.add((table, row[0]))
    return known
