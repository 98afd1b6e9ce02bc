"""Device models: the files in `firmware_configs/models/`, what a device model says.

One device model is a driver family and its options: contacts, debounce, calibration,
sampling, the expected report interval for supervision, the Zigbee message table. One strict
union, discriminated on `driver`. The gateway drives devices by them; the cloud reads their
kind and report interval, and checks a site's devices against them (`contract.wiring`).

Operators write these files, so everything is strict (unknown keys are errors) and every error
names the file and the field.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from contract.models import EventType, Kind, Values
from contract.site import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Strict):
    """A dry contact or push button on a GPIO input."""

    active_low: bool = Field(description="True: the pin reads low when the contact is active")
    pull_up: bool = Field(True, description="Internal pull-up (True) or pull-down (False)")


Seconds = Annotated[float, Field(gt=0, le=86400)]


class DeviceModelBase(_Strict):
    """Common to every device model. Subclasses set `kind` and the pin roles they use."""

    if TYPE_CHECKING:
        # Every model has a kind: a class constant, or a Zigbee model's field (one model
        # class, the kind per file). Declared for the type checker only: at run time a
        # property here would be shadowed by that field, which pydantic refuses.
        @property
        def kind(self) -> Kind: ...

    #: pin role → required?
    roles: ClassVar[dict[str, bool]] = {}
    #: at least one of these pin roles must be wired (when not empty)
    any_of_roles: ClassVar[tuple[str, ...]] = ()
    needs_adc: ClassVar[bool] = False
    needs_port: ClassVar[bool] = False

    description: str = Field("", max_length=200)
    report_interval_s: float | None = Field(
        None,
        gt=0,
        le=7 * 86400,
        description="Supervision: the device must be heard from at least this often, or a "
        "fault is raised (and a restore once it reports again). None: not supervised this "
        "way (a wired contact is supervised by its fault contact)",
    )

    def contact(self, role: str) -> Contact:
        """The contact settings of an input role."""
        value = getattr(self, role, None)
        if not isinstance(value, Contact):
            raise KeyError(f"{role!r} is not an input role of {type(self).__name__}")
        return value


class CallButtonModel(DeviceModelBase):
    """A one-key emergency call button with an LED and a buzzer."""

    kind: ClassVar[Kind] = Kind.CALL
    roles: ClassVar[dict[str, bool]] = {"button": True, "led": True, "buzzer": False}

    driver: Literal["call_button_gpio"]
    button: Contact = Contact(active_low=True)
    led_active_high: bool = True
    buzzer_active_high: bool = True
    bounce_s: float = Field(0.05, ge=0.001, le=1.0)
    long_press_s: float = Field(3.0, gt=0, le=60, description="Held this long = a test press")
    call_open_s: Seconds = Field(600, description="A press while a call is open is not new")
    help_led_s: Seconds = Field(600, description="LED shows 'help is coming' this long")
    chirp_s: float = Field(0.08, gt=0, le=2)

    @model_validator(mode="after")
    def _long_press_after_bounce(self) -> CallButtonModel:
        if self.long_press_s <= 2 * self.bounce_s:
            raise ValueError("long_press_s must be more than twice bounce_s")
        return self


class ContactDetectorModel(DeviceModelBase):
    """A detector with dry-contact outputs: alarm input(s) and optional fault, low-battery
    and tamper contacts (what the model exposes and the installer wired)."""

    #: the pin roles that mean "in alarm" (any asserted = alarm, all released = clear)
    alarm_roles: ClassVar[tuple[str, ...]] = ("alarm",)

    fault: Contact = Field(
        Contact(active_low=False), description="Normally closed: opens on a fault or a cut wire"
    )
    battery_low: Contact = Contact(active_low=True)
    tamper: Contact = Field(
        Contact(active_low=False), description="Normally closed: opens when the cover is off"
    )
    bounce_s: float = Field(0.1, ge=0.001, le=5.0)


class SmokeModel(ContactDetectorModel):
    """A smoke alarm with an alarm contact and, where the model exposes them, fault, test,
    low-battery and tamper outputs. The alarm contact closes during a self-test too: with the
    test output wired, that is reported as a test, never an alarm."""

    kind: ClassVar[Kind] = Kind.SMOKE
    roles: ClassVar[dict[str, bool]] = {
        "alarm": True,
        "fault": False,
        "test": False,
        "battery_low": False,
        "tamper": False,
        "hush": False,  # an output: the alarm's remote hush input (contract/hush.py)
    }

    driver: Literal["smoke_dry_contact"]
    alarm: Contact = Contact(active_low=True)
    test: Contact = Contact(active_low=True)
    hush_active_high: bool = Field(
        True, description="The hush output drives its pin high (True) or low to silence"
    )


class WaterModel(ContactDetectorModel):
    """A water-leak detector (probe + relay output) on a GPIO."""

    kind: ClassVar[Kind] = Kind.WATER
    roles: ClassVar[dict[str, bool]] = {"alarm": True, "fault": False, "tamper": False}

    driver: Literal["water_dry_contact"]
    alarm: Contact = Contact(active_low=True)


class PowerModel(ContactDetectorModel):
    """An electrical-circuit monitor: the over-current and residual-current (leakage) trip
    indications of a circuit's protective device, as dry contacts; at least one is wired."""

    kind: ClassVar[Kind] = Kind.POWER
    roles: ClassVar[dict[str, bool]] = {"overcurrent": False, "residual": False, "fault": False}
    any_of_roles: ClassVar[tuple[str, ...]] = ("overcurrent", "residual")
    alarm_roles: ClassVar[tuple[str, ...]] = ("overcurrent", "residual")

    driver: Literal["power_dry_contact"]
    overcurrent: Contact = Contact(active_low=True)
    residual: Contact = Contact(active_low=True)


class CalibrationPoint(_Strict):
    volts: float = Field(ge=0, le=5.5)
    pct_lel: float = Field(ge=0, le=100)


class GasModel(DeviceModelBase):
    """A methane detector: its alarm relay on a GPIO, its analogue output on the MCP3008."""

    kind: ClassVar[Kind] = Kind.GAS
    roles: ClassVar[dict[str, bool]] = {"relay": True}
    needs_adc: ClassVar[bool] = True

    driver: Literal["gas_mcp3008"]
    gas: Literal["methane"] = "methane"
    lel_pct_vol: float = Field(5.0, gt=0, le=100, description="100 %LEL in % by volume")
    relay: Contact = Contact(active_low=True)
    bounce_s: float = Field(0.1, ge=0.001, le=5.0)
    calibration: list[CalibrationPoint] = Field(min_length=2, max_length=32)
    fault_below_v: float | None = Field(0.3, ge=0, le=5.5)
    warmup_s: float = Field(180, ge=0, le=3600)
    sample_period_s: float = Field(5.0, ge=0.05, le=3600)

    @model_validator(mode="after")
    def _calibration_increasing(self) -> GasModel:
        volts = [p.volts for p in self.calibration]
        pct = [p.pct_lel for p in self.calibration]
        if any(b <= a for a, b in pairwise(volts)):
            raise ValueError("calibration: volts must be strictly increasing")
        if any(b < a for a, b in pairwise(pct)):
            raise ValueError("calibration: pct_lel must not decrease")
        return self

    def pct_lel(self, volts: float) -> float:
        """ADC volts → %LEL by the calibration (piecewise linear, clamped to 0–100)."""
        points = self.calibration
        if volts <= points[0].volts:
            return _clamp(points[0].pct_lel)
        for a, b in pairwise(points):
            if volts <= b.volts:
                frac = (volts - a.volts) / (b.volts - a.volts)
                return _clamp(a.pct_lel + frac * (b.pct_lel - a.pct_lel))
        return _clamp(points[-1].pct_lel)

    def volts_for(self, pct_lel: float) -> float:
        """%LEL → the voltage the detector puts out (the simulator's side of the calibration)."""
        points = self.calibration
        if pct_lel <= points[0].pct_lel:
            return points[0].volts
        for a, b in pairwise(points):
            if pct_lel <= b.pct_lel and b.pct_lel > a.pct_lel:
                frac = (pct_lel - a.pct_lel) / (b.pct_lel - a.pct_lel)
                return a.volts + frac * (b.volts - a.volts)
        return points[-1].volts


def _clamp(pct: float) -> float:
    return min(100.0, max(0.0, pct))


class AirModel(DeviceModelBase):
    """A Plantower PMS5003 particle sensor on a UART (9600 8N1, active mode)."""

    kind: ClassVar[Kind] = Kind.AIR
    needs_port: ClassVar[bool] = True

    driver: Literal["air_pms5003"]
    baudrate: Literal[9600] = 9600
    sample_period_s: float = Field(10.0, ge=0.05, le=3600)


class Co2Model(DeviceModelBase):
    """A Senseair S8 CO2 sensor on a UART, polled over Modbus RTU (9600 8N1)."""

    kind: ClassVar[Kind] = Kind.AIR
    needs_port: ClassVar[bool] = True

    driver: Literal["co2_senseair_s8"]
    baudrate: Literal[9600] = 9600
    address: int = Field(0xFE, ge=1, le=0xFE, description="Modbus address (0xFE: any sensor)")
    sample_period_s: float = Field(10.0, ge=0.05, le=3600)
    reply_timeout_s: float = Field(0.5, gt=0, le=5)
    max_ppm: int = Field(10000, gt=0, le=100000, description="Above this a reading is bogus")


class ZigbeeBinary(_Strict):
    """What a true/false property of a zigbee2mqtt message means. (Not `on`/`off`: YAML 1.1
    reads those keys as booleans.)"""

    when_true: EventType = Field(description="The event when it becomes true")
    when_false: EventType | None = Field(None, description="The event when it becomes false")


class ZigbeeHush(_Strict):
    """How a Zigbee smoke alarm is silenced through zigbee2mqtt: `{property: true}` published
    on `{base_topic}/{friendly_name}/set` (the property its zigbee2mqtt page documents, e.g.
    `silence`), and `{property: false}` when the hush is over."""

    property: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")


class ZigbeeModel(DeviceModelBase):
    """A Zigbee device behind a local zigbee2mqtt: how its messages map to our events.

    zigbee2mqtt publishes the device's state as JSON on `{base_topic}/{friendly_name}` and its
    availability on `{base_topic}/{friendly_name}/availability`; the friendly name is our
    device id. `binary` maps true/false properties to events (sent when the value changes),
    `actions` maps values of the `action` property (button presses) to events, `values` maps
    numeric properties to our units (sent as readings, and with the events).
    """

    kind: Kind  # per model file here, not per class

    driver: Literal["zigbee2mqtt"]
    binary: dict[str, ZigbeeBinary] = Field(default_factory=dict)
    actions: dict[str, EventType] = Field(default_factory=dict)
    values: dict[str, str] = Field(default_factory=dict, description="property → unit name")
    hush: ZigbeeHush | None = Field(None, description="Remote hush (smoke alarms that have it)")

    @model_validator(mode="after")
    def _maps_something_known(self) -> ZigbeeModel:
        if not (self.binary or self.actions):
            raise ValueError("a zigbee model needs 'binary' or 'actions' (or both)")
        for prop, unit in self.values.items():
            if unit not in Values.model_fields:
                raise ValueError(f"values.{prop}: unknown unit name {unit!r}")
        if self.kind is Kind.GATEWAY:
            raise ValueError("kind 'gateway' is the gateway itself, not a device")
        if self.hush is not None and self.kind is not Kind.SMOKE:
            raise ValueError("hush: only a smoke alarm can be hushed")
        return self


DeviceModel = Annotated[
    CallButtonModel
    | SmokeModel
    | WaterModel
    | PowerModel
    | GasModel
    | AirModel
    | Co2Model
    | ZigbeeModel,
    Field(discriminator="driver"),
]


class DeviceModelFile(RootModel[DeviceModel]):
    """A file in `firmware_configs/models/`."""


def load_model(path: Path) -> DeviceModelBase:
    """Read one device model file (errors name the file and the field)."""
    return load_yaml_model(path, DeviceModelFile).root
