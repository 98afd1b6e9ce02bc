"""The notification log (`notifications`): one row per person and channel per step of an
alarm's plan, under a unique key, from pending to delivered, retried, failed, skipped or
cancelled. The escalator makes and delivers the rows; the live announcement of a new alarm
records the duty room's first notification here (`announced`). Nobody else writes the table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cloud.db.database import Conn, Database, Row


@dataclass(frozen=True, slots=True)
class Planned:
    """A notification to make (pending), or to note as skipped (`skipped` says why)."""

    alarm_id: int
    key: str
    step: int
    reason: str
    target: str
    name: str
    phone: str | None
    channel: str
    skipped: str = ""


def duty_room_key(alarm_id: int) -> str:
    """The key of the duty room's live push of step 0 (the alarm appearing on the board)."""
    return f"{alarm_id}/0/duty_room/-/push"


class NotificationLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, conn: Conn, planned: Planned, now: float) -> None:
        """Within the caller's unit of work: a row made once (its key is unique)."""
        status = "skipped" if planned.skipped else "pending"
        conn.execute(
            "INSERT INTO notifications (alarm_id, key, step, reason, target, name,"
            " phone, channel, status, created_at, next_attempt_at, detail)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (key) DO NOTHING",
            (
                planned.alarm_id,
                planned.key,
                planned.step,
                planned.reason,
                planned.target,
                planned.name,
                planned.phone,
                planned.channel,
                status,
                now,
                None if planned.skipped else now,
                planned.skipped,
            ),
        )

    def announced(self, conn: Conn, alarm_ids: Iterable[int], at: float, pages: int) -> None:
        """The live push of new alarms went out to `pages` open duty-room pages: the duty
        room's notification of step 0, delivered (or failed: no page open; the next page that
        opens shows it)."""
        status, detail = (
            ("delivered", f"{pages} page(s) open")
            if pages
            else ("failed", "no duty-room page open; shown on the next page that opens")
        )
        conn.executemany(
            "INSERT INTO notifications (alarm_id, key, step, reason, target, name, channel,"
            " status, attempts, created_at, delivered_at, detail)"
            " VALUES (?,?,0,'notify','duty_room','','push',?,1,?,?,?)"
            " ON CONFLICT (key) DO UPDATE SET status = excluded.status,"
            " delivered_at = excluded.delivered_at, detail = excluded.detail,"
            " next_attempt_at = NULL",
            [(i, duty_room_key(i), status, at, at if pages else None, detail) for i in alarm_ids],
        )

    def claim(self, conn: Conn, now: float, lease_s: float, limit: int = 1000) -> list[Row]:
        """Within the caller's unit of work (under the writer's lock): the pending rows due now
        that no process holds, leased to the caller for `lease_s` — another process on the
        database does not see them until the lease runs out (the holder died mid-send: then
        a `once_only` row falls back rather than go out twice). The rows as they were."""
        rows = conn.execute(
            "SELECT * FROM notifications WHERE status = 'pending' AND next_attempt_at <= ?"
            " AND (leased_until IS NULL OR leased_until <= ?) ORDER BY id LIMIT ?",
            (now, now, limit),
        ).fetchall()
        if rows:
            conn.executemany(
                "UPDATE notifications SET leased_until = ? WHERE id = ?",
                [(now + lease_s, r["id"]) for r in rows],
            )
        return rows

    def release_all(self, conn: Conn) -> int:
        """Every lease given up: for a process that knows it is the only one on its database
        (SQLite), at start, so what it was sending when it stopped goes on at once."""
        cursor = conn.execute(
            "UPDATE notifications SET leased_until = NULL WHERE leased_until IS NOT NULL"
        )
        return int(cursor.rowcount)

    def finish(
        self, conn: Conn, row_id: int, status: str, detail: str, now: float, *, ref: str = ""
    ) -> None:
        tried = status in ("delivered", "failed")
        conn.execute(
            "UPDATE notifications SET status = ?, attempts = attempts + ?, delivered_at = ?,"
            " next_attempt_at = NULL, detail = ?, sending_since = NULL, leased_until = NULL,"
            " vendor_ref = ? WHERE id = ?",
            (
                status,
                int(tried),
                now if status == "delivered" else None,
                detail[:500],
                ref or None,
                row_id,
            ),
        )

    async def sending(self, row_id: int, now: float) -> None:
        """Before a `once_only` channel's request goes out: if the cloud stops before the
        answer is recorded, the row says a send may have happened (never sent twice)."""
        await self.db.execute(
            "UPDATE notifications SET sending_since = ? WHERE id = ?", (now, row_id)
        )

    async def retry(self, row_id: int, at: float, detail: str) -> None:
        await self.db.execute(
            "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = ?, detail = ?,"
            " sending_since = NULL, leased_until = NULL WHERE id = ?",
            (at, detail[:500], row_id),
        )

    async def channels_of(self, alarm_id: int, prefix: str) -> set[str]:
        """The channels with a row for one person in one step (keys `prefix/channel`)."""
        rows = await self.db.fetch_all(
            "SELECT key, channel FROM notifications WHERE alarm_id = ?", (alarm_id,)
        )
        return {r["channel"] for r in rows if r["key"].rsplit("/", 1)[0] == prefix}

    async def call_result(self, *, key: str | None, ref: str | None) -> Row | None:
        """The delivered row a vendor's receipt names (by our key, or by the vendor's id)."""
        if key:
            return await self.db.fetch_one("SELECT * FROM notifications WHERE key = ?", (key,))
        return await self.db.fetch_one("SELECT * FROM notifications WHERE vendor_ref = ?", (ref,))

    def record_result(self, conn: Conn, row_id: int, result: str) -> None:
        conn.execute("UPDATE notifications SET call_result = ? WHERE id = ?", (result, row_id))

    async def by_channel_and_status(self) -> dict[tuple[str, str], int]:
        """Notifications per (channel, status) since the start of the record (the metrics)."""
        rows = await self.db.fetch_all(
            "SELECT channel, status, count(*) AS n FROM notifications GROUP BY channel, status"
        )
        return {(r["channel"], r["status"]): int(r["n"]) for r in rows}

    async def next_attempt_due(self) -> float | None:
        value = await self.db.fetch_value(
            "SELECT min(CASE WHEN leased_until > next_attempt_at THEN leased_until"
            " ELSE next_attempt_at END) FROM notifications WHERE status = 'pending'"
        )
        return None if value is None else float(value)

    async def of_alarm(self, alarm_id: int) -> list[dict[str, object]]:
        rows = await self.db.fetch_all(
            "SELECT key, step, reason, target, name, channel, status, attempts, created_at,"
            " delivered_at, detail, vendor_ref, call_result FROM notifications"
            " WHERE alarm_id = ? ORDER BY id",
            (alarm_id,),
        )
        return [dict(zip(r.keys(), r, strict=True)) for r in rows]
