"""One gateway's configuration as the edge runs it: its entry of a site file, its board
profile and its devices' models, validated together (`contract.wiring`).

The files' formats live in the contract (`contract.devices`, `contract.profiles`,
`contract.site`): the cloud checks a site's edits against the same models the gateway drives
devices by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contract.catalogue import Catalogue
from contract.devices import DeviceModelBase
from contract.profiles import Profile
from contract.site import DeviceSpec, GatewaySpec, load_site
from contract.wiring import GatewayConfigError, validate_gateway


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


def load_gateway_config(
    site_path: Path | str,
    gateway_id: str,
    *,
    configs_dir: Path | str | None = None,
) -> GatewayConfig:
    """Load a site file, take one gateway from it, load its profile and models, validate."""
    site_path = Path(site_path)
    catalogue = Catalogue.at(configs_dir)
    site = load_site(site_path)
    try:
        spec = site.gateway(gateway_id)
    except KeyError:
        known = ", ".join(g.id for g in site.gateways) or "none"
        raise GatewayConfigError(
            f"{site_path}: gateways: no gateway {gateway_id!r} (gateways: {known})"
        ) from None
    profile_path = catalogue.profile_path(spec.profile)
    if not profile_path.exists():
        raise GatewayConfigError(
            f"{site_path}: gateways[{spec.id}].profile: unknown profile {spec.profile!r} "
            f"(no {profile_path})"
        )
    profile = catalogue.profile(spec.profile)
    models: dict[str, DeviceModelBase] = {}
    for device in spec.devices:
        if device.model not in models and catalogue.model_path(device.model).exists():
            models[device.model] = catalogue.model(device.model)
    return GatewayConfig.build(spec, profile, models, source=str(site_path))
