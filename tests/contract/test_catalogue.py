"""Device model and board profile files: read by name, strict, errors name the file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from contract.catalogue import CONFIGS_DIR, Catalogue
from contract.devices import CallButtonModel
from contract.site import ConfigFileError


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    root = tmp_path / "firmware_configs"
    shutil.copytree(CONFIGS_DIR / "models", root / "models")
    shutil.copytree(CONFIGS_DIR / "profiles", root / "profiles")
    return root


def test_the_repositorys_models_and_profiles_all_load():
    catalogue = Catalogue()
    assert {"call_button_gpio", "gas_mcp3008", "zigbee_smoke"} <= set(catalogue.model_names())
    assert catalogue.profile_names() == ["rpi4-standard", "rpi4-voice", "rpi4-zigbee"]
    for name in catalogue.model_names():
        catalogue.model(name)
    call = catalogue.model("call_button_gpio")
    assert isinstance(call, CallButtonModel)
    assert call.long_press_s == 3.0 and call.button.active_low
    profile = catalogue.profile("rpi4-standard")
    assert profile.adc is not None and profile.adc.spi_device == 0
    assert profile.reserved_pins()[8].startswith("SPI0 CE0")


def test_a_catalogue_reads_its_own_folder(configs):
    (configs / "models" / "call_button_gpio.yaml").unlink()
    catalogue = Catalogue.at(configs)
    assert "call_button_gpio" not in catalogue.model_names()
    assert "call_button_gpio" in Catalogue.at(None).model_names()
    with pytest.raises(ConfigFileError, match=r"call_button_gpio\.yaml: cannot read"):
        catalogue.model("call_button_gpio")


def test_bad_values_in_model_files(configs):
    catalogue = Catalogue(configs)
    gas = catalogue.model_path("gas_mcp3008")
    text = gas.read_text().replace("{volts: 2.0, pct_lel: 100.0}", "{volts: 0.2, pct_lel: 100.0}")
    gas.write_text(text)
    with pytest.raises(ConfigFileError, match="volts must be strictly increasing"):
        catalogue.model("gas_mcp3008")
    smoke = catalogue.model_path("smoke_dry_contact")
    smoke.write_text(smoke.read_text().replace("driver: smoke_dry_contact", "driver: smoke_v2"))
    with pytest.raises(ConfigFileError) as info:
        catalogue.model("smoke_dry_contact")
    assert str(info.value).startswith(f"{smoke}:") and "driver" in str(info.value)
    call = catalogue.model_path("call_button_gpio")
    call.write_text(call.read_text().replace("active_low: true,", "active_low: maybe,"))
    with pytest.raises(ConfigFileError, match=r"call_button_gpio\.button\.active_low"):
        catalogue.model("call_button_gpio")


def test_unknown_key_in_a_model_file_names_file_and_field(configs):
    path = configs / "models" / "call_button_gpio.yaml"
    path.write_text(path.read_text() + "long_pres_s: 2\n")
    with pytest.raises(ConfigFileError) as info:
        Catalogue(configs).model("call_button_gpio")
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert "call_button_gpio.long_pres_s: Extra inputs are not permitted" in message


def test_profile_errors_name_the_field(configs):
    path = configs / "profiles" / "rpi4-standard.yaml"
    path.write_text(path.read_text().replace("spi_device: 0", "spi_device: 2"))
    with pytest.raises(ConfigFileError, match=r"rpi4-standard.yaml: .*\n  - adc.spi_device"):
        Catalogue(configs).profile("rpi4-standard")
