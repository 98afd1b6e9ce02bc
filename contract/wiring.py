"""Does a gateway's wiring fit its board and its devices' models? `validate_gateway()` checks
a site's `GatewaySpec` against its profile and models: every required pin role bound, no
unknown roles, no reserved or missing GPIO, an ADC channel for gas, a serial port for UART
sensors, a coordinator for Zigbee devices. The gateway runs it at start-up and on every pushed
configuration; the cloud runs it on every site edit.
"""

from __future__ import annotations

from collections.abc import Mapping

from contract.devices import DeviceModelBase, ZigbeeModel
from contract.profiles import Profile
from contract.site import ConfigFileError, GatewaySpec


class GatewayConfigError(ConfigFileError):
    """A gateway's devices do not fit its profile or models; lists every problem found."""


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
