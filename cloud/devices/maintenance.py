"""Walk tests and maintenance windows: while one covers a device, what its alarms raise is
recorded as a test (the installer's view), never pushed to the duty room, never escalated —
except a life-safety alarm (a call for help, smoke, gas, methane at level I): a real emergency
during a walk test still reaches the duty room, so those are never muted (and their clears
stay live too). An installer tests those devices with their test button (event type `test`),
which raises no alarm.

A walk test is started by an installer on site for one gateway (all its devices, or the ones
named) and ends when they say so — or by itself after its time (at most four hours), so a
forgotten walk test cannot mute a building for good. A maintenance window is planned ahead
(start and end) by an admin or a supervisor. Every start and end is audited.

An emergency drill (应急演练) is a window of mode `drill`, planned by a supervisor or an admin
for the devices its scripted incidents come from. It changes nothing by itself: only an event
that carries the drill's number (`Event.drill`, put there by the drill's injection) is a
drill's, and its alarms are recorded with mode `drill` — worked on the duty room's board
behind every real alarm, never escalated to anyone, closed when the drill ends
(docs/drills.md). An event without the number from the same device during the drill, or
with the number of a drill that is not running or does not cover the device, is real
(`drill_gate`): a drill never hides a real alarm.

The gate (`mode_for`) is answered from memory on the message path; the table is the record.
Every change this process makes is told to `on_change` (cloud/peers.py tells the other
processes on the same PostgreSQL, which `load` the table again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from cloud.access.audit import Audit
from cloud.alarms.model import Mode
from cloud.db.database import Conn, Database, Row
from cloud.errors import Conflict, NotFound, Refused
from cloud.rules import AlarmDraft, Clear, Decision, Evaluation
from cloud.times import from_epoch

MAX_WALK_TEST_S = 4 * 3600

#: The modes a supervisor or an admin plans ahead (a walk test is started on site instead).
Planned = Literal[Mode.MAINTENANCE, Mode.DRILL]


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """How long a planned mode may last, and the name its refusals give it."""

    name: str  # "drill": "a drill must end after it starts", "that drill is already over"
    name_zh: str
    longest_s: int

    @property
    def longest(self) -> str:
        days, rest = divmod(self.longest_s, 86400)
        return f"{days} days" if days and not rest else f"{self.longest_s // 3600} hours"

    @property
    def longest_zh(self) -> str:
        days, rest = divmod(self.longest_s, 86400)
        return f"{days} 天" if days and not rest else f"{self.longest_s // 3600} 小时"


PLANNED: dict[Planned, Limits] = {
    Mode.MAINTENANCE: Limits("maintenance window", "维护窗口", 7 * 86400),
    Mode.DRILL: Limits("drill", "演练", 4 * 3600),
}


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
    def from_row(cls, row: Row) -> Window:
        data = dict(zip(row.keys(), row, strict=True))
        data["devices"] = json.loads(data["devices"])
        for key in ("starts_at", "ends_at", "created_at", "ended_at"):
            if data[key] is not None:
                data[key] = from_epoch(data[key])
        return cls.model_validate(data)


class Maintenance:
    def __init__(self, db: Database, audit: Audit) -> None:
        self.db = db
        self.audit = audit
        self._open: dict[int, Window] = {}  # not yet ended (current or future)
        #: told after every start or end this process made
        self.on_change: list[Callable[[], None]] = []
        # a change's write and its step in `_open` are one step for `load`, which would
        # otherwise put back what it read before a change of ours committed
        self._changing = asyncio.Lock()

    async def load(self) -> None:
        """The windows not yet ended, read again from the table (at start, and when another
        process changed them)."""
        async with self._changing:
            rows = await self.db.fetch_all("SELECT * FROM maintenance WHERE ended_at IS NULL")
            self._open = {r["id"]: Window.from_row(r) for r in rows}

    def _changed(self) -> None:
        for tell in self.on_change:
            tell()

    # ---- the gate on the message path ------------------------------------------------------

    def mode_for(self, gateway: str, device: str, at: float) -> tuple[Mode, int | None]:
        """Whether an alarm of this device now is live or a test (and of which window). A drill
        makes nothing a test: only events that carry its number are its (`drill_gate`)."""
        for window in self._open.values():
            if window.mode is not Mode.DRILL and window.covers(gateway, device, at):
                return window.mode, window.id
        return Mode.LIVE, None

    @property
    def active(self) -> bool:
        return bool(self._open)

    def gate(self, evaluation: Evaluation, at: float) -> Evaluation:
        """The rules' decisions, with those about devices under a walk test or in a
        maintenance window made tests (of that window) — but never a life-safety alarm. A
        clear there ends both what the window's tests opened and a live alarm of the same
        condition (raised before the window began, or let through during it): each applies
        to whichever is open, so nothing needs remembering across a restart."""
        if not self._open:
            return evaluation
        gated: list[Decision] = []
        for decision in evaluation.decisions:
            if isinstance(decision, AlarmDraft) and decision.life_safety:
                gated.append(decision)
                continue
            mode, window = self.mode_for(decision.gateway, decision.device, at)
            if mode is not Mode.LIVE:
                if isinstance(decision, Clear):
                    gated.append(decision)
                decision = dataclasses.replace(decision, mode=mode.value, window=window)
            gated.append(decision)
        return Evaluation(gated, evaluation.inhibited, evaluation.muted)

    def drill_gate(self, evaluation: Evaluation, drill: int, at: float) -> tuple[Evaluation, str]:
        """The decisions about an event that carries drill number `drill`: the drill's (mode
        `drill`) if that drill runs now and covers the device, else left as they are (real);
        with why, for the log."""
        window = self._open.get(drill)
        decisions = []
        why = ""
        for decision in evaluation.decisions:
            if window is None or window.mode is not Mode.DRILL:
                why = f"drill #{drill} is not running: handled as real"
            elif not window.covers(decision.gateway, decision.device, at):
                why = f"drill #{drill} does not cover {decision.gateway}/{decision.device} now"
            else:
                decision = dataclasses.replace(decision, mode=Mode.DRILL.value, window=drill)
            decisions.append(decision)
        return Evaluation(decisions, evaluation.inhibited, evaluation.muted), why

    # ---- starting and ending ----------------------------------------------------------------

    async def start_walk_test(
        self, gateway: str, devices: list[str], minutes: float, actor: str, note: str = ""
    ) -> Window:
        now = self.db.clock()
        seconds = min(max(minutes * 60, 60), MAX_WALK_TEST_S)
        return await self._create(Mode.WALK_TEST, gateway, devices, now, now + seconds, note, actor)

    async def schedule(
        self,
        mode: Planned,
        gateway: str,
        devices: list[str],
        starts_at: float,
        ends_at: float,
        actor: str,
        note: str = "",
    ) -> Window:
        """A maintenance window or an emergency drill planned ahead, for these devices of a
        gateway (all of them if none are named), within its mode's limits (`PLANNED`)."""
        plan = PLANNED[mode]
        if ends_at <= starts_at:
            raise Refused.said(
                f"{plan.name_zh}的结束时间须晚于开始时间", f"a {plan.name} must end after it starts"
            )
        if ends_at - starts_at > plan.longest_s:
            raise Refused.said(
                f"{plan.name_zh}最长 {plan.longest_zh}",
                f"a {plan.name} may last at most {plan.longest}",
            )
        if ends_at <= self.db.clock():
            raise Refused.said(f"该{plan.name_zh}已经结束", f"that {plan.name} is already over")
        return await self._create(mode, gateway, devices, starts_at, ends_at, note, actor)

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
        now = self.db.clock()
        names = sorted(set(devices))

        def create(conn: Conn) -> Window:
            cursor = conn.execute(
                "INSERT INTO maintenance (mode, gateway, devices, starts_at, ends_at, note,"
                " created_by, created_at) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                (mode.value, gateway, json.dumps(names), starts_at, ends_at, note, actor, now),
            )
            window_id = int(cursor.fetchone()[0])
            what = ", ".join(names) or "all devices"
            self.audit.add(
                conn,
                actor,
                f"{mode.value}_started",
                f"#{window_id} gateway {gateway} ({what}) until "
                f"{from_epoch(ends_at).isoformat()}; {note}".strip("; "),
                now,
            )
            return _get(conn, window_id)

        async with self._changing:
            window = await self.db.write(create)
            self._open[window.id] = window
        self._changed()
        return window

    async def end(self, window_id: int, actor: str) -> Window:
        now = self.db.clock()

        def end(conn: Conn) -> Window:
            window = _get(conn, window_id)
            if window.ended_at is not None or not self._end(conn, window, actor, "ended", now):
                raise Conflict.said(f"#{window_id} 已经结束", f"window #{window_id} already ended")
            return _get(conn, window_id)

        async with self._changing:
            ended = await self.db.write(end)
            self._open.pop(window_id, None)
        self._changed()
        return ended

    async def expire(self, now: float) -> list[Window]:
        """End the windows whose time is up; returns those this call ended (their test alarms
        are closed) — not one another process sharing the database ended first."""
        due = [w for w in self._open.values() if w.ends_at.timestamp() <= now]
        if not due:
            return []

        def expire(conn: Conn) -> list[Window]:
            ended = [w for w in due if self._end(conn, w, "system", "expired", now)]
            return [_get(conn, window.id) for window in ended]

        async with self._changing:
            ended = await self.db.write(expire)
            for window in due:
                self._open.pop(window.id, None)
        if ended:
            self._changed()
        return ended

    def _end(self, conn: Conn, window: Window, actor: str, how: str, now: float) -> bool:
        """End a window not yet ended, with its audit entry; False if it was already."""
        ended = conn.execute(
            "UPDATE maintenance SET ended_at = ?, ended_by = ? WHERE id = ? AND ended_at IS NULL",
            (now, actor, window.id),
        ).rowcount
        if ended:
            self.audit.add(
                conn,
                actor,
                f"{window.mode.value}_{how}",
                f"#{window.id} gateway {window.gateway}",
                now,
            )
        return bool(ended)

    # ---- reading ----------------------------------------------------------------------------

    async def get(self, window_id: int) -> Window:
        return await self.db.read(lambda c: _get(c, window_id))

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
        rows = await self.db.fetch_all(sql, tuple(args))
        return [Window.from_row(r) for r in rows]


def _get(conn: Conn, window_id: int) -> Window:
    row = conn.execute("SELECT * FROM maintenance WHERE id = ?", (window_id,)).fetchone()
    if row is None:
        raise NotFound(f"no window #{window_id}")
    return Window.from_row(row)
