"""The alarm book's rows, within a unit of work: one alarm by id, a line of its log."""

from __future__ import annotations

from cloud.alarms.model import Alarm
from cloud.db.database import Conn
from cloud.errors import NotFound


def get(conn: Conn, alarm_id: int) -> Alarm:
    row = conn.execute("SELECT * FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
    if row is None:
        raise NotFound(f"no alarm {alarm_id}")
    return Alarm.from_row(row)


def log(conn: Conn, alarm_id: int, actor: str, action: str, detail: str, at: float) -> None:
    conn.execute(
        "INSERT INTO alarm_log (alarm_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
        (alarm_id, at, actor, action, detail),
    )


def mark_pushed(conn: Conn, alarm_ids: list[int], at: float) -> None:
    """The first live push of these alarms went out (the first time counts)."""
    conn.executemany(
        "UPDATE alarms SET pushed_at = ? WHERE id = ? AND pushed_at IS NULL",
        [(at, i) for i in alarm_ids],
    )
