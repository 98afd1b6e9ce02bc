"""Ingest: the path of a batch from the broker to the record, one way:

  check ─▶ delivery order ─▶ unseen ids ─▶ rules ─▶ maintenance gate ─▶ ONE commit ─▶ Acks ─▶ tell
    └─ refusals, kept in the same commit

`handle_many()` is the whole path (`handle()` of one message) and never raises: bad input is
refused with a reason (counted, kept); a bug in our own code is recorded as an
`internal_error` rejection and the others go on. The rules see only ids the alarm book does
not have, and what they decide is stored in the same transaction as the id, so a redelivery
is never evaluated twice. Version-2 events are acknowledged to their gateways (`cmd/ack`,
`delivery.py`) only once committed, every message to the broker after that
(`consumer.py`), and nobody hears of an alarm that is not stored. Time-driven rules (clear
holds, silence, walk tests that ran out, gaps given up on, gateways whose refusals keep
coming) run on a tick.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from cloud.alarms.arrivals import Arrival, batch_arrival, event_arrival
from cloud.alarms.book import AlarmBook
from cloud.alarms.model import Raised
from cloud.db.database import Conn
from cloud.devices.maintenance import Maintenance
from cloud.errors import DatabaseUnavailable
from cloud.ingest.acks import send_ack
from cloud.ingest.check import Checked, Checker
from cloud.ingest.delivery import Delivery, StreamKey
from cloud.ingest.fair_share import FairShare
from cloud.ingest.hold import DatabaseHold
from cloud.ingest.rejects import RejectLog
from cloud.ingest.samples import SampleBuffer
from cloud.ingest.watermarks import read_streams, write_watermarks
from cloud.notify.announce import Announcer
from cloud.rules import Evaluation, RulesCore
from cloud.site.registry import Registry
from cloud.telemetry.base import TelemetryStore
from cloud.transport.base import MAX_BATCH, Received, Transport
from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import BrokerLink
from contract.models import (
    Event,
    GatewayState,
    Reply,
    Status,
    Telemetry,
)

log = logging.getLogger(__name__)


#: What the book stores of one message: None (seen before), an exception (the rules failed on
#: it), or the message with what the rules decided.
Plan = tuple[Arrival, Evaluation] | Exception | None


@dataclasses.dataclass(slots=True)
class _Accepted:
    """A checked event or telemetry batch, ready for the group commit."""

    topic: str
    payload: bytes
    message: Event | Telemetry
    received_at: float
    arrival: Arrival
    stream: StreamKey | None = None  # (gateway, boot) of a version-2 event


class Ingest:
    def __init__(
        self,
        *,
        registry: Registry,
        core: RulesCore,
        book: AlarmBook,
        store: TelemetryStore,
        announcer: Announcer,
        rejects: RejectLog,
        maintenance: Maintenance | None = None,
        transport: Transport | None = None,
        flush_interval_s: float = 0.2,
        tick_s: float = 1.0,
        max_pending_samples: int = 1_000_000,
        max_batch: int = MAX_BATCH,
        gap_hold_s: float = 2.0,
        gap_fault_s: float = 30.0,
        max_clock_ahead_s: float = 600.0,
        max_event_age_s: float = 30 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.shards_held: frozenset[int] = frozenset()  # consumed here (set by consumer.py)
        self.core = core
        self.book = book
        self.announcer = announcer
        self.rejects = rejects
        self.maintenance = maintenance
        self.transport = transport
        self.tick_s = tick_s
        #: At most this many messages in one group commit.
        self.max_batch = max_batch
        self.clock = clock
        self._counts: Counter[str] = Counter()
        #: asking the rules and storing what they decided, one at a time: a batch, a tick's
        #: released events and a status never interleave, so no id is evaluated twice
        self._deciding = asyncio.Lock()
        #: while the database cannot be reached, ingest holds (cloud/ingest/hold.py)
        self.hold = DatabaseHold(clock)
        #: a flooding gateway's messages wait in its own backlog (fair_share.py)
        self.fair: FairShare[Received] = FairShare(lambda item: item.gateway)
        self.checker = Checker(
            registry,
            rejects,
            max_clock_ahead_s=max_clock_ahead_s,
            max_event_age_s=max_event_age_s,
            on_refused=self.fair.refused,
        )
        self.samples = SampleBuffer(
            store, flush_interval_s=flush_interval_s, max_pending=max_pending_samples
        )
        #: version-2 events: what is committed per (gateway, boot), acks, gaps
        self.delivery: Delivery[_Accepted] = Delivery(
            hold_s=gap_hold_s, gap_fault_s=gap_fault_s, clock=clock
        )
        #: Gateways' answers to commands go here (the site's config push sets it).
        self.on_reply: Callable[[Reply], Awaitable[None]] | None = None
        self._no_link = BrokerLink()  # without a transport: never connected

    # ---- what the web app shows ----------------------------------------------------------

    @property
    def counts(self) -> Counter[str]:
        fair = self.fair.counts
        return (
            self._counts
            + self.checker.counts
            + self.samples.counts
            + Counter(
                put_aside=fair["put_aside"] + fair["dropped"],
                put_aside_dropped=fair["dropped"],
                database_holds=self.hold.holds,
            )
        )

    @property
    def link(self) -> BrokerLink:
        return self.transport.link if self.transport is not None else self._no_link

    @property
    def connected(self) -> asyncio.Event:
        return self.link.connected

    @property
    def drops(self) -> DropWatch:
        assert self.transport is not None
        return self.transport.drops

    # ---- the path of the messages -------------------------------------------------------

    async def handle(self, topic: str, payload: bytes, received_at: float | None = None) -> None:
        """The whole path of one message: checked, stored, evaluated, announced."""
        received_at = self.clock() if received_at is None else received_at
        await self.announce(await self.handle_many([(topic, payload, received_at)]))

    async def handle_many(self, batch: Sequence[tuple[str, bytes, float]]) -> list[Raised]:
        """Check (`Checker.check_many`) and store (`store_checked`) a batch of messages
        (topic, payload, received_at); what is to be announced once they are stored."""
        return await self.store_checked(self.checker.check_many(batch))

    async def store_checked(self, checked: Sequence[Checked]) -> list[Raised]:
        """Store checked messages in order with ONE commit for all the events, telemetry
        batches and refusals among them; returns what is to be announced (`announce`) once
        they are stored — and, by the consumer, acknowledged.

        Never raises: an internal error in one (the rules or the storing) is recorded as an
        `internal_error` rejection for that one; if the group commit itself fails, the batch is
        handled again message by message. A status message is a boundary: what came before it
        is stored first, so the rules see every message in the order the broker delivered
        them."""
        announce: list[Raised] = []
        group: list[_Accepted] = []
        for topic, payload, received_at, message in checked:
            try:
                if isinstance(message, Reply):  # a gateway's answer to a command: handed on
                    self._counts["replies"] += 1
                    if self.on_reply is not None:
                        await self.on_reply(message)
                elif isinstance(message, Status):
                    announce += await self._store(group)
                    group = []
                    announce += await self._status(message, received_at)
                else:
                    group.append(self._accept(topic, payload, message, received_at))
            except Exception as exc:  # never let one message stop ingest
                self.checker.internal_error(topic, payload, exc, received_at)
        announce += await self._store(group)
        return announce

    def _accept(
        self, topic: str, payload: bytes, message: Event | Telemetry, received_at: float
    ) -> _Accepted:
        if isinstance(message, Event):
            stream = (message.gateway, message.boot) if message.v >= 2 else None
            arrival = event_arrival(message, received_at)
            return _Accepted(topic, payload, message, received_at, arrival, stream)
        arrival = batch_arrival(message.id, message.gateway, len(message.readings), received_at)
        return _Accepted(topic, payload, message, received_at, arrival)

    async def _store(self, group: list[_Accepted]) -> list[Raised]:
        """Store a group of checked messages with one commit (with the refusals noted so far);
        acknowledge the version-2 events to their gateways; what to announce.

        Version-2 events pass `Delivery` first: one after a gap waits (held, not evaluated)
        until the missing ones arrive or `gap_hold_s` has passed."""
        streams = {item.stream for item in group if item.stream is not None}
        streams |= {key for key, _ in self.checker.refused_streams}
        unknown = self.delivery.unknown(streams)
        if unknown:  # streams met for the first time since the start: what is stored of them
            found = await self.hold.until_stored(
                lambda: self.book.db.read(lambda c: read_streams(c, unknown))
            )
            for key, (upto, above) in found.items():
                self.delivery.load(key, upto, above)
        ready: list[_Accepted] = []
        for item in group:
            if item.stream is None:
                ready.append(item)
            else:
                ready += self.delivery.admit(item.stream, item.message.seq, item)
        out = await self._commit(ready)
        for key in streams:
            send_ack(self.transport, self.delivery.ack(key), self._counts)
        return out

    async def _commit(self, ready: list[_Accepted]) -> list[Raised]:
        """Unseen ids → rules → maintenance gate → ONE transaction (the messages with what
        the rules decided, the refusals noted so far, the delivery watermarks); then tell
        `Delivery` what is committed. What to announce."""
        if not ready and not self.rejects.has_pending and not self.checker.refused_streams:
            return []
        async with self._deciding:
            plans = await self.hold.until_stored(lambda: self._decide(ready))
            return await self.hold.until_stored(lambda: self._record(ready, plans))

    async def _decide(self, ready: list[_Accepted]) -> list[Plan]:
        """Per message: None if the book has its id already (the rules are not asked), the
        rules' decisions through the maintenance gate, or the exception the rules raised."""
        unseen = await self.book.unseen([item.arrival for item in ready])
        plans: list[Plan] = []
        for item, new in zip(ready, unseen, strict=True):
            if not new:
                plans.append(None)
                continue
            message, at = item.message, item.received_at
            try:
                if isinstance(message, Event):
                    decided = self._gate(self.core.event(message, at), at)
                    if message.drill is not None and self.maintenance is not None:
                        decided = self._drill(message, decided, at)
                else:
                    decided = self._gate(
                        self.core.readings(message.gateway, message.readings, at), at
                    )
                plans.append((item.arrival, decided))
            except Exception as exc:  # reported as internal_error, the others go on
                plans.append(exc)
        return plans

    async def _record(self, ready: list[_Accepted], plans: list[Plan]) -> list[Raised]:
        refused = self.checker.refused_streams
        pending = self.rejects.take()
        self.checker.refused_streams = []
        marks = self.delivery.watermarks()

        def extra(conn: Conn) -> None:
            self.rejects.write_sync(conn, pending)
            write_watermarks(conn, marks, self.clock())

        try:
            results = await self.book.record(plans, extra=extra)
        except Exception as exc:
            self.rejects.put_back(pending)
            self.checker.refused_streams[:0] = refused
            self.delivery.remark(marks)
            if isinstance(exc, DatabaseUnavailable):  # not the messages' fault: held, tried again
                raise
            if len(ready) <= 1:
                for item in ready:
                    self.checker.internal_error(item.topic, item.payload, exc, item.received_at)
                if not ready:
                    log.exception("writing rejections failed; kept for the next commit")
                return []
            # nothing of the group is stored: each on its own (the rules are not asked again),
            # so one cannot spoil the rest
            log.exception("group commit of %d messages failed; storing one by one", len(ready))
            self._counts["group_fallbacks"] += 1
            out: list[Raised] = []
            for item, plan in zip(ready, plans, strict=True):
                out += await self._record([item], [plan])
            return out
        self._counts["group_commits"] += 1
        for key, seq in refused:
            self.delivery.committed(key, [seq])
        out = []
        for item, result in zip(ready, results, strict=True):
            if isinstance(result, Exception):
                self.checker.internal_error(item.topic, item.payload, result, item.received_at)
                continue
            if item.stream is not None:
                self.delivery.committed(item.stream, [item.message.seq])
            if result is None:
                self._counts["duplicates"] += 1
                continue
            if isinstance(item.message, Event):
                self._counts["events"] += 1
            else:
                self.samples.add(item.message)
            out += result
        return out

    async def _status(self, status: Status, received_at: float) -> list[Raised]:
        previous = await self.hold.until_stored(
            lambda: self.book.record_status(status, received_at)
        )
        self._counts["status"] += 1
        if previous is not None:
            log.info("gateway=%s state=%s was=%s", status.gateway, status.state, previous)
        self.announcer.gateway_state(status.gateway, status.state.value)
        online = status.state is GatewayState.ONLINE
        async with self._deciding:
            decided = self._gate(self.core.status(status.gateway, online, received_at), received_at)
            return await self.hold.until_stored(lambda: self.book.apply(decided, received_at))

    def _gate(self, evaluation: Evaluation, at: float) -> Evaluation:
        """Devices under a walk test or in a maintenance window: their alarms are tests."""
        self._counts["inhibited"] += evaluation.muted
        return evaluation if self.maintenance is None else self.maintenance.gate(evaluation, at)

    def _drill(self, event: Event, evaluation: Evaluation, at: float) -> Evaluation:
        """A drill's incident if its drill runs and covers the device, else real (counted)."""
        assert event.drill is not None and self.maintenance is not None
        evaluation, why = self.maintenance.drill_gate(evaluation, event.drill, at)
        self._counts["drill_marks_refused" if why else "drill_events"] += 1
        if why:
            log.warning("event %s of %s/%s: %s", event.id, event.gateway, event.device, why)
        return evaluation

    async def announce(self, raised: list[Raised]) -> None:
        """Tell the duty room about stored alarms (never before they are stored)."""
        if raised:
            await self.announcer.announce(raised)

    # ---- time-driven rules ----------------------------------------------------------------

    async def tick(self) -> None:
        """Clear holds, silence, gateways that stopped talking, walk tests that ran out; held
        events past their wait, gaps given up on, replays to ask for; rejections to write;
        gateways whose messages keep being refused."""
        now = self.clock()
        if self.maintenance is not None:
            for window in await self.maintenance.expire(now):
                closed = await self.book.close_window(window.id, "system")
                log.info(
                    "%s #%d ended; %d test alarm(s) closed", window.mode, window.id, len(closed)
                )
        if not self.connected.is_set():
            self.core.blind(now)  # our outage, not the gateways'
        released, gaps, asks = self.delivery.expire()
        announce = await self._commit(released)  # also writes rejections noted since
        for due in asks:
            send_ack(self.transport, due, self._counts)
        evaluations = [self.core.tick(now)]
        for gap in gaps:
            log.error(
                "events missing gateway=%s boot=%s seq=%d..%d (asked again since %.0f s)",
                gap.gateway,
                gap.boot,
                gap.first,
                gap.last,
                now - gap.since,
            )
            evaluations.append(
                self.core.events_missing(gap.gateway, gap.boot, gap.first, gap.last, gap.since, now)
            )
        for gateway, count in self.checker.take_refusals().items():
            evaluations.append(self.core.refused(gateway, count, now))
        evaluation = Evaluation(
            [d for e in evaluations for d in e.decisions],
            [i for e in evaluations for i in e.inhibited],
            sum(e.muted for e in evaluations),
        )
        if evaluation.decisions or evaluation.inhibited or evaluation.muted:
            async with self._deciding:
                gated = self._gate(evaluation, now)
                announce += await self.hold.until_stored(lambda: self.book.apply(gated, now))
        await self.announce(announce)

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except DatabaseUnavailable as exc:  # before it decided anything: the next tick
                log.warning("rules tick skipped: %s", exc)
            except Exception:
                log.exception("rules tick failed")

    def count_unread(self, n: int) -> None:
        """Messages received and dropped unread (a flooding gateway's full backlog)."""
        self.checker.counts["messages"] += n

    async def flush(self) -> int:
        """Write the readings waiting for the time-series store now."""
        return await self.samples.flush()
