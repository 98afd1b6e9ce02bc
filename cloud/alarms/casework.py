"""The duty room's work on a case, each action one unit of work with its log line: shown,
accepted (受理), dispatched, feedback (情况反馈), resolved (办结; a false alarm with its cause)
and verified by a supervisor (督办落实). Refusals say why: `NotFound` for an unknown alarm,
`Conflict` when its state does not allow the action, `Refused` for a request that is wrong in
itself."""

from __future__ import annotations

from collections.abc import Iterable

from cloud.alarms.model import Alarm, AlarmState, FalseAlarmCause, Outcome
from cloud.alarms.rows import get, log
from cloud.alarms.timers import END_PLAN
from cloud.db.database import Conn, Database
from cloud.errors import Conflict, Refused


class Casework:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def mark_shown(self, alarm_id: int, actor: str) -> Alarm:
        """The operator's browser reports that it drew the alarm (the first time counts)."""
        now = self.db.clock()

        def shown(conn: Conn) -> Alarm:
            alarm = get(conn, alarm_id)
            if alarm.shown_at is not None:
                return alarm
            conn.execute("UPDATE alarms SET shown_at = ? WHERE id = ?", (now, alarm_id))
            log(conn, alarm_id, actor, "shown", "", now)
            return get(conn, alarm_id)

        return await self.db.write(shown)

    async def mark_shown_many(self, alarm_ids: Iterable[int], actor: str) -> list[int]:
        """`mark_shown` for many alarms in one transaction (a board opening on a thousand
        alarms reports them at once); returns the ids whose first showing this was."""
        ids = sorted(set(alarm_ids))
        if not ids:
            return []
        now = self.db.clock()

        def shown(conn: Conn) -> list[int]:
            first: list[int] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT id FROM alarms WHERE shown_at IS NULL AND id IN ({marks})", chunk
                )
                first.extend(r["id"] for r in rows)
            conn.executemany(
                "UPDATE alarms SET shown_at = ? WHERE id = ?", [(now, i) for i in first]
            )
            conn.executemany(
                "INSERT INTO alarm_log (alarm_id, at, actor, action, detail)"
                " VALUES (?,?,?,'shown','')",
                [(i, now, actor) for i in first],
            )
            return first

        return await self.db.write(shown)

    async def accept(self, alarm_id: int, actor: str) -> Alarm:
        now = self.db.clock()

        def accept(conn: Conn) -> Alarm:
            alarm = get(conn, alarm_id)
            if alarm.state is not AlarmState.ACTIVE:
                raise Conflict(f"alarm {alarm_id} is {alarm.state}, not waiting to be accepted")
            conn.execute(
                "UPDATE alarms SET state = ?, accepted_at = ?, accepted_by = ?,"
                f" shown_at = COALESCE(shown_at, ?), {END_PLAN} WHERE id = ?",
                (AlarmState.ACCEPTED.value, now, actor, now, alarm_id),
            )
            log(conn, alarm_id, actor, "accepted", "", now)
            return get(conn, alarm_id)

        return await self.db.write(accept)

    async def dispatch(self, alarm_id: int, actor: str, to: str, note: str) -> Alarm:
        """Send someone (grid worker, property company, 119/120) to an accepted case."""
        now = self.db.clock()

        def dispatch(conn: Conn) -> Alarm:
            alarm = get(conn, alarm_id)
            if alarm.state is not AlarmState.ACCEPTED:
                raise Conflict(f"alarm {alarm_id} is {alarm.state}; accept it before dispatching")
            sent_to = f"{alarm.dispatched_to}; {to}" if alarm.dispatched_to else to
            conn.execute(
                "UPDATE alarms SET dispatched_at = COALESCE(dispatched_at, ?),"
                " dispatched_by = COALESCE(dispatched_by, ?), dispatched_to = ? WHERE id = ?",
                (now, actor, sent_to[:500], alarm_id),
            )
            log(conn, alarm_id, actor, "dispatched", f"{to}: {note}".strip(": "), now)
            return get(conn, alarm_id)

        return await self.db.write(dispatch)

    async def feedback(self, alarm_id: int, actor: str, note: str) -> Alarm:
        """Record what happened, for the resident and the record (情况反馈)."""
        now = self.db.clock()

        def feedback(conn: Conn) -> Alarm:
            alarm = get(conn, alarm_id)
            if alarm.state is AlarmState.ACTIVE:
                raise Conflict(f"alarm {alarm_id} is not accepted yet; accept it first")
            conn.execute(
                "UPDATE alarms SET feedback_at = ?, feedback_by = ? WHERE id = ?",
                (now, actor, alarm_id),
            )
            log(conn, alarm_id, actor, "feedback", note, now)
            return get(conn, alarm_id)

        return await self.db.write(feedback)

    async def resolve(
        self,
        alarm_id: int,
        actor: str,
        outcome: Outcome,
        note: str,
        cause: FalseAlarmCause | None = None,
    ) -> Alarm:
        """Close an accepted case (办结; an unaccepted one is refused). A false alarm needs
        its cause (and "other" a note); a cause is refused with any other outcome."""
        if outcome is Outcome.FALSE_ALARM and cause is None:
            raise Refused("a false alarm needs its cause")
        if outcome is not Outcome.FALSE_ALARM and cause is not None:
            raise Refused(f"a cause is given only for a false alarm, not for {outcome.value}")
        if cause is FalseAlarmCause.OTHER and not note.strip():
            raise Refused("a false alarm of cause 'other' needs a note saying what it was")
        now = self.db.clock()

        def resolve(conn: Conn) -> Alarm:
            alarm = get(conn, alarm_id)
            if alarm.state is AlarmState.RESOLVED:
                raise Conflict(f"alarm {alarm_id} is already resolved")
            if alarm.state is AlarmState.ACTIVE:
                # closing a case nobody took on is never one click: accept it first, so the
                # ledger's accept time is a person's act, not the resolve time copied
                raise Conflict.said(
                    f"告警 {alarm_id} 尚未受理，不能办结：请先受理",
                    f"alarm {alarm_id} is not accepted yet: accept it before resolving it",
                )
            conn.execute(
                "UPDATE alarms SET state = ?, open_key = NULL, resolved_at = ?, resolved_by = ?,"
                f" outcome = ?, cause = ?, note = ?, {END_PLAN} WHERE id = ?",
                (
                    AlarmState.RESOLVED.value,
                    now,
                    actor,
                    outcome.value,
                    cause.value if cause else None,
                    note,
                    alarm_id,
                ),
            )
            what = f"{outcome.value} ({cause.value})" if cause else outcome.value
            log(conn, alarm_id, actor, "resolved", f"{what}: {note}".strip(": "), now)
            return get(conn, alarm_id)

        return await self.db.write(resolve)

    async def verify(self, alarm_id: int, actor: str, note: str) -> Alarm:
        """A supervisor confirms that a resolved case is really closed (督办落实). Never the
        one who resolved it (an administrator neither): a check of one's own work is none."""
        now = self.db.clock()

        def verify(conn: Conn) -> Alarm:
            alarm = get(conn, alarm_id)
            if alarm.state is not AlarmState.RESOLVED:
                raise Conflict(
                    f"alarm {alarm_id} is {alarm.state}; only a resolved case is verified"
                )
            if alarm.verified_at is not None:
                raise Conflict(f"alarm {alarm_id} was already verified by {alarm.verified_by}")
            if alarm.resolved_by == actor:
                raise Conflict(
                    f"alarm {alarm_id} was resolved by {actor}: another supervisor verifies it"
                )
            conn.execute(
                "UPDATE alarms SET verified_at = ?, verified_by = ? WHERE id = ?",
                (now, actor, alarm_id),
            )
            log(conn, alarm_id, actor, "verified", note, now)
            return get(conn, alarm_id)

        return await self.db.write(verify)
