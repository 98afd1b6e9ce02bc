"""Ingest: every message from the broker is checked, stored, evaluated and announced.

Evaluation is the rules core's (`cloud/rules/`); what it decides passes the maintenance gate
(devices under a walk test or in a maintenance window make test alarms) and is stored by the
alarm book in the same transaction as the message id, so a redelivery is never evaluated
twice. Time-driven rules (clear holds, silence, expiring walk tests) run on a tick.

`Ingest.handle()` is the whole path for one message and never raises: bad input is rejected
with a reason (counted, kept), and even a bug in our own code is caught, recorded as an
`internal_error` rejection and the loop goes on. `Ingest.run()` owns the aiomqtt session and
its reconnect loop; the message is acknowledged to the broker only after it was handled, so a
crash of this process between receipt and storage makes the broker deliver it again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiomqtt
from pydantic import ValidationError

from cloud.alarms import Alarm, AlarmBook, Mode, Raised
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
    Command,
    Event,
    GatewayState,
    Kind,
    Status,
    Telemetry,
    decode,
    encode,
)
from contract.topics import Channel, TopicError

log = logging.getLogger(__name__)

BROKER_DROPPED = "$SYS/broker/publish/messages/dropped"

_LIMITS = {
    Channel.EVENT: MAX_EVENT_BYTES,
    Channel.TELEMETRY: MAX_TELEMETRY_BYTES,
    Channel.STATUS: MAX_STATUS_BYTES,
}
_MODELS: dict[Channel, type[Event] | type[Telemetry] | type[Status]] = {
    Channel.EVENT: Event,
    Channel.TELEMETRY: Telemetry,
    Channel.STATUS: Status,
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
        flush_interval_s: float = 0.2,
        tick_s: float = 1.0,
        max_pending_samples: int = 1_000_000,
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
        self.counts: Counter[str] = Counter()
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        #: The broker's own count of dropped messages (Mosquitto's $SYS), if it publishes one.
        self.broker_dropped: int | None = None
        self._pending: list[Sample] = []
        self._flusher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    # ---- the path of one message -------------------------------------------------------

    async def handle(self, topic: str, payload: bytes, received_at: float | None = None) -> None:
        received_at = self.clock() if received_at is None else received_at
        self.counts["messages"] += 1
        try:
            await self._handle(topic, payload, received_at)
        except Exception as exc:  # never let one message stop ingest
            log.exception("internal error handling %s", topic)
            await self.rejects.reject(
                topic, payload, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", received_at
            )

    async def _handle(self, topic: str, payload: bytes, received_at: float) -> None:
        try:
            parsed = topics.parse(topic)
        except TopicError as exc:
            return await self.rejects.reject(
                topic, payload, Reason.BAD_TOPIC, str(exc), received_at
            )
        model = _MODELS.get(parsed.channel)
        if model is None:
            return  # replies and our own commands: not ingest's business
        limit = _LIMITS[parsed.channel]
        if len(payload) > limit:
            detail = f"{len(payload)} bytes, the limit for {parsed.channel} is {limit}"
            return await self.rejects.reject(topic, payload, Reason.OVERSIZE, detail, received_at)
        try:
            # strict: JSON types must be the contract's ("5" is not a number, 1763784900 not a time)
            message = decode(model, payload)
        except ValidationError as exc:
            malformed = any(err["type"] == "json_invalid" for err in exc.errors())
            reason = Reason.MALFORMED_JSON if malformed else Reason.INVALID
            return await self.rejects.reject(topic, payload, reason, _describe(exc), received_at)
        if message.gateway != parsed.gateway:
            detail = f"payload says gateway {message.gateway!r}, topic says {parsed.gateway!r}"
            return await self.rejects.reject(
                topic, payload, Reason.GATEWAY_MISMATCH, detail, received_at
            )
        if not self.registry.has_gateway(parsed.gateway):
            detail = f"gateway {parsed.gateway!r} is not registered"
            return await self.rejects.reject(
                topic, payload, Reason.UNKNOWN_GATEWAY, detail, received_at
            )
        if isinstance(message, Event):
            await self._event(topic, payload, message, received_at)
        elif isinstance(message, Telemetry):
            await self._telemetry(topic, payload, message, received_at)
        else:
            await self._status(message, received_at)

    def _unknown_devices(self, gateway: str, devices: set[str]) -> list[str]:
        return sorted(
            d for d in devices if d != gateway and self.registry.device(gateway, d) is None
        )

    async def _event(self, topic: str, payload: bytes, event: Event, received_at: float) -> None:
        unknown = self._unknown_devices(event.gateway, {event.device})
        if unknown or (event.kind is not Kind.GATEWAY and event.device == event.gateway):
            detail = f"device {event.device!r} is not registered on gateway {event.gateway!r}"
            return await self.rejects.reject(
                topic, payload, Reason.UNKNOWN_DEVICE, detail, received_at
            )
        raised = await self.book.record_event(
            event, received_at, lambda: self._gate(self.core.event(event, received_at), received_at)
        )
        if raised is None:
            self.counts["duplicates"] += 1
            return
        self.counts["events"] += 1
        await self._announce(raised)

    async def _telemetry(
        self, topic: str, payload: bytes, batch: Telemetry, received_at: float
    ) -> None:
        unknown = self._unknown_devices(batch.gateway, {r.device for r in batch.readings})
        if unknown:
            detail = f"devices {unknown} are not registered on gateway {batch.gateway!r}"
            return await self.rejects.reject(
                topic, payload, Reason.UNKNOWN_DEVICE, detail, received_at
            )
        raised = await self.book.record_batch(
            batch.id,
            batch.gateway,
            len(batch.readings),
            received_at,
            lambda: self._gate(
                self.core.readings(batch.gateway, batch.readings, received_at), received_at
            ),
        )
        if raised is None:
            self.counts["duplicates"] += 1
            return
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
        await self._announce(raised)

    async def _status(self, status: Status, received_at: float) -> None:
        previous = await self.book.record_status(status, received_at)
        self.counts["status"] += 1
        if previous is not None:
            log.info("gateway=%s state=%s was=%s", status.gateway, status.state, previous)
        self.hub.publish({"type": "gateway", "gateway": status.gateway, "state": status.state})
        online = status.state is GatewayState.ONLINE
        await self._announce(
            await self.book.apply(
                lambda: self._gate(
                    self.core.status(status.gateway, online, received_at), received_at
                ),
                received_at,
            )
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
        if not raised:
            return
        new_live: list[int] = []
        for item in raised:
            alarm = item.alarm
            if alarm.mode is not Mode.LIVE:
                self.counts["test_alarms" if item.new else "test_alarm_updates"] += 1
                continue
            if item.new:
                self.counts["alarms_raised"] += 1
                new_live.append(alarm.id)
            elif item.change == "cleared":
                self.counts["alarms_cleared"] += 1
            else:
                self.counts["alarm_repeats"] += 1
            self.hub.publish(alarm_message(alarm))
        if new_live:
            await self.book.mark_pushed(new_live, self.clock(), self.hub.listeners)
            if self.on_new_alarms is not None:
                self.on_new_alarms()

    # ---- time-driven rules ----------------------------------------------------------------

    async def tick(self) -> None:
        """Clear holds, silence, gateways that stopped talking, walk tests that ran out."""
        now = self.clock()
        if self.maintenance is not None:
            for window in await self.maintenance.expire(now):
                closed = await self.book.close_window(window.id, "system")
                log.info(
                    "%s #%d ended; %d test alarm(s) closed", window.mode, window.id, len(closed)
                )
        evaluation = self.core.tick(now)
        if evaluation.decisions or evaluation.inhibited or evaluation.muted:
            await self._announce(await self.book.apply(lambda: self._gate(evaluation, now), now))

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
        reconnect_s: float = 1.0,
    ) -> None:
        """Consume until cancelled, reconnecting with backoff when the broker goes away."""
        self._flusher = asyncio.create_task(self._flush_forever())
        self._ticker = asyncio.create_task(self._tick_forever())
        delay = reconnect_s
        try:
            while True:
                try:
                    await self._session(host, port, username, password, client_id)
                except aiomqtt.MqttError as exc:
                    self.connected.clear()
                    self._client = None
                    log.warning("broker connection lost: %s; retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                else:
                    delay = reconnect_s
        finally:
            self._flusher.cancel()
            self._ticker.cancel()
            await self.flush()

    async def _session(
        self, host: str, port: int, username: str | None, password: str | None, client_id: str
    ) -> None:
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
        )
        client.pending_calls_threshold = 1000
        # Acknowledge only after handling (paho's manual ack; aiomqtt does not wrap it).
        client._client.manual_ack_set(True)
        async with client:
            self._client = client
            for channel in (Channel.STATUS, Channel.EVENT, Channel.TELEMETRY):
                await client.subscribe(topics.subscription(channel), qos=1)
            await client.subscribe(BROKER_DROPPED, qos=0)
            self.connected.set()
            log.info("ingest connected to %s:%d", host, port)
            async for message in client.messages:
                topic = str(message.topic)
                if topic == BROKER_DROPPED:
                    self._broker_dropped(_payload_bytes(message.payload))
                else:
                    await self.handle(topic, _payload_bytes(message.payload))
                if message.qos > 0:
                    client._client.ack(message.mid, message.qos)

    def _broker_dropped(self, payload: bytes) -> None:
        """Mosquitto drops QoS 1 messages silently when a consumer lags: watch its counter."""
        try:
            dropped = int(payload.decode().strip())
        except ValueError:
            return
        previous = self.broker_dropped
        self.broker_dropped = dropped
        if previous is not None and dropped > previous:
            log.error(
                "the broker dropped %d messages (total %d): a consumer is too slow or its "
                "queue too small (max_queued_messages)",
                dropped - previous,
                dropped,
            )

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


def alarm_message(alarm: Alarm) -> dict[str, Any]:
    return {"type": "alarm", "alarm": alarm.model_dump(mode="json")}


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
