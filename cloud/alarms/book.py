"""The alarm book: the system of record for events and alarms, with every alarm's timeline
and an audit log of every change (who, when, what).

Idempotent by construction: an event id (or a telemetry batch id) is stored once, and the
rules are asked about it only when it is new, in the same transaction that stores what they
decide — a redelivered message finds its id and makes nothing. There is at most one open
alarm per device and rule (a unique `open_key`; repeats are counted on it). An alarm is
committed here before anyone is told about it.

The timeline follows the brief's "四个第一": at the device, received, stored, pushed, shown
to an operator, accepted, dispatched, (feedback), resolved, verified by a supervisor; the
cloud adds cleared (the condition ended) and escalated (the acceptance budget ran out).

Alarms from devices under a walk test or a maintenance window are recorded with that mode;
they are never on the duty-room board, never pushed and never escalated.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import aiosqlite
from pydantic import BaseModel, Field

from cloud.db.database import run_on_db_thread
from cloud.rules import AlarmDraft, Clear, Decision, Evaluation, Key
from cloud.site.registry import Registry
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
    CLEARED = "cleared"  # closed by the system: the condition ended before anyone accepted


class FalseAlarmCause(StrEnum):
    """Why a false alarm was one: required when a case is closed as a false alarm, so the
    false-alarm rate can be followed per cause, device model and building."""

    MISTOUCH = "mistouch"  # 误触: pressed by mistake
    DEVICE_FAULT = "device_fault"  # 设备故障
    COOKING = "cooking"  # 烹饪油烟: cooking fumes or steam
    UNANNOUNCED_TEST = "unannounced_test"  # 测试未报备: a test nobody announced
    OTHER = "other"  # 其他: the note says what


class Mode(StrEnum):
    LIVE = "live"  # the duty room's
    WALK_TEST = "walk_test"  # an installer is testing the devices
    MAINTENANCE = "maintenance"  # a planned window of work on the devices


class AlarmError(Exception):
    """An action that the alarm's current state does not allow, or an unknown alarm."""


_TIMES = (
    "device_ts",
    "received_at",
    "stored_at",
    "pushed_at",
    "shown_at",
    "accepted_at",
    "dispatched_at",
    "feedback_at",
    "resolved_at",
    "verified_at",
    "cleared_at",
    "escalated_at",
    "notify_due_at",
    "accept_by",
)


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
    mode: Mode = Mode.LIVE
    window_id: int | None = None
    life_safety: bool = False
    group_key: str | None = None
    policy: str | None = None
    device_ts: datetime
    received_at: datetime
    stored_at: datetime
    pushed_at: datetime | None
    shown_at: datetime | None
    accepted_at: datetime | None
    accepted_by: str | None
    dispatched_at: datetime | None = None
    dispatched_by: str | None = None
    dispatched_to: str | None = None
    feedback_at: datetime | None = None
    feedback_by: str | None = None
    resolved_at: datetime | None
    resolved_by: str | None
    verified_at: datetime | None = None
    verified_by: str | None = None
    cleared_at: datetime | None = None
    escalations: int = 0
    escalated_at: datetime | None = None
    notify_step: int | None = None
    notify_due_at: datetime | None = None
    accept_by: datetime | None = Field(
        None,
        description="The acceptance budget: received_at + its policy's budget_s (None for"
        " tests, maintenance, and alarms the cloud has no budget for)",
    )
    outcome: Outcome | None
    cause: FalseAlarmCause | None = None
    note: str | None

    @classmethod
    def from_row(cls, row: aiosqlite.Row | sqlite3.Row) -> Alarm:
        data = dict(row)
        data.pop("open_key", None)
        data["level_name"] = LEVEL_NAMES[data["level"]]
        data["life_safety"] = bool(data.get("life_safety"))
        for key in _TIMES:
            if data.get(key) is not None:
                data[key] = datetime.fromtimestamp(data[key], UTC)
        return cls.model_validate(data)


class LogEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: str


class Raised(BaseModel):
    """One alarm touched by a decision: newly raised, a repeat, or cleared."""

    alarm: Alarm
    new: bool
    change: str = "raised"  # raised, repeat, cleared (closed), noted (a latched alarm's clear)


SYSTEM = "system"
#: The states of an open case, as SQL literals (a literal list lets SQLite use an index).
_OPEN_STATES = f"'{AlarmState.ACTIVE.value}', '{AlarmState.ACCEPTED.value}'"

Decide = Callable[[], Evaluation]


def open_key(gateway: str, device: str, rule: str, mode: str, window: int | None) -> str:
    base = f"{gateway}/{device}/{rule}"
    return base if mode == Mode.LIVE else f"{mode}:{window}:{base}"


class AlarmBook:
    def __init__(
        self,
        db: aiosqlite.Connection,
        registry: Registry,
        *,
        clock: Callable[[], float] = time.time,
        budget_for: Callable[[str, int], float | None] | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.clock = clock
        #: (rule, level) → the acceptance budget in seconds of the policy in force
        self.budget_for = budget_for
        # One unit of work at a time on the shared connection (ingest, web, escalation).
        self.lock = asyncio.Lock()

    # ---- recording what arrives -----------------------------------------------------------
    #
    # The hot path costs two round trips to the database thread per *batch* of messages, not
    # several per message: one to learn which ids are already stored, then (after the rules,
    # on the event loop, decided about the new ones) one synchronous function that stores
    # every message with what was decided about it and commits once (`_store_sync`).

    async def record_event(
        self,
        event: Event,
        received_at: float,
        decide: Decide | Iterable[Decision],
    ) -> list[Raised] | None:
        """Store the event and what the rules decide about it, in one transaction. The rules
        are asked only if the event is new. Returns None for a redelivery (nothing happens)."""
        return _unwrap(await self.record_many([event_arrival(event, received_at, decide)]))

    async def record_batch(
        self,
        batch_id: str,
        gateway: str,
        readings: int,
        at: float,
        decide: Decide | Iterable[Decision] = (),
    ) -> list[Raised] | None:
        """Remember a telemetry batch id and store what the rules decide about its readings,
        in one transaction; None if the batch was seen before (a redelivery)."""
        return _unwrap(
            await self.record_many([batch_arrival(batch_id, gateway, readings, at, decide)])
        )

    async def record_many(
        self,
        arrivals: Sequence[Arrival],
        *,
        extra: Callable[[sqlite3.Connection], None] | None = None,
    ) -> list[list[Raised] | Exception | None]:
        """Group commit: store many messages in order, in ONE transaction with ONE commit.

        For each arrival, in order: None if its id was stored before (or earlier in this
        batch) — the rules are not asked; else the rules decide and what they decide is
        stored with the id. One that fails (the rules or the storing raise) gets its exception
        back instead and leaves nothing behind (a savepoint is rolled back), without spoiling
        the others. `extra` writes more in the same transaction (on the database thread:
        ingest's rejections and delivery watermarks). If the commit itself (or `extra`)
        fails, nothing is stored and the error is raised."""
        if not arrivals and extra is None:
            return []
        async with self.lock:
            known = (
                await run_on_db_thread(self.db, lambda c: _known_ids(c, arrivals))
                if arrivals
                else set()
            )
            plans: list[tuple[Arrival, Evaluation] | Exception | None] = []
            seen: set[tuple[str, str]] = set()
            for arrival in arrivals:
                key = (arrival.table, arrival.id)
                if key in known or key in seen:
                    plans.append(None)
                    continue
                try:
                    evaluation = _evaluate(arrival.decide)
                except Exception as exc:  # not stored: the message is reported, not lost quietly
                    plans.append(exc)
                    continue
                seen.add(key)
                plans.append((arrival, evaluation))
            if extra is None and all(p is None or isinstance(p, Exception) for p in plans):
                return list(plans)  # type: ignore[arg-type]
            return await run_on_db_thread(self.db, lambda c: self._store_sync(c, plans, extra))

    async def apply(self, decide: Decide | Iterable[Decision], at: float) -> list[Raised]:
        """Decisions with no message of their own (ticks, gateway status)."""
        async with self.lock:
            evaluation = _evaluate(decide)
            if not evaluation.decisions and not evaluation.inhibited:
                return []
            return await run_on_db_thread(self.db, lambda c: self._apply_commit(c, evaluation, at))

    async def raise_drafts(self, drafts: Iterable[AlarmDraft], received_at: float) -> list[Raised]:
        return await self.apply(list(drafts), received_at)

    # ---- on the database thread (synchronous; the caller holds `lock`) ---------------------

    def _store_sync(
        self,
        conn: sqlite3.Connection,
        plans: Sequence[tuple[Arrival, Evaluation] | Exception | None],
        extra: Callable[[sqlite3.Connection], None] | None = None,
    ) -> list[list[Raised] | Exception | None]:
        out: list[list[Raised] | Exception | None] = []
        if not conn.in_transaction:
            conn.execute("BEGIN")
        try:
            if extra is not None:
                extra(conn)
            for plan in plans:
                if plan is None or isinstance(plan, Exception):
                    out.append(plan)
                    continue
                arrival, evaluation = plan
                conn.execute("SAVEPOINT arrival")
                try:
                    cursor = conn.execute(arrival.sql, arrival.params)
                    raised = (
                        self._apply_sync(conn, evaluation, arrival.at) if cursor.rowcount else None
                    )
                except Exception as exc:  # this message only: the others go on
                    conn.execute("ROLLBACK TO arrival")
                    conn.execute("RELEASE arrival")
                    out.append(exc)
                    continue
                conn.execute("RELEASE arrival")
                out.append(raised)
            conn.commit()
        except BaseException:
            conn.rollback()  # nothing of the batch is stored: it is not acknowledged either
            raise
        return out

    def _apply_commit(
        self, conn: sqlite3.Connection, evaluation: Evaluation, at: float
    ) -> list[Raised]:
        try:
            raised = self._apply_sync(conn, evaluation, at)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return raised

    def _apply_sync(
        self, conn: sqlite3.Connection, evaluation: Evaluation, received_at: float
    ) -> list[Raised]:
        out: list[Raised] = []
        for decision in evaluation.decisions:
            if isinstance(decision, Clear):
                cleared = self._clear_sync(conn, decision)
                if cleared is not None:
                    out.append(cleared)
            else:
                out.append(self._raise_sync(conn, decision, received_at))
        for source, muted in evaluation.inhibited:
            self._note_inhibited_sync(conn, source, muted)
        return out

    def _raise_sync(
        self, conn: sqlite3.Connection, draft: AlarmDraft, received_at: float
    ) -> Raised:
        key = open_key(draft.gateway, draft.device, draft.rule, draft.mode, draft.window)
        row = conn.execute("SELECT * FROM alarms WHERE open_key = ?", (key,)).fetchone()
        now = self.clock()
        if row is not None:
            alarm_id = row["id"]
            level = min(row["level"], draft.level)
            latched = bool(row["life_safety"]) or draft.life_safety
            accept_by = row["accept_by"]
            if level < row["level"] and row["mode"] == Mode.LIVE:
                # more severe now: the budget of the new level, if that is shorter
                tighter = self._accept_by(draft.rule, level, row["received_at"])
                if tighter is not None:
                    accept_by = tighter if accept_by is None else min(accept_by, tighter)
            conn.execute(
                "UPDATE alarms SET repeats = repeats + 1, level = ?, value = COALESCE(?, value),"
                " last_event_id = COALESCE(?, last_event_id), life_safety = ?,"
                " group_key = CASE WHEN ? THEN NULL ELSE group_key END, cleared_at = NULL,"
                " accept_by = ? WHERE id = ?",
                (
                    level,
                    draft.value,
                    draft.event_id,
                    int(latched),
                    int(latched),
                    accept_by,
                    alarm_id,
                ),
            )
            # Every repeated event is logged; a reading that stays beyond a bound is counted,
            # and logged only when it makes the alarm more severe.
            if draft.event_id is not None or level < row["level"]:
                detail = f"level {LEVEL_NAMES[draft.level]}"
                if draft.value is not None:
                    detail += f", value {draft.value}"
                if level < row["level"]:
                    detail += f"; raised from level {LEVEL_NAMES[row['level']]}"
                if latched and not row["life_safety"]:
                    detail += "; life safety now: latched, an operator closes it"
                _log_sync(conn, alarm_id, SYSTEM, "repeat", detail, now)
            return Raised(alarm=_alarm_sync(conn, alarm_id), new=False, change="repeat")

        info = self.registry.device(draft.gateway, draft.device)
        place = info.place if info else self.registry.gateway_place(draft.gateway)
        if place is None:  # ingest checks the registry first; this is a programming error
            raise AlarmError(f"no place for {draft.gateway}/{draft.device}")
        live = draft.mode == Mode.LIVE
        group_key = (
            None if draft.life_safety else f"{place.building_id}/{draft.group or draft.kind}"
        )
        cursor = conn.execute(
            "INSERT INTO alarms (rule, level, kind, gateway, device, model, street_id,"
            " community_id, community, grid_id, grid, building_id, building, home_id, home,"
            " title_zh, title_en, value, first_event_id, last_event_id, state, open_key,"
            " device_ts, received_at, stored_at, mode, window_id, life_safety, group_key,"
            " notify_step, notify_due_at, accept_by)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                key,
                draft.device_ts.timestamp(),
                received_at,
                now,
                draft.mode,
                draft.window,
                int(draft.life_safety),
                group_key,
                # the escalator runs step 0 (the first notifications) at once
                0 if live else None,
                now if live else None,
                self._accept_by(draft.rule, draft.level, received_at) if live else None,
            ),
        )
        alarm_id = cursor.lastrowid
        assert alarm_id is not None
        detail = f"level {LEVEL_NAMES[draft.level]}"
        if not live:
            detail += (
                f"; {draft.mode} #{draft.window}: recorded as a test, not sent to the duty room"
            )
        _log_sync(conn, alarm_id, SYSTEM, "raised", detail, now)
        return Raised(alarm=_alarm_sync(conn, alarm_id), new=True)

    def _accept_by(self, rule: str, level: int, received_at: float) -> float | None:
        budget = self.budget_for(rule, level) if self.budget_for is not None else None
        return None if budget is None else received_at + budget

    async def use_budgets(self, budget_for: Callable[[str, int], float | None]) -> int:
        """Take acceptance budgets from the policies in force from now on, and give one to
        every open live alarm that has none yet (stored by a version without budgets);
        returns how many were given one. A budget once set stays: a restart or a reload of
        the rules does not move it."""
        self.budget_for = budget_for
        async with self.lock:
            rows = await self._fetch_all(
                "SELECT id, rule, level, received_at FROM alarms WHERE accept_by IS NULL"
                " AND state != ? AND mode = ?",
                (AlarmState.RESOLVED.value, Mode.LIVE.value),
            )
            filled = [
                (at, r["id"])
                for r in rows
                if (at := self._accept_by(r["rule"], r["level"], r["received_at"])) is not None
            ]
            if filled:
                await self.db.executemany("UPDATE alarms SET accept_by = ? WHERE id = ?", filled)
                await self.db.commit()
        return len(filled)

    def _clear_sync(self, conn: sqlite3.Connection, clear: Clear) -> Raised | None:
        key = open_key(clear.gateway, clear.device, clear.rule, clear.mode, clear.window)
        row = conn.execute("SELECT * FROM alarms WHERE open_key = ?", (key,)).fetchone()
        if row is None:
            return None
        now = self.clock()
        alarm_id = row["id"]
        if row["life_safety"]:
            # latched: the device clearing never closes the case
            conn.execute(
                "UPDATE alarms SET cleared_at = COALESCE(cleared_at, ?) WHERE id = ?",
                (now, alarm_id),
            )
            _log_sync(
                conn,
                alarm_id,
                SYSTEM,
                "device_cleared",
                f"{clear.reason}; latched: an operator closes it",
                now,
            )
            change = "noted"
        elif row["state"] == AlarmState.ACTIVE:
            conn.execute(
                "UPDATE alarms SET state = ?, open_key = NULL, resolved_at = ?, resolved_by = ?,"
                " outcome = ?, note = ?, cleared_at = ?, notify_due_at = NULL WHERE id = ?",
                (
                    AlarmState.RESOLVED.value,
                    now,
                    SYSTEM,
                    Outcome.CLEARED.value,
                    clear.reason,
                    now,
                    alarm_id,
                ),
            )
            _log_sync(conn, alarm_id, SYSTEM, "cleared", clear.reason, now)
            change = "cleared"
        else:
            # accepted: the operator working on it closes it
            conn.execute(
                "UPDATE alarms SET cleared_at = COALESCE(cleared_at, ?) WHERE id = ?",
                (now, alarm_id),
            )
            _log_sync(
                conn,
                alarm_id,
                SYSTEM,
                "device_cleared",
                f"{clear.reason}; accepted: the operator closes it",
                now,
            )
            change = "noted"
        return Raised(alarm=_alarm_sync(conn, alarm_id), new=False, change=change)

    def _note_inhibited_sync(
        self, conn: sqlite3.Connection, source: Key, muted: AlarmDraft
    ) -> None:
        row = conn.execute(
            "SELECT id FROM alarms WHERE open_key = ?", (open_key(*source, Mode.LIVE, None),)
        ).fetchone()
        if row is not None:
            _log_sync(
                conn,
                row["id"],
                SYSTEM,
                "inhibited",
                f"{muted.rule} of {muted.gateway}/{muted.device} muted while this is open",
                self.clock(),
            )

    async def open_keys(self) -> list[Key]:
        """(gateway, device, rule) of every open alarm, for the rules core after a restart."""
        async with self.lock:
            rows = await self._fetch_all(
                "SELECT gateway, device, rule FROM alarms WHERE open_key IS NOT NULL", ()
            )
        return [(r["gateway"], r["device"], r["rule"]) for r in rows]

    async def close_window(self, window_id: int, actor: str) -> list[Alarm]:
        """A walk test or maintenance window ended: its open test alarms close as tests."""
        async with self.lock:
            rows = await self._fetch_all(
                "SELECT id FROM alarms WHERE window_id = ? AND open_key IS NOT NULL", (window_id,)
            )
            now = self.clock()
            for row in rows:
                await self.db.execute(
                    "UPDATE alarms SET state = ?, open_key = NULL, resolved_at = ?,"
                    " resolved_by = ?, outcome = ? WHERE id = ?",
                    (AlarmState.RESOLVED.value, now, actor, Outcome.TEST.value, row["id"]),
                )
                await self.add_log(
                    row["id"], actor, "resolved", f"test: window #{window_id} ended", now
                )
            await self.db.commit()
            return [await self._get(r["id"]) for r in rows]

    async def mark_pushed(self, alarm_ids: Iterable[int], at: float, pages: int = 0) -> None:
        """The first live push went out (to `pages` open duty-room pages): on the timeline and
        in the notification log, as the duty room's delivery of step 0."""
        ids = list(alarm_ids)
        if not ids:
            return
        status, detail = (
            ("delivered", f"{pages} page(s) open")
            if pages
            else (
                "failed",
                "no duty-room page open; shown on the next page that opens",
            )
        )
        async with self.lock:
            await self.db.executemany(
                "UPDATE alarms SET pushed_at = ? WHERE id = ? AND pushed_at IS NULL",
                [(at, i) for i in ids],
            )
            await self.db.executemany(
                "INSERT OR IGNORE INTO notifications (alarm_id, key, step, reason, target, name,"
                " channel, status, attempts, created_at, delivered_at, detail)"
                " VALUES (?,?,0,'notify','duty_room','',?,?,1,?,?,?)",
                [
                    (
                        i,
                        f"{i}/0/duty_room/-/push",
                        "push",
                        status,
                        at,
                        at if pages else None,
                        detail,
                    )
                    for i in ids
                ],
            )
            await self.db.commit()

    # ---- the operator's actions -----------------------------------------------------------

    async def mark_shown(self, alarm_id: int, actor: str) -> Alarm:
        """The operator's browser reports that it drew the alarm (the first time counts)."""
        async with self.lock:
            alarm = await self._get(alarm_id)
            if alarm.shown_at is None:
                now = self.clock()
                await self.db.execute(
                    "UPDATE alarms SET shown_at = ? WHERE id = ?", (now, alarm_id)
                )
                await self.add_log(alarm_id, actor, "shown", "", now)
                await self.db.commit()
                alarm = await self._get(alarm_id)
            return alarm

    async def mark_shown_many(self, alarm_ids: Iterable[int], actor: str) -> list[int]:
        """`mark_shown` for many alarms in one transaction (a board opening on a thousand
        alarms reports them at once); returns the ids whose first showing this was."""
        ids = sorted(set(alarm_ids))
        if not ids:
            return []
        async with self.lock:
            first: list[int] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = await self._fetch_all(
                    f"SELECT id FROM alarms WHERE shown_at IS NULL AND id IN ({marks})",
                    tuple(chunk),
                )
                first.extend(r["id"] for r in rows)
            if first:
                now = self.clock()
                await self.db.executemany(
                    "UPDATE alarms SET shown_at = ? WHERE id = ?", [(now, i) for i in first]
                )
                await self.db.executemany(
                    "INSERT INTO alarm_log (alarm_id, at, actor, action, detail)"
                    " VALUES (?,?,?,'shown','')",
                    [(i, now, actor) for i in first],
                )
                await self.db.commit()
            return first

    async def accept(self, alarm_id: int, actor: str) -> Alarm:
        async with self.lock:
            alarm = await self._get(alarm_id)
            if alarm.state is not AlarmState.ACTIVE:
                raise AlarmError(f"alarm {alarm_id} is {alarm.state}, not waiting to be accepted")
            now = self.clock()
            await self.db.execute(
                "UPDATE alarms SET state = ?, accepted_at = ?, accepted_by = ?,"
                " shown_at = COALESCE(shown_at, ?), notify_due_at = NULL WHERE id = ?",
                (AlarmState.ACCEPTED.value, now, actor, now, alarm_id),
            )
            await self.add_log(alarm_id, actor, "accepted", "", now)
            await self.db.commit()
            return await self._get(alarm_id)

    async def dispatch(self, alarm_id: int, actor: str, to: str, note: str) -> Alarm:
        """Send someone (grid worker, property company, 119/120) to an accepted case."""
        async with self.lock:
            alarm = await self._get(alarm_id)
            if alarm.state is not AlarmState.ACCEPTED:
                raise AlarmError(f"alarm {alarm_id} is {alarm.state}; accept it before dispatching")
            now = self.clock()
            sent_to = f"{alarm.dispatched_to}; {to}" if alarm.dispatched_to else to
            await self.db.execute(
                "UPDATE alarms SET dispatched_at = COALESCE(dispatched_at, ?),"
                " dispatched_by = COALESCE(dispatched_by, ?), dispatched_to = ? WHERE id = ?",
                (now, actor, sent_to[:500], alarm_id),
            )
            await self.add_log(alarm_id, actor, "dispatched", f"{to}: {note}".strip(": "), now)
            await self.db.commit()
            return await self._get(alarm_id)

    async def feedback(self, alarm_id: int, actor: str, note: str) -> Alarm:
        """Record what happened, for the resident and the record (情况反馈)."""
        async with self.lock:
            alarm = await self._get(alarm_id)
            if alarm.state is AlarmState.ACTIVE:
                raise AlarmError(f"alarm {alarm_id} is not accepted yet; accept it first")
            now = self.clock()
            await self.db.execute(
                "UPDATE alarms SET feedback_at = ?, feedback_by = ? WHERE id = ?",
                (now, actor, alarm_id),
            )
            await self.add_log(alarm_id, actor, "feedback", note, now)
            await self.db.commit()
            return await self._get(alarm_id)

    async def resolve(
        self,
        alarm_id: int,
        actor: str,
        outcome: Outcome,
        note: str,
        cause: FalseAlarmCause | None = None,
    ) -> Alarm:
        """Close a case (办结). A false alarm needs its cause (and "other" a note); a cause
        is refused with any other outcome."""
        if outcome is Outcome.FALSE_ALARM and cause is None:
            raise AlarmError("a false alarm needs its cause")
        if outcome is not Outcome.FALSE_ALARM and cause is not None:
            raise AlarmError(f"a cause is given only for a false alarm, not for {outcome.value}")
        if cause is FalseAlarmCause.OTHER and not note.strip():
            raise AlarmError("a false alarm of cause 'other' needs a note saying what it was")
        async with self.lock:
            alarm = await self._get(alarm_id)
            if alarm.state is AlarmState.RESOLVED:
                raise AlarmError(f"alarm {alarm_id} is already resolved")
            now = self.clock()
            accepted = alarm.accepted_at.timestamp() if alarm.accepted_at else now
            await self.db.execute(
                "UPDATE alarms SET state = ?, open_key = NULL, resolved_at = ?, resolved_by = ?,"
                " outcome = ?, cause = ?, note = ?, accepted_at = ?,"
                " accepted_by = COALESCE(accepted_by, ?), notify_due_at = NULL WHERE id = ?",
                (
                    AlarmState.RESOLVED.value,
                    now,
                    actor,
                    outcome.value,
                    cause.value if cause else None,
                    note,
                    accepted,
                    actor,
                    alarm_id,
                ),
            )
            what = f"{outcome.value} ({cause.value})" if cause else outcome.value
            await self.add_log(alarm_id, actor, "resolved", f"{what}: {note}".strip(": "), now)
            await self.db.commit()
            return await self._get(alarm_id)

    async def verify(self, alarm_id: int, actor: str, note: str) -> Alarm:
        """A supervisor confirms that a resolved case is really closed (督办落实). Never the
        one who resolved it (an administrator neither): a check of one's own work is none."""
        async with self.lock:
            alarm = await self._get(alarm_id)
            if alarm.state is not AlarmState.RESOLVED:
                raise AlarmError(
                    f"alarm {alarm_id} is {alarm.state}; only a resolved case is verified"
                )
            if alarm.verified_at is not None:
                raise AlarmError(f"alarm {alarm_id} was already verified by {alarm.verified_by}")
            if alarm.resolved_by == actor:
                raise AlarmError(
                    f"alarm {alarm_id} was resolved by {actor}: another supervisor verifies it"
                )
            now = self.clock()
            await self.db.execute(
                "UPDATE alarms SET verified_at = ?, verified_by = ? WHERE id = ?",
                (now, actor, alarm_id),
            )
            await self.add_log(alarm_id, actor, "verified", note, now)
            await self.db.commit()
            return await self._get(alarm_id)

    async def note(self, alarm_id: int, actor: str, action: str, detail: str) -> None:
        """Add a line to an alarm's log (e.g. a command sent to the gateway)."""
        async with self.lock:
            await self.add_log(alarm_id, actor, action, detail, self.clock())
            await self.db.commit()

    # ---- reading ----------------------------------------------------------------------------

    async def active(self, limit: int | None = None) -> list[Alarm]:
        """The duty room's unresolved alarms, most severe first, then unaccepted before
        accepted, oldest first (at most `limit`). Tests and maintenance are not the duty
        room's. The open states are named (not `!= resolved`) so that the index on state
        finds the few open rows instead of a scan of the whole book."""
        async with self.lock:
            rows = await self._fetch_all(
                f"SELECT * FROM alarms WHERE state IN ({_OPEN_STATES}) AND mode = ?"
                " ORDER BY level ASC, (state = 'accepted') ASC, received_at ASC LIMIT ?",
                (Mode.LIVE.value, -1 if limit is None else limit),
            )
        return [Alarm.from_row(r) for r in rows]

    async def awaiting_verification(self, since: float, limit: int = 100) -> list[Alarm]:
        """Live cases resolved by a person since `since` that no supervisor has verified yet,
        the most recently resolved first (督办: the supervisor's list). Cases the system
        closed itself (outcome cleared) are not there: nobody's work to check. A case has a
        resolved_at once resolved, and only then; the query reads the partial index
        alarms_unverified (cloud.db) newest first and stops at `limit` (a term on `state`
        would make SQLite prefer the index on state, i.e. every resolved case)."""
        async with self.lock:
            rows = await self._fetch_all(
                "SELECT * FROM alarms WHERE verified_at IS NULL AND resolved_at >= ?"
                " AND mode = ? AND outcome != ? ORDER BY resolved_at DESC LIMIT ?",
                (since, Mode.LIVE.value, Outcome.CLEARED.value, limit),
            )
        return [Alarm.from_row(r) for r in rows]

    async def in_window(self, window_id: int) -> list[Alarm]:
        async with self.lock:
            rows = await self._fetch_all(
                "SELECT * FROM alarms WHERE window_id = ? ORDER BY id", (window_id,)
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

    async def events_of(self, gateway: str, since: float, until: float) -> list[dict[str, object]]:
        """Events of one gateway received in a time range (a walk test's report)."""
        async with self.lock:
            rows = await self._fetch_all(
                "SELECT device, kind, type, ts, received_at FROM events WHERE gateway = ?"
                " AND received_at >= ? AND received_at <= ? ORDER BY received_at",
                (gateway, since, until),
            )
        return [dict(r) for r in rows]

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

    # ---- for the units of work of others (the caller holds `lock` and commits) ------------

    async def add_log(self, alarm_id: int, actor: str, action: str, detail: str, at: float) -> None:
        await self.db.execute(
            "INSERT INTO alarm_log (alarm_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
            (alarm_id, at, actor, action, detail),
        )

    async def _get(self, alarm_id: int) -> Alarm:
        row = await self._fetch_one("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
        if row is None:
            raise AlarmError(f"no alarm {alarm_id}")
        return Alarm.from_row(row)

    async def _fetch_one(self, sql: str, args: tuple[object, ...]) -> aiosqlite.Row | None:
        async with self.db.execute(sql, args) as cursor:
            return await cursor.fetchone()

    async def _fetch_all(self, sql: str, args: tuple[object, ...]) -> list[aiosqlite.Row]:
        async with self.db.execute(sql, args) as cursor:
            return list(await cursor.fetchall())


@dataclass(frozen=True, slots=True)
class Arrival:
    """A message to store once by its id (an event or a telemetry batch), with the rules'
    decision about it, asked only if the id is new."""

    table: str  # events or telemetry_batches
    id: str
    sql: str
    params: tuple[object, ...]
    at: float
    decide: Decide | Iterable[Decision]


def event_arrival(event: Event, received_at: float, decide: Decide | Iterable[Decision]) -> Arrival:
    return Arrival(
        "events",
        event.id,
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
        received_at,
        decide,
    )


def batch_arrival(
    batch_id: str,
    gateway: str,
    readings: int,
    at: float,
    decide: Decide | Iterable[Decision] = (),
) -> Arrival:
    return Arrival(
        "telemetry_batches",
        batch_id,
        "INSERT OR IGNORE INTO telemetry_batches VALUES (?,?,?,?)",
        (batch_id, gateway, readings, at),
        at,
        decide,
    )


def _known_ids(conn: sqlite3.Connection, arrivals: Sequence[Arrival]) -> set[tuple[str, str]]:
    """(table, id) of the arrivals that are stored already (on the database thread)."""
    known: set[tuple[str, str]] = set()
    for table in ("events", "telemetry_batches"):
        ids = list({a.id for a in arrivals if a.table == table})
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk):
                known.add((table, row[0]))
    return known


def _log_sync(
    conn: sqlite3.Connection, alarm_id: int, actor: str, action: str, detail: str, at: float
) -> None:
    conn.execute(
        "INSERT INTO alarm_log (alarm_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
        (alarm_id, at, actor, action, detail),
    )


def _alarm_sync(conn: sqlite3.Connection, alarm_id: int) -> Alarm:
    row = conn.execute("SELECT * FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
    assert row is not None
    return Alarm.from_row(row)


def _unwrap(results: list[list[Raised] | Exception | None]) -> list[Raised] | None:
    [result] = results
    if isinstance(result, Exception):
        raise result
    return result


def _evaluate(decide: Decide | Iterable[Decision]) -> Evaluation:
    if callable(decide):
        return decide()
    return Evaluation(decisions=list(decide))
