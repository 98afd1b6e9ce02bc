"""Configuration pushed by the cloud (`cmd/config`): read, validate, keep, and load again.

The document (YAML, carried in the command's `document`) is this gateway's entry of a site
file, optionally with a `version` label and device models inline:

    version: 2026-11-22.1
    id: gw-ld01
    building: ld-01
    profile: rpi4-standard
    devices:
      - {id: call-0101, model: call_button_gpio, home: h-01-0101, pins: {button: 17, led: 27}}
    models:                       # optional; the others come from firmware_configs/models/
      call_button_gpio: {driver: call_button_gpio, long_press_s: 2.5}

It is validated exactly as the files are at start-up (strict, every problem named by field)
before anything changes. The store keeps the document in force (`current.yaml`) and the one
before it (`previous.yaml`) in the gateway's state folder, next to the outbox; at start the
agent runs the stored one if there is one (`load()`), else the site file's entry.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.catalogue import Catalogue
from contract.devices import DeviceModelBase, DeviceModelFile
from contract.models import GatewayId
from contract.site import DeviceSpec, GatewaySpec, Slug
from contract.wiring import GatewayConfigError
from edge.config import GatewayConfig

log = logging.getLogger(__name__)

CURRENT = "current.yaml"
PREVIOUS = "previous.yaml"


class ConfigDocument(BaseModel):
    """What `cmd/config` carries: a gateway's site entry, a version label, inline models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field("", max_length=64)
    id: GatewayId
    building: Slug
    profile: Slug
    devices: list[DeviceSpec] = Field(min_length=1)
    models: dict[Slug, dict[str, Any]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Pushed:
    """A validated document and the configuration it makes."""

    document: ConfigDocument
    config: GatewayConfig
    text: str


class ConfigRefused(ValueError):
    """The document is not a valid configuration for this gateway; says every problem."""


def _problems(exc: ValidationError, prefix: str = "") -> list[str]:
    return [
        f"{prefix}{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
        for err in exc.errors()
    ]


def parse(
    text: str, gateway_id: str, *, configs_dir: Path | None = None, source: str = "cmd/config"
) -> Pushed:
    """Validate a document for `gateway_id`; raises ConfigRefused naming every problem."""
    catalogue = Catalogue.at(configs_dir)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigRefused(f"{source}: not valid YAML: {exc}") from exc
    try:
        document = ConfigDocument.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: {exc.error_count()} problem(s):", *_problems(exc, "  - ")]
        raise ConfigRefused("\n".join(lines)) from exc
    if document.id != gateway_id:
        raise ConfigRefused(f"{source}: id: this is gateway {gateway_id}, not {document.id}")
    problems: list[str] = []
    models: dict[str, DeviceModelBase] = {}
    for name, data in document.models.items():
        try:
            models[name] = DeviceModelFile.model_validate(data).root
        except ValidationError as exc:
            problems += _problems(exc, f"  - models.{name}.")
    for index, device in enumerate(document.devices):
        if device.model not in models and catalogue.model_path(device.model).exists():
            try:
                models[device.model] = catalogue.model(device.model)
            except ValueError as exc:
                problems.append(f"  - devices[{index}].model: {exc}")
    profile_path = catalogue.profile_path(document.profile)
    if not profile_path.exists():
        problems.append(f"  - profile: unknown profile {document.profile!r} (no {profile_path})")
    if problems:
        raise ConfigRefused("\n".join([f"{source}: {len(problems)} problem(s):", *problems]))
    spec = GatewaySpec(
        id=document.id,
        building=document.building,
        profile=document.profile,
        devices=document.devices,
    )
    try:
        config = GatewayConfig.build(
            spec, catalogue.profile(document.profile), models, source=source
        )
    except GatewayConfigError as exc:
        raise ConfigRefused(str(exc)) from exc
    except ValueError as exc:  # the profile file itself is bad
        raise ConfigRefused(f"{source}: {exc}") from exc
    return Pushed(document, config, text)


def document_of(config: GatewayConfig, *, version: str = "") -> str:
    """A config document for a configuration (for tests and for the cloud's side)."""
    data: dict[str, Any] = {"version": version} if version else {}
    data |= config.spec.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


class ConfigStore:
    """`current.yaml` and `previous.yaml` in one folder; writes are atomic (rename)."""

    def __init__(self, folder: Path | str, *, configs_dir: Path | None = None):
        self.folder = Path(folder)
        self.configs_dir = configs_dir

    @property
    def current(self) -> Path:
        return self.folder / CURRENT

    @property
    def previous(self) -> Path:
        return self.folder / PREVIOUS

    def load(self, gateway_id: str) -> Pushed | None:
        """The stored configuration in force, if any (a bad one is logged and not used)."""
        if not self.current.exists():
            return None
        try:
            return parse(
                self.current.read_text(encoding="utf-8"),
                gateway_id,
                configs_dir=self.configs_dir,
                source=str(self.current),
            )
        except (OSError, ConfigRefused) as exc:
            log.error("stored config not used path=%s error=%r", self.current, str(exc))
            return None

    def keep(self, pushed: Pushed, *, running: str | None = None) -> None:
        """Make `pushed` the one in force; the one before it becomes the previous one (when
        none was pushed before, `running`: the document of the site file's entry)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.current.exists():
            os.replace(self.current, self.previous)
        elif running is not None:
            _write(self.previous, running)
        _write(self.current, pushed.text)
        _fsync_dir(self.folder)

    def restore_previous(self) -> None:
        """Undo `keep` (the new one could not be started)."""
        if self.previous.exists():
            os.replace(self.previous, self.current)
        else:
            self.current.unlink(missing_ok=True)
        _fsync_dir(self.folder)


def _write(path: Path, text: str) -> None:
    """Write a file whole or not at all (a power cut leaves the old one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "ConfigDocument",
    "ConfigRefused",
    "ConfigStore",
    "Pushed",
    "document_of",
    "parse",
]
