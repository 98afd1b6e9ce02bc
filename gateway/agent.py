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

Around that:
- drivers report through the `Supervisor` (edge/supervision.py): a device silent past its
  model's `report_interval_s` is a `fault`, and a `restore` when it reports again;
- a life-safety event lights and sounds the board's local alarm (edge/local.py) before it is
  even stored: the uplink plays no part in it;
- when the uplink returns after an outage, a `restore` event of kind gateway says how long
  it was away (`offline_s`), after the events stored meanwhile;
- `cmd/config` replaces the device configuration while running (gateway/config_store.py):
  validated first, kept with the previous one; the outbox and the uplink are not touched;
- a wall clock that steps back does not make event times go back within a boot: such an
  event keeps the latest time already used and says `clock_synced: false`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from contract import drill, hush, topics
from contract.models import (
    MAX_OFFLINE_S,
    MAX_READINGS_PER_BATCH,
    MESSAGE_VERSION,
    Command,
    Event,
    EventType,
    Kind,
    Reply,
    Telemetry,
    Values,
    encode,
)
from contract.voice import VOICE_COMMAND
from edge.config import GatewayConfig
from edge.drivers import build_drivers
from edge.drivers.base import DeviceEvent, Driver, Hardware, RealHardware, Sample
from edge.drivers.zigbee import ZigbeeBroker
from edge.local import LocalAlarm
from edge.scheduler import Scheduler
from edge.sim import SimulatedHardware
from edge.supervision import Supervisor, report_intervals
from gateway import commands, event_clock
from gateway.config_store import ConfigRefused, ConfigStore, Pushed, document_of, parse
from gateway.held_events import HeldEvents
from gateway.outbox import Outbox, OutboxFull
from gateway.readings import ReadingBuffer
from gateway.uplink import Uplink
from gateway.uplink_settings import BrokerParams, UplinkOptions

if TYPE_CHECKING:
    from gateway.voice.service import VoiceService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentOptions:
    heartbeat_s: float = 60.0
    telemetry_period_s: float = 5.0
    uplink: UplinkOptions = field(default_factory=UplinkOptions)
    #: the outbox's disk budget (telemetry is thinned oldest first beyond it)
    outbox_budget_bytes: int | None = 64 * 1024 * 1024
    #: the local broker of zigbee2mqtt (needed when the gateway has Zigbee devices)
    zigbee: ZigbeeBroker | None = None
    #: where pushed configurations are kept (default: `config/` beside the outbox)
    config_dir: Path | None = None
    #: the firmware_configs/ folder pushed configurations take their files from
    configs_dir: Path | None = None


@dataclass
class AgentStats:
    events: int = 0
    telemetry_batches: int = 0
    readings: int = 0
    rejected: int = 0  # observations that did not fit the contract (logged, not sent)
    commands: int = 0
    clock_steps: int = 0  # events whose time was held because the wall clock stepped back
    held_in_memory: int = 0  # events the outbox refused (a full disk), kept until it takes them
    telemetry_dropped: int = 0  # batches the outbox refused (a full disk)
    configs_applied: int = 0
    configs_refused: int = 0


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
        clock_synced: Callable[[], bool] | None = None,
    ):
        self.config = config
        self.gateway_id = config.gateway_id
        self.broker = broker
        self.outbox_path = Path(outbox_path)
        self.options = options or AgentOptions()
        self.config_store = ConfigStore(
            self.options.config_dir or self.outbox_path.parent / "config",
            configs_dir=self.options.configs_dir,
        )
        self._clock_synced = clock_synced or event_clock.clock_synced
        self._owns_hardware = hardware is None and simulate
        #: The simulated devices (None on a real board).
        self.hardware: SimulatedHardware | None = (
            SimulatedHardware(config, zigbee=self.options.zigbee)
            if self._owns_hardware
            else hardware
        )
        self._hw: Hardware = self.hardware if self.hardware is not None else RealHardware()
        self.stats = AgentStats()
        self.boot = ""
        self.drivers: dict[str, Driver] = {}
        self.outbox: Outbox | None = None
        self.uplink: Uplink | None = None
        self.scheduler: Scheduler | None = None
        self.supervisor: Supervisor | None = None
        self.local_alarm: LocalAlarm | None = None
        #: one-key voice (gateway/voice/), when the board profile has `audio`
        self.voice: VoiceService | None = None
        self._no_voice_why = "no voice on this gateway: its board profile has no audio"
        self._event_clock = event_clock.EventClock()
        self._readings = ReadingBuffer()
        self._config_lock = threading.Lock()  # one configuration change at a time
        self._seq = 0
        self._telemetry_seq = 0
        self._lock = threading.Lock()  # seq numbers and outbox order
        #: events the outbox could not take (a full disk), in seq order, until it does
        self._spill = HeldEvents()
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
            self._event_clock = event_clock.EventClock()
            self._readings.restart()
            self.outbox = Outbox(self.outbox_path, budget_bytes=self.options.outbox_budget_bytes)
            self.uplink = Uplink(
                self.gateway_id,
                self.broker,
                self.outbox,
                boot=self.boot,
                on_command=self._on_command,
                on_replay=self._mark_replayed,
                on_restored=self._uplink_restored,
                options=self.options.uplink,
            )
            if self.hardware is not None:
                self.hardware.start()
            self.scheduler = Scheduler(self.gateway_id)
            self.scheduler.start()
            self.supervisor = Supervisor(self)
            try:
                local = self.config.profile.local_alarm
                if local is not None:
                    self.local_alarm = LocalAlarm(
                        local, scheduler=self.scheduler, pin_factory=self._hw.pin_factory
                    )
                self._start_drivers(self.config)
                self._start_voice()
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

    def _start_voice(self) -> None:
        """One-key voice, on a board whose profile has audio. Never in the way of the alarms:
        if it cannot start (the `voice` extra missing, a broken install), the gateway runs
        without it and says why to every `cmd/voice`."""
        audio = self.config.profile.audio
        if audio is None:
            return
        try:
            # aiortc and PyAV load only on a board with audio (the `voice` extra)
            from gateway.voice.service import VoiceService

            self.voice = VoiceService(
                self.gateway_id,
                audio,
                self._hw,
                drivers=lambda: self.drivers,
                send_reply=self._send_reply,
                configs_dir=self.options.configs_dir,
            )
            self.voice.hook_buttons()
        except Exception as exc:
            self.voice = None
            self._no_voice_why = f"voice could not start on this gateway: {exc!r}"[:300]
            log.exception("voice could not start; running without it")

    def stop(self) -> None:
        """Stop drivers, flush readings, give outstanding sends a moment, say `offline`."""
        with self._life:
            if not self._running:
                return
            self._running = False
            self._teardown()
            log.info("agent stopped gateway=%s boot=%s", self.gateway_id, self.boot)

    def _start_drivers(self, config: GatewayConfig, keep: frozenset[str] = frozenset()) -> None:
        """Start the drivers of `config`, but for those in `keep` (running already)."""
        assert self.scheduler is not None and self.supervisor is not None
        new = config.only({d.id for d in config.spec.devices} - keep)
        made: dict[str, Driver] = {}
        if new is not None:
            made = build_drivers(
                new,
                hardware=self._hw,
                scheduler=self.scheduler,
                sink=self.supervisor,
                zigbee=self.options.zigbee,
            )
        self.drivers.update(made)
        self.supervisor.watch(report_intervals(config))
        self.supervisor.start(self.scheduler)
        for driver in made.values():
            self.scheduler.run_sync(driver.start)

    def _close_drivers(self) -> None:
        drivers, self.drivers = self.drivers, {}
        for driver in drivers.values():
            try:
                driver.close()
            except Exception:
                log.exception("driver close failed device=%s", driver.device_id)

    def _teardown(self) -> None:
        if self.voice is not None:
            self.voice.close()  # its last reports (calls ended) go to the outbox
            self.voice = None
        if self.scheduler is not None:
            self.scheduler.stop()
        self._close_drivers()
        if self.local_alarm is not None:
            self.local_alarm.close()
            self.local_alarm = None
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
        local = self.local_alarm
        if local is not None and event.drill is None:  # a drill does not sound the building
            try:
                local.react(event)  # first: it must not wait for anything
            except Exception:
                log.exception("local alarm failed device=%s", event.device)
        outbox = self.outbox
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
                    clock_synced=self._clock_synced() and not stepped,
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
        if self.uplink is not None:
            self.uplink.wake()

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

    # -- periodic work (scheduler thread) -----------------------------------------------------

    def _heartbeat(self) -> None:
        self.event(DeviceEvent(self.gateway_id, Kind.GATEWAY, EventType.HEARTBEAT))

    def _uplink_restored(self, offline_s: float) -> None:
        """The uplink is back (sender thread): say how long the gateway was away."""
        self.event(
            DeviceEvent(
                self.gateway_id,
                Kind.GATEWAY,
                EventType.RESTORE,
                Values(offline_s=round(min(offline_s, MAX_OFFLINE_S), 1)),
                detail="uplink back",
            )
        )

    def _flush_telemetry(self) -> None:
        readings = self._readings.take()
        outbox = self.outbox
        if outbox is not None and self._spill:
            with self._lock:
                if self._drain_spill(outbox) is not None and self.uplink is not None:
                    self.uplink.wake()
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
        if self.uplink is not None:
            self.uplink.wake()

    # -- commands (paho's thread) -------------------------------------------------------------

    def _on_command(self, name: str, payload: bytes, retained: bool) -> None:
        self.stats.commands += 1
        if name == VOICE_COMMAND and self.voice is not None and self.voice.take(payload, retained):
            return  # answered when the call engine has done it
        if name in ("config", hush.COMMAND) and not retained:
            # Restarting drivers, or waiting for a device to confirm, takes a moment: not on
            # paho's thread.
            threading.Thread(
                target=self._run_command, args=(name, payload, retained), name=f"cmd-{name}"
            ).start()
            return
        self._run_command(name, payload, retained)

    def _run_command(self, name: str, payload: bytes, retained: bool) -> None:
        reply = commands.execute(
            self.gateway_id,
            name,
            payload,
            self.drivers,
            retained=retained,
            extra={
                "config": self._config_command,
                drill.COMMAND: self._drill_command,
                VOICE_COMMAND: self._no_voice,
            },
        )
        log.info("command name=%s id=%s ok=%s detail=%r", name, reply.id, reply.ok, reply.detail)
        if name == "call_accepted" and reply.ok and self.local_alarm is not None:
            device = commands.command_device(payload)
            if device is not None:
                self.local_alarm.accepted(device)
        self._send_reply(reply)

    # -- drills -------------------------------------------------------------------------------

    def _drill_command(self, command: Command, _drivers: object) -> str:
        """A drill's scripted incident: sent as the device's event, with the drill's number."""
        if command.device is None:
            raise commands.CommandError("drill needs 'device' (where the incident happens)")
        try:
            model = self.config.model_of(command.device)
        except KeyError:
            raise commands.CommandError(f"no device {command.device!r} on this gateway") from None
        try:
            incident = drill.DrillIncident.from_args(command.args)
        except ValidationError as exc:
            problems = "; ".join(
                f"args.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise commands.CommandError(f"drill refused: {problems}") from None
        self.event(
            DeviceEvent(
                command.device,
                model.kind,
                incident.type,
                incident.values,
                detail=f"drill #{incident.drill}",
                drill=incident.drill,
            )
        )
        return f"drill #{incident.drill}: {incident.type.value} of {command.device} sent"

    def _no_voice(self, _command: Command, _drivers: object) -> str:
        raise commands.CommandError(self._no_voice_why)

    # -- configuration ------------------------------------------------------------------------

    def _config_command(self, command: Command, _drivers: object) -> str:
        if not command.document:
            raise commands.CommandError("config needs the configuration in 'document' (YAML)")
        try:
            pushed = parse(command.document, self.gateway_id, configs_dir=self.options.configs_dir)
        except ConfigRefused as exc:
            self.stats.configs_refused += 1
            raise commands.CommandError(f"config refused, nothing changed: {exc}") from None
        return self.apply_config(pushed)

    def apply_config(self, pushed: Pushed) -> str:
        """Run a validated configuration: keep it (the previous one too), restart the drivers
        with it. If its drivers cannot start, the previous configuration runs again."""
        with self._config_lock, self._life:
            if not self._running:
                raise commands.CommandError("the agent is not running")
            old = self.config
            self.config_store.keep(pushed, running=document_of(old))
            try:
                self._swap(pushed.config)
            except Exception as exc:
                log.exception("new config failed to start; back to the previous one")
                self.config_store.restore_previous()
                self._swap(old)
                self.stats.configs_refused += 1
                raise commands.CommandError(
                    f"config {pushed.document.version or '(no version)'} failed to start, "
                    f"the previous one runs again: {exc!r}"
                ) from None
            self.stats.configs_applied += 1
        version = pushed.document.version or "(no version)"
        log.info("config applied version=%s devices=%d", version, len(pushed.config.spec.devices))
        return (
            f"config {version} applied: {len(pushed.config.spec.devices)} devices; "
            "the previous one is kept"
        )

    def reload(self, config: GatewayConfig) -> None:
        """Run the configuration files again as they are now (SIGHUP), already validated.
        Only the drivers restart; the outbox, the uplink and the boot stay."""
        with self._config_lock, self._life:
            if not self._running:
                return
            old = self.config
            try:
                self._swap(config)
            except Exception:
                self._swap(old)
                raise
        log.info("config reloaded source=%s devices=%d", config.source, len(config.spec.devices))

    def _swap(self, config: GatewayConfig) -> None:
        """Run `config`: devices it leaves as they were keep their drivers (a detector in
        alarm is not reported again); the others are closed, and the new ones started."""
        keep = self.config.unchanged(config)
        for device_id in list(self.drivers):
            if device_id not in keep:
                driver = self.drivers.pop(device_id)
                try:
                    driver.close()
                except Exception:
                    log.exception("driver close failed device=%s", device_id)
        if self.hardware is not None:
            self.hardware.reconfigure(config)
        self.config = config
        self._start_drivers(config, keep)

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
