"""A gateway's configuration from a site file: its entry, its profile and its models, loaded
and checked together; errors start with the site file and name the field. (The files' own
formats and the wiring checks: tests/contract/test_catalogue.py and test_wiring.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contract.devices import AirModel, CallButtonModel, GasModel, SmokeModel
from contract.site import ConfigFileError
from contract.wiring import GatewayConfigError
from edge.config import load_gateway_config
from tests.contract.test_catalogue import configs  # noqa: F401  (a fixture)
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
        assert config.profile.adc is not None


def _site_with(tmp_path: Path, change) -> Path:
    site = yaml.safe_load(DEMO_SITE.read_text(encoding="utf-8"))
    change(site)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    return path


def test_wiring_errors_start_with_the_site_file(tmp_path):
    path = _site_with(tmp_path, lambda site: site["gateways"][0]["devices"][0]["pins"].pop("led"))
    with pytest.raises(GatewayConfigError) as info:
        load_gateway_config(path, "gw-ld01")
    message = str(info.value)
    assert message.startswith(f"{path}: 1 problem(s) in gateway gw-ld01:"), message
    assert "gateways[gw-ld01].devices[0].pins: no pin for role 'led'" in message


def test_unknown_gateway():
    with pytest.raises(GatewayConfigError, match="no gateway 'gw-nope'"):
        load_gateway_config(DEMO_SITE, "gw-nope")


def test_unknown_profile(tmp_path):
    path = _site_with(tmp_path, lambda site: site["gateways"][0].update(profile="rpi5-nope"))
    with pytest.raises(GatewayConfigError) as info:
        load_gateway_config(path, "gw-ld01")
    assert str(info.value).startswith(
        f"{path}: gateways[gw-ld01].profile: unknown profile 'rpi5-nope'"
    )


def test_models_come_from_the_configs_folder_given(configs):
    path = configs / "models" / "call_button_gpio.yaml"
    path.write_text(path.read_text() + "long_pres_s: 2\n")
    with pytest.raises(ConfigFileError) as info:
        load_gateway_config(DEMO_SITE, "gw-ld01", configs_dir=configs)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert "call_button_gpio.long_pres_s: Extra inputs are not permitted" in message
    assert load_gateway_config(DEMO_SITE, "gw-ld01").models["call_button_gpio"]


def test_with_model_revalidates():
    config = load_gateway_config(DEMO_SITE, "gw-ld01")
    changed = config.with_model("call_button_gpio", long_press_s=0.5).models["call_button_gpio"]
    assert isinstance(changed, CallButtonModel)
    assert changed.long_press_s == 0.5
    with pytest.raises(ValueError, match="long_press_s must be more than twice bounce_s"):
        config.with_model("call_button_gpio", long_press_s=0.05)
