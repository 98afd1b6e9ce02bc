"""Sending an alarm's notifications: the pending rows of the notification log
(cloud/notify/log.py) that escalation made, sent step by step per alarm (the channels of one
step at once), each marked delivered, retried with backoff, failed or skipped, with a fallback
to the next channel where its policy says so; every attempt a line in the alarm's log.

A row taken for delivery is leased to this process (`lease_s`): two cloud processes on one
database never send it both; another takes it up only once the lease has run out (its holder
died mid-send). A channel that cannot drop a repeat (`once_only`: SMS, a voice call) is never
sent twice: the row is marked `sending` before the request goes out, and a row found so marked
(the cloud stopped mid-send), or a send whose answer was lost, is not sent again on that
channel; it falls back instead. Any other channel's repeat carries the same `Idempotency-Key`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping

from cloud.alarms.model import SYSTEM, Alarm, AlarmState
from cloud.alarms.queries import AlarmQueries
from cloud.alarms.rows import log as log_line
from cloud.db.database import Conn, Database, Row
from cloud.db.dialect import SQLITE
from cloud.notify.base import Channel, Delivery, Notification
from cloud.notify.log import NotificationLog, Planned
from cloud.routing import policy as routing
from cloud.rules.config import RulesFile
from cloud.rules.policies import Policy

log = logging.getLogger(__name__)

#: Delivery attempts per notification, and the waits between them (seconds).
BACKOFF_S = (2.0, 5.0, 15.0, 30.0, 60.0)
MAX_ATTEMPTS = len(BACKOFF_S) + 1
#: A notification taken for delivery is leased to this process for this long (seconds).
LEASE_S = 30.0


class Sender:
    def __init__(
        self,
        *,
        db: Database,
        rules: Callable[[], RulesFile],
        channels: Mapping[str, Channel],
        notifications: NotificationLog,
        counts: Counter[str],
        case_url: str = "",
        lease_s: float = LEASE_S,
    ) -> None:
        self.db = db
        self.rules = rules
        self.channels = dict(channels)
        self.notifications = notifications
        self.alarms = AlarmQueries(db)
        #: shared with the escalator (`/api/stats`, metrics)
        self.counts = counts
        #: the case in the web app, `{id}` replaced by the alarm's id ("" for no link)
        self.case_url = case_url
        #: how long a row taken for delivery is this process's alone (longer than any send)
        self.lease_s = lease_s
        #: recent deliveries: (notification key, seconds from the alarm's receipt)
        self.delivered: deque[tuple[str, float]] = deque(maxlen=10000)
        #: set when there is something new to send
        self.wake = asyncio.Event()
        self._inflight: set[int] = set()
        self._fallback_lock = asyncio.Lock()

    async def deliver_due(self) -> int:
        """Send every pending notification that is due; returns how many were attempted."""
        now = self.db.clock()
        due = await self.notifications.next_attempt_due()
        if due is None or due > now:  # a read: the claim takes the writer's lock
            return 0
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
        self.wake.set()

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

    async def recover(self) -> None:
        """At start, on SQLite (one process per file): the leases left are this cloud's own
        from before it stopped; given up, so what was being sent goes on at once (a row whose
        send may have gone out falls back). On PostgreSQL another process may hold them: they
        run out by themselves."""
        if self.db.dialect is SQLITE:
            released = await self.db.write(self.notifications.release_all)
            if released:
                log.warning("%d notification(s) were being sent when the cloud stopped", released)


def _past_deadline(row: Row, policy: Policy) -> bool:
    """Whether this row's retries already ran past its policy's deliver_within_s (it fell back
    then): this attempt was scheduled after the deadline."""
    within = policy.deliver_within_s
    scheduled = row["next_attempt_at"]
    return within is not None and scheduled is not None and scheduled > row["created_at"] + within
