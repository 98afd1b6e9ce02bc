"""A gateway's devices against its board profile and their models: every problem found is
listed, each naming the field (`gateways[gw].devices[i]...`) and why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from contract.catalogue import CONFIGS_DIR, Catalogue
from contract.devices import DeviceModelBase
from contract.site import Site
from contract.wiring import GatewayConfigError, validate_gateway

DEMO_SITE = CONFIGS_DIR / "sites" / "demo.yaml"


def _check(change: Callable[[list[dict[str, Any]]], None], profile: str = "") -> None:
    site = yaml.safe_load(DEMO_SITE.read_text(encoding="utf-8"))
    gateway = site["gateways"][0]
    change(gateway["devices"])
    if profile:
        gateway["profile"] = profile
    spec = Site.model_validate(site).gateway(gateway["id"])
    catalogue = Catalogue()
    models: dict[str, DeviceModelBase] = {
        d.model: catalogue.model(d.model)
        for d in spec.devices
        if d.model in catalogue.model_names()
    }
    validate_gateway(spec, catalogue.profile(spec.profile), models, source="demo.yaml")


def _error(change: Callable[[list[dict[str, Any]]], None], profile: str = "") -> str:
    with pytest.raises(GatewayConfigError) as info:
        _check(change, profile)
    message = str(info.value)
    assert message.startswith("demo.yaml: "), message
    return message


def test_the_demo_gateways_fit():
    _check(lambda devices: None)


def test_missing_pin_role_names_the_field():
    message = _error(lambda devices: devices[0]["pins"].pop("led"))
    assert "gateways[gw-ld01].devices[0].pins: no pin for role 'led'" in message
    assert "call_button_gpio" in message


def test_unknown_pin_role():
    message = _error(lambda devices: devices[1]["pins"].update(siren=23))
    assert "devices[1].pins.siren: unknown role 'siren'" in message
    assert "roles: alarm, battery_low, fault, hush, tamper, test" in message


def test_reserved_and_missing_pins():
    def change(devices):
        devices[0]["pins"]["button"] = 8  # SPI0 CE0, the MCP3008
        devices[1]["pins"]["alarm"] = 14  # UART TXD

    message = _error(change)
    assert "devices[0].pins.button: GPIO8 is reserved" in message and "SPI0 CE0" in message
    assert "devices[1].pins.alarm: GPIO14 is reserved" in message
    assert "2 problem(s)" in message


def test_gas_needs_an_adc_channel_and_air_a_port():
    def change(devices):
        devices[2].pop("adc_channel")
        devices[3].pop("port")
        devices[1]["port"] = "/dev/serial0"

    message = _error(change)
    assert "devices[2].adc_channel: required by model 'gas_mcp3008'" in message
    assert "devices[3].port: a serial port is required by model 'air_pms5003'" in message
    assert "devices[1].port: model 'smoke_dry_contact' has no serial port" in message


def test_port_must_exist_on_the_profile():
    message = _error(lambda devices: devices[3].update(port="/dev/ttyS9"))
    assert "devices[3].port: '/dev/ttyS9' is not a serial port of profile" in message


def test_unknown_model():
    message = _error(lambda devices: devices[1].update(model="smoke_wireless"))
    assert "devices[1].model: unknown model 'smoke_wireless'" in message


def test_a_zigbee_device_needs_a_coordinator():
    def add_zigbee(devices):
        devices.append({"id": "zb-smoke-01", "model": "zigbee_smoke", "home": devices[0]["home"]})

    message = _error(add_zigbee)
    assert "is a Zigbee device and profile 'rpi4-standard' has no zigbee coordinator" in message
    _check(add_zigbee, profile="rpi4-zigbee")
