"""Ingest: every message from the broker is checked, stored, evaluated and announced.

Evaluation is the rules core's (`cloud/rules/`); what it decides passes the maintenance gate
(devices under a walk test or in a maintenance window make test alarms) and is stored by the
alarm book in the same transaction as the message id, so a redelivery is never evaluated
twice. Time-driven rules (clear holds, silence, expiring walk tests) run on a tick.

`Ingest.handle_many()` is the whole path for a batch of messages (`handle()` for one) and
never raises: bad input is rejected with a reason (counted, kept), and even a bug in our own
code is caught, recorded as an `internal_error` rejection and the loop goes on. `Ingest.run()`
owns the aiomqtt session and its reconnect loop. It works in group commits: the first message
and whatever else is already queued (up to `max_batch`) are checked, then stored with ONE
commit (`AlarmBook.record_many`, which also writes the batch's rejections), then
acknowledged — to the broker, and to each gateway that speaks message version 2 on its
`cmd/ack` (`cloud/delivery.py`: the gateway forgets an event only then) — then announced. So
a crash of this process between receipt and storage makes the broker (or the gateway)
deliver the batch again, and nobody hears of an alarm that is not stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import socket
import sqlite3
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from pydantic import ValidationError

from cloud.alarms import Alarm, AlarmBook, Arrival, Mode, Raised, batch_arrival, event_arrival
from cloud.broker_drops import SYS_TOPICS, DropWatch
from cloud.broker_link import Backoff, BrokerLink
from cloud.db import run_on_db_thread
from cloud.delivery import AckDue, Delivery, StreamKey
from cloud.fair_share import FairShare
from cloud.hub import LiveHub
from cloud.maintenance import Maintenance
from cloud.registry import Registry
from cloud.rejects import Reason, RejectLog
from cloud.rules import Evaluation, RulesCore
from cloud.store.base import Sample, TelemetryStore
from contract import topics
from contract.models import (
    MAX_EVENT_BYTES,
    MAX_STATUS_BYTES,
    MAX_TELEMETRY_BYTES,
    Ack,
    Command,
    Event,
    GatewayState,
    Kind,
    Reply,
    Status,
    Telemetry,
    decode,
    encode,
    utc_now,
)
from contract.topics import Channel, TopicError

log = logging.getLogger(__name__)

_LIMITS = {
    Channel.EVENT: MAX_EVENT_BYTES,
    Channel.TELEMETRY: MAX_TELEMETRY_BYTES,
    Channel.STATUS: MAX_STATUS_BYTES,
    Channel.REPLY: MAX_STATUS_BYTES,
}
_BOOT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_MODELS: dict[Channel, type[Event] | type[Telemetry] | type[Status] | type[Reply]] = {
    Channel.EVENT: Event,
    Channel.TELEMETRY: Telemetry,
    Channel.STATUS: Status,
    Channel.REPLY: Reply,
}


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class Ingest:
    def __init__(
        self,
        *,
        registry: Registry,
        core: RulesCore,
        book: AlarmBook,
        store: TelemetryStore,
        hub: LiveHub,
        rejects: RejectLog,
        maintenance: Maintenance | None = None,
        on_new_alarms: Callable[[], None] | None = None,
        link: BrokerLink | None = None,
        flush_interval_s: float = 0.2,
        tick_s: float = 1.0,
        max_pending_samples: int = 1_000_000,
        max_batch: int = 500,
        gap_hold_s: float = 2.0,
        gap_fault_s: float = 30.0,
        max_clock_ahead_s: float = 600.0,
        max_event_age_s: float = 30 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.core = core
        self.maintenance = maintenance
        self.on_new_alarms = on_new_alarms
        self.tick_s = tick_s
        self.book = book
        self.store = store
        self.hub = hub
        self.rejects = rejects
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.max_pending_samples = max_pending_samples
        #: At most this many messages in one group commit.
        self.max_batch = max_batch
        self.max_clock_ahead_s = max_clock_ahead_s
        self.max_event_age_s = max_event_age_s
        self.counts: Counter[str] = Counter()
        #: version-2 events: what is committed per (gateway, boot), acks, gaps
        self.delivery: Delivery[_Accepted] = Delivery(
            hold_s=gap_hold_s, gap_fault_s=gap_fault_s, clock=clock
        )
        #: The session's state (up, or down since when and why), for the web app.
        self.link = link or BrokerLink()
        self.connected = self.link.connected
        self._client: aiomqtt.Client | None = None
        #: The broker's count of dropped messages (Mosquitto's $SYS).
        self.drops = DropWatch()
        self._pending: list[Sample] = []
        self._flusher: asyncio.Task[None] | None = None
        #: Gateways' answers to commands go here (cloud/config_push.py sets it).
        self.on_reply: Callable[[Reply], Awaitable[None]] | None = None
        self._ticker: asyncio.Task[None] | None = None
        #: refused version-2 events (their stream is acknowledged once the refusal is kept)
        self._refused: list[tuple[StreamKey, int]] = []
        #: refusals per gateway since the last tick (the `invalid_input` supervision rule)
        self._refused_by_gateway: Counter[str] = Counter()
        self._acks_in_flight: set[asyncio.Task[None]] = set()
        #: a flooding gateway's messages wait in its own backlog (cloud/fair_share.py)
        self.fair: FairShare[_Received] = FairShare(_gateway_of)

    # ---- the path of the messages -------------------------------------------------------

    async def handle(self, topic: str, payload: bytes, received_at: float | None = None) -> None:
        """The whole path of one message: checked, stored, evaluated, announced."""
        received_at = self.clock() if received_at is None else received_at
        await self._announce(await self.handle_many([(topic, payload, received_at)]))

    async def handle_many(self, messages: Sequence[tuple[str, bytes, float]]) -> list[Raised]:
        """Check and store a batch of messages (topic, payload, received_at), in order, with
        ONE commit for all the events, telemetry batches and rejections among them; returns
        what is to be announced (`_announce`) once they are stored — and, in `run()`,
        acknowledged.

        Never raises: a bad message is rejected with its reason and the others go on; an
        internal error in one (the rules or the storing) is recorded as an `internal_error`
        rejection for that one; if the group commit itself fails, the batch is handled again
        message by message. A status message is a boundary: what came before it is stored
        first, so the rules see every message in the order the broker delivered them."""
        self.counts["messages"] += len(messages)
        announce: list[Raised] = []
        group: list[_Accepted] = []
        for topic, payload, received_at in messages:
            try:
                message = self._check(topic, payload, received_at)
                if message is None:
                    continue
                if isinstance(message, Reply):  # a gateway's answer to a command: handed on
                    self.counts["replies"] += 1
                    if self.on_reply is not None:
                        await self.on_reply(message)
                elif isinstance(message, Status):
                    announce += await self._store(group)
                    group = []
                    announce += await self._status(message, received_at)
                else:
                    group.append(self._accept(topic, payload, message, received_at))
            except Exception as exc:  # never let one message stop ingest
                self._internal_error(topic, payload, exc, received_at)
        announce += await self._store(group)
        return announce

    def _internal_error(
        self, topic: str, payload: bytes, exc: BaseException, received_at: float
    ) -> None:
        log.error("internal error handling %s", topic, exc_info=exc)
        try:
            self._reject(
                topic,
                payload,
                Reason.INTERNAL_ERROR,
                f"{type(exc).__name__}: {exc}",
                received_at,
                acknowledge=False,  # not kept in the record: the gateway may send it again
            )
        except Exception:
            log.exception("could not record the internal error of %s", topic)

    def _reject(
        self,
        topic: str,
        payload: bytes,
        reason: Reason,
        detail: str,
        received_at: float,
        *,
        gateway: str | None = None,
        acknowledge: bool = True,
    ) -> None:
        """Count and keep a refused message (written with the next commit). A refused
        version-2 event is acknowledged once its refusal is kept, so its gateway moves on."""
        rejection = self.rejects.note(topic, gateway, payload, reason, detail, received_at)
        if gateway is not None:
            self._refused_by_gateway[rejection.gateway] += 1
            self.fair.refused(rejection.gateway, received_at)
            if acknowledge and topic.endswith("/event"):
                stream = _stream_of(payload)
                if stream is not None:
                    self._refused.append(((gateway, stream[0]), stream[1]))

    def _check(
        self, topic: str, payload: bytes, received_at: float
    ) -> Event | Telemetry | Status | Reply | None:
        """The message, or None if it is not ingest's business or was refused (noted)."""
        try:
            parsed = topics.parse(topic)
        except TopicError as exc:
            self._reject(topic, payload, Reason.BAD_TOPIC, str(exc), received_at)
            return None
        model = _MODELS.get(parsed.channel)
        if model is None:
            return None  # our own commands: not ingest's business
        gateway = parsed.gateway
        limit = _LIMITS[parsed.channel]
        if len(payload) > limit:
            detail = f"{len(payload)} bytes, the limit for {parsed.channel} is {limit}"
            self._reject(topic, payload, Reason.OVERSIZE, detail, received_at, gateway=gateway)
            return None
        try:
            # strict: JSON types must be the contract's ("5" is not a number, 1763784900 not a
            # time), no key twice, times in range
            message = decode(model, payload)
        except ValidationError as exc:
            malformed = any(err["type"] == "json_invalid" for err in exc.errors())
            reason = Reason.MALFORMED_JSON if malformed else Reason.INVALID
            self._reject(topic, payload, reason, _describe(exc), received_at, gateway=gateway)
            return None
        if message.gateway != gateway:
            detail = f"payload says gateway {message.gateway!r}, topic says {gateway!r}"
            self._reject(
                topic, payload, Reason.GATEWAY_MISMATCH, detail, received_at, gateway=gateway
            )
            return None
        if not self.registry.has_gateway(gateway):
            detail = f"gateway {gateway!r} is not registered"
            self._reject(topic, payload, Reason.UNKNOWN_GATEWAY, detail, received_at)
            return None
        if isinstance(message, Event):
            unknown = self._unknown_devices(gateway, {message.device})
            if unknown or (message.kind is not Kind.GATEWAY and message.device == gateway):
                detail = f"device {message.device!r} is not registered on gateway {gateway!r}"
                self._reject(
                    topic, payload, Reason.UNKNOWN_DEVICE, detail, received_at, gateway=gateway
                )
                return None
            return self._dated(topic, payload, message, received_at)
        if isinstance(message, Telemetry):
            unknown = self._unknown_devices(gateway, {r.device for r in message.readings})
            if unknown:
                detail = f"devices {unknown} are not registered on gateway {gateway!r}"
                self._reject(
                    topic, payload, Reason.UNKNOWN_DEVICE, detail, received_at, gateway=gateway
                )
                return None
            for reading in message.readings:
                why = self._implausible(reading.ts.timestamp(), received_at)
                if why is not None:
                    detail = f"reading of {reading.device!r}: {why}"
                    self._reject(
                        topic,
                        payload,
                        Reason.IMPLAUSIBLE_TIME,
                        detail,
                        received_at,
                        gateway=gateway,
                    )
                    return None
        return message

    def _dated(self, topic: str, payload: bytes, event: Event, received_at: float) -> Event | None:
        """An event's time against the cloud's clock. A synchronised clock far off is refused;
        an unsynchronised one (a Pi without RTC before NTP) is dated by its arrival instead."""
        why = self._implausible(event.ts.timestamp(), received_at)
        if why is None:
            return event
        if event.clock_synced:
            self._reject(
                topic, payload, Reason.IMPLAUSIBLE_TIME, why, received_at, gateway=event.gateway
            )
            return None
        self.counts["dated_on_arrival"] += 1
        return event.model_copy(update={"ts": datetime.fromtimestamp(received_at, UTC)})

    def _implausible(self, ts: float, received_at: float) -> str | None:
        if ts > received_at + self.max_clock_ahead_s:
            return f"time is {ts - received_at:.0f} s ahead of the cloud's clock"
        if ts < received_at - self.max_event_age_s:
            return f"time is {(received_at - ts) / 86400:.1f} days old"
        return None

    def _unknown_devices(self, gateway: str, devices: set[str]) -> list[str]:
        return sorted(
            d for d in devices if d != gateway and self.registry.device(gateway, d) is None
        )

    def _accept(
        self, topic: str, payload: bytes, message: Event | Telemetry, received_at: float
    ) -> _Accepted:
        """A checked event or telemetry batch, ready for the group commit; the rules are asked
        about it (in order, on the event loop) only if its id is new."""
        stream: StreamKey | None = None
        if isinstance(message, Event):
            event = message
            if event.v >= 2:
                stream = (event.gateway, event.boot)
            arrival = event_arrival(
                event,
                received_at,
                lambda: self._gate(self.core.event(event, received_at), received_at),
            )
        else:
            batch = message
            arrival = batch_arrival(
                batch.id,
                batch.gateway,
                len(batch.readings),
                received_at,
                lambda: self._gate(
                    self.core.readings(batch.gateway, batch.readings, received_at), received_at
                ),
            )
        return _Accepted(topic, payload, message, received_at, arrival, stream)

    async def _store(self, group: list[_Accepted]) -> list[Raised]:
        """Store a group of checked messages with one commit (with the rejections noted so
        far); acknowledge the version-2 events to their gateways; what to announce.

        Version-2 events pass `Delivery` first: one after a gap waits (held, not evaluated)
        until the missing ones arrive or `gap_hold_s` has passed."""
        streams = {item.stream for item in group if item.stream is not None}
        streams |= {key for key, _ in self._refused}
        await self._load_streams(streams)
        ready: list[_Accepted] = []
        for item in group:
            if item.stream is None:
                ready.append(item)
            else:
                ready += self.delivery.admit(item.stream, _seq(item), item)
        out = await self._commit(ready)
        for key in streams:
            self._send_ack(self.delivery.ack(key))
        return out

    async def _commit(self, ready: list[_Accepted]) -> list[Raised]:
        """ONE transaction: the messages, the rejections noted so far and the delivery
        watermarks; then tell `Delivery` what is committed."""
        if not ready and not self.rejects.has_pending and not self._refused:
            return []
        pending = self.rejects.take()
        refused, self._refused = self._refused, []
        marks = self.delivery.watermarks()

        def extra(conn: sqlite3.Connection) -> None:
            self.rejects.write_sync(conn, pending)
            _write_watermarks(conn, marks, self.clock())

        try:
            results = await self.book.record_many([item.arrival for item in ready], extra=extra)
        except Exception as exc:
            self.rejects.put_back(pending)
            self._refused[:0] = refused
            self.delivery.remark(marks)
            if len(ready) <= 1:
                for item in ready:
                    self._internal_error(item.topic, item.payload, exc, item.received_at)
                if not ready:
                    log.exception("writing rejections failed; kept for the next commit")
                return []
            # nothing of the group is stored: try each on its own, so one cannot spoil the rest
            log.exception("group commit of %d messages failed; storing one by one", len(ready))
            self.counts["group_fallbacks"] += 1
            out: list[Raised] = []
            for item in ready:
                out += await self._commit([item])
            return out
        self.counts["group_commits"] += 1
        for key, seq in refused:
            self.delivery.committed(key, [seq])
        out = []
        for item, result in zip(ready, results, strict=True):
            if isinstance(result, Exception):
                self._internal_error(item.topic, item.payload, result, item.received_at)
                continue
            if item.stream is not None:
                self.delivery.committed(item.stream, [_seq(item)])
            if result is None:
                self.counts["duplicates"] += 1
            else:
                if isinstance(item.message, Event):
                    self.counts["events"] += 1
                else:
                    self._stored_telemetry(item.message)
                out += result
        return out

    async def _load_streams(self, keys: set[StreamKey]) -> None:
        """Streams met for the first time since the start: what the database has of them."""
        unknown = self.delivery.unknown(keys)
        if not unknown:
            return
        async with self.book.lock:
            found = await run_on_db_thread(self.book.db, lambda c: _read_streams(c, unknown))
        for key, (upto, above) in found.items():
            self.delivery.load(key, upto, above)

    def _send_ack(self, due: AckDue) -> None:
        """Tell a gateway what is committed (QoS 1, not awaited: a lost one is made good by
        the gateway sending again, which is acknowledged again)."""
        client = self._client
        if client is None:
            self.counts["acks_unsent"] += 1
            return
        ack = Ack(boot=due.boot, upto=due.upto, replay=due.replay, ts=utc_now())
        self.counts["acks_sent"] += 1
        if due.replay:
            self.counts["replays_asked"] += 1
        task = asyncio.create_task(_publish(client, topics.command(due.gateway, "ack"), ack))
        self._acks_in_flight.add(task)
        task.add_done_callback(self._acks_in_flight.discard)

    def _stored_telemetry(self, batch: Telemetry) -> None:
        self.counts["telemetry_batches"] += 1
        for reading in batch.readings:
            for unit, value in reading.values.present().items():
                self._pending.append(
                    Sample(
                        gateway=batch.gateway,
                        device=reading.device,
                        kind=reading.kind.value,
                        field=unit,
                        ts=reading.ts,
                        value=value,
                    )
                )
        self.counts["readings"] += len(batch.readings)

    async def _status(self, status: Status, received_at: float) -> list[Raised]:
        previous = await self.book.record_status(status, received_at)
        self.counts["status"] += 1
        if previous is not None:
            log.info("gateway=%s state=%s was=%s", status.gateway, status.state, previous)
        self.hub.publish({"type": "gateway", "gateway": status.gateway, "state": status.state})
        online = status.state is GatewayState.ONLINE
        return await self.book.apply(
            lambda: self._gate(self.core.status(status.gateway, online, received_at), received_at),
            received_at,
        )

    def _gate(self, evaluation: Evaluation, at: float) -> Evaluation:
        """Devices under a walk test or in a maintenance window: their alarms are tests."""
        self.counts["inhibited"] += evaluation.muted
        if self.maintenance is None or not self.maintenance.active:
            return evaluation
        gated = []
        for decision in evaluation.decisions:
            mode, window = self.maintenance.mode_for(decision.gateway, decision.device, at)
            if mode is not Mode.LIVE:
                decision = dataclasses.replace(decision, mode=mode.value, window=window)
            gated.append(decision)
        return Evaluation(gated, evaluation.inhibited, evaluation.muted)

    async def _announce(self, raised: list[Raised]) -> None:
        """Tell the duty room about stored alarms (never before they are stored). A new live
        alarm's message carries the time it is pushed, which is also put on its timeline."""
        if not raised:
            return
        new_live: list[int] = []
        pushed_at = self.clock()
        pushed = datetime.fromtimestamp(pushed_at, UTC)
        for item in raised:
            alarm = item.alarm
            if alarm.mode is not Mode.LIVE:
                self.counts["test_alarms" if item.new else "test_alarm_updates"] += 1
                continue
            if item.new:
                self.counts["alarms_raised"] += 1
                new_live.append(alarm.id)
                if alarm.pushed_at is None:
                    alarm = alarm.model_copy(update={"pushed_at": pushed})
            elif item.change == "cleared":
                self.counts["alarms_cleared"] += 1
            else:
                self.counts["alarm_repeats"] += 1
            self.hub.publish(alarm_message(alarm))
        if new_live:
            await self.book.mark_pushed(new_live, pushed_at, self.hub.listeners)
            if self.on_new_alarms is not None:
                self.on_new_alarms()

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
            self._send_ack(due)
        evaluation = self.core.tick(now)
        for gap in gaps:
            log.error(
                "events missing gateway=%s boot=%s seq=%d..%d (asked again since %.0f s)",
                gap.gateway,
                gap.boot,
                gap.first,
                gap.last,
                now - gap.since,
            )
            evaluation = _joined(
                evaluation,
                self.core.events_missing(
                    gap.gateway, gap.boot, gap.first, gap.last, gap.since, now
                ),
            )
        refused, self._refused_by_gateway = self._refused_by_gateway, Counter()
        for gateway, count in refused.items():
            evaluation = _joined(evaluation, self.core.refused(gateway, count, now))
        if evaluation.decisions or evaluation.inhibited or evaluation.muted:
            announce += await self.book.apply(lambda: self._gate(evaluation, now), now)
        await self._announce(announce)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except Exception:
                log.exception("rules tick failed")

    # ---- telemetry writes, batched off the message path ----------------------------------

    async def flush(self) -> int:
        batch, self._pending = self._pending, []
        if batch:
            try:
                await self.store.write(batch)
            except Exception:
                # keep them for the next try; the store may come back
                self._pending = batch + self._pending
                excess = len(self._pending) - self.max_pending_samples
                if excess > 0:  # bounded: the oldest readings go first, and are counted
                    del self._pending[:excess]
                    self.counts["samples_dropped"] += excess
                log.exception("telemetry store write failed; %d samples kept", len(self._pending))
                self.counts["store_errors"] += 1
                return 0
            self.counts["samples_stored"] += len(batch)
        return len(batch)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()

    # ---- the MQTT session -----------------------------------------------------------------

    async def run(
        self,
        *,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        client_id: str,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        tls_ca_file: Path | None = None,
    ) -> None:
        """Consume until cancelled. A broker that is not there (at start-up too) or goes away
        is tried again and again with back-off (`retry_min_s` doubling up to `retry_max_s`,
        jittered; from the start again once a session held for `retry_max_s`); `self.link`
        says meanwhile since when it is missing and why. With `tls_ca_file`, over TLS (1.2+)
        trusting that CA and checking the broker's name."""
        self._flusher = asyncio.create_task(self._flush_forever())
        self._ticker = asyncio.create_task(self._tick_forever())
        self.link.address = f"{host}:{port}"
        backoff = Backoff(retry_min_s, retry_max_s)
        try:
            while True:
                self.link.attempting()
                try:
                    await self._session(host, port, username, password, client_id, tls_ca_file)
                    error = "the broker ended the session"
                except aiomqtt.MqttError as exc:
                    error = str(exc) or type(exc).__name__
                self._client = None
                if self.link.held_for() >= retry_max_s:
                    backoff.reset()
                delay = backoff.next()
                self.link.down(error, delay)
                await asyncio.sleep(delay)
        finally:
            self._flusher.cancel()
            self._ticker.cancel()
            await self.flush()

    async def _session(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        client_id: str,
        tls_ca_file: Path | None = None,
    ) -> None:
        tls = None
        if tls_ca_file is not None:
            tls = ssl.create_default_context(cafile=str(tls_ca_file))
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
        client = aiomqtt.Client(
            host,
            port,
            username=username,
            password=password,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            # a persistent session: what arrives while we are away waits for us
            clean_session=False,
            keepalive=15,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            tls_context=tls,
        )
        client.pending_calls_threshold = 1000
        # Acknowledge only after handling (paho's manual ack; aiomqtt does not wrap it).
        client._client.manual_ack_set(True)
        async with client:
            self._client = client
            for channel in (Channel.STATUS, Channel.EVENT, Channel.TELEMETRY, Channel.REPLY):
                await client.subscribe(topics.subscription(channel), qos=1)
            self.drops.subscribed()
            await client.subscribe([(topic, 0) for topic in SYS_TOPICS])
            self.link.up()
            messages = _NextMessage(client)
            queue = client._queue  # what len(client.messages) counts; no await to drain it
            try:
                await self._consume(client, messages, queue)
            finally:
                messages.close()

    async def _consume(
        self, client: aiomqtt.Client, messages: _NextMessage, queue: asyncio.Queue[Any]
    ) -> None:
        while True:
            # Group commit: what is waiting already (never waiting for more, unless there
            # is nothing at all), stored with one commit, then acknowledged, announced.
            if self.fair.due(self.clock()):
                wait: float | None = 0.0
            elif self.fair.backlog:  # a flooding gateway's backlog waits for its rate
                wait = 0.05
            else:
                wait = None
            arrived = await messages.first(wait)
            while len(arrived) < self.max_batch and not queue.empty():
                arrived.append(queue.get_nowait())
            received_at = self.clock()
            fresh: list[_Received] = []
            for message in arrived:
                topic = str(message.topic)
                if topic.startswith("$SYS/"):
                    payload = _payload_bytes(message.payload)
                    self.drops.heard(topic, payload, retained=message.retain)
                    continue
                fresh.append(_Received(topic, _payload_bytes(message.payload), message))
            batch, put_aside = self.fair.schedule(fresh, self.max_batch, received_at)
            for item in put_aside:  # a flooding gateway's: the broker goes on delivering
                item.ack(client)
            self.counts["put_aside"] += len(put_aside)
            dropped = self.fair.counts["dropped"] - self.counts["put_aside_dropped"]
            if dropped:  # received, and dropped unread: the flooding gateway's backlog is full
                self.counts["put_aside_dropped"] += dropped
                self.counts["messages"] += dropped
            if not batch:
                continue
            work = [(item.topic, item.payload, received_at) for item in batch]
            announce = await self.handle_many(work)
            for item in batch:  # only once stored (or rejected, recorded)
                item.ack(client)
            await self._announce(announce)

    async def send_command(self, gateway: str, name: str, command: Command) -> bool:
        """Publish a command to a gateway (QoS 1); False if the broker is not reachable now."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(topics.command(gateway, name), encode(command), qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("command %s to %s not sent: %s", name, gateway, exc)
            return False
        return True


class _NextMessage:
    """The next message off aiomqtt's queue, waited for at most a while, never lost.

    aiomqtt's own iterator loses a message when a wait on it is cancelled just after its
    inner `queue.get()` took one (`asyncio.wait_for(anext(client.messages), t)` timing out
    at the wrong moment: seen as a valid alarm never stored, about once in a few thousand
    waits). Here the one waiting `queue.get()` is a task of its own that no timeout cancels:
    it is done exactly when it has taken a message, a wait that ends empty-handed leaves it
    waiting, and the next call returns its message first (it is the oldest).
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        self._queue = client._queue
        self._disconnected = client._disconnected
        self._next: asyncio.Task[aiomqtt.Message] | None = None

    async def first(self, wait: float | None) -> list[aiomqtt.Message]:
        """[the next message], waiting for it at most `wait` seconds (None: until it comes;
        0: only if one is here already) — or [] if none came. The caller may then drain the
        queue without awaiting: nothing older than what is in it is held here."""
        if self._next is None:
            if not self._queue.empty():
                return [self._queue.get_nowait()]
            if wait == 0:
                return []
            self._next = asyncio.ensure_future(self._queue.get())
        if not self._next.done() and wait != 0:
            await asyncio.wait(
                (self._next, self._disconnected),
                timeout=wait,
                return_when=asyncio.FIRST_COMPLETED,
            )
        if not self._next.done():
            if self._disconnected.done():
                raise aiomqtt.MqttError("Disconnected during message iteration") from (
                    self._disconnected.exception()
                )
            return []
        task, self._next = self._next, None
        return [task.result()]

    def close(self) -> None:
        """The session is over: a message taken but not handled is not acknowledged, so the
        broker delivers it again."""
        if self._next is not None:
            self._next.cancel()
            self._next = None


@dataclasses.dataclass(slots=True)
class _Accepted:
    topic: str
    payload: bytes
    message: Event | Telemetry
    received_at: float
    arrival: Arrival
    stream: StreamKey | None = None  # (gateway, boot) of a version-2 event


def _seq(item: _Accepted) -> int:
    return item.message.seq


def _stream_of(payload: bytes) -> tuple[str, int] | None:
    """(boot, seq) of a refused event that asked for the cloud's acknowledgement (version 2),
    if they can be read at all."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("v") != 2:
        return None
    boot, seq = data.get("boot"), data.get("seq")
    if not isinstance(boot, str) or not _BOOT.match(boot):
        return None
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq <= 2**53:
        return None
    return boot, seq


def _joined(a: Evaluation, b: Evaluation) -> Evaluation:
    return Evaluation(a.decisions + b.decisions, a.inhibited + b.inhibited, a.muted + b.muted)


def _read_streams(
    conn: sqlite3.Connection, keys: set[StreamKey]
) -> dict[StreamKey, tuple[int, list[int]]]:
    """(upto, seqs stored past it) of each stream, on the database thread."""
    out: dict[StreamKey, tuple[int, list[int]]] = {}
    for gateway, boot in keys:
        row = conn.execute(
            "SELECT upto FROM event_streams WHERE gateway = ? AND boot = ?", (gateway, boot)
        ).fetchone()
        upto = int(row[0]) if row is not None else 0
        above = [
            int(r[0])
            for r in conn.execute(
                "SELECT seq FROM events WHERE gateway = ? AND boot = ? AND seq > ? ORDER BY seq"
                " LIMIT 100000",
                (gateway, boot, upto),
            )
        ]
        out[(gateway, boot)] = (upto, above)
    return out


def _write_watermarks(
    conn: sqlite3.Connection, marks: list[tuple[str, str, int]], at: float
) -> None:
    if marks:
        conn.executemany(
            "INSERT INTO event_streams (gateway, boot, upto, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (gateway, boot) DO UPDATE SET upto = MAX(upto, excluded.upto),"
            " updated_at = excluded.updated_at",
            [(gw, boot, upto, at) for gw, boot, upto in marks],
        )


async def _publish(client: aiomqtt.Client, topic: str, message: Ack) -> None:
    try:
        await client.publish(topic, encode(message), qos=1)
    except aiomqtt.MqttError as exc:
        log.info("ack to %s not sent: %s", topic, exc)


def alarm_message(alarm: Alarm) -> dict[str, Any]:
    return {"type": "alarm", "alarm": alarm.model_dump(mode="json")}


@dataclasses.dataclass(slots=True)
class _Received:
    """A message off the broker, acknowledged to it once (after handling, or at once when
    put aside for a flooding gateway)."""

    topic: str
    payload: bytes
    message: aiomqtt.Message
    acked: bool = False

    def ack(self, client: aiomqtt.Client) -> None:
        if not self.acked and self.message.qos > 0:
            client._client.ack(self.message.mid, self.message.qos)
        self.acked = True


def _gateway_of(item: _Received) -> str:
    parts = item.topic.split("/", 3)
    return parts[2] if len(parts) > 2 else "-"


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
