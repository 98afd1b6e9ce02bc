"""Simulated hardware for one gateway, strictly below the drivers.

- GPIO: gpiozero's mock pin factory (one per gateway, see `edge.drivers.gpio.SimBoard`) with
  contacts wired to the inputs; the drivers read it exactly as they read the board.
- MCP3008: a mock SPI slave speaking the chip's protocol, its channel voltages set from the
  gas model's calibration.
- PMS5003: a pseudo-terminal per sensor (`edge/sim_serial.py`); the driver opens the slave
  side with pyserial, the simulator writes byte-exact datasheet frames to the master side
  (about one a second, like the sensor in active mode, and at once on `set_air`).
- Senseair S8: a pseudo-terminal per sensor with a Modbus RTU slave on the master side
  (`edge/sim_serial.py`): it checks each request's CRC and answers a read of IR4 with the
  datasheet's reply frame (or, on demand, a corrupt one, an exception, or nothing).
- Zigbee: a zigbee2mqtt stand-in (`Zigbee2MqttFeed`) that publishes zigbee2mqtt-shaped JSON
  to the local broker, as zigbee2mqtt itself would.
"""

from __future__ import annotations

import json
import logging
import os
import select
import threading
import time
from typing import Any, TypeVar

from contract.devices import (
    AirModel,
    CallButtonModel,
    Co2Model,
    DeviceModelBase,
    GasModel,
    PowerModel,
    SmokeModel,
    WaterModel,
    ZigbeeModel,
)
from edge.config import GatewayConfig
from edge.drivers.gpio import MockMcp3008, SimBoard
from edge.drivers.pms5003 import encode_frame
from edge.drivers.zigbee import ZigbeeBroker
from edge.sim_serial import MockS8, PtyPort

log = logging.getLogger(__name__)

M = TypeVar("M", bound=DeviceModelBase)


class Zigbee2MqttFeed:
    """Publishes what zigbee2mqtt would, for simulated Zigbee devices, to the local broker."""

    def __init__(self, broker: ZigbeeBroker, *, base_topic: str = "zigbee2mqtt"):
        self.base_topic = base_topic
        self._connected = threading.Event()
        #: the last state published per device, which a `/set` changes and publishes again
        self._states: dict[str, dict[str, Any]] = {}
        #: every `/set` received, by device (what the gateway asked of zigbee2mqtt)
        self.sets: dict[str, list[dict[str, Any]]] = {}
        self._client = broker.client(f"sim-zigbee2mqtt-{os.urandom(3).hex()}")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_set
        self._client.connect_async(broker.host, broker.port)
        self._client.loop_start()

    def _on_connect(self, client: Any, *_: Any) -> None:
        client.subscribe(f"{self.base_topic}/+/set", qos=1)
        self._connected.set()

    def _on_set(self, _c: Any, _u: Any, msg: Any) -> None:
        """zigbee2mqtt writes a `/set` to the device and publishes the device's new state."""
        name = msg.topic[len(self.base_topic) + 1 :].removesuffix("/set")
        try:
            change = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(change, dict):
            return
        self.sets.setdefault(name, []).append(change)
        state = {**self._states.get(name, {}), **change}
        self._states[name] = state
        self._client.publish(f"{self.base_topic}/{name}", json.dumps(state).encode(), qos=1)

    def wait_connected(self, timeout: float = 5.0) -> bool:
        return self._connected.wait(timeout)

    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if not self._connected.wait(5):
            raise RuntimeError("the simulated zigbee2mqtt is not connected to the local broker")
        self._client.publish(topic, data, qos=1, retain=retain).wait_for_publish(5)

    def state(self, name: str, state: dict[str, Any], *, retain: bool = False) -> None:
        self._states[name] = {**self._states.get(name, {}), **state}
        self.publish(f"{self.base_topic}/{name}", state, retain=retain)

    def availability(self, name: str, online: bool) -> None:
        state = {"state": "online" if online else "offline"}
        self.publish(f"{self.base_topic}/{name}/availability", state, retain=True)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class SimulatedHardware:
    """The devices of one gateway, simulated; pass it to `GatewayAgent(hardware=...)`."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        frame_interval_s: float = 1.0,
        zigbee: ZigbeeBroker | None = None,
    ):
        self.config = config
        self.board = SimBoard()
        self.frame_interval_s = frame_interval_s
        self.zigbee_broker = zigbee
        self._ports: dict[str, PtyPort] = {}
        self._air: dict[str, tuple[int, int, int]] = {}
        self._s8: dict[str, MockS8] = {}
        self._adcs: dict[str, tuple[MockMcp3008, int]] = {}
        self._zigbee: Zigbee2MqttFeed | None = None
        self._stop = threading.Event()
        self._feeder: threading.Thread | None = None
        self._responder: threading.Thread | None = None
        self._closed = False
        #: the home's audio below the voice engine: WAV files by role, `capture` (played as
        #: the microphone, looped) and `playback` (written as the speaker, per call)
        self.audio: dict[str, str] = {}
        self._wire(config)

    def _wire(self, config: GatewayConfig, keep: frozenset[str] = frozenset()) -> None:
        """Wire the devices of `config` (those in `keep` are wired already)."""
        for device in config.spec.devices:
            if device.id in keep:
                continue
            model = config.models[device.model]
            for role in device.pins:
                if _is_input(model, role):
                    self._set_input(device.id, role, False, config)
            if isinstance(model, GasModel):
                adc_config = config.profile.adc
                assert adc_config is not None and device.adc_channel is not None
                adc = self.board.mcp3008(
                    adc_config.spi_port, adc_config.spi_device, adc_config.vref
                )
                self._adcs[device.id] = (adc, device.adc_channel)
                adc.volts[device.adc_channel] = model.volts_for(0.0)
            if isinstance(model, AirModel):
                self._ports[device.id] = PtyPort()
                self._air[device.id] = (5, 8, 12)
            if isinstance(model, Co2Model):
                self._ports[device.id] = PtyPort()
                self._s8[device.id] = MockS8(self._ports[device.id], address=model.address)

    def reconfigure(self, config: GatewayConfig) -> None:
        """A new configuration for the same board (`cmd/config`): devices that stay keep
        their wiring and state; new ones are wired; removed ones are unplugged."""
        same = self.config.unchanged(config)
        for device in self.config.spec.devices:
            if device.id not in same:
                self._air.pop(device.id, None)
                self._s8.pop(device.id, None)
                self._adcs.pop(device.id, None)
                port = self._ports.pop(device.id, None)
                if port is not None:
                    port.close()
        self.config = config
        self._wire(config, keep=same)
        if self._feeder is not None or self._responder is not None:
            self.stop()
            self.start()

    # -- what the drivers see (edge.drivers.base.Hardware) -----------------------------------

    @property
    def pin_factory(self) -> object:
        return self.board.factory

    def serial_port(self, device_id: str, configured: str) -> str:
        return self._ports[device_id].path

    def audio_device(self, role: str, configured: str) -> str:
        """The WAV file standing in for ALSA device `configured` (a missing one: a file that
        does not exist, so opening it fails as an unplugged speakerphone would)."""
        return self.audio.get(role, f"/nonexistent/simulated-{role}.wav")

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sensors that talk by themselves (PMS5003s) or answer (S8s). Idempotent."""
        if self._closed:
            return
        self._stop.clear()
        if self._feeder is None and self._air:
            self._feeder = threading.Thread(target=self._feed, name="sim-pms5003", daemon=True)
            self._feeder.start()
        if self._responder is None and self._s8:
            self._responder = threading.Thread(target=self._respond, name="sim-s8", daemon=True)
            self._responder.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._feeder, self._responder):
            if thread is not None:
                thread.join(5)
        self._feeder = self._responder = None

    def close(self) -> None:
        self.stop()
        self._closed = True
        for port in self._ports.values():
            port.close()
        if self._zigbee is not None:
            self._zigbee.close()
            self._zigbee = None
        self.board.close()

    # -- the world acting on the devices -----------------------------------------------------

    def press_call(self, device: str, hold_s: float = 0.2) -> None:
        """Press a call button for `hold_s` seconds (blocks while held)."""
        self._model(device, CallButtonModel)
        self._set_input(device, "button", True)
        time.sleep(hold_s)
        self._set_input(device, "button", False)

    def trip_smoke(self, device: str) -> None:
        self._model(device, SmokeModel)
        self._set_input(device, "alarm", True)

    def clear_smoke(self, device: str) -> None:
        self._model(device, SmokeModel)
        self._set_input(device, "alarm", False)

    def smoke_fault(self, device: str, on: bool = True) -> None:
        self._model(device, SmokeModel)
        self._set_input(device, "fault", on)

    def gas_relay(self, device: str, on: bool) -> None:
        self._model(device, GasModel)
        self._set_input(device, "relay", on)

    def set_gas(self, device: str, pct_lel: float) -> None:
        """Put the detector's analogue output where its calibration says `pct_lel` is."""
        model = self._model(device, GasModel)
        self.set_gas_volts(device, model.volts_for(pct_lel))

    def set_gas_volts(self, device: str, volts: float) -> None:
        self._model(device, GasModel)
        adc, channel = self._adcs[device]
        adc.volts[channel] = volts

    def set_air(self, device: str, pm1: float, pm25: float, pm10: float) -> None:
        """New particle concentrations (µg/m³); a frame with them is sent at once."""
        self._model(device, AirModel)
        self._air[device] = (round(pm1), round(pm25), round(pm10))
        self._ports[device].write(encode_frame(*self._air[device]))

    def write_serial(self, device: str, data: bytes) -> int:
        """Raw bytes on a sensor's wire (corrupt frames, garbage)."""
        self._model(device, AirModel)
        return self._ports[device].write(data)

    def set_input(self, device: str, role: str, asserted: bool) -> None:
        """Any contact: asserted means what the model calls active (alarm, pressed, fault)."""
        self.config.device(device)
        self._set_input(device, role, asserted)

    def water_leak(self, device: str, leaking: bool = True) -> None:
        self._model(device, WaterModel)
        self._set_input(device, "alarm", leaking)

    def circuit_trip(self, device: str, role: str = "overcurrent", tripped: bool = True) -> None:
        """A circuit monitor's `overcurrent` or `residual` (leakage) trip indication."""
        self._model(device, PowerModel)
        self._set_input(device, role, tripped)

    def set_co2(self, device: str, ppm: float) -> None:
        """The CO2 concentration the S8 reports from its next reply on."""
        self._model(device, Co2Model)
        self._s8[device].ppm = round(ppm)

    def s8(self, device: str) -> MockS8:
        """The simulated S8 itself (to make it answer wrongly, or not at all)."""
        self._model(device, Co2Model)
        return self._s8[device]

    def zigbee(self) -> Zigbee2MqttFeed:
        """The simulated zigbee2mqtt (made on first use; needs the local broker)."""
        if self._zigbee is None:
            if self.zigbee_broker is None or self.config.profile.zigbee is None:
                raise ValueError("this simulated gateway has no local zigbee2mqtt broker")
            self._zigbee = Zigbee2MqttFeed(
                self.zigbee_broker, base_topic=self.config.profile.zigbee.base_topic
            )
        return self._zigbee

    def zigbee_state(self, device: str, **state: Any) -> None:
        """Publish a Zigbee device's state as zigbee2mqtt does, e.g. `smoke=True`."""
        self._model(device, ZigbeeModel)
        self.zigbee().state(device, state)

    def zigbee_availability(self, device: str, online: bool) -> None:
        self._model(device, ZigbeeModel)
        self.zigbee().availability(device, online)

    # -- what the devices show -----------------------------------------------------------------

    def pin(self, device: str, role: str) -> int:
        return self.config.device(device).pins[role]

    def level(self, device: str, role: str) -> bool:
        return self.board.level(self.pin(device, role))

    def led_lit(self, device: str) -> bool:
        return self.board.level(self.pin(device, "led"))

    def history(self, device: str, role: str) -> list[tuple[float, bool]]:
        return self.board.history(self.pin(device, role))

    def clear_history(self, device: str, role: str) -> None:
        self.board.clear_history(self.pin(device, role))

    # -- internals ---------------------------------------------------------------------------

    def _model(self, device: str, kind: type[M]) -> M:
        model = self.config.model_of(device)
        if not isinstance(model, kind):
            raise ValueError(f"{device} is a {type(model).__name__}, not a {kind.__name__}")
        return model

    def _set_input(
        self, device: str, role: str, asserted: bool, config: GatewayConfig | None = None
    ) -> None:
        config = config or self.config
        spec = config.device(device)
        contact = config.models[spec.model].contact(role)
        if role not in spec.pins:
            raise ValueError(f"{device} has no {role!r} contact wired")
        level = asserted != contact.active_low
        closed = level != contact.pull_up  # the contact pulls against the pull resistor
        self.board.set_contact(spec.pins[role], closed, closed_level=not contact.pull_up)

    def _feed(self) -> None:
        while not self._stop.wait(self.frame_interval_s):
            for device, values in list(self._air.items()):
                self._ports[device].write(encode_frame(*values))

    def _respond(self) -> None:
        while not self._stop.is_set():
            sensors = {s.port.fileno(): s for s in list(self._s8.values()) if not s.port.closed}
            if not sensors:
                self._stop.wait(0.1)
                continue
            try:
                ready, _, _ = select.select(list(sensors), [], [], 0.1)
            except (OSError, ValueError):
                continue  # a port closed under us (reconfigure); look again
            for fd in ready:
                sensor = sensors[fd]
                data = sensor.port.read()
                if data:
                    sensor.on_bytes(data)


def _is_input(model: DeviceModelBase, role: str) -> bool:
    try:
        model.contact(role)
    except KeyError:
        return False
    return True
