"""Escalation against human budgets, on durable timers.

The timer of an alarm is two columns of its own row: the next step of its policy's plan
(`notify_step`) and when it is due (`notify_due_at`). The alarm book sets them in the same
transaction that raises the alarm (step 0, due at once); accepting or resolving clears them.

Firing a step is one transaction: the notifications it makes (one row per person and
channel, with a unique key) and the move to the next step are committed together. Delivering
is separate: pending rows are sent, in order per alarm, and marked delivered or retried with
backoff. So a restart at any point neither loses a step (an uncommitted step fires again,
committed rows are still pending) nor repeats one (a committed step has moved on, its rows
exist once). The one thing a crash can repeat is a single delivery that went out but was not
yet marked: it carries the same `Idempotency-Key`, so the receiver can drop it.

Time is injected (`clock`); tests drive `fire_due()` and `deliver_due()` by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiosqlite

from cloud.alarms.book import Alarm, AlarmBook, AlarmState, Mode
from cloud.notify.base import Channel, Delivery, Notification
from cloud.routing import policy as routing
from cloud.rules.config import RulesFile, Target, Via
from cloud.site.registry import Registry

log = logging.getLogger(__name__)

#: Delivery attempts per notification, and the waits between them (seconds).
BACKOFF_S = (2.0, 5.0, 15.0, 30.0, 60.0)
MAX_ATTEMPTS = len(BACKOFF_S) + 1
#: The loops wake at least this often even if nothing told them to.
POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class Fired:
    alarm_id: int
    step: int
    reason: str
    due_at: float
    fired_at: float


class Escalator:
    def __init__(
        self,
        *,
        book: AlarmBook,
        registry: Registry,
        rules: Callable[[], RulesFile],
        channels: Mapping[str, Channel],
        on_change: Callable[[Alarm], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self.db: aiosqlite.Connection = book.db
        self.lock = book.lock
        self.registry = registry
        self.rules = rules
        self.channels = dict(channels)
        self.on_change = on_change
        self.clock = clock
        self.counts: Counter[str] = Counter()
        #: recent steps fired, with when they were due (for the benchmark and /api/stats)
        self.fired: deque[Fired] = deque(maxlen=10000)
        #: recent deliveries: (notification key, seconds from the alarm's receipt)
        self.delivered: deque[tuple[str, float]] = deque(maxlen=10000)
        self._fire_wake = asyncio.Event()
        self._deliver_wake = asyncio.Event()
        self._inflight: set[int] = set()

    def wake(self) -> None:
        """Something changed (a new alarm): look for due steps now."""
        self._fire_wake.set()

    # ---- firing steps --------------------------------------------------------------------

    async def fire_due(self) -> list[Fired]:
        now = self.clock()
        fired: list[Fired] = []
        changed: list[int] = []
        async with self.lock:
            async with self.db.execute(
                "SELECT * FROM alarms WHERE notify_due_at IS NOT NULL AND notify_due_at <= ?"
                " AND state = ? AND mode = ? ORDER BY notify_due_at LIMIT 500",
                (now, AlarmState.ACTIVE.value, Mode.LIVE.value),
            ) as cursor:
                rows = list(await cursor.fetchall())
            for row in rows:
                result = await self._fire(
                    Alarm.from_row(row), row["notify_step"], row["notify_due_at"], now
                )
                if result is not None:
                    fired.append(result)
                    if result.reason != routing.NOTIFY:
                        changed.append(result.alarm_id)
            await self.db.commit()
        if fired:
            self.fired.extend(fired)
            self._deliver_wake.set()
        if self.on_change is not None:
            for alarm_id in changed:
                self.on_change(await self.book.get(alarm_id))
        return fired

    async def _fire(self, alarm: Alarm, index: int, due_at: float, now: float) -> Fired | None:
        config = self.rules()
        policy = config.policy_for(alarm.rule, alarm.level)
        current = routing.step(policy, index)
        if current is None:  # the plan ran out (or got shorter on a reload)
            await self.db.execute(
                "UPDATE alarms SET notify_due_at = NULL WHERE id = ?", (alarm.id,)
            )
            return None
        told: list[str] = []
        for notify in current.notify:
            people, why = routing.recipients(notify.to, alarm, self.registry, config.contacts)
            vias = ", ".join(v.value for v in notify.via)
            if not people:
                told.append(f"{notify.to.value}: {why}")
            else:
                told.append(f"{notify.to.value} ({', '.join(p.name for p in people)}) via {vias}")
            for via in notify.via:
                if not people:
                    await self._row(alarm.id, current, notify.to, "-", "", None, via, now, why)
                for n, person in enumerate(people):
                    await self._row(
                        alarm.id, current, notify.to, str(n), person.name, person.phone, via, now
                    )
        # the next step, skipping reminders that fell due while the cloud was down
        following = routing.step(policy, index + 1)
        skipped = 0
        while following is not None and following.reason == routing.REMIND:
            after = routing.step(policy, following.index + 1)
            if after is None or alarm.received_at.timestamp() + after.offset_s > now:
                break
            following, skipped = after, skipped + 1
        next_due = None if following is None else alarm.received_at.timestamp() + following.offset_s
        escalated = current.reason == routing.ESCALATE
        await self.db.execute(
            "UPDATE alarms SET notify_step = ?, notify_due_at = ?, policy = ?,"
            " escalations = escalations + ?, escalated_at = COALESCE(escalated_at, ?)"
            " WHERE id = ?",
            (
                following.index if following else index + 1,
                next_due,
                policy.name,
                int(escalated),
                now if escalated else None,
                alarm.id,
            ),
        )
        detail = f"step {index} of policy {policy.name}"
        if escalated:
            detail += f" (not accepted within {policy.budget_s:g} s)"
        detail += ": " + ("; ".join(told) if told else "nobody else to tell")
        if skipped:
            detail += f"; {skipped} reminder(s) skipped (due while the cloud was down)"
        await self.book.add_log(alarm.id, "system", current.reason, detail, now)
        self.counts[f"steps_{current.reason}"] += 1
        return Fired(alarm.id, index, current.reason, due_at, now)

    async def _row(
        self,
        alarm_id: int,
        current: routing.PlanStep,
        target: Target,
        person: str,
        name: str,
        phone: str | None,
        via: Via,
        now: float,
        skipped: str = "",
    ) -> None:
        key = f"{alarm_id}/{current.index}/{target.value}/{person}/{via.value}"
        if target is Target.DUTY_ROOM and via is Via.PUSH and current.index == 0:
            return  # ingest's own live push (recorded by the alarm book under this key)
        status = "skipped" if skipped else "pending"
        await self.db.execute(
            "INSERT OR IGNORE INTO notifications (alarm_id, key, step, reason, target, name,"
            " phone, channel, status, created_at, next_attempt_at, detail)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                alarm_id,
                key,
                current.index,
                current.reason,
                target.value,
                name,
                phone,
                via.value,
                status,
                now,
                None if skipped else now,
                skipped,
            ),
        )

    # ---- delivering ----------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Send every pending notification that is due; returns how many were attempted."""
        now = self.clock()
        async with (
            self.lock,
            self.db.execute(
                "SELECT * FROM notifications WHERE status = 'pending' AND next_attempt_at <= ?"
                " ORDER BY id LIMIT 1000",
                (now,),
            ) as cursor,
        ):
            rows = [r for r in await cursor.fetchall() if r["id"] not in self._inflight]
        by_alarm: dict[int, list[aiosqlite.Row]] = {}
        for row in rows:
            self._inflight.add(row["id"])
            by_alarm.setdefault(row["alarm_id"], []).append(row)
        try:
            await asyncio.gather(*(self._deliver(a, rs) for a, rs in by_alarm.items()))
        finally:
            self._inflight.difference_update(r["id"] for r in rows)
        return len(rows)

    async def _deliver(self, alarm_id: int, rows: list[aiosqlite.Row]) -> None:
        """One alarm's notifications, one after the other, in the order they were made."""
        alarm = await self.book.get(alarm_id)
        policy = self.rules().policy_for(alarm.rule, alarm.level)
        for row in rows:
            if alarm.state is not AlarmState.ACTIVE and row["reason"] != routing.NOTIFY:
                await self._finish(row, alarm, "cancelled", f"alarm {alarm.state} before delivery")
                continue
            channel = self.channels.get(row["channel"])
            if channel is None:
                await self._finish(
                    row, alarm, "skipped", f"channel {row['channel']} is not configured"
                )
                continue
            note = Notification(
                key=row["key"],
                alarm=alarm,
                step=row["step"],
                reason=row["reason"],
                target=row["target"],
                name=row["name"],
                phone=row["phone"],
            )
            try:
                delivery = await channel.send(note)
            except Exception as exc:  # a channel bug must not stop the others
                log.exception("channel %s failed", channel.name)
                delivery = Delivery(False, f"{type(exc).__name__}: {exc}", retry=True)
            if delivery.ok:
                detail = delivery.detail
                late = (
                    row["reason"] == routing.NOTIFY
                    and policy.deliver_within_s is not None
                    and self.clock() - alarm.received_at.timestamp() > policy.deliver_within_s
                )
                if late:
                    detail += f"; LATE: over the {policy.deliver_within_s:g} s the policy allows"
                    log.error("notification %s delivered late", row["key"])
                await self._finish(row, alarm, "delivered", detail)
            elif delivery.retry and row["attempts"] + 1 < MAX_ATTEMPTS:
                await self._retry(row, delivery.detail)
            else:
                await self._finish(row, alarm, "failed", delivery.detail)

    async def _finish(self, row: aiosqlite.Row, alarm: Alarm, status: str, detail: str) -> None:
        now = self.clock()
        tried = status in ("delivered", "failed")
        async with self.lock:
            await self.db.execute(
                "UPDATE notifications SET status = ?, attempts = attempts + ?, delivered_at = ?,"
                " next_attempt_at = NULL, detail = ? WHERE id = ?",
                (
                    status,
                    int(tried),
                    now if status == "delivered" else None,
                    detail[:500],
                    row["id"],
                ),
            )
            action = {"delivered": "delivered"}.get(status, f"notify_{status}")
            who = f"{row['target']}" + (f" {row['name']}" if row["name"] else "")
            await self.book.add_log(
                alarm.id,
                "system",
                action,
                f"step {row['step']} to {who} via {row['channel']}: {detail}",
                now,
            )
            await self.db.commit()
        self.counts[f"notifications_{status}"] += 1
        if status == "delivered":
            self.delivered.append((row["key"], now - alarm.received_at.timestamp()))

    async def _retry(self, row: aiosqlite.Row, detail: str) -> None:
        wait = BACKOFF_S[min(row["attempts"], len(BACKOFF_S) - 1)]
        async with self.lock:
            await self.db.execute(
                "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = ?, detail = ?"
                " WHERE id = ?",
                (self.clock() + wait, f"attempt {row['attempts'] + 1}: {detail}"[:500], row["id"]),
            )
            await self.db.commit()
        self.counts["notifications_retried"] += 1

    async def notifications(self, alarm_id: int) -> list[dict[str, object]]:
        async with (
            self.lock,
            self.db.execute(
                "SELECT key, step, reason, target, name, channel, status, attempts, created_at,"
                " delivered_at, detail FROM notifications WHERE alarm_id = ? ORDER BY id",
                (alarm_id,),
            ) as cursor,
        ):
            return [dict(r) for r in await cursor.fetchall()]

    # ---- the loops ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Fire due steps and deliver notifications until cancelled."""
        await asyncio.gather(
            self._loop(self.fire_due, self._fire_wake, self._next_step_due),
            self._loop(self.deliver_due, self._deliver_wake, self._next_attempt_due),
        )

    async def _loop(
        self,
        work: Callable[[], Awaitable[object]],
        wake: asyncio.Event,
        next_due: Callable[[], Awaitable[float | None]],
    ) -> None:
        while True:
            wake.clear()
            due: float | None = None
            try:
                await work()
                due = await next_due()
            except Exception:
                log.exception("escalation loop")
            timeout = POLL_S
            if due is not None:
                timeout = min(POLL_S, max(0.0, due - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)

    async def _next_step_due(self) -> float | None:
        return await self._scalar(
            "SELECT min(notify_due_at) FROM alarms WHERE notify_due_at IS NOT NULL AND state = ?",
            (AlarmState.ACTIVE.value,),
        )

    async def _next_attempt_due(self) -> float | None:
        return await self._scalar(
            "SELECT min(next_attempt_at) FROM notifications WHERE status = 'pending'", ()
        )

    async def _scalar(self, sql: str, args: tuple[object, ...]) -> float | None:
        async with self.lock, self.db.execute(sql, args) as cursor:
            row = await cursor.fetchone()
        value = row[0] if row else None
        return float(value) if value is not None else None
