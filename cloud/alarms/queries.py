"""Reading the alarm book: the duty room's open alarms, the supervisors' list, one alarm and
its log, a walk test's alarms and events. Read-only."""

from __future__ import annotations

from datetime import UTC, datetime

from cloud.alarms.groups import AlarmGroup, group_alarms
from cloud.alarms.model import OPEN_STATES, WORKED, Alarm, AlarmState, LogEntry, Mode, Outcome
from cloud.alarms.rows import get
from cloud.db.database import Database


class AlarmQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def active(self, limit: int | None = None) -> list[Alarm]:
        """The duty room's unresolved alarms, most severe first, then unaccepted before
        accepted, oldest first, then in the order stored (alarms one batch raised share their
        received_at; PostgreSQL, unlike SQLite, gives equal rows back in no set order) — at
        most `limit`. Tests and maintenance are not the duty room's; a drill's incidents are,
        each behind every real alarm (a real alarm jumps ahead of a drill). The open states
        are named (not `!= resolved`) so that the index on state finds the few open rows
        instead of a scan of the whole book."""
        sql = (
            f"SELECT * FROM alarms WHERE state IN ({OPEN_STATES}) AND mode IN (?, ?) ORDER BY"
            " (mode = ?) ASC, level ASC, (state = 'accepted') ASC, received_at ASC, id ASC"
        )
        params: tuple[object, ...] = (*(m.value for m in WORKED), Mode.DRILL.value)
        if limit is not None:  # no LIMIT at all: SQLite's "LIMIT -1" is an error on PostgreSQL
            sql, params = sql + " LIMIT ?", (*params, limit)
        rows = await self.db.fetch_all(sql, params)
        return [Alarm.from_row(r) for r in rows]

    async def unaccepted_by_level(self) -> dict[int, int]:
        """How many live alarms wait for an operator, per level (the metrics' gauge)."""
        rows = await self.db.fetch_all(
            "SELECT level, count(*) AS n FROM alarms WHERE state = ? AND mode = ? GROUP BY level",
            (AlarmState.ACTIVE.value, Mode.LIVE.value),
        )
        return {int(r["level"]): int(r["n"]) for r in rows}

    async def groups(self) -> list[AlarmGroup]:
        """The duty room's open alarms folded by building and category (cloud/alarms/groups.py),
        most severe group first."""
        return group_alarms(await self.active())

    async def awaiting_verification(self, since: float, limit: int = 100) -> list[Alarm]:
        """Live cases resolved by a person since `since` that no supervisor has verified yet,
        the most recently resolved first (督办: the supervisor's list). Cases the system
        closed itself (outcome cleared) are not there: nobody's work to check. A case has a
        resolved_at once resolved, and only then; the query reads the partial index
        alarms_unverified newest first and stops at `limit` (a term on `state` would make
        SQLite prefer the index on state, i.e. every resolved case)."""
        rows = await self.db.fetch_all(
            "SELECT * FROM alarms WHERE verified_at IS NULL AND resolved_at >= ?"
            " AND mode = ? AND outcome != ? ORDER BY resolved_at DESC, id DESC LIMIT ?",
            (since, Mode.LIVE.value, Outcome.CLEARED.value, limit),
        )
        return [Alarm.from_row(r) for r in rows]

    async def in_window(self, window_id: int) -> list[Alarm]:
        rows = await self.db.fetch_all(
            "SELECT * FROM alarms WHERE window_id = ? ORDER BY id", (window_id,)
        )
        return [Alarm.from_row(r) for r in rows]

    async def get(self, alarm_id: int) -> Alarm:
        return await self.db.read(lambda c: get(c, alarm_id))

    async def history(self, alarm_id: int) -> list[LogEntry]:
        rows = await self.db.fetch_all(
            "SELECT at, actor, action, detail FROM alarm_log WHERE alarm_id = ? ORDER BY id",
            (alarm_id,),
        )
        return [
            LogEntry(
                at=datetime.fromtimestamp(r["at"], UTC),
                actor=r["actor"],
                action=r["action"],
                detail=r["detail"],
            )
            for r in rows
        ]

    async def count_events(self) -> int:
        return int(await self.db.fetch_value("SELECT count(*) FROM events") or 0)

    async def events_of(self, gateway: str, since: float, until: float) -> list[dict[str, object]]:
        """Events of one gateway received in a time range (a walk test's report)."""
        rows = await self.db.fetch_all(
            'SELECT device, kind, type, ts, "values", received_at FROM events WHERE gateway = ?'
            " AND received_at >= ? AND received_at <= ? ORDER BY received_at, ts, boot, seq",
            (gateway, since, until),
        )
        return [dict(zip(r.keys(), r, strict=True)) for r in rows]
