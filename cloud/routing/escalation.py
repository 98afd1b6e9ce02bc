"""Escalation against human budgets, on durable timers.

The timer of an alarm is two columns of its own row: the next step of its policy's plan
(`notify_step`) and when it is due (`notify_due_at`). The alarm book sets them in the same
transaction that raises the alarm (step 0, due at once); accepting, resolving or a device's
clear ends the plan after step 0 (cloud/alarms/timers.py): the first people are always told.

Firing a step is one unit of work: the notifications it makes (rows of the notification log,
cloud/notify/log.py, one per person and channel, with a unique key) and the move of the alarm's
timer (cloud/alarms/timers.py) are committed together, the due steps read again under the
writer's lock in that unit — so a step fires once even with two cloud processes on one
database, and never for an alarm accepted a moment before. So a restart at any point neither
loses a step (an uncommitted step fires again, committed rows are still pending) nor repeats
one (a committed step has moved on, its rows exist once).

Delivering the rows, with retries, fallbacks and leases, is `Sender`'s (cloud/routing/sender.py).

Time is injected (`clock`); tests drive `fire_due()` and `deliver_due()` by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from cloud.alarms.model import SYSTEM, Alarm, AlarmState
from cloud.alarms.queries import AlarmQueries
from cloud.alarms.rows import log as log_line
from cloud.alarms.timers import Due, EscalationTimers
from cloud.db.database import Conn, Database
from cloud.duty.roster import OnShift, Roster
from cloud.errors import DatabaseUnavailable
from cloud.notify.base import Channel
from cloud.notify.log import NotificationLog, Planned
from cloud.routing import policy as routing
from cloud.routing.sender import LEASE_S, Sender
from cloud.rules.config import RulesFile
from cloud.site.registry import Registry

log = logging.getLogger(__name__)

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
        #: the duty roster: roles are resolved when a step fires (None: the site file only)
        self.roster = roster
        self.alarms = AlarmQueries(db)
        self.timers = EscalationTimers(db)
        self.notifications = notifications
        self.registry = registry
        self.rules = rules
        self.on_change = on_change
        self.counts: Counter[str] = Counter()
        #: recent steps fired, with when they were due (for the benchmark and /api/stats)
        self.fired: deque[Fired] = deque(maxlen=10000)
        self._fire_wake = asyncio.Event()
        self.sender = Sender(
            db=db,
            rules=rules,
            channels=channels,
            notifications=notifications,
            counts=self.counts,
            case_url=case_url,
            lease_s=lease_s,
        )

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
            self.sender.wake.set()
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
        # the next step (none after step 0 of an alarm already taken on), skipping reminders
        # that fell due while the cloud was down
        following = routing.step(policy, index + 1) if alarm.state is AlarmState.ACTIVE else None
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

    async def deliver_due(self) -> int:
        """Send every pending notification that is due (`Sender`); how many were attempted."""
        return await self.sender.deliver_due()

    @property
    def delivered(self) -> deque[tuple[str, float]]:
        """Recent deliveries: (notification key, seconds from the alarm's receipt)."""
        return self.sender.delivered

    # ---- the loops ---------------------------------------------------------------------------

    async def recover(self) -> None:
        await self.sender.recover()

    async def run(self) -> None:
        """Fire due steps and deliver notifications until cancelled."""
        await self.recover()
        await asyncio.gather(
            self._loop(self.fire_due, self._fire_wake, self.timers.next_due),
            self._loop(self.deliver_due, self.sender.wake, self.notifications.next_attempt_due),
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
            except DatabaseUnavailable as exc:  # nothing fired or sent: again when it is back
                log.warning("escalation waits for the database: %s", exc)
            except Exception:
                log.exception("escalation loop")
            timeout = POLL_S
            if due is not None:
                timeout = min(POLL_S, max(0.0, due - self.db.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
