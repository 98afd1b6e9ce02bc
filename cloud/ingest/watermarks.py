"""Where each gateway's event stream stands, in the database (`event_streams`): read when a
stream is first met after a start, written with every group commit. Functions for the
database thread (`Database.read` / the commit's `extra`)."""

from __future__ import annotations

from cloud.db.database import Conn
from cloud.ingest.delivery import StreamKey


def read_streams(conn: Conn, keys: set[StreamKey]) -> dict[StreamKey, tuple[int, list[int]]]:
    """(upto, seqs stored past it) of each stream."""
    out: dict[StreamKey, tuple[int, list[int]]] = {}
    for gateway, boot in keys:
        row = conn.execute(
            "SELECT upto FROM event_streams WHERE gateway = ? AND boot = ?", (gateway, boot)
        ).fetchone()
        upto = int(row[0]) if row is not None else 0
        above = [
            int(r[0])
            for r in conn.execute(
                "SELECT seq FROM events WHERE gateway = ? AND boot = ? AND seq > ? ORDER BY seq"
                " LIMIT 100000",
                (gateway, boot, upto),
            )
        ]
        out[(gateway, boot)] = (upto, above)
    return out


def write_watermarks(conn: Conn, marks: list[tuple[str, str, int]], at: float) -> None:
    """Raise each stream's `upto` (never lower it: a slower writer cannot undo a faster)."""
    if marks:
        conn.executemany(
            "INSERT INTO event_streams (gateway, boot, upto, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (gateway, boot) DO UPDATE SET upto = CASE WHEN excluded.upto >"
            " event_streams.upto THEN excluded.upto ELSE event_streams.upto END,"
            " updated_at = excluded.updated_at",
            [(gw, boot, upto, at) for gw, boot, upto in marks],
        )
