"""The gateway agent: configuration + drivers + outbox + uplink, for one gateway; the wiring
of its parts.

    config = load_gateway_config("firmware_configs/sites/demo.yaml", "gw-ld01")
    agent = GatewayAgent(config, broker=BrokerParams(port=1883, username="gw-ld01",
                         password="..."), outbox_path="/tmp/gw-ld01.sqlite3", simulate=True)
    agent.start()                       # returns at once; connects in the background
    agent.hardware.press_call("call-0101")
    agent.stop()

Every device event becomes a contract Event written to the outbox before it is sent
(gateway/outgoing.py). Readings are batched into Telemetry every `telemetry_period_s`.
A heartbeat event (kind gateway) goes out at start and every `heartbeat_s`.

Around that:
- drivers report through the `Supervisor` (edge/supervision.py): a device silent past its
  model's `report_interval_s` is a `fault`, and a `restore` when it reports again;
- a life-safety event lights and sounds the board's local alarm (edge/local.py) before it is
  even stored: the uplink plays no part in it;
- when the uplink returns after an outage, a `restore` event of kind gateway says how long
  it was away (`offline_s`), after the events stored meanwhile;
- `cmd/config` and SIGHUP replace the device configuration while running
  (gateway/config_push.py): the outbox and the uplink are not touched;
- `cmd/drill` sends a drill's scripted incident as the device's event (gateway/commands.py);
- one-key voice starts on a board with audio (gateway/voice/startup.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from contract import drill, hush
from contract.models import MAX_OFFLINE_S, Command, EventType, Kind, Values
from contract.voice import VOICE_COMMAND
from edge.config import GatewayConfig
from edge.drivers import build_drivers
from edge.drivers.base import DeviceEvent, Driver, Hardware, RealHardware, Sample
from edge.local import LocalAlarm
from edge.scheduler import Scheduler
from edge.sim import SimulatedHardware
from edge.supervision import Supervisor, report_intervals
from gateway import commands
from gateway.agent_settings import AgentOptions, AgentStats
from gateway.config_push import ConfigPush
from gateway.config_store import ConfigStore
from gateway.outbox import Outbox
from gateway.outgoing import Outgoing
from gateway.uplink import Uplink
from gateway.uplink_settings import BrokerParams
from gateway.voice.startup import NO_AUDIO, start_voice

if TYPE_CHECKING:
    from gateway.voice.service import VoiceService

log = logging.getLogger(__name__)


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
        self._owns_hardware = hardware is None and simulate
        #: The simulated devices (None on a real board).
        self.hardware: SimulatedHardware | None = (
            SimulatedHardware(config, zigbee=self.options.zigbee)
            if self._owns_hardware
            else hardware
        )
        self._hw: Hardware = self.hardware if self.hardware is not None else RealHardware()
        self.stats = AgentStats()
        self.drivers: dict[str, Driver] = {}
        self.outbox: Outbox | None = None
        self.uplink: Uplink | None = None
        self.scheduler: Scheduler | None = None
        self.supervisor: Supervisor | None = None
        self.local_alarm: LocalAlarm | None = None
        #: one-key voice (gateway/voice/), when the board profile has `audio`
        self.voice: VoiceService | None = None
        self._no_voice_why = NO_AUDIO
        #: what the gateway sends (events, telemetry, replies), through the outbox
        self.outgoing = Outgoing(
            self.gateway_id,
            self.stats,
            outbox=lambda: self.outbox,
            wake=self._wake_uplink,
            clock_synced=clock_synced,
        )
        self._life = threading.Lock()
        self._running = False
        #: a new configuration while running (`cmd/config`, SIGHUP)
        self.config_push = ConfigPush(
            self.gateway_id,
            self.config_store,
            self.stats,
            configs_dir=self.options.configs_dir,
            life=self._life,
            running=lambda: self._running,
            current=lambda: self.config,
            swap=self._swap,
        )

    # -- lifetime ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def boot(self) -> str:
        """This start's random id ("" before the first start)."""
        return self.outgoing.boot

    def start(self) -> None:
        """Open the outbox, start the drivers and the uplink; returns without waiting."""
        with self._life:
            if self._running:
                return
            boot = self.outgoing.restart()
            self.outbox = Outbox(self.outbox_path, budget_bytes=self.options.outbox_budget_bytes)
            self.uplink = Uplink(
                self.gateway_id,
                self.broker,
                self.outbox,
                boot=boot,
                on_command=self._on_command,
                on_replay=self.outgoing.mark_replayed,
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
            self.scheduler.call_every(
                self.options.telemetry_period_s, self.outgoing.flush_telemetry
            )
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
        self.voice, self._no_voice_why = start_voice(
            self.gateway_id,
            self.config.profile.audio,
            self._hw,
            drivers=lambda: self.drivers,
            send_reply=self.outgoing.reply,
            configs_dir=self.options.configs_dir,
        )

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
            self.outgoing.flush_telemetry()
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
        self.outgoing.event(event)

    def sample(self, sample: Sample) -> None:
        self.outgoing.sample(sample)

    def _wake_uplink(self) -> None:
        if self.uplink is not None:
            self.uplink.wake()

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
                "config": self.config_push.command,
                drill.COMMAND: lambda command, _drivers: commands.send_drill(
                    command, self.config, self.event
                ),
                VOICE_COMMAND: self._no_voice,
            },
        )
        log.info("command name=%s id=%s ok=%s detail=%r", name, reply.id, reply.ok, reply.detail)
        if name == "call_accepted" and reply.ok and self.local_alarm is not None:
            device = commands.command_device(payload)
            if device is not None:
                self.local_alarm.accepted(device)
        self.outgoing.reply(reply)

    def _no_voice(self, _command: Command, _drivers: object) -> str:
        raise commands.CommandError(self._no_voice_why)

    # -- configuration ------------------------------------------------------------------------

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
