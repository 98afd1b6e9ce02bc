"""A site file: the street's registry (street → community → grid → building → home) and the
gateways installed in it, with every device bound to a home and to its hardware.

It lives in `firmware_configs/sites/`. The cloud seeds its registry from it; a gateway takes
its own entry from it. Operators write these files, so the models are strict: an unknown key,
a duplicate id or a device bound to an unknown home is an error that names the file and field.
"""

from __future__ import annotations

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


class Resident(_Strict):
    name: Name
    age: int | None = Field(None, ge=0, le=130)
    conditions: str = Field("", max_length=500, description="What a responder must know")
    contacts: list[Contact] = Field(default_factory=list)


class Home(_Strict):
    id: Slug
    name: Name
    residents: list[Resident] = Field(default_factory=list)


class Building(_Strict):
    id: Slug
    name: Name
    address: str = Field("", max_length=200)
    homes: list[Home] = Field(min_length=1)


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
    grids: list[Grid] = Field(min_length=1)


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
    devices: list[DeviceSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_devices_and_pins(self) -> GatewaySpec:
        seen: set[str] = set()
        used: dict[int, str] = {}
        for device in self.devices:
            if device.id in seen:
                raise ValueError(f"device id {device.id!r} appears twice")
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
        ids: dict[str, str] = {}

        def claim(kind: str, ident: str) -> None:
            if ident in ids:
                raise ValueError(f"{kind} id {ident!r} is already used by a {ids[ident]}")
            ids[ident] = kind

        homes: dict[str, str] = {}  # home id → building id
        for community in self.communities:
            claim("community", community.id)
            for grid in community.grids:
                claim("grid", grid.id)
                for building in grid.buildings:
                    claim("building", building.id)
                    for home in building.homes:
                        claim("home", home.id)
                        homes[home.id] = building.id
        for gateway in self.gateways:
            claim("gateway", gateway.id)
            if ids.get(gateway.building) != "building":
                raise ValueError(f"gateway {gateway.id}: unknown building {gateway.building!r}")
            for device in gateway.devices:
                if device.home not in homes:
                    raise ValueError(f"device {device.id}: unknown home {device.home!r}")
                if homes[device.home] != gateway.building:
                    raise ValueError(
                        f"device {device.id}: home {device.home!r} is not in building "
                        f"{gateway.building!r} of gateway {gateway.id}"
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
