"""`--script FILE`: timed steps for the simulated devices, so a subprocess agent can be driven.

    - {at: 0.5, do: press_call, device: call-0101}
    - {at: 1.0, do: trip_smoke, device: smoke-0102}
    - {at: 2.0, do: set_gas, device: gas-0101, pct_lel: 35}
    - {at: 2.5, do: set_air, device: air-0201, pm1: 10, pm25: 35, pm10: 50}
    - {at: 3.0, do: gas_relay, device: gas-0101, alarm: true}
    - {at: 3.5, do: smoke_fault, device: smoke-0102, fault: true}
    - {at: 4.0, do: water_leak, device: water-0101, leaking: true}
    - {at: 4.5, do: circuit_trip, device: power-0101, contact: residual, tripped: true}
    - {at: 5.0, do: set_co2, device: co2-0201, ppm: 1450}

(No argument is called `on`: YAML 1.1 reads that key as the boolean true.)

`at` is seconds after the agent started; steps run one after another in file order.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from contract.models import DeviceId
from contract.site import ConfigFileError, load_yaml_model
from edge.sim import SimulatedHardware

log = logging.getLogger(__name__)


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float = Field(ge=0, le=86400)
    device: DeviceId

    def apply(self, hardware: SimulatedHardware) -> None:
        raise NotImplementedError


class PressCall(_Step):
    do: Literal["press_call"]
    hold_s: float = Field(0.2, gt=0, le=60)

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.press_call(self.device, self.hold_s)


class TripSmoke(_Step):
    do: Literal["trip_smoke"]

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.trip_smoke(self.device)


class ClearSmoke(_Step):
    do: Literal["clear_smoke"]

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.clear_smoke(self.device)


class SmokeFault(_Step):
    do: Literal["smoke_fault"]
    fault: bool = True

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.smoke_fault(self.device, self.fault)


class GasRelay(_Step):
    do: Literal["gas_relay"]
    alarm: bool

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.gas_relay(self.device, self.alarm)


class SetGas(_Step):
    do: Literal["set_gas"]
    pct_lel: float = Field(ge=0, le=100)

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.set_gas(self.device, self.pct_lel)


class SetAir(_Step):
    do: Literal["set_air"]
    pm1: float = Field(ge=0, le=10000)
    pm25: float = Field(ge=0, le=10000)
    pm10: float = Field(ge=0, le=10000)

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.set_air(self.device, self.pm1, self.pm25, self.pm10)


class WaterLeak(_Step):
    do: Literal["water_leak"]
    leaking: bool = True

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.water_leak(self.device, self.leaking)


class CircuitTrip(_Step):
    do: Literal["circuit_trip"]
    contact: Literal["overcurrent", "residual"] = "overcurrent"
    tripped: bool = True

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.circuit_trip(self.device, self.contact, self.tripped)


class SetCo2(_Step):
    do: Literal["set_co2"]
    ppm: float = Field(ge=0, le=100000)

    def apply(self, hardware: SimulatedHardware) -> None:
        hardware.set_co2(self.device, self.ppm)


Step = Annotated[
    PressCall
    | TripSmoke
    | ClearSmoke
    | SmokeFault
    | GasRelay
    | SetGas
    | SetAir
    | WaterLeak
    | CircuitTrip
    | SetCo2,
    Field(discriminator="do"),
]


class Script(RootModel[list[Step]]):
    pass


def load_script(path: Path, hardware: SimulatedHardware | None = None) -> list[Step]:
    """Read a script; with `hardware`, also check every step's device exists there."""
    steps = load_yaml_model(path, Script).root
    if hardware is not None:
        for index, step in enumerate(steps):
            try:
                hardware.config.device(step.device)
            except KeyError as exc:
                raise ConfigFileError(f"{path}: {index}.device: {exc.args[0]}") from None
    return steps


class ScriptRunner:
    """Runs steps on a thread, timed from `start()`."""

    def __init__(self, steps: list[Step], hardware: SimulatedHardware):
        self.steps = steps
        self.hardware = hardware
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="script", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            for index, step in enumerate(self.steps):
                if self._stop.wait(max(0.0, t0 + step.at - time.monotonic())):
                    return
                log.info("script step index=%d do=%s device=%s", index, step.do, step.device)
                try:
                    step.apply(self.hardware)
                except Exception:
                    log.exception("script step failed index=%d", index)
            log.info("script done steps=%d", len(self.steps))
        finally:
            self.done.set()
