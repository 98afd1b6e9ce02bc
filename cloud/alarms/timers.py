"""An alarm's escalation timer: two columns of its own row, the next step of its policy's
plan (`notify_step`) and when it is due (`notify_due_at`). Recording sets them when the alarm
is raised (step 0, due at once); accepting, resolving or a device's clear ends the plan — but
never before step 0 (telling the policy's first people that the alarm happened) has fired: an
alarm accepted within milliseconds of being raised still sends step 0, and nothing after it.
The escalator reads the due ones and moves them on, in the unit of work that makes the step's
notifications."""

from __future__ import annotations

from dataclasses import dataclass

from cloud.alarms.model import Alarm, AlarmState, Mode
from cloud.db.database import Conn, Database

#: The SQL that ends an alarm's plan in an UPDATE's SET list: a pending step 0 stays due.
END_PLAN = "notify_due_at = CASE WHEN notify_step = 0 THEN notify_due_at END"


@dataclass(frozen=True, slots=True)
class Due:
    alarm: Alarm
    step: int
    due_at: float


class EscalationTimers:
    def __init__(self, db: Database) -> None:
        self.db = db

    def due(self, conn: Conn, now: float, limit: int = 500) -> list[Due]:
        """Within the caller's unit of work: live alarms whose next step is due (any step of an
        active alarm, step 0 of any), the most overdue first. Read under the writer's lock, in
        the unit that fires them, so a step is fired once even by two processes on one
        database (the second finds it moved) and never a later step for an alarm accepted a
        moment before."""
        rows = conn.execute(
            "SELECT * FROM alarms WHERE notify_due_at IS NOT NULL AND notify_due_at <= ?"
            " AND (state = ? OR notify_step = 0) AND mode = ? ORDER BY notify_due_at, id LIMIT ?",
            (now, AlarmState.ACTIVE.value, Mode.LIVE.value, limit),
        ).fetchall()
        return [Due(Alarm.from_row(r), r["notify_step"], r["notify_due_at"]) for r in rows]

    def move(
        self,
        conn: Conn,
        alarm_id: int,
        *,
        step: int,
        due_at: float | None,
        policy: str,
        escalated_at: float | None,
    ) -> None:
        """Within the caller's unit of work: the next step and when it is due (None: the plan
        is done); an escalation counted and its first time kept."""
        conn.execute(
            "UPDATE alarms SET notify_step = ?, notify_due_at = ?, policy = ?,"
            " escalations = escalations + ?, escalated_at = COALESCE(escalated_at, ?)"
            " WHERE id = ?",
            (step, due_at, policy, int(escalated_at is not None), escalated_at, alarm_id),
        )

    def stop(self, conn: Conn, alarm_id: int) -> None:
        conn.execute("UPDATE alarms SET notify_due_at = NULL WHERE id = ?", (alarm_id,))

    async def next_due(self) -> float | None:
        value = await self.db.fetch_value(
            "SELECT min(notify_due_at) FROM alarms WHERE notify_due_at IS NOT NULL"
            " AND (state = ? OR notify_step = 0)",
            (AlarmState.ACTIVE.value,),
        )
        return None if value is None else float(value)
