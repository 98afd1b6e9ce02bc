"""Escalation against human budgets, on durable timers.

The timer of an alarm is two columns of its own row: the next step of its policy's plan
(`notify_step`) and when it is due (`notify_due_at`). The alarm book sets them in the same
transaction that raises the alarm (step 0, due at once); accepting or resolving clears them.

Firing a step is one unit of work: the notifications it makes (rows of the notification log,
cloud/notify/log.py, one per person and channel, with a unique key) and the move of the alarm's
timer (cloud/alarms/timers.py) are committed together. Delivering is separate: pending rows are
sent step by step per alarm (the channels of one step at once) and marked delivered or retried
with backoff. So a restart at any point neither loses a step (an uncommitted step fires again,
committed rows are still pending) nor repeats one (a committed step has moved on, its rows
exist once). The one thing a crash can repeat is a single delivery that went out but was not
yet marked: it carries the same `Idempotency-Key`, so the receiver can drop it. A channel that
cannot drop a repeat (`once_only`: SMS, a voice call) is never sent twice: the row is marked
`sending` before the request goes out, and a row found so marked (the cloud stopped mid-send),
or a send whose answer was lost, is not sent again on that channel; it falls back instead.

Fallback: a notification whose channel refuses it, is not configured, or whose retries would
run past its policy's `deliver_within_s` (counted from when the step fired), makes a row for
the next channel of its `fallback` list not yet used for that person; the first channel keeps
its own retries. Every attempt, retry and fallback is a line in the alarm's log.

Time is injected (`clock`); tests drive `fire_due()` and `deliver_due()` by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from cloud.alarms.model import SYSTEM, Alarm, AlarmState
from cloud.alarms.queries import AlarmQueries
from cloud.alarms.rows import log as log_line
from cloud.alarms.timers import Due, EscalationTimers
from cloud.db.database import Conn, Database, Row
from cloud.db.dialect import SQLITE
from cloud.duty.roster import OnShift, Roster
from cloud.notify.base import Channel, Delivery, Notification
from cloud.notify.log import NotificationLog, Planned
from cloud.routing import policy as routing
from cloud.rules.config import RulesFile
from cloud.rules.policies import Policy
from cloud.site.registry import Registry

log = logging.getLogger(__name__)

#: Delivery attempts per notification, and the waits between them (seconds).
BACKOFF_S = (2.0, 5.0, 15.0, 30.0, 60.0)
MAX_ATTEMPTS = len(BACKOFF_S) + 1
#: The loops wake at least this often even if nothing told them to.
POLL_S = 1.0
#: A notification taken for delivery is leased to this process for this long (seconds).
LEASE_S = 30.0


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
        db: Database,
        registry: Registry,
        rules: Callable[[], RulesFile],
        channels: Mapping[str, Channel],
        notifications: NotificationLog,
        on_change: Callable[[Alarm], object] | None = None,
        case_url: str = "",
        roster: Roster | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self.db = db
        #: how long a notification taken for delivery is this process's alone (longer than
        #: any one send); another process on the database takes it up only after that
        self.lease_s = lease_s
        #: the duty roster: roles are resolved when a step fires (None: the site file only)
        self.roster = roster
        #: the case in the web app, `{id}` replaced by the alarm's id ("" for no link)
        self.case_url = case_url
        self.alarms = AlarmQueries(db)
        self.timers = EscalationTimers(db)
        self.notifications = notifications
        self.registry = registry
        self.rules = rules
        self.channels = dict(channels)
        self.on_change = on_change
        self.counts: Counter[str] = Counter()
        #: recent steps fired, with when they were due (for the benchmark and /api/stats)
        self.fired: deque[Fired] = deque(maxlen=10000)
        #: recent deliveries: (notification key, seconds from the alarm's receipt)
        self.delivered: deque[tuple[str, float]] = deque(maxlen=10000)
        self._fire_wake = asyncio.Event()
        self._deliver_wake = asyncio.Event()
        self._inflight: set[int] = set()
        self._fallback_lock = asyncio.Lock()

    def wake(self) -> None:
        """Something changed (a new alarm): look for due steps now."""
        self._fire_wake.set()

    # ---- firing steps --------------------------------------------------------------------

    async def fire_due(self) -> list[Fired]:
        now = self.db.clock()
        next_due = await self.timers.next_due()
        if next_due is None or next_due > now:
            return []
        config = self.rules()

        def fire(conn: Conn) -> list[Fired]:
            due = self.timers.due(conn, now)  # again, under the writer's lock
            if not due:
                return []
            on_shift = self.roster.on_shift(conn, now) if self.roster is not None else None
            return [f for d in due if (f := self._fire(conn, d, config, now, on_shift))]

        fired = await self.db.write(fire)
        if fired:
            self.fired.extend(fired)
            self._deliver_wake.set()
            for f in fired:
                self.counts[f"steps_{f.reason}"] += 1
        if self.on_change is not None:
            for f in fired:
                if f.reason != routing.NOTIFY:
                    self.on_change(await self.alarms.get(f.alarm_id))
        return fired

    def _fire(
        self, conn: Conn, due: Due, config: RulesFile, now: float, on_shift: OnShift | None
    ) -> Fired | None:
        """One step of one alarm's plan, in the caller's unit of work."""
        alarm, index = due.alarm, due.step
        policy = config.policy_for(alarm.rule, alarm.level)
        current = routing.step(policy, index)
        if current is None:  # the plan ran out (or got shorter on a reload)
            self.timers.stop(conn, alarm.id)
            return None
        told: list[str] = []
        for notify in current.notify:
            people, why = routing.recipients(
                notify.to, alarm, self.registry, config.contacts, on_shift
            )
            vias = ", ".join(v.value for v in notify.via)
            if not people:
                told.append(f"{notify.to.value}: {why}")
            else:
                told.append(f"{notify.to.value} ({', '.join(p.name for p in people)}) via {vias}")
            for via in notify.via:
                people_or_nobody: list[tuple[int, routing.Recipient] | tuple[None, None]] = list(
                    enumerate(people)
                ) or [(None, None)]
                for n, person in people_or_nobody:
                    who = "-" if n is None else str(n)
                    self.notifications.add(
                        conn,
                        Planned(
                            alarm_id=alarm.id,
                            key=f"{alarm.id}/{current.index}/{notify.to.value}/{who}/{via.value}",
                            step=current.index,
                            reason=current.reason,
                            target=notify.to.value,
                            name=person.name if person else "",
                            phone=person.phone if person else None,
                            channel=via.value,
                            skipped=why if person is None else "",
                        ),
                        now,
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
        self.timers.move(
            conn,
            alarm.id,
            step=following.index if following else index + 1,
            due_at=next_due,
            policy=policy.name,
            escalated_at=now if escalated else None,
        )
        detail = f"step {index} of policy {policy.name}"
        if on_shift is not None:
            detail += f" [{on_shift.ref.label()}]"
        if escalated:
            detail += f" (not accepted within {policy.budget_s:g} s)"
        detail += ": " + ("; ".join(told) if told else "nobody else to tell")
        if skipped:
            detail += f"; {skipped} reminder(s) skipped (due while the cloud was down)"
        log_line(conn, alarm.id, SYSTEM, current.reason, detail, now)
        return Fired(alarm.id, index, current.reason, due.due_at, now)

    # ---- delivering ----------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Send every pending notification that is due; returns how many were attempted."""
        now = self.db.clock()
        claimed = await self.db.write(lambda c: self.notifications.claim(c, now, self.lease_s))
        rows = [r for r in claimed if r["id"] not in self._inflight]
        by_alarm: dict[int, list[Row]] = {}
        for row in rows:
            self._inflight.add(row["id"])
            by_alarm.setdefault(row["alarm_id"], []).append(row)
        try:
            await asyncio.gather(*(self._deliver(a, rs) for a, rs in by_alarm.items()))
        finally:
            self._inflight.difference_update(r["id"] for r in rows)
        return len(rows)

    async def _deliver(self, alarm_id: int, rows: list[Row]) -> None:
        """One alarm's notifications in the order of their steps; the channels of one step
        at once (a vendor that hangs does not hold back the other channel)."""
        alarm = await self.alarms.get(alarm_id)
        policy = self.rules().policy_for(alarm.rule, alarm.level)
        for _, same_step in itertools.groupby(rows, key=lambda r: r["step"]):
            await asyncio.gather(*(self._deliver_one(r, alarm, policy) for r in same_step))

    async def _deliver_one(self, row: Row, alarm: Alarm, policy: Policy) -> None:
        if alarm.state is not AlarmState.ACTIVE and row["reason"] != routing.NOTIFY:
            await self._finish(row, alarm, "cancelled", f"alarm {alarm.state} before delivery")
            return
        channel = self.channels.get(row["channel"])
        if channel is None:
            why = f"channel {row['channel']} is not configured"
            await self._finish(row, alarm, "skipped", why)
            await self._fall_back(row, alarm, why)
            return
        once_only = bool(getattr(channel, "once_only", False))
        if once_only and row["sending_since"] is not None:
            why = (
                f"outcome unknown: a send began at {row['sending_since']:.3f} and the cloud"
                f" stopped before its answer; not sent again via {channel.name}"
            )
            await self._finish(row, alarm, "failed", why)
            await self._fall_back(row, alarm, why)
            return
        note = Notification(
            key=row["key"],
            alarm=alarm,
            step=row["step"],
            reason=row["reason"],
            target=row["target"],
            name=row["name"],
            phone=row["phone"],
            link=self.case_url.replace("{id}", str(alarm.id)) if self.case_url else "",
            attempt=row["attempts"],
        )
        if once_only:
            await self.notifications.sending(row["id"], self.db.clock())
        try:
            delivery = await channel.send(note)
        except Exception as exc:  # a channel bug must not stop the others
            log.exception("channel %s failed", channel.name)
            delivery = Delivery(
                False, f"{type(exc).__name__}: {exc}", retry=True, unknown=once_only
            )
        await self._after(row, alarm, policy, channel, delivery)

    async def _after(
        self, row: Row, alarm: Alarm, policy: Policy, channel: Channel, delivery: Delivery
    ) -> None:
        """Record what one attempt did: delivered, retried later, failed; fall back if due."""
        now = self.db.clock()
        if delivery.ok:
            detail = delivery.detail
            late = (
                row["reason"] == routing.NOTIFY
                and policy.deliver_within_s is not None
                and now - alarm.received_at.timestamp() > policy.deliver_within_s
            )
            if late:
                detail += f"; LATE: over the {policy.deliver_within_s:g} s the policy allows"
                log.error("notification %s delivered late", row["key"])
            await self._finish(row, alarm, "delivered", detail, ref=delivery.ref)
            return
        if delivery.unknown and getattr(channel, "once_only", False):
            why = f"{delivery.detail}; not sent again via {channel.name} (it may have arrived)"
            await self._finish(row, alarm, "failed", why)
            await self._fall_back(row, alarm, why)
            return
        if delivery.retry and row["attempts"] + 1 < MAX_ATTEMPTS:
            wait = delivery.retry_after_s
            if wait is None:
                wait = BACKOFF_S[min(row["attempts"], len(BACKOFF_S) - 1)]
            detail = f"attempt {row['attempts'] + 1}: {delivery.detail}"
            at = now + wait
            await self.notifications.retry(row["id"], at, detail)
            self.counts["notifications_retried"] += 1
            who = f"{row['target']}" + (f" {row['name']}" if row["name"] else "")
            await self.db.write(
                lambda c: log_line(
                    c,
                    alarm.id,
                    SYSTEM,
                    "notify_retry",
                    f"step {row['step']} to {who} via {row['channel']}: {detail};"
                    f" next try in {wait:.1f} s",
                    now,
                )
            )
            within = policy.deliver_within_s
            late = within is not None and at > row["created_at"] + within
            if late and not _past_deadline(row, policy):  # the first time: one fallback a row
                await self._fall_back(row, alarm, f"the next try is past the policy's {within:g} s")
            return
        await self._finish(row, alarm, "failed", delivery.detail)
        if not _past_deadline(row, policy):  # else it fell back when its retries ran late
            await self._fall_back(row, alarm, delivery.detail)

    async def _fall_back(self, row: Row, alarm: Alarm, why: str) -> None:
        """A row for the next channel of the step's fallback list not yet used for the person."""
        policy = self.rules().policy_for(alarm.rule, alarm.level)
        current = routing.step(policy, row["step"])
        if current is None:
            return
        async with self._fallback_lock:  # two channels failing at once pick different ones
            await self._add_fallback(row, alarm, current, why)

    async def _add_fallback(
        self, row: Row, alarm: Alarm, current: routing.PlanStep, why: str
    ) -> None:
        prefix = row["key"].rsplit("/", 1)[0]
        used = await self.notifications.channels_of(alarm.id, prefix)
        via = routing.fallback_for(current, row["target"], used)
        if via is None:
            return
        now = self.db.clock()
        who = f"{row['target']}" + (f" {row['name']}" if row["name"] else "")
        planned = Planned(
            alarm_id=alarm.id,
            key=f"{prefix}/{via.value}",
            step=row["step"],
            reason=row["reason"],
            target=row["target"],
            name=row["name"],
            phone=row["phone"],
            channel=via.value,
        )

        def add(conn: Conn) -> None:
            self.notifications.add(conn, planned, now)
            log_line(
                conn,
                alarm.id,
                SYSTEM,
                "notify_fallback",
                f"step {row['step']} to {who}: {row['channel']} did not deliver ({why[:200]});"
                f" falling back to {via.value}",
                now,
            )

        await self.db.write(add)
        self.counts["notifications_fallback"] += 1
        self._deliver_wake.set()

    async def _finish(
        self, row: Row, alarm: Alarm, status: str, detail: str, *, ref: str = ""
    ) -> None:
        now = self.db.clock()
        action = {"delivered": "delivered"}.get(status, f"notify_{status}")
        who = f"{row['target']}" + (f" {row['name']}" if row["name"] else "")
        line = f"step {row['step']} to {who} via {row['channel']}: {detail}"

        def finish(conn: Conn) -> None:
            self.notifications.finish(conn, row["id"], status, detail, now, ref=ref)
            log_line(conn, alarm.id, SYSTEM, action, line, now)

        await self.db.write(finish)
        self.counts[f"notifications_{status}"] += 1
        if status == "delivered":
            self.delivered.append((row["key"], now - alarm.received_at.timestamp()))

    # ---- the loops ---------------------------------------------------------------------------

    async def recover(self) -> None:
        """At start, on SQLite (one process per file): the leases left are this cloud's own
        from before it stopped; given up, so what was being sent goes on at once (a row whose
        send may have gone out falls back). On PostgreSQL another process may hold them: they
        run out by themselves."""
        if self.db.dialect is SQLITE:
            released = await self.db.write(self.notifications.release_all)
            if released:
                log.warning("%d notification(s) were being sent when the cloud stopped", released)

    async def run(self) -> None:
        """Fire due steps and deliver notifications until cancelled."""
        await self.recover()
        await asyncio.gather(
            self._loop(self.fire_due, self._fire_wake, self.timers.next_due),
            self._loop(self.deliver_due, self._deliver_wake, self.notifications.next_attempt_due),
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
                timeout = min(POLL_S, max(0.0, due - self.db.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)


def _past_deadline(row: Row, policy: Policy) -> bool:
    """Whether this row's retries already ran past its policy's deliver_within_s (it fell back
    then): this attempt was scheduled after the deadline."""
    within = policy.deliver_within_s
    scheduled = row["next_attempt_at"]
    return within is not None and scheduled is not None and scheduled > row["created_at"] + within
