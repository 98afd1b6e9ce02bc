"""Device models and gateway hardware profiles: what the edge needs to know to drive a device.

- `firmware_configs/models/{model}.yaml`: one device model (driver family + its options:
  contacts, debounce, calibration, sampling, the expected report interval for supervision,
  the Zigbee message table). One strict union, discriminated on `driver`.
- `firmware_configs/profiles/{profile}.yaml`: one gateway board (which GPIOs exist, which are
  reserved, where the MCP3008 sits, which serial ports exist, the board's own alarm lamp and
  sounder, a Zigbee coordinator).
- `validate_gateway()` checks a site's `GatewaySpec` against its profile and models: every
  required pin role bound, no unknown roles, an ADC channel for gas, a port for UART sensors,
  a coordinator for Zigbee devices.

Operators write these files, so everything is strict (unknown keys are errors) and every error
names the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from contract.models import EventType, Kind, Values
from contract.site import ConfigFileError, DeviceSpec, GatewaySpec, load_site, load_yaml_model

#: The repository's `firmware_configs/` folder (models/, profiles/, sites/).
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "firmware_configs"


@dataclass(frozen=True)
class SpiPins:
    """The GPIOs (BCM) of one hardware SPI port; `select[n]` is chip-select n."""

    clock: int
    mosi: int
    miso: int
    select: tuple[int, ...]


#: Hardware SPI ports of the Raspberry Pi header.
SPI_PINS = {0: SpiPins(clock=11, mosi=10, miso=9, select=(8, 7))}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Strict):
    """A dry contact or push button on a GPIO input."""

    active_low: bool = Field(description="True: the pin reads low when the contact is active")
    pull_up: bool = Field(True, description="Internal pull-up (True) or pull-down (False)")


Seconds = Annotated[float, Field(gt=0, le=86400)]


class DeviceModelBase(_Strict):
    """Common to every device model. Subclasses set `kind` and the pin roles they use."""

    kind: ClassVar[Kind]
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
    }

    driver: Literal["smoke_dry_contact"]
    alarm: Contact = Contact(active_low=True)
    test: Contact = Contact(active_low=True)


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


class ZigbeeModel(DeviceModelBase):
    """A Zigbee device behind a local zigbee2mqtt: how its messages map to our events.

    zigbee2mqtt publishes the device's state as JSON on `{base_topic}/{friendly_name}` and its
    availability on `{base_topic}/{friendly_name}/availability`; the friendly name is our
    device id. `binary` maps true/false properties to events (sent when the value changes),
    `actions` maps values of the `action` property (button presses) to events, `values` maps
    numeric properties to our units (sent as readings, and with the events).
    """

    kind: Kind  # type: ignore[misc]  # per model file here, not per class

    driver: Literal["zigbee2mqtt"]
    binary: dict[str, ZigbeeBinary] = Field(default_factory=dict)
    actions: dict[str, EventType] = Field(default_factory=dict)
    values: dict[str, str] = Field(default_factory=dict, description="property → unit name")

    @model_validator(mode="after")
    def _maps_something_known(self) -> ZigbeeModel:
        if not (self.binary or self.actions):
            raise ValueError("a zigbee model needs 'binary' or 'actions' (or both)")
        for prop, unit in self.values.items():
            if unit not in Values.model_fields:
                raise ValueError(f"values.{prop}: unknown unit name {unit!r}")
        if self.kind is Kind.GATEWAY:
            raise ValueError("kind 'gateway' is the gateway itself, not a device")
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


class AdcConfig(_Strict):
    chip: Literal["mcp3008"] = "mcp3008"
    spi_port: Literal[0] = 0
    spi_device: int = Field(0, ge=0, le=1)
    vref: float = Field(3.3, gt=0, le=5.5)

    def pins(self) -> dict[int, str]:
        """The GPIOs this ADC's SPI bus uses, with what for."""
        spi, bus = SPI_PINS[self.spi_port], f"SPI{self.spi_port}"
        return {
            spi.clock: f"{bus} SCLK ({self.chip})",
            spi.mosi: f"{bus} MOSI ({self.chip})",
            spi.miso: f"{bus} MISO ({self.chip})",
            spi.select[self.spi_device]: f"{bus} CE{self.spi_device} ({self.chip})",
        }


class LocalAlarmConfig(_Strict):
    """The gateway's own sounder and lamp (in the stairwell or on the box): they react to a
    life-safety event at once, whether or not the uplink is there."""

    led: int = Field(ge=2, le=27, description="BCM GPIO of the alarm lamp / LED")
    buzzer: int | None = Field(None, ge=2, le=27, description="BCM GPIO of the sounder")
    led_active_high: bool = True
    buzzer_active_high: bool = True
    sound_s: float = Field(30.0, gt=0, le=3600, description="How long one alarm sounds")
    beep_s: float = Field(0.25, gt=0, le=5, description="On and off time of the sounder")
    call_s: float = Field(600.0, gt=0, le=86400, description="Lamp time for a call")

    def pins(self) -> dict[int, str]:
        pins = {self.led: "local alarm LED"}
        if self.buzzer is not None:
            pins[self.buzzer] = "local alarm buzzer"
        return pins


class ZigbeeConfig(_Strict):
    """A Zigbee coordinator on this board, run by a local zigbee2mqtt (see deploy/zigbee/)."""

    base_topic: str = Field("zigbee2mqtt", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class Profile(_Strict):
    """A file in `firmware_configs/profiles/`: one gateway board."""

    description: str = Field("", max_length=200)
    gpio: list[int] = Field(min_length=1, description="BCM GPIOs on the header")
    reserved: dict[int, str] = Field(default_factory=dict, description="GPIO → what uses it")
    adc: AdcConfig | None = None
    serial_ports: list[str] = Field(default_factory=list)
    local_alarm: LocalAlarmConfig | None = None
    zigbee: ZigbeeConfig | None = None

    @model_validator(mode="after")
    def _reserved_exist(self) -> Profile:
        for pin in self.reserved:
            if pin not in self.gpio:
                raise ValueError(f"reserved GPIO{pin} is not in gpio")
        if self.adc is not None:
            for pin in self.adc.pins():
                if pin not in self.gpio:
                    raise ValueError(f"adc: SPI pin GPIO{pin} is not in gpio")
        if self.local_alarm is not None:
            if self.local_alarm.buzzer == self.local_alarm.led:
                raise ValueError("local_alarm: led and buzzer are the same GPIO")
            for pin, what in self.local_alarm.pins().items():
                if pin not in self.gpio:
                    raise ValueError(f"local_alarm: GPIO{pin} is not in gpio")
                if pin in self.reserved or (self.adc is not None and pin in self.adc.pins()):
                    raise ValueError(f"local_alarm: GPIO{pin} ({what}) is reserved")
        return self

    def reserved_pins(self) -> dict[int, str]:
        """Every GPIO a device may not use: the listed ones, the ADC's SPI bus, the local
        alarm's LED and buzzer."""
        pins = dict(self.reserved)
        if self.adc is not None:
            for pin, what in self.adc.pins().items():
                pins.setdefault(pin, what)
        if self.local_alarm is not None:
            for pin, what in self.local_alarm.pins().items():
                pins.setdefault(pin, what)
        return pins


class GatewayConfigError(ConfigFileError):
    """A gateway's devices do not fit its profile or models; lists every problem found."""


@dataclass(frozen=True)
class GatewayConfig:
    """One gateway's validated configuration: its site entry, board profile and device models."""

    spec: GatewaySpec
    profile: Profile
    models: Mapping[str, DeviceModelBase]
    source: str = "site"
    _by_id: dict[str, DeviceSpec] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({d.id: d for d in self.spec.devices})

    @classmethod
    def build(
        cls,
        spec: GatewaySpec,
        profile: Profile,
        models: Mapping[str, DeviceModelBase],
        *,
        source: str = "site",
    ) -> GatewayConfig:
        """Validate (see `validate_gateway`) and bundle."""
        validate_gateway(spec, profile, models, source=source)
        return cls(spec=spec, profile=profile, models=dict(models), source=source)

    @property
    def gateway_id(self) -> str:
        return self.spec.id

    def device(self, device_id: str) -> DeviceSpec:
        try:
            return self._by_id[device_id]
        except KeyError:
            raise KeyError(f"no device {device_id!r} on gateway {self.spec.id}") from None

    def model_of(self, device_id: str) -> DeviceModelBase:
        return self.models[self.device(device_id).model]

    def unchanged(self, other: GatewayConfig) -> frozenset[str]:
        """Ids of the devices that are the same in `other`: same binding, same model."""
        return frozenset(
            d.id
            for d in other.spec.devices
            if d.id in self._by_id
            and self._by_id[d.id] == d
            and self.models[d.model] == other.models[d.model]
        )

    def only(self, device_ids: frozenset[str] | set[str]) -> GatewayConfig | None:
        """The same gateway with only these devices (None if that leaves none)."""
        devices = [d for d in self.spec.devices if d.id in device_ids]
        if not devices:
            return None
        spec = self.spec.model_copy(update={"devices": devices})
        return GatewayConfig(
            spec=spec, profile=self.profile, models=self.models, source=self.source
        )

    def with_model(self, name: str, **changes: object) -> GatewayConfig:
        """A copy with some options of one model changed (validated again)."""
        models = dict(self.models)
        models[name] = models[name].model_validate(models[name].model_dump() | changes)
        return GatewayConfig.build(self.spec, self.profile, models, source=self.source)


def validate_gateway(
    spec: GatewaySpec,
    profile: Profile,
    models: Mapping[str, DeviceModelBase],
    *,
    source: str = "site",
) -> None:
    """Check a gateway's devices against its board profile and device models.

    Raises GatewayConfigError listing every problem, each naming the file and field, e.g.
    ``demo.yaml: gateways[gw-ld01].devices[0].pins: no pin for role 'led' (model ...)``.
    """
    problems: list[str] = []
    reserved = profile.reserved_pins()
    adc_channels: dict[int, str] = {}
    ports: dict[str, str] = {}
    for index, device in enumerate(spec.devices):
        where = f"gateways[{spec.id}].devices[{index}]"
        model = models.get(device.model)
        if model is None:
            problems.append(
                f"{where}.model: unknown model {device.model!r} "
                f"(no firmware_configs/models/{device.model}.yaml)"
            )
            continue
        what = f"model {device.model!r}"
        for role, required in model.roles.items():
            if required and role not in device.pins:
                problems.append(f"{where}.pins: no pin for role {role!r} required by {what}")
        if model.any_of_roles and not set(model.any_of_roles) & set(device.pins):
            problems.append(
                f"{where}.pins: {what} needs a pin for at least one of "
                f"{', '.join(repr(r) for r in model.any_of_roles)}"
            )
        if isinstance(model, ZigbeeModel) and profile.zigbee is None:
            problems.append(
                f"{where}.model: {what} is a Zigbee device and profile {spec.profile!r} has no "
                "zigbee coordinator"
            )
        for role, pin in device.pins.items():
            if role not in model.roles:
                known = ", ".join(sorted(model.roles)) or "none"
                problems.append(
                    f"{where}.pins.{role}: unknown role {role!r} for {what} (roles: {known})"
                )
            elif pin not in profile.gpio:
                problems.append(
                    f"{where}.pins.{role}: GPIO{pin} does not exist on profile {spec.profile!r}"
                )
            elif pin in reserved:
                problems.append(
                    f"{where}.pins.{role}: GPIO{pin} is reserved on profile {spec.profile!r} "
                    f"({reserved[pin]})"
                )
        if model.needs_adc:
            if device.adc_channel is None:
                problems.append(f"{where}.adc_channel: required by {what}")
            elif profile.adc is None:
                problems.append(f"{where}.adc_channel: profile {spec.profile!r} has no ADC")
            elif device.adc_channel in adc_channels:
                problems.append(
                    f"{where}.adc_channel: channel {device.adc_channel} is already used by "
                    f"{adc_channels[device.adc_channel]}"
                )
            else:
                adc_channels[device.adc_channel] = device.id
        elif device.adc_channel is not None:
            problems.append(f"{where}.adc_channel: {what} has no analogue input")
        if model.needs_port:
            if not device.port:
                problems.append(f"{where}.port: a serial port is required by {what}")
            elif profile.serial_ports and device.port not in profile.serial_ports:
                problems.append(
                    f"{where}.port: {device.port!r} is not a serial port of profile "
                    f"{spec.profile!r} ({', '.join(profile.serial_ports)})"
                )
            elif device.port in ports:
                problems.append(
                    f"{where}.port: {device.port!r} is already used by {ports[device.port]}"
                )
            else:
                ports[device.port] = device.id
        elif device.port is not None:
            problems.append(f"{where}.port: {what} has no serial port")
    if problems:
        lines = [f"{source}: {len(problems)} problem(s) in gateway {spec.id}:"]
        lines += [f"  - {p}" for p in problems]
        raise GatewayConfigError("\n".join(lines))


def load_model(path: Path) -> DeviceModelBase:
    """Read one device model file (errors name the file and the field)."""
    return load_yaml_model(path, DeviceModelFile).root


def load_profile(path: Path) -> Profile:
    return load_yaml_model(path, Profile)


def load_gateway_config(
    site_path: Path | str,
    gateway_id: str,
    *,
    configs_dir: Path | str | None = None,
) -> GatewayConfig:
    """Load a site file, take one gateway from it, load its profile and models, validate."""
    site_path = Path(site_path)
    root = Path(configs_dir) if configs_dir is not None else CONFIGS_DIR
    site = load_site(site_path)
    try:
        spec = site.gateway(gateway_id)
    except KeyError:
        known = ", ".join(g.id for g in site.gateways) or "none"
        raise GatewayConfigError(
            f"{site_path}: gateways: no gateway {gateway_id!r} (gateways: {known})"
        ) from None
    profile_path = root / "profiles" / f"{spec.profile}.yaml"
    if not profile_path.exists():
        raise GatewayConfigError(
            f"{site_path}: gateways[{spec.id}].profile: unknown profile {spec.profile!r} "
            f"(no {profile_path})"
        )
    profile = load_profile(profile_path)
    models: dict[str, DeviceModelBase] = {}
    for device in spec.devices:
        model_path = root / "models" / f"{device.model}.yaml"
        if device.model not in models and model_path.exists():
            models[device.model] = load_model(model_path)
    return GatewayConfig.build(spec, profile, models, source=str(site_path))
