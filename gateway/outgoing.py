"""What the gateway sends, written to the outbox before the uplink sends it.

Every device event becomes a contract Event (uuid4 `id`, this start's random `boot`, `seq`
counting from 1 per boot, `ts` when the device changed). Readings are batched into Telemetry
(own `seq` counter) when the agent flushes them. Replies to commands go the same way. A wall
clock that steps back does not make event times go back within a boot: such an event keeps
the latest time already used and says `clock_synced: false`. Events the outbox refuses (a
full disk) are held in memory, in seq order, until it takes them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable

from pydantic import ValidationError

from contract import topics
from contract.models import (
    MAX_READINGS_PER_BATCH,
    MESSAGE_VERSION,
    Event,
    Reply,
    Telemetry,
    encode,
)
from edge.drivers.base import DeviceEvent, Sample
from gateway import event_clock
from gateway.agent_settings import AgentStats
from gateway.held_events import HeldEvents
from gateway.outbox import Outbox, OutboxFull
from gateway.readings import ReadingBuffer

log = logging.getLogger(__name__)


class Outgoing:
    """Any thread. `outbox` gives the agent's outbox as it is now (None while stopped);
    `wake` tells the uplink there are new rows."""

    def __init__(
        self,
        gateway_id: str,
        stats: AgentStats,
        *,
        outbox: Callable[[], Outbox | None],
        wake: Callable[[], None],
        clock_synced: Callable[[], bool] | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self.stats = stats
        self.boot = ""
        self._outbox = outbox
        self._wake = wake
        #: whether the wall clock is synchronised (NTP), for `clock_synced` on events
        self.clock_synced = clock_synced or event_clock.clock_synced
        self._event_clock = event_clock.EventClock()
        self._readings = ReadingBuffer()
        self._seq = 0
        self._telemetry_seq = 0
        self._lock = threading.Lock()  # seq numbers and outbox order
        #: events the outbox could not take (a full disk), in seq order, until it does
        self._spill = HeldEvents()

    def restart(self) -> str:
        """A new boot (the agent starts): its id, and every count from the beginning."""
        self.boot = uuid.uuid4().hex[:16]
        self._seq = self._telemetry_seq = 0
        self._event_clock = event_clock.EventClock()
        self._readings.restart()
        return self.boot

    def event(self, event: DeviceEvent) -> None:
        outbox = self._outbox()
        if outbox is None:
            return
        try:
            with self._lock:
                ts, stepped = self._event_clock.time(event.ts)
                self.stats.clock_steps += stepped
                self._seq += 1
                message = Event(
                    v=MESSAGE_VERSION,
                    id=str(uuid.uuid4()),
                    gateway=self.gateway_id,
                    device=event.device,
                    boot=self.boot,
                    seq=self._seq,
                    ts=ts,
                    kind=event.kind,
                    type=event.type,
                    values=event.values,
                    clock_synced=self.clock_synced() and not stepped,
                    drill=event.drill,
                )
                self._spill.append(
                    topics.event(self.gateway_id), encode(message), (message.boot, message.seq)
                )
                row = self._drain_spill(outbox)
        except ValidationError as exc:
            self.stats.rejected += 1
            log.error("event rejected device=%s error=%r", event.device, str(exc))
            return
        self.stats.events += 1
        log.info(
            "event queued device=%s kind=%s type=%s seq=%d row=%d%s%s",
            event.device,
            event.kind,
            event.type,
            message.seq,
            row or 0,
            "" if row else f" held_in_memory={len(self._spill)}",
            f" detail={event.detail!r}" if event.detail else "",
        )
        self._wake()

    def _drain_spill(self, outbox: Outbox) -> int | None:
        """Write the events held in memory (lock held); the row of the newest, or None."""
        row = self._spill.write(outbox)
        self.stats.held_in_memory = len(self._spill)
        return row

    def sample(self, sample: Sample) -> None:
        try:
            self._readings.add(sample)
        except ValidationError as exc:
            self.stats.rejected += 1
            log.error("reading rejected device=%s error=%r", sample.device, str(exc))

    def flush_telemetry(self) -> None:
        readings = self._readings.take()
        outbox = self._outbox()
        if outbox is not None and self._spill:
            with self._lock:
                if self._drain_spill(outbox) is not None:
                    self._wake()
        if not readings or outbox is None:
            return
        for start in range(0, len(readings), MAX_READINGS_PER_BATCH):
            chunk = readings[start : start + MAX_READINGS_PER_BATCH]
            with self._lock:
                self._telemetry_seq += 1
                message = Telemetry(
                    id=str(uuid.uuid4()),
                    gateway=self.gateway_id,
                    boot=self.boot,
                    seq=self._telemetry_seq,
                    readings=chunk,
                )
                try:
                    outbox.put(topics.telemetry(self.gateway_id), encode(message), 1)
                except (OutboxFull, sqlite3.OperationalError) as exc:
                    self.stats.telemetry_dropped += 1
                    log.error("outbox refused telemetry; batch dropped error=%r", str(exc))
                    continue
            self.stats.telemetry_batches += 1
            self.stats.readings += len(chunk)
        log.debug("telemetry queued readings=%d", len(readings))
        self._wake()

    def reply(self, reply: Reply) -> None:
        outbox = self._outbox()
        if outbox is None:
            return
        outbox.put(topics.reply(self.gateway_id), encode(reply), 1)
        self._wake()

    def mark_replayed(self, topic: str, payload: bytes) -> bytes:
        """An event that waited in the outbox for an uplink goes out with `replayed: true`."""
        if topic != topics.event(self.gateway_id):
            return payload
        event = Event.model_validate_json(payload)
        return encode(event.model_copy(update={"replayed": True}))
