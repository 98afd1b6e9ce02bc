"""Telling the duty room: every change of a stored alarm goes to the open board pages (the
live push, cloud/live/), and a new live alarm's appearance is recorded as the duty room's
notification of step 0 of its plan, delivered to however many pages were open.

Never before the alarm is stored. One message per alarm per batch: a burst of repeats of one
alarm in a batch is one message with its final state. A new live alarm's message carries the
time it was pushed, which also goes on its timeline (`pushed_at`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from cloud.alarms.model import WORKED, Alarm, AlarmState, Mode, Raised
from cloud.alarms.rows import mark_pushed
from cloud.db.database import Conn, Database
from cloud.live import messages
from cloud.live.hub import LiveHub
from cloud.notify.log import NotificationLog


class Announcer:
    def __init__(
        self,
        db: Database,
        hub: LiveHub,
        notifications: NotificationLog,
        *,
        on_new_alarms: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.hub = hub
        self.notifications = notifications
        #: called after new live alarms were pushed (the escalator's first step is due)
        self.on_new_alarms = on_new_alarms
        #: told, for each new live alarm, the seconds from its message's arrival to its push
        #: (the metrics' latency histogram)
        self.on_pushed: Callable[[float], None] | None = None
        self.counts: Counter[str] = Counter()
        #: told each new live alarm once it is pushed (one-key voice offers a call for it)
        self.on_raised: list[Callable[[Alarm], None]] = []
        #: told each alarm an operator's action changed (voice ends the call of a resolved case)
        self.on_changed: list[Callable[[Alarm], None]] = []
        #: told each gateway status that came (gateway, "online"/"offline"; voice offers a
        #: call again to a gateway that is back)
        self.on_gateway_state: list[Callable[[str, str], None]] = []

    def gateway_state(self, gateway: str, state: str) -> None:
        """A gateway's status (as it reported it) to every open page."""
        for hook in self.on_gateway_state:
            hook(gateway, state)
        self.hub.publish(messages.gateway_state(gateway, state))

    def changed(self, alarm: Alarm) -> int:
        """One alarm's new state to every open page (an operator's action, an escalation);
        returns how many pages got it."""
        for hook in self.on_changed:
            hook(alarm)
        return self.hub.publish(messages.alarm_changed(alarm))

    async def announce_unpushed(self) -> int:
        """Announce the open alarms stored but never pushed: those of a commit whose answer
        was lost with the database's session (ingest held, found them stored when it tried
        again, and so had nothing to announce), or made just before the cloud stopped. How
        many there were."""
        rows = await self.db.fetch_all(
            "SELECT * FROM alarms WHERE pushed_at IS NULL AND state IN (?, ?)"
            " AND mode IN (?, ?) ORDER BY id",
            (AlarmState.ACTIVE.value, AlarmState.ACCEPTED.value, *(m.value for m in WORKED)),
        )
        if rows:
            await self.announce([Raised(alarm=Alarm.from_row(r), new=True) for r in rows])
        return len(rows)

    async def announce(self, raised: Iterable[Raised]) -> None:
        """What a batch (or a tick) did to alarms, once stored."""
        latest: dict[int, Alarm] = {}
        new_live: list[int] = []
        pushed_at = self.db.clock()
        pushed = datetime.fromtimestamp(pushed_at, UTC)
        for item in raised:
            alarm = item.alarm
            if alarm.mode not in WORKED:
                self.counts["test_alarms" if item.new else "test_alarm_updates"] += 1
                continue
            if item.new:  # a drill's goes to the duty room's pages too, marked, counted apart
                self.counts["alarms_raised" if alarm.mode is Mode.LIVE else "drill_alarms"] += 1
                new_live.append(alarm.id)
            elif item.change == "cleared":
                self.counts["alarms_cleared"] += 1
            else:
                self.counts["alarm_repeats"] += 1
            latest[alarm.id] = alarm
        if not latest:
            return
        fresh = set(new_live)
        pages = 0
        for alarm_id, alarm in latest.items():
            if alarm_id in fresh and alarm.pushed_at is None:
                alarm = alarm.model_copy(update={"pushed_at": pushed})
                if self.on_pushed is not None and alarm.mode is Mode.LIVE:
                    self.on_pushed(max(pushed_at - alarm.received_at.timestamp(), 0.0))
            pages = self.hub.publish(messages.alarm_changed(alarm))
        if not new_live:
            return

        def record(conn: Conn) -> None:
            mark_pushed(conn, new_live, pushed_at)
            self.notifications.announced(conn, new_live, pushed_at, pages)

        await self.db.write(record)
        if self.on_new_alarms is not None:
            self.on_new_alarms()
        for alarm_id in new_live:
            if latest[alarm_id].mode is not Mode.LIVE:  # a drill's call rings no real home
                continue
            for hook in self.on_raised:
                hook(latest[alarm_id])
