"""The alarm book: the system of record for events and alarms, with every alarm's timeline
and an audit log of every change (who, when, what).

Idempotent by construction: an event id is stored once (a redelivered message finds it and
makes nothing), and there is at most one open alarm per device and rule (repeats are counted
on it). An alarm is committed here before anyone is told about it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum

import aiosqlite
from pydantic import BaseModel

from cloud.registry import Registry
from cloud.rules import AlarmDraft
from contract.models import Event, Status

LEVEL_NAMES = {1: "I", 2: "II", 3: "III", 4: "IV"}


class AlarmState(StrEnum):
    ACTIVE = "active"  # raised, waiting for an operator
    ACCEPTED = "accepted"  # an operator took the case (受理)
    RESOLVED = "resolved"  # closed with an outcome (办结)


class Outcome(StrEnum):
    HANDLED = "handled"  # real case, dealt with
    FALSE_ALARM = "false_alarm"  # 误报
    TEST = "test"  # someone was testing


class AlarmError(Exception):
    """An action that the alarm's current state does not allow, or an unknown alarm."""


class Alarm(BaseModel):
    id: int
    rule: str
    level: int
    level_name: str
    kind: str
    gateway: str
    device: str
    model: str
    street_id: str
    community_id: str
    community: str
    grid_id: str
    grid: str
    building_id: str
    building: str
    home_id: str
    home: str
    title_zh: str
    title_en: str
    value: float | None
    first_event_id: str | None
    last_event_id: str | None
    repeats: int
    state: AlarmState
    device_ts: datetime
    received_at: datetime
    stored_at: datetime
    pushed_at: datetime | None
    shown_at: datetime | None
    accepted_at: datetime | None
    accepted_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: Outcome | None
    note: str | None

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Alarm:
        data = dict(row)
        data.pop("open_key", None)
        data["level_name"] = LEVEL_NAMES[data["level"]]
        for key in (
            "device_ts",
            "received_at",
            "stored_at",
            "pushed_at",
            "shown_at",
            "accepted_at",
            "resolved_at",
        ):
            if data[key] is not None:
                data[key] = datetime.fromtimestamp(data[key], UTC)
        return cls.model_validate(data)


class LogEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: str


class Raised(BaseModel):
    """One alarm touched by an incoming event: newly raised, or a repeat on an open one."""

    alarm: Alarm
    new: bool


SYSTEM = "system"


class AlarmBook:
    def __init__(
        self,
        db: aiosqlite.Connection,
        registry: Registry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.registry = registry
        self.clock = clock
        # One unit of work at a time on the shared connection (ingest and web both write).
        self.lock = asyncio.Lock()

    async def record_event(
        self, event: Event, received_at: float, drafts: Iterable[AlarmDraft]
    ) -> list[Raised] | None:
        """Store the event and the alarms it raises, in one transaction.

        Returns None if this event id was already stored (a redelivery: nothing happens).
        """
        async with self.lock:
            cursor = await self.db.execute(
                "INSERT OR IGNORE INTO events (id, gateway, device, boot, seq, ts, kind, type,"
                ' "values", clock_synced, replayed, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)',
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
            )
            if cursor.rowcount == 0:
                await self.db.commit()
                return None
            raised = [await self._raise(d, received_at) for d in drafts]
            await self.db.commit()
            return raised

    async def record_batch(self, batch_id: str, gateway: str, readings: int, at: float) -> bool:
        """Remember a telemetry batch id; False if it was seen before (a redelivery)."""
        async with self.lock:
            cursor = await self.db.execute(
                "INSERT OR IGNORE INTO telemetry_batches VALUES (?,?,?,?)",
                (batch_id, gateway, readings, at),
            )
            await self.db.commit()
            return cursor.rowcount == 1

    async def raise_drafts(self, drafts: Iterable[AlarmDraft], received_at: float) -> list[Raised]:
        """Alarms from telemetry readings (no event row of their own)."""
        async with self.lock:
            raised = [await self._raise(d, received_at) for d in drafts]
            await self.db.commit()
            return raised

    async def _raise(self, draft: AlarmDraft, received_at: float) -> Raised:
        open_key = f"{draft.gateway}/{draft.device}/{draft.rule}"
        row = await self._fetch_one("SELECT * FROM alarms WHERE open_key = ?", (open_key,))
        now = self.clock()
        if row is not None:
            alarm_id = row["id"]
            level = min(row["level"], draft.level)
            await self.db.execute(
                "UPDATE alarms SET repeats = repeats + 1, level = ?, value = COALESCE(?, value),"
                " last_event_id = COALESCE(?, last_event_id) WHERE id = ?",
                (level, draft.value, draft.event_id, alarm_id),
            )
            detail = f"level {LEVEL_NAMES[draft.level]}"
            if draft.value is not None:
                detail += f", value {draft.value}"
            if level < row["level"]:
                detail += f"; raised from level {LEVEL_NAMES[row['level']]}"
            await self._log(alarm_id, SYSTEM, "repeat", detail, now)
            updated = await self._fetch_one("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
            assert updated is not None
            return Raised(alarm=Alarm.from_row(updated), new=False)

        info = self.registry.device(draft.gateway, draft.device)
        place = info.place if info else self.registry.gateway_place(draft.gateway)
        if place is None:  # ingest checks the registry first; this is a programming error
            raise AlarmError(f"no place for {draft.gateway}/{draft.device}")
        cursor = await self.db.execute(
            "INSERT INTO alarms (rule, level, kind, gateway, device, model, street_id,"
            " community_id, community, grid_id, grid, building_id, building, home_id, home,"
            " title_zh, title_en, value, first_event_id, last_event_id, state, open_key,"
            " device_ts, received_at, stored_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                draft.rule,
                draft.level,
                draft.kind,
                draft.gateway,
                draft.device,
                info.model if info else "gateway",
                place.street_id,
                place.community_id,
                place.community,
                place.grid_id,
                place.grid,
                place.building_id,
                place.building,
                place.home_id,
                place.home,
                draft.title_zh,
                draft.title_en,
                draft.value,
                draft.event_id,
                draft.event_id,
                AlarmState.ACTIVE.value,
                open_key,
                draft.device_ts.timestamp(),
                received_at,
                now,
            ),
        )
        alarm_id = cursor.lastrowid
        assert alarm_id is not None
        await self._log(alarm_id, SYSTEM, "raised", f"level {LEVEL_NAMES[draft.level]}", now)
        row = await self._fetch_one("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
        assert row is not None
        return Raised(alarm=Alarm.from_row(row), new=True)

    async def mark_pushed(self, alarm_ids: Iterable[int], at: float) -> None:
        ids = list(alarm_ids)
        if not ids:
            return
        async with self.lock:
            await self.db.executemany(
                "UPDATE alarms SET pushed_at = ? WHERE id = ? AND pushed_at IS NULL",
                [(at, i) for i in ids],
            )
            await self.db.commit()

    async def mark_shown(self, alarm_id: int, actor: str) -> Alarm:
        """The operator's browser reports that it drew the alarm (the first time counts)."""
        async with self.lock:
            alarm = await self._get(alarm_id)
            if alarm.shown_at is None:
                now = self.clock()
                await self.db.execute(
                    "UPDATE alarms SET shown_at = ? WHERE id = ?", (now, alarm_id)
                )
                await self._log(alarm_id, actor, "shown", "", now)
                await self.db.commit()
                alarm = await self._get(alarm_id)
            return alarm

    async def accept(self, alarm_id: int, actor: str) -> Alarm:
        async with self.lock:
            alarm = await self._get(alarm_id)
            if alarm.state is not AlarmState.ACTIVE:
                raise AlarmError(f"alarm {alarm_id} is {alarm.state}, not waiting to be accepted")
            now = self.clock()
            await self.db.execute(
                "UPDATE alarms SET state = ?, accepted_at = ?, accepted_by = ?,"
                " shown_at = COALESCE(shown_at, ?) WHERE id = ?",
                (AlarmState.ACCEPTED.value, now, actor, now, alarm_id),
            )
            await self._log(alarm_id, actor, "accepted", "", now)
            await self.db.commit()
            return await self._get(alarm_id)

    async def resolve(self, alarm_id: int, actor: str, outcome: Outcome, note: str) -> Alarm:
        async with self.lock:
            alarm = await self._get(alarm_id)
            if alarm.state is AlarmState.RESOLVED:
                raise AlarmError(f"alarm {alarm_id} is already resolved")
            now = self.clock()
            accepted = alarm.accepted_at.timestamp() if alarm.accepted_at else now
            await self.db.execute(
                "UPDATE alarms SET state = ?, open_key = NULL, resolved_at = ?, resolved_by = ?,"
                " outcome = ?, note = ?, accepted_at = ?, accepted_by = COALESCE(accepted_by, ?)"
                " WHERE id = ?",
                (
                    AlarmState.RESOLVED.value,
                    now,
                    actor,
                    outcome.value,
                    note,
                    accepted,
                    actor,
                    alarm_id,
                ),
            )
            await self._log(alarm_id, actor, "resolved", f"{outcome.value}: {note}".strip(), now)
            await self.db.commit()
            return await self._get(alarm_id)

    async def note(self, alarm_id: int, actor: str, action: str, detail: str) -> None:
        """Add a line to an alarm's log (e.g. a command sent to the gateway)."""
        async with self.lock:
            await self._log(alarm_id, actor, action, detail, self.clock())
            await self.db.commit()

    async def active(self) -> list[Alarm]:
        """Unresolved alarms, most severe first, then unaccepted before accepted, oldest first."""
        async with self.lock:
            rows = await self._fetch_all(
                "SELECT * FROM alarms WHERE state != ? ORDER BY level ASC,"
                " (state = 'accepted') ASC, received_at ASC",
                (AlarmState.RESOLVED.value,),
            )
        return [Alarm.from_row(r) for r in rows]

    async def get(self, alarm_id: int) -> Alarm:
        async with self.lock:
            return await self._get(alarm_id)

    async def history(self, alarm_id: int) -> list[LogEntry]:
        async with self.lock:
            rows = await self._fetch_all(
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
        async with self.lock:
            row = await self._fetch_one("SELECT count(*) AS n FROM events", ())
        return int(row["n"]) if row else 0

    async def record_status(self, status: Status, at: float) -> str | None:
        """Track a gateway's online/offline state; returns the previous state if it changed."""
        async with self.lock:
            row = await self._fetch_one(
                "SELECT state FROM gateways WHERE id = ?", (status.gateway,)
            )
            previous = row["state"] if row else None
            if previous == status.state.value:
                await self.db.execute(
                    "UPDATE gateways SET last_seen = ?, boot = ? WHERE id = ?",
                    (at, status.boot, status.gateway),
                )
            else:
                await self.db.execute(
                    "INSERT OR REPLACE INTO gateways (id, state, boot, since, last_seen)"
                    " VALUES (?,?,?,?,?)",
                    (status.gateway, status.state.value, status.boot, at, at),
                )
            await self.db.commit()
            return previous if previous != status.state.value else None

    async def gateways(self) -> list[dict[str, object]]:
        async with self.lock:
            rows = await self._fetch_all("SELECT * FROM gateways ORDER BY id", ())
        return [
            {
                "id": r["id"],
                "state": r["state"],
                "boot": r["boot"],
                "since": datetime.fromtimestamp(r["since"], UTC),
                "last_seen": datetime.fromtimestamp(r["last_seen"], UTC),
            }
            for r in rows
        ]

    async def _get(self, alarm_id: int) -> Alarm:
        row = await self._fetch_one("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
        if row is None:
            raise AlarmError(f"no alarm {alarm_id}")
        return Alarm.from_row(row)

    async def _log(self, alarm_id: int, actor: str, action: str, detail: str, at: float) -> None:
        await self.db.execute(
            "INSERT INTO alarm_log (alarm_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
            (alarm_id, at, actor, action, detail),
        )

    async def _fetch_one(self, sql: str, args: tuple[object, ...]) -> aiosqlite.Row | None:
        async with self.db.execute(sql, args) as cursor:
            return await cursor.fetchone()

    async def _fetch_all(self, sql: str, args: tuple[object, ...]) -> list[aiosqlite.Row]:
        async with self.db.execute(sql, args) as cursor:
            return list(await cursor.fetchall())
