"""A site file: the street's registry (street → community → grid → building → home) and the
gateways installed in it, with every device bound to a home and to its hardware.

It lives in `firmware_configs/sites/`. The cloud seeds its registry from it; a gateway takes
its own entry from it. Operators write these files, so the models are strict: an unknown key,
a duplicate id or a device bound to an unknown home is an error that names the file and field.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.models import DeviceId, GatewayId

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Name = Annotated[str, Field(min_length=1, max_length=100)]
M = TypeVar("M", bound=BaseModel)

Phone = Annotated[str, Field(pattern=r"^\+?[0-9 -]{3,20}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Strict):
    name: Name
    relation: str = Field("", max_length=40)
    phone: Phone


class ResidentFlag(StrEnum):
    """What a responder must know before going in, at a glance: shown on the board's row next
    to the resident's name (the free-text `conditions` say the rest, in the case)."""

    LIVES_ALONE = "lives_alone"  # 独居: nobody else to open the door or call back
    MOBILITY = "mobility"  # 行动不便: cannot get out alone
    HEARING = "hearing"  # 听力障碍: may not hear a call back or the sounder
    VISION = "vision"  # 视力障碍
    COGNITIVE = "cognitive"  # 认知障碍: may not understand or remember
    OXYGEN = "oxygen"  # 家庭用氧: oxygen at home (fire and gas cases)


class Resident(_Strict):
    name: Name
    age: int | None = Field(None, ge=0, le=130)
    phone: Phone | None = Field(
        None, description="The resident's own phone (home line or mobile): the call back"
    )
    flags: list[ResidentFlag] = Field(
        default_factory=list, max_length=len(ResidentFlag), description="At a glance"
    )
    conditions: str = Field("", max_length=500, description="What a responder must know")
    contacts: list[Contact] = Field(default_factory=list)

    @model_validator(mode="after")
    def _flags_once(self) -> Resident:
        if len(set(self.flags)) != len(self.flags):
            raise ValueError(f"a flag is given twice: {', '.join(f.value for f in self.flags)}")
        return self


class Home(_Strict):
    id: Slug
    name: Name
    residents: list[Resident] = Field(default_factory=list)


class Building(_Strict):
    id: Slug
    name: Name
    address: str = Field("", max_length=200)
    homes: list[Home] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_home_names(self) -> Building:
        seen: dict[str, str] = {}
        for home in self.homes:
            if home.name in seen:
                raise ValueError(
                    f"duplicate home name {home.name!r} in building {self.id} "
                    f"(homes {seen[home.name]} and {home.id})"
                )
            seen[home.name] = home.id
        return self


class Worker(_Strict):
    name: Name
    phone: Phone


class Grid(_Strict):
    id: Slug
    name: Name
    worker: Worker | None = None
    buildings: list[Building] = Field(default_factory=list)


class Community(_Strict):
    id: Slug
    name: Name
    grids: list[Grid] = Field(default_factory=list)


class Street(_Strict):
    id: Slug
    name: Name


class DeviceSpec(_Strict):
    """One device as installed: which model, which home, which pins / channel / port."""

    id: DeviceId
    model: Slug = Field(description="A file in firmware_configs/models/, without .yaml")
    home: Slug
    pins: dict[str, int] = Field(default_factory=dict, description="role → BCM GPIO number")
    adc_channel: int | None = Field(None, ge=0, le=7, description="MCP3008 channel")
    port: str | None = Field(None, description="Serial port, e.g. /dev/serial0")
    serial: str | None = Field(
        None, min_length=1, max_length=64, description="The unit's serial number, if recorded"
    )

    @model_validator(mode="after")
    def _pins_in_range(self) -> DeviceSpec:
        for role, pin in self.pins.items():
            if not 2 <= pin <= 27:
                raise ValueError(f"pin {role}={pin} is not a BCM GPIO number (2–27)")
        return self


class GatewaySpec(_Strict):
    id: GatewayId
    building: Slug
    profile: Slug = Field(description="A file in firmware_configs/profiles/, without .yaml")
    # empty while a new gateway is installed and before its devices are bound
    devices: list[DeviceSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_devices_and_pins(self) -> GatewaySpec:
        seen: set[str] = set()
        used: dict[int, str] = {}
        for device in self.devices:
            if device.id in seen:
                raise ValueError(f"duplicate device {device.id} on gateway {self.id}")
            seen.add(device.id)
            for role, pin in device.pins.items():
                if pin in used:
                    raise ValueError(
                        f"GPIO{pin} is used by both {used[pin]} and {device.id}.{role}"
                    )
                used[pin] = f"{device.id}.{role}"
        return self


class Site(_Strict):
    street: Street
    communities: list[Community] = Field(min_length=1)
    gateways: list[GatewaySpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> Site:
        # every id is unique across the site; a message names the thing and where it is
        where: dict[str, str] = {}  # id → "home in building ld-01", ...

        def claim(kind: str, ident: str, place: str) -> None:
            if ident in where:
                raise ValueError(f"duplicate {kind} {ident}{place} (already a {where[ident]})")
            where[ident] = f"{kind}{place}"

        homes: dict[str, str] = {}  # home id → building id
        buildings: set[str] = set()
        for community in self.communities:
            claim("community", community.id, "")
            for grid in community.grids:
                claim("grid", grid.id, f" in community {community.id}")
                for building in grid.buildings:
                    claim("building", building.id, f" in grid {grid.id}")
                    buildings.add(building.id)
                    for home in building.homes:
                        claim("home", home.id, f" in building {building.id}")
                        homes[home.id] = building.id
        for gateway in self.gateways:
            claim("gateway", gateway.id, f" in building {gateway.building}")
            if gateway.building not in buildings:
                raise ValueError(f"gateway {gateway.id}: unknown building {gateway.building}")
            for device in gateway.devices:
                if device.home not in homes:
                    raise ValueError(f"device {device.id}: unknown home {device.home}")
                if homes[device.home] != gateway.building:
                    raise ValueError(
                        f"device {device.id}: home {device.home} is not in building "
                        f"{gateway.building} of gateway {gateway.id}"
                    )
        return self

    def gateway(self, gateway_id: str) -> GatewaySpec:
        for gateway in self.gateways:
            if gateway.id == gateway_id:
                return gateway
        raise KeyError(f"no gateway {gateway_id!r} in this site")


class ConfigFileError(ValueError):
    """A config file could not be read or is invalid; the message names the file and field."""


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read a YAML file into a strict model; errors name the file and the field path."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {exc.error_count()} problem(s) in {model.__name__}:"]
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "(top level)"
            lines.append(f"  - {where}: {err['msg']}")
        raise ConfigFileError("\n".join(lines)) from exc


def load_site(path: Path) -> Site:
    return load_yaml_model(path, Site)
