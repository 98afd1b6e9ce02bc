"""The hardware a site may name: the device models and board profiles in the catalogue
(firmware_configs/), and a gateway's devices checked against them exactly as the gateway
checks its own configuration (contract/wiring.py), so the cloud never accepts a binding the
gateway would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud.site.tree import SiteEditError
from contract.catalogue import Catalogue
from contract.devices import DeviceModelBase
from contract.site import Site
from contract.wiring import GatewayConfigError, validate_gateway


@dataclass
class Hardware:
    """Where the device models and board profiles are (firmware_configs/)."""

    catalogue: Catalogue = field(default_factory=Catalogue)

    def models_available(self) -> list[str]:
        return self.catalogue.model_names()

    def profiles_available(self) -> list[str]:
        return self.catalogue.profile_names()

    def check_profile(self, profile: str) -> None:
        if profile not in self.profiles_available():
            raise SiteEditError(
                f"网关型号配置 {profile} 不存在（可选：{'、'.join(self.profiles_available())}）",
                f"unknown profile {profile} (known: {', '.join(self.profiles_available())})",
            )

    def check_gateway(self, site: Site, gateway_id: str) -> None:
        """The gateway's devices against its board profile and their models."""
        spec = site.gateway(gateway_id)
        models: dict[str, DeviceModelBase] = {}
        known = self.models_available()
        for device in spec.devices:
            if device.model not in known:
                raise SiteEditError(
                    f"设备 {device.id}：型号 {device.model} 不存在（可选：{'、'.join(known)}）",
                    f"device {device.id}: unknown model {device.model} (known: {', '.join(known)})",
                )
            models[device.model] = self.catalogue.model(device.model)
        self.check_profile(spec.profile)
        profile = self.catalogue.profile(spec.profile)
        try:
            validate_gateway(spec, profile, models, source="site")
        except GatewayConfigError as exc:
            lines = [line.strip(" -") for line in str(exc).splitlines()[1:]]
            for index, device in enumerate(spec.devices):  # name the device, not its index
                where = f"gateways[{gateway_id}].devices[{index}]"
                lines = [line.replace(where, f"device {device.id}") for line in lines]
            raise SiteEditError(
                "设备与网关硬件不符：" + "；".join(lines),
                f"the devices do not fit gateway {gateway_id}: " + "; ".join(lines),
            ) from None
