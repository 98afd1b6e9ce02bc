"""What every driver shares: what it reports (to a Sink), and where its hardware is.

Drivers see our types only: a `Sink` for what they observe, a `Hardware` that says which pin
factory and which serial port to use (the real board, or the simulator below the driver).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from contract.models import EventType, Kind, Values, utc_now


@dataclass(frozen=True)
class DeviceEvent:
    """Something happened at a device (the gateway turns it into a contract Event)."""

    device: str
    kind: Kind
    type: EventType
    values: Values = field(default_factory=Values)
    ts: datetime = field(default_factory=utc_now)
    detail: str = ""  # for the local log only
    drill: int | None = None  # a drill's scripted incident (contract/drill.py), never a device's


@dataclass(frozen=True)
class Sample:
    """One measurement (the gateway batches these into Telemetry)."""

    device: str
    kind: Kind
    values: Values
    ts: datetime = field(default_factory=utc_now)


class Reports(Protocol):
    """Where observations go. Called from driver threads: implementations must be
    thread-safe."""

    def event(self, event: DeviceEvent) -> None: ...

    def sample(self, sample: Sample) -> None: ...


class Sink(Reports, Protocol):
    """What drivers report to: observations, and `alive(device)` whenever the device was
    heard from without anything to report (a valid frame, a reply, a radio message), which
    is what supervision counts (see `edge.supervision`)."""

    def alive(self, device: str) -> None: ...


class Hardware(Protocol):
    """Where the devices are: a gpiozero pin factory (None = gpiozero's default) and ports."""

    @property
    def pin_factory(self) -> Any: ...

    def serial_port(self, device_id: str, configured: str) -> str: ...

    def audio_device(self, role: str, configured: str) -> str:
        """The microphone (`capture`) or speaker (`playback`): an ALSA name or a WAV file."""
        ...


class RealHardware:
    """The board itself: gpiozero's default pin factory and the ports as configured."""

    pin_factory: Any = None

    def serial_port(self, device_id: str, configured: str) -> str:
        return configured

    def audio_device(self, role: str, configured: str) -> str:
        return configured


class Driver(Protocol):
    """One device. `start()` begins watching it; `close()` releases pins and threads."""

    device_id: str

    def start(self) -> None: ...

    def close(self) -> None: ...


class HushRefused(Exception):
    """A remote hush cannot be done now (the message says why: not in alarm, hushed already,
    the device cannot be hushed)."""
