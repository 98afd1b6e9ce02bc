"""Settings (env + command line), the `check` command, scripts, and the log format."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from contract.site import ConfigFileError
from edge.config import load_gateway_config
from edge.sim import SimulatedHardware
from gateway.cli import main
from gateway.footprint import measure
from gateway.logs import KeyValueFormatter
from gateway.script import GasRelay, PressCall, ScriptRunner, load_script
from gateway.settings import GatewaySettings
from tests.edge.helpers import FIELD_SITE
from tests.gateway.helpers import DEMO_SITE
from tests.servers import free_port


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """main() points the root logger at this test's captured stderr; put it back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_settings_from_environment_and_arguments(monkeypatch, tmp_path):
    monkeypatch.setenv("SC_GW_SITE", str(DEMO_SITE))
    monkeypatch.setenv("SC_GW_GATEWAY", "gw-ld02")
    monkeypatch.setenv("SC_GW_PASSWORD", "s3cret")
    monkeypatch.setenv("SC_GW_BROKER_PORT", "1884")
    settings = GatewaySettings(broker_port=2883, outbox=tmp_path / "o.db")
    broker = settings.broker_params()
    assert (broker.port, broker.username, broker.password) == (2883, "gw-ld02", "s3cret")
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(broker)
    with pytest.raises(ValidationError, match="script needs simulate"):
        GatewaySettings(script=tmp_path / "s.yaml")
    with pytest.raises(ValidationError, match="gateway"):
        GatewaySettings(gateway="Not An Id")


def test_check_command(tmp_path, capsys):
    assert main(["check", "--site", str(DEMO_SITE), "--gateway", "gw-ld01"]) == 0
    assert "4 devices ok" in capsys.readouterr().out
    assert main(["check", "--site", str(DEMO_SITE), "--gateway", "gw-zz"]) == 2
    assert f"{DEMO_SITE}: gateways: no gateway 'gw-zz'" in capsys.readouterr().err


def test_run_refuses_bad_configuration(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    code = main(["run", "--site", str(missing), "--gateway", "gw-ld01", "--outbox", "x.db"])
    assert code == 2
    assert f"{missing}: cannot read" in capsys.readouterr().err


def test_script_steps_and_errors(tmp_path):
    hardware = SimulatedHardware(load_gateway_config(DEMO_SITE, "gw-ld01"))
    try:
        path = tmp_path / "s.yaml"
        path.write_text(
            "- {at: 0.5, do: press_call, device: call-0101}\n"
            "- {at: 1, do: gas_relay, device: gas-0101, alarm: true}\n"
        )
        steps = load_script(path, hardware)
        assert steps == [
            PressCall(at=0.5, do="press_call", device="call-0101"),
            GasRelay(at=1, do="gas_relay", device="gas-0101", alarm=True),
        ]
        path.write_text("- {at: 0.5, do: press_call, device: call-7777}\n")
        with pytest.raises(ConfigFileError, match=r"s\.yaml: 0\.device: no device 'call-7777'"):
            load_script(path, hardware)
        path.write_text("- {at: 0.5, do: gas_relay, device: gas-0101, on: true}\n")
        with pytest.raises(ConfigFileError, match=r"0\.gas_relay\.alarm: Field required"):
            load_script(path, hardware)
    finally:
        hardware.close()


def test_log_lines_are_key_value_on_one_line():
    record = logging.LogRecord(
        "gateway.uplink", logging.INFO, __file__, 1, "uplink connected broker=%s", ("h:1",), None
    )
    line = KeyValueFormatter().format(record)
    assert line.endswith('logger=gateway.uplink event="uplink connected" broker=h:1')
    assert line.startswith("ts=") and "level=info" in line
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert "\n" not in KeyValueFormatter().format(record)


def test_script_steps_for_the_field_devices(tmp_path):
    hardware = SimulatedHardware(load_gateway_config(FIELD_SITE, "gw-field"))
    try:
        path = tmp_path / "s.yaml"
        path.write_text(
            "- {at: 0, do: water_leak, device: water-0101}\n"
            "- {at: 0, do: circuit_trip, device: power-0101, contact: residual}\n"
            "- {at: 0, do: set_co2, device: co2-0201, ppm: 1450}\n"
        )
        runner = ScriptRunner(load_script(path, hardware), hardware)
        runner.start()
        assert runner.done.wait(5)
        assert hardware.s8("co2-0201").ppm == 1450
        assert hardware.level("water-0101", "alarm") is False  # active low: closed = low
    finally:
        hardware.close()


def test_the_footprint_tool_measures_a_real_agent(tmp_path):
    figures = measure(
        [
            "--site",
            str(DEMO_SITE),
            "--gateway",
            "gw-ld01",
            "--simulate",
            "--broker-port",
            str(free_port()),  # no broker: it keeps trying, which is fine here
            "--outbox",
            str(tmp_path / "o.sqlite3"),
        ],
        seconds=1.0,
        settle_s=1.5,
    )
    assert 10 < figures["rss_mb_median"] < 500
    assert figures["cpu_pct_of_one_core"] >= 0 and figures["exit_code"] == 0
