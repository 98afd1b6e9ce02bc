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


@dataclass(frozen=True, slots=True)
class Arrival:
    """A message to store once by its id (an event or a telemetry batch)."""

    table: str  # events or telemetry_batches
    id: str
    sql: str
    params: tuple[object, ...]
    at: float


def event_arrival(event: Event, received_at: float) -> Arrival:
    return Arrival(
        "events",
        event.id,
        "INSERT INTO events (id, gateway, device, boot, seq, ts, kind, type,"
        ' "values", clock_synced, replayed, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)'
        " ON CONFLICT DO NOTHING",
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
    return Arrival(
        "telemetry_batches",
        batch_id,
        "INSERT INTO telemetry_batches (id, gateway, readings, received_at) VALUES (?,?,?,?)"
        " ON CONFLICT DO NOTHING",
        (batch_id, gateway, readings, at),
        at,
    )


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
