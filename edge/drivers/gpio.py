"""The only module that imports gpiozero: debounced inputs, LED, buzzer, MCP3008 channel,
and the simulated board (gpiozero's own mock pin factory) that the simulator drives.

Every device takes a `pin_factory`; passing one `SimBoard().factory` per simulated gateway
lets several gateways live in one process without touching gpiozero's global default.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from gpiozero import LED, MCP3008, Buzzer, Device, DigitalInputDevice, InputDevice, OutputDevice
from gpiozero.exc import PinFixedPull, PinInvalidPull
from gpiozero.mixins import SharedMixin
from gpiozero.pins import SPI
from gpiozero.pins.mock import MockFactory, MockPin, MockSPIDevice
from gpiozero.pins.spi import SPISoftware, SPISoftwareBus

from contract.models import utc_now
from contract.profiles import SPI_PINS
from edge.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Edge:
    """When an input changed: monotonic seconds (for durations) and UTC (for the event)."""

    mono: float
    wall: datetime

    @classmethod
    def now(cls) -> Edge:
        return cls(time.monotonic(), utc_now())


class DigitalInput:
    """A debounced contact on a GPIO.

    Each edge is stamped on gpiozero's thread (time and new level) and handed to the
    scheduler. A level counts once it lasted `bounce_s` before the next edge; shorter
    levels (contact bounce, glitches) never reach the driver. The decision is made from the
    stamped edges, not by re-reading the pin, so a scheduler that runs late still sees a
    short press, with its true times. `on_change(asserted, edge)` runs on the scheduler
    thread with the time of the edge that began the new level. (gpiozero's own bounce_time
    is not implemented by its mock pins; this behaves the same on the bench and the board.)
    """

    def __init__(
        self,
        pin: int,
        *,
        active_low: bool,
        pull_up: bool,
        bounce_s: float,
        scheduler: Scheduler,
        on_change: Callable[[bool, Edge], None],
        pin_factory: Any = None,
    ):
        self.pin = pin
        self._active_low = active_low
        self._pull_up = pull_up
        self._bounce_s = bounce_s
        self._scheduler = scheduler
        self._on_change = on_change
        self._dev = DigitalInputDevice(pin, pull_up=pull_up, pin_factory=pin_factory)
        self._edges: list[tuple[Edge, bool]] = []  # not yet settled (scheduler thread)
        self._confirm: Timer | None = None
        self.asserted = False

    def start(self) -> bool:
        """Begin watching; returns whether the contact is asserted now."""
        self._dev.when_activated = partial(self._edge, True)
        self._dev.when_deactivated = partial(self._edge, False)
        self.asserted = self.read()
        return self.asserted

    def read(self) -> bool:
        """The contact's state right now (not debounced)."""
        return self._asserted(bool(self._dev.value))

    def _asserted(self, active: bool) -> bool:
        high = active != self._pull_up  # gpiozero: active = low with a pull-up
        return high != self._active_low

    def _edge(self, active: bool) -> None:  # gpiozero's thread
        self._scheduler.call_soon(self._on_edge, Edge.now(), self._asserted(active))

    def _on_edge(self, edge: Edge, asserted: bool) -> None:
        self._edges.append((edge, asserted))
        self._settle()

    def _settle(self) -> None:
        now = self._scheduler.clock()
        edges = self._edges
        while edges:
            edge, asserted = edges[0]
            end = edges[1][0].mono if len(edges) > 1 else now
            if end - edge.mono < self._bounce_s:
                if len(edges) == 1:
                    break  # the newest level has not lasted long enough yet
                del edges[0]  # a glitch: the level did not last
                continue
            del edges[0]
            if asserted != self.asserted:
                self.asserted = asserted
                self._on_change(asserted, edge)
        if self._confirm is not None:
            self._confirm.cancel()
            self._confirm = None
        if edges:
            wait = edges[-1][0].mono + self._bounce_s - now
            self._confirm = self._scheduler.call_later(wait, self._settle)

    def close(self) -> None:
        if self._confirm is not None:
            self._confirm.cancel()
        self._dev.when_activated = None
        self._dev.when_deactivated = None
        self._dev.close()


class Led:
    def __init__(self, pin: int, *, active_high: bool = True, pin_factory: Any = None):
        self._led = LED(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)

    def on(self) -> None:
        self._led.on()

    def off(self) -> None:
        self._led.off()

    def blink(self, on_s: float, off_s: float, n: int | None = None) -> None:
        self._led.blink(on_time=on_s, off_time=off_s, n=n, background=True)

    @property
    def is_lit(self) -> bool:
        return bool(self._led.is_lit)

    def close(self) -> None:
        self._led.close()


class Output:
    """A plain on/off output, e.g. a smoke alarm's remote hush input."""

    def __init__(self, pin: int, *, active_high: bool = True, pin_factory: Any = None):
        self._dev = OutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )

    def on(self) -> None:
        self._dev.on()

    def off(self) -> None:
        self._dev.off()

    @property
    def is_active(self) -> bool:
        return bool(self._dev.is_active)

    def close(self) -> None:
        self._dev.close()


class Beeper:
    def __init__(self, pin: int, *, active_high: bool = True, pin_factory: Any = None):
        self._buzzer = Buzzer(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )

    def chirp(self, n: int = 1, on_s: float = 0.08, off_s: float = 0.08) -> None:
        self._buzzer.beep(on_time=on_s, off_time=off_s, n=n, background=True)

    def off(self) -> None:
        self._buzzer.off()

    @property
    def is_active(self) -> bool:
        return bool(self._buzzer.is_active)

    def close(self) -> None:
        self._buzzer.close()


class Mcp3008Input:
    """One channel of an MCP3008 10-bit ADC on hardware SPI (single-ended)."""

    def __init__(
        self,
        channel: int,
        *,
        spi_port: int = 0,
        spi_device: int = 0,
        vref: float = 3.3,
        pin_factory: Any = None,
    ):
        self._adc = MCP3008(
            channel=channel,
            max_voltage=vref,
            port=spi_port,
            device=spi_device,
            pin_factory=pin_factory,
        )

    @property
    def voltage(self) -> float:
        return float(self._adc.voltage)

    def close(self) -> None:
        self._adc.close()


# -- Simulation below the driver: gpiozero's mock pin factory ---------------------------------


class SimPin(MockPin):
    """A mock GPIO with a contact wired to it, like the real board.

    A closed contact pulls the pin to `closed_level` whatever the pull resistor says; an open
    one leaves it to the pull. So a gpiozero device that sets its pull-up at construction
    still reads a contact the simulator closed before (a plain MockPin would be forced high).
    """

    def __init__(self, factory: Any, info: Any):
        self.contact_closed = False
        self.closed_level = False
        super().__init__(factory, info)

    def set_contact(self, closed: bool, closed_level: bool = False) -> None:
        self.contact_closed = closed
        self.closed_level = closed_level
        if self._function == "input":
            self._apply()

    def _set_pull(self, value: str) -> None:
        if self.function != "input":
            raise PinFixedPull(f"cannot set pull on non-input pin {self!r}")
        if self.info.pull and value != self.info.pull:
            raise PinFixedPull(f"{self!r} has a fixed pull resistor")
        if value not in ("floating", "up", "down"):
            raise PinInvalidPull("pull must be floating, up, or down")
        self._pull = value
        self._apply()

    def _apply(self) -> None:
        if self.contact_closed:
            level = self.closed_level
        elif self._pull == "floating":
            level = not self.closed_level
        else:
            level = self._pull == "up"
        if level:
            self.drive_high()
        else:
            self.drive_low()


class _SimSPIBus(SPISoftwareBus):
    """gpiozero's bit-banged SPI bus, fixed for several mock factories in one process.

    gpiozero 2.0 shares software SPI buses (and interfaces) process-wide, keyed by pin names
    only, and builds the bus without passing the pin factory on; two simulated gateways would
    end up on one bus. Keying by factory as well keeps each gateway's MCP3008 its own.
    """

    def __init__(self, clock_pin: Any, mosi_pin: Any, miso_pin: Any, *, pin_factory: Any):
        self.lock = None
        self.clock = None
        self.mosi = None
        self.miso = None
        Device.__init__(self, pin_factory=pin_factory)
        self.lock = threading.RLock()
        try:
            self.clock = OutputDevice(clock_pin, active_high=True, pin_factory=pin_factory)
            self.mosi = OutputDevice(mosi_pin, pin_factory=pin_factory)
            self.miso = InputDevice(miso_pin, pin_factory=pin_factory)
        except Exception:
            self.close()
            raise

    @classmethod
    def _shared_key(
        cls, clock_pin: Any, mosi_pin: Any, miso_pin: Any, *, pin_factory: Any = None
    ) -> Any:
        return (pin_factory, "bus", clock_pin, mosi_pin, miso_pin)


class _SimSPI(SPISoftware):
    def __init__(
        self, clock_pin: Any, mosi_pin: Any, miso_pin: Any, select_pin: Any, *, pin_factory: Any
    ):
        self._bus = None
        self._select = None
        SPI.__init__(self, pin_factory=pin_factory)
        try:
            self._clock_phase = False
            self._lsb_first = False
            self._bits_per_word = 8
            self._bus = _SimSPIBus(clock_pin, mosi_pin, miso_pin, pin_factory=pin_factory)
            self._select = OutputDevice(select_pin, active_high=False, pin_factory=pin_factory)
        except Exception:
            self.close()
            raise


class _SimSPIShared(SharedMixin, _SimSPI):
    @classmethod
    def _shared_key(
        cls, clock_pin: Any, mosi_pin: Any, miso_pin: Any, select_pin: Any, *, pin_factory: Any
    ) -> Any:
        return (pin_factory, "spi", clock_pin, select_pin)


class SimFactory(MockFactory):
    """gpiozero's MockFactory with SimPin pins and a per-factory software SPI."""

    def __init__(self) -> None:
        super().__init__(revision="c03112", pin_class=SimPin)  # a Raspberry Pi 4B

    def _get_spi_class(self, shared: bool, hardware: bool) -> Any:
        return _SimSPIShared if shared else _SimSPI


class MockMcp3008(MockSPIDevice):
    """The slave side of an MCP3008, speaking its SPI protocol (datasheet figure 6-1).

    Start bit, SGL/DIFF bit, three channel bits; then a null bit and ten result bits, MSB first.
    """

    rx_buf: list[int]  # the bits read since the last reset (the untyped base class fills it)

    def __init__(self, *pins: int, vref: float = 3.3, pin_factory: Any):
        super().__init__(*pins, pin_factory=pin_factory)
        self.vref = vref
        self.volts = [0.0] * 8
        self._state = "idle"

    def on_start(self) -> None:
        super().on_start()
        self._state = "idle"

    def on_bit(self) -> None:
        if self._state == "idle":
            if self.rx_buf[-1]:
                self._state = "mode"
                self.rx_buf = []
        elif self._state == "mode":
            self._state = "single" if self.rx_buf[-1] else "diff"
            self.rx_buf = []
        elif self._state in ("single", "diff"):
            if len(self.rx_buf) == 3:
                channel = self.rx_word()
                volts = self.volts[channel]
                if self._state == "diff":
                    volts -= self.volts[channel ^ 1]
                volts = min(max(volts, 0.0), self.vref)
                self.tx_word(round(volts / self.vref * 1023), 12)
                self._state = "result"
        elif self._state == "result" and not self.tx_buf:
            self._state = "idle"
            self.rx_buf = []


class SimBoard:
    """One simulated Raspberry Pi: the pin factory the drivers use, and the wires around it."""

    def __init__(self) -> None:
        self.factory = SimFactory()
        self._adcs: dict[tuple[int, int], MockMcp3008] = {}

    def pin(self, number: int) -> SimPin:
        pin = self.factory.pin(number)
        assert isinstance(pin, SimPin)
        return pin

    def set_contact(self, number: int, closed: bool, *, closed_level: bool) -> None:
        self.pin(number).set_contact(closed, closed_level)

    def level(self, number: int) -> bool:
        return bool(self.factory.pin(number).state)

    def history(self, number: int) -> list[tuple[float, bool]]:
        """(seconds since the previous change, level) for every change of a pin."""
        return [(s.timestamp, bool(s.state)) for s in self.factory.pin(number).states]

    def clear_history(self, number: int) -> None:
        self.factory.pin(number).clear_states()

    def mcp3008(self, spi_port: int, spi_device: int, vref: float) -> MockMcp3008:
        """The MCP3008 on this SPI port/device (made on first use)."""
        key = (spi_port, spi_device)
        if key not in self._adcs:
            spi = SPI_PINS[spi_port]
            self._adcs[key] = MockMcp3008(
                spi.clock,
                spi.mosi,
                spi.miso,
                spi.select[spi_device],
                vref=vref,
                pin_factory=self.factory,
            )
        return self._adcs[key]

    def close(self) -> None:
        for adc in self._adcs.values():
            adc.close()
        self._adcs.clear()
