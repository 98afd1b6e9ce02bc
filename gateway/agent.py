"""The gateway agent: configuration + drivers + outbox + uplink, for one gateway.

    config = load_gateway_config("firmware_configs/sites/demo.yaml", "gw-ld01")
    agent = GatewayAgent(config, broker=BrokerParams(port=1883, username="gw-ld01",
                         password="..."), outbox_path="/tmp/gw-ld01.sqlite3", simulate=True)
    agent.start()                       # returns at once; connects in the background
    agent.hardware.press_call("call-0101")
    agent.stop()

Every device event becomes a contract Event (uuid4 `id`, this start's random `boot`, `seq`
counting from 1 per boot, `ts` when the device changed) written to the outbox before it is
sent. Readings are batched into Telemetry every `telemetry_period_s` (own `seq` counter).
A heartbeat event (kind gateway) goes out at start and every `heartbeat_s`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from contract import topics
from contract.models import (
    MAX_READINGS_PER_BATCH,
    Event,
    EventType,
    Kind,
    Reading,
    Reply,
    Telemetry,
    encode,
)
from edge.config import GatewayConfig
from edge.drivers import build_drivers
from edge.drivers.base import DeviceEvent, Driver, Hardware, RealHardware, Sample
from edge.scheduler import Scheduler
from edge.sim import SimulatedHardware
from gateway import commands
from gateway.outbox import Outbox
from gateway.uplink import BrokerParams, Uplink, UplinkOptions

log = logging.getLogger(__name__)

_TIMESYNC = Path("/run/systemd/timesync")


@dataclass(frozen=True)
class AgentOptions:
    heartbeat_s: float = 60.0
    telemetry_period_s: float = 5.0
    uplink: UplinkOptions = field(default_factory=UplinkOptions)


@dataclass
class AgentStats:
    events: int = 0
    telemetry_batches: int = 0
    readings: int = 0
    rejected: int = 0  # observations that did not fit the contract (logged, not sent)
    commands: int = 0


class GatewayAgent:
    """One gateway. `start()`/`stop()` are idempotent and return promptly."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        broker: BrokerParams,
        outbox_path: Path | str,
        hardware: SimulatedHardware | None = None,
        simulate: bool = False,
        options: AgentOptions | None = None,
    ):
        self.config = config
        self.gateway_id = config.gateway_id
        self.broker = broker
        self.outbox_path = Path(outbox_path)
        self.options = options or AgentOptions()
        self._owns_hardware = hardware is None and simulate
        #: The simulated devices (None on a real board).
        self.hardware: SimulatedHardware | None = (
            SimulatedHardware(config) if self._owns_hardware else hardware
        )
        self._hw: Hardware = self.hardware if self.hardware is not None else RealHardware()
        self.stats = AgentStats()
        self.boot = ""
        self.drivers: dict[str, Driver] = {}
        self.outbox: Outbox | None = None
        self.uplink: Uplink | None = None
        self.scheduler: Scheduler | None = None
        self._seq = 0
        self._telemetry_seq = 0
        self._lock = threading.Lock()  # seq numbers and outbox order
        self._readings: list[Reading] = []
        self._readings_lock = threading.Lock()
        self._life = threading.Lock()
        self._running = False

    # -- lifetime ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Open the outbox, start the drivers and the uplink; returns without waiting."""
        with self._life:
            if self._running:
                return
            self.boot = uuid.uuid4().hex[:16]
            self._seq = self._telemetry_seq = 0
            self.outbox = Outbox(self.outbox_path)
            self.uplink = Uplink(
                self.gateway_id,
                self.broker,
                self.outbox,
                boot=self.boot,
                on_command=self._on_command,
                on_replay=self._mark_replayed,
                options=self.options.uplink,
            )
            if self.hardware is not None:
                self.hardware.start()
            self.scheduler = Scheduler(self.gateway_id)
            self.scheduler.start()
            try:
                self.drivers = build_drivers(
                    self.config, hardware=self._hw, scheduler=self.scheduler, sink=self
                )
                for driver in self.drivers.values():
                    self.scheduler.run_sync(driver.start)
            except Exception:
                self._teardown()
                raise
            self.scheduler.call_every(self.options.heartbeat_s, self._heartbeat, first=0)
            self.scheduler.call_every(self.options.telemetry_period_s, self._flush_telemetry)
            self.uplink.start()
            self._running = True
            log.info(
                "agent started gateway=%s boot=%s devices=%d simulate=%s backlog=%d",
                self.gateway_id,
                self.boot,
                len(self.drivers),
                self.hardware is not None,
                self.outbox.count(),
            )

    def stop(self) -> None:
        """Stop drivers, flush readings, give outstanding sends a moment, say `offline`."""
        with self._life:
            if not self._running:
                return
            self._running = False
            self._teardown()
            log.info("agent stopped gateway=%s boot=%s", self.gateway_id, self.boot)

    def _teardown(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        for driver in self.drivers.values():
            try:
                driver.close()
            except Exception:
                log.exception("driver close failed device=%s", driver.device_id)
        self.drivers = {}
        if self.outbox is not None:
            self._flush_telemetry()
        if self.uplink is not None:
            self.uplink.stop()
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None
        if self.hardware is not None:
            self.hardware.stop()

    def close(self) -> None:
        """Stop, and release the simulated hardware if the agent made it."""
        self.stop()
        if self.hardware is not None and self._owns_hardware:
            self.hardware.close()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.uplink is not None and self.uplink.wait_connected(timeout)

    def __enter__(self) -> GatewayAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the drivers' sink (any thread) ----------------------------------------------------------

    def event(self, event: DeviceEvent) -> None:
        outbox = self.outbox
        if outbox is None:
            return
        try:
            with self._lock:
                self._seq += 1
                message = Event(
                    id=str(uuid.uuid4()),
                    gateway=self.gateway_id,
                    device=event.device,
                    boot=self.boot,
                    seq=self._seq,
                    ts=event.ts,
                    kind=event.kind,
                    type=event.type,
                    values=event.values,
                    clock_synced=_clock_synced(),
                )
                row = outbox.put(topics.event(self.gateway_id), encode(message), 1)
        except ValidationError as exc:
            self.stats.rejected += 1
            log.error("event rejected device=%s error=%r", event.device, str(exc))
            return
        self.stats.events += 1
        log.info(
            "event queued device=%s kind=%s type=%s seq=%d row=%d%s",
            event.device,
            event.kind,
            event.type,
            message.seq,
            row,
            f" detail={event.detail!r}" if event.detail else "",
        )
        if self.uplink is not None:
            self.uplink.wake()

    def sample(self, sample: Sample) -> None:
        try:
            reading = Reading(
                device=sample.device, ts=sample.ts, kind=sample.kind, values=sample.values
            )
        except ValidationError as exc:
            self.stats.rejected += 1
            log.error("reading rejected device=%s error=%r", sample.device, str(exc))
            return
        with self._readings_lock:
            self._readings.append(reading)

    # -- periodic work (scheduler thread) -----------------------------------------------------

    def _heartbeat(self) -> None:
        self.event(DeviceEvent(self.gateway_id, Kind.GATEWAY, EventType.HEARTBEAT))

    def _flush_telemetry(self) -> None:
        with self._readings_lock:
            readings, self._readings = self._readings, []
        outbox = self.outbox
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
                outbox.put(topics.telemetry(self.gateway_id), encode(message), 1)
            self.stats.telemetry_batches += 1
            self.stats.readings += len(chunk)
        log.debug("telemetry queued readings=%d", len(readings))
        if self.uplink is not None:
            self.uplink.wake()

    # -- commands (paho's thread) -------------------------------------------------------------

    def _on_command(self, name: str, payload: bytes, retained: bool) -> None:
        self.stats.commands += 1
        reply = commands.execute(self.gateway_id, name, payload, self.drivers, retained=retained)
        log.info("command name=%s id=%s ok=%s detail=%r", name, reply.id, reply.ok, reply.detail)
        self._send_reply(reply)

    def _send_reply(self, reply: Reply) -> None:
        outbox = self.outbox
        if outbox is None:
            return
        outbox.put(topics.reply(self.gateway_id), encode(reply), 1)
        if self.uplink is not None:
            self.uplink.wake()

    # -- replays ------------------------------------------------------------------------------

    def _mark_replayed(self, topic: str, payload: bytes) -> bytes:
        """An event that waited in the outbox for an uplink goes out with `replayed: true`."""
        if topic != topics.event(self.gateway_id):
            return payload
        event = Event.model_validate_json(payload)
        return encode(event.model_copy(update={"replayed": True}))


def _clock_synced() -> bool:
    """False while systemd-timesyncd has not synchronised the clock yet (no RTC on a Pi)."""
    if not _TIMESYNC.is_dir():
        return True
    return (_TIMESYNC / "synchronized").exists()
