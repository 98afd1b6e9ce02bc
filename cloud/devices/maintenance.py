"""Walk tests and maintenance windows: while one covers a device, what its alarms raise is
recorded as a test (the installer's view), never pushed to the duty room, never escalated.

A walk test is started by an installer on site for one gateway (all its devices, or the ones
named) and ends when they say so — or by itself after its time (at most four hours), so a
forgotten walk test cannot mute a building for good. A maintenance window is planned ahead
(start and end) by an admin or a supervisor. Every start and end is audited.

The gate (`mode_for`) is answered from memory on the message path; the table is the record.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import aiosqlite
from pydantic import BaseModel

from cloud.access.audit import Audit
from cloud.alarms.book import Mode

MAX_WALK_TEST_S = 4 * 3600
MAX_WINDOW_S = 7 * 86400


class WindowError(Exception):
    """An unknown window, or one that has already ended."""


class Window(BaseModel):
    id: int
    mode: Mode
    gateway: str
    devices: list[str]  # empty: every device of the gateway, and the gateway itself
    starts_at: datetime
    ends_at: datetime
    note: str
    created_by: str
    created_at: datetime
    ended_at: datetime | None
    ended_by: str | None

    def covers(self, gateway: str, device: str, at: float) -> bool:
        if gateway != self.gateway or self.ended_at is not None:
            return False
        if not self.starts_at.timestamp() <= at < self.ends_at.timestamp():
            return False
        return not self.devices or device in self.devices

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Window:
        data = dict(row)
        data["devices"] = json.loads(data["devices"])
        for key in ("starts_at", "ends_at", "created_at", "ended_at"):
            if data[key] is not None:
                data[key] = datetime.fromtimestamp(data[key], UTC)
        return cls.model_validate(data)


class Maintenance:
    def __init__(
        self,
        db: aiosqlite.Connection,
        lock: asyncio.Lock,
        audit: Audit,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.lock = lock
        self.audit = audit
        self.clock = clock
        self._open: dict[int, Window] = {}  # not yet ended (current or future)

    async def load(self) -> None:
        async with (
            self.lock,
            self.db.execute("SELECT * FROM maintenance WHERE ended_at IS NULL") as cursor,
        ):
            rows = await cursor.fetchall()
        self._open = {r["id"]: Window.from_row(r) for r in rows}

    # ---- the gate on the message path ------------------------------------------------------

    def mode_for(self, gateway: str, device: str, at: float) -> tuple[Mode, int | None]:
        """Whether an alarm of this device now is live or a test (and of which window)."""
        for window in self._open.values():
            if window.covers(gateway, device, at):
                return window.mode, window.id
        return Mode.LIVE, None

    @property
    def active(self) -> bool:
        return bool(self._open)

    # ---- starting and ending ----------------------------------------------------------------

    async def start_walk_test(
        self, gateway: str, devices: list[str], minutes: float, actor: str, note: str = ""
    ) -> Window:
        now = self.clock()
        seconds = min(max(minutes * 60, 60), MAX_WALK_TEST_S)
        return await self._create(Mode.WALK_TEST, gateway, devices, now, now + seconds, note, actor)

    async def schedule(
        self,
        gateway: str,
        devices: list[str],
        starts_at: float,
        ends_at: float,
        actor: str,
        note: str = "",
    ) -> Window:
        if ends_at <= starts_at:
            raise WindowError("a maintenance window must end after it starts")
        if ends_at - starts_at > MAX_WINDOW_S:
            raise WindowError("a maintenance window may last at most 7 days")
        if ends_at <= self.clock():
            raise WindowError("that window is already over")
        return await self._create(
            Mode.MAINTENANCE, gateway, devices, starts_at, ends_at, note, actor
        )

    async def _create(
        self,
        mode: Mode,
        gateway: str,
        devices: list[str],
        starts_at: float,
        ends_at: float,
        note: str,
        actor: str,
    ) -> Window:
        async with self.lock:
            cursor = await self.db.execute(
                "INSERT INTO maintenance (mode, gateway, devices, starts_at, ends_at, note,"
                " created_by, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    mode.value,
                    gateway,
                    json.dumps(sorted(set(devices))),
                    starts_at,
                    ends_at,
                    note,
                    actor,
                    self.clock(),
                ),
            )
            window_id = cursor.lastrowid
            assert window_id is not None
            what = ", ".join(sorted(set(devices))) or "all devices"
            await self.audit.add(
                actor,
                f"{mode.value}_started",
                f"#{window_id} gateway {gateway} ({what}) until "
                f"{datetime.fromtimestamp(ends_at, UTC).isoformat()}; {note}".strip("; "),
            )
            await self.db.commit()
            window = await self._get(window_id)
        self._open[window.id] = window
        return window

    async def end(self, window_id: int, actor: str) -> Window:
        async with self.lock:
            window = await self._get(window_id)
            if window.ended_at is not None:
                raise WindowError(f"window #{window_id} already ended")
            await self._end(window, actor, "ended")
            await self.db.commit()
            ended = await self._get(window_id)
        self._open.pop(window_id, None)
        return ended

    async def expire(self, now: float) -> list[Window]:
        """End the windows whose time is up; returns them (their test alarms are closed)."""
        due = [w for w in self._open.values() if w.ends_at.timestamp() <= now]
        if not due:
            return []
        ended: list[Window] = []
        async with self.lock:
            for window in due:
                await self._end(window, "system", "expired")
            await self.db.commit()
            for window in due:
                ended.append(await self._get(window.id))
        for window in due:
            self._open.pop(window.id, None)
        return ended

    async def _end(self, window: Window, actor: str, how: str) -> None:
        await self.db.execute(
            "UPDATE maintenance SET ended_at = ?, ended_by = ? WHERE id = ?",
            (self.clock(), actor, window.id),
        )
        await self.audit.add(
            actor, f"{window.mode.value}_{how}", f"#{window.id} gateway {window.gateway}"
        )

    # ---- reading ----------------------------------------------------------------------------

    async def get(self, window_id: int) -> Window:
        async with self.lock:
            return await self._get(window_id)

    async def windows(self, *, open_only: bool = False, mode: Mode | None = None) -> list[Window]:
        sql = "SELECT * FROM maintenance"
        clauses: list[str] = []
        args: list[object] = []
        if open_only:
            clauses.append("ended_at IS NULL")
        if mode is not None:
            clauses.append("mode = ?")
            args.append(mode.value)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id DESC LIMIT 200"
        async with self.lock, self.db.execute(sql, tuple(args)) as cursor:
            rows = await cursor.fetchall()
        return [Window.from_row(r) for r in rows]

    async def _get(self, window_id: int) -> Window:
        async with self.db.execute("SELECT * FROM maintenance WHERE id = ?", (window_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise WindowError(f"no window #{window_id}")
        return Window.from_row(row)
