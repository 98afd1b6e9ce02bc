"""Device models, the board profile and a gateway's devices: strict, errors name file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from contract.site import ConfigFileError
from edge.config import (
    CONFIGS_DIR,
    AirModel,
    CallButtonModel,
    GasModel,
    GatewayConfigError,
    SmokeModel,
    load_gateway_config,
    load_model,
    load_profile,
)
from tests.edge.helpers import DEMO_SITE


def test_demo_site_gateways_load():
    for gateway in ("gw-ld01", "gw-ld02"):
        config = load_gateway_config(DEMO_SITE, gateway)
        assert {type(m) for m in config.models.values()} == {
            CallButtonModel,
            SmokeModel,
            GasModel,
            AirModel,
        }
    call = config.models["call_button_gpio"]
    assert call.long_press_s == 3.0 and call.button.active_low
    profile = load_profile(CONFIGS_DIR / "profiles" / "rpi4-standard.yaml")
    assert profile.adc is not None and profile.adc.spi_device == 0
    assert profile.reserved_pins()[8].startswith("SPI0 CE0")


def _site_with(tmp_path: Path, change) -> Path:
    site = yaml.safe_load(DEMO_SITE.read_text(encoding="utf-8"))
    change(site["gateways"][0]["devices"])
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    return path


def _error(tmp_path: Path, change) -> str:
    path = _site_with(tmp_path, change)
    with pytest.raises(GatewayConfigError) as info:
        load_gateway_config(path, "gw-ld01")
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    return message


def test_missing_pin_role_names_the_field(tmp_path):
    message = _error(tmp_path, lambda devices: devices[0]["pins"].pop("led"))
    assert "gateways[gw-ld01].devices[0].pins: no pin for role 'led'" in message
    assert "call_button_gpio" in message


def test_unknown_pin_role(tmp_path):
    message = _error(tmp_path, lambda devices: devices[1]["pins"].update(siren=23))
    assert "devices[1].pins.siren: unknown role 'siren'" in message
    assert "roles: alarm, battery_low, fault, tamper, test" in message


def test_reserved_and_missing_pins(tmp_path):
    def change(devices):
        devices[0]["pins"]["button"] = 8  # SPI0 CE0, the MCP3008
        devices[1]["pins"]["alarm"] = 14  # UART TXD

    message = _error(tmp_path, change)
    assert "devices[0].pins.button: GPIO8 is reserved" in message and "SPI0 CE0" in message
    assert "devices[1].pins.alarm: GPIO14 is reserved" in message
    assert "2 problem(s)" in message


def test_gas_needs_an_adc_channel_and_air_a_port(tmp_path):
    def change(devices):
        devices[2].pop("adc_channel")
        devices[3].pop("port")
        devices[1]["port"] = "/dev/serial0"

    message = _error(tmp_path, change)
    assert "devices[2].adc_channel: required by model 'gas_mcp3008'" in message
    assert "devices[3].port: a serial port is required by model 'air_pms5003'" in message
    assert "devices[1].port: model 'smoke_dry_contact' has no serial port" in message


def test_port_must_exist_on_the_profile(tmp_path):
    message = _error(tmp_path, lambda devices: devices[3].update(port="/dev/ttyS9"))
    assert "devices[3].port: '/dev/ttyS9' is not a serial port of profile" in message


def test_unknown_model(tmp_path):
    message = _error(tmp_path, lambda devices: devices[1].update(model="smoke_wireless"))
    assert "devices[1].model: unknown model 'smoke_wireless'" in message


def test_unknown_gateway(tmp_path):
    with pytest.raises(GatewayConfigError, match="no gateway 'gw-nope'"):
        load_gateway_config(DEMO_SITE, "gw-nope")


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    root = tmp_path / "firmware_configs"
    shutil.copytree(CONFIGS_DIR / "models", root / "models")
    shutil.copytree(CONFIGS_DIR / "profiles", root / "profiles")
    return root


def test_unknown_key_in_a_model_file_names_file_and_field(configs):
    path = configs / "models" / "call_button_gpio.yaml"
    path.write_text(path.read_text() + "long_pres_s: 2\n")
    with pytest.raises(ConfigFileError) as info:
        load_gateway_config(DEMO_SITE, "gw-ld01", configs_dir=configs)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert "call_button_gpio.long_pres_s: Extra inputs are not permitted" in message


def test_bad_values_in_model_files(configs):
    gas = configs / "models" / "gas_mcp3008.yaml"
    text = gas.read_text().replace("{volts: 2.0, pct_lel: 100.0}", "{volts: 0.2, pct_lel: 100.0}")
    gas.write_text(text)
    with pytest.raises(ConfigFileError, match="volts must be strictly increasing"):
        load_model(gas)
    smoke = configs / "models" / "smoke_dry_contact.yaml"
    smoke.write_text(smoke.read_text().replace("driver: smoke_dry_contact", "driver: smoke_v2"))
    with pytest.raises(ConfigFileError) as info:
        load_model(smoke)
    assert str(info.value).startswith(f"{smoke}:") and "driver" in str(info.value)
    call = configs / "models" / "call_button_gpio.yaml"
    call.write_text(call.read_text().replace("active_low: true,", "active_low: maybe,"))
    with pytest.raises(ConfigFileError, match=r"call_button_gpio\.button\.active_low"):
        load_model(call)


def test_profile_errors_name_the_field(configs):
    path = configs / "profiles" / "rpi4-standard.yaml"
    path.write_text(path.read_text().replace("spi_device: 0", "spi_device: 2"))
    with pytest.raises(ConfigFileError, match=r"rpi4-standard.yaml: .*\n  - adc.spi_device"):
        load_profile(path)


def test_with_model_revalidates():
    config = load_gateway_config(DEMO_SITE, "gw-ld01")
    assert (
        config.with_model("call_button_gpio", long_press_s=0.5)
        .models["call_button_gpio"]
        .long_press_s
        == 0.5
    )
    with pytest.raises(ValueError, match="long_press_s must be more than twice bounce_s"):
        config.with_model("call_button_gpio", long_press_s=0.05)
