"""Simulated hardware for one gateway, strictly below the drivers.

- GPIO: gpiozero's mock pin factory (one per gateway, see `edge.drivers.gpio.SimBoard`) with
  contacts wired to the inputs; the drivers read it exactly as they read the board.
- MCP3008: a mock SPI slave speaking the chip's protocol, its channel voltages set from the
  gas model's calibration.
- PMS5003: a pseudo-terminal per sensor; the driver opens the slave side with pyserial, the
  simulator writes byte-exact datasheet frames to the master side (about one a second, like
  the sensor in active mode, and at once on `set_air`).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import tty

from edge.config import (
    AirModel,
    CallButtonModel,
    DeviceModelBase,
    GasModel,
    GatewayConfig,
    SmokeModel,
)
from edge.drivers.gpio import MockMcp3008, SimBoard
from edge.drivers.pms5003 import encode_frame


class PtyPort:
    """A pseudo-terminal standing in for a UART: `path` is what the driver opens."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no line discipline before the driver configures the port
        flags = fcntl.fcntl(self._master, fcntl.F_GETFL)
        fcntl.fcntl(self._master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.path = os.ttyname(self._slave)
        self.dropped_bytes = 0
        self._lock = threading.Lock()
        self._closed = False

    def write(self, data: bytes) -> int:
        """Send bytes down the wire; what the reader never picks up is lost, like a UART."""
        with self._lock:
            if self._closed:
                return 0
            try:
                written = os.write(self._master, data)
            except BlockingIOError:
                written = 0
            self.dropped_bytes += len(data) - written
            return written

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._master)
                os.close(self._slave)


class SimulatedHardware:
    """The devices of one gateway, simulated; pass it to `GatewayAgent(hardware=...)`."""

    def __init__(self, config: GatewayConfig, *, frame_interval_s: float = 1.0):
        self.config = config
        self.board = SimBoard()
        self.frame_interval_s = frame_interval_s
        self._ports: dict[str, PtyPort] = {}
        self._air: dict[str, tuple[int, int, int]] = {}
        self._adcs: dict[str, tuple[MockMcp3008, int]] = {}
        self._stop = threading.Event()
        self._feeder: threading.Thread | None = None
        self._closed = False
        for device in config.spec.devices:
            model = config.models[device.model]
            for role in device.pins:
                if _is_input(model, role):
                    self._set_input(device.id, role, False)
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

    # -- what the drivers see (edge.drivers.base.Hardware) -----------------------------------

    @property
    def pin_factory(self) -> object:
        return self.board.factory

    def serial_port(self, device_id: str, configured: str) -> str:
        return self._ports[device_id].path

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sensors that talk by themselves (the PMS5003s). Idempotent."""
        if self._feeder is None and self._ports and not self._closed:
            self._stop.clear()
            self._feeder = threading.Thread(target=self._feed, name="sim-pms5003", daemon=True)
            self._feeder.start()

    def stop(self) -> None:
        self._stop.set()
        if self._feeder is not None:
            self._feeder.join(5)
            self._feeder = None

    def close(self) -> None:
        self.stop()
        self._closed = True
        for port in self._ports.values():
            port.close()
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

    def _model(self, device: str, kind: type[DeviceModelBase]) -> DeviceModelBase:
        model = self.config.model_of(device)
        if not isinstance(model, kind):
            raise ValueError(f"{device} is a {type(model).__name__}, not a {kind.__name__}")
        return model

    def _set_input(self, device: str, role: str, asserted: bool) -> None:
        spec = self.config.device(device)
        contact = self.config.models[spec.model].contact(role)
        if role not in spec.pins:
            raise ValueError(f"{device} has no {role!r} contact wired")
        level = asserted != contact.active_low
        closed = level != contact.pull_up  # the contact pulls against the pull resistor
        self.board.set_contact(spec.pins[role], closed, closed_level=not contact.pull_up)

    def _feed(self) -> None:
        while not self._stop.wait(self.frame_interval_s):
            for device, values in list(self._air.items()):
                self._ports[device].write(encode_frame(*values))


def _is_input(model: DeviceModelBase, role: str) -> bool:
    try:
        model.contact(role)
    except KeyError:
        return False
    return True
