"""Dry-contact detectors beyond the basic smoke alarm: water leak, circuit trips (kinds water
and power), and a smoke alarm's self-test, low-battery and tamper outputs."""

from __future__ import annotations

import pytest
import yaml

from contract.models import EventType, Kind
from contract.wiring import GatewayConfigError
from edge.config import load_gateway_config
from tests.edge.helpers import FIELD_SITE, settle

WIRED = {"smoke-0102", "water-0101", "power-0101"}
SMOKE, WATER, POWER = "smoke-0102", "water-0101", "power-0101"


@pytest.fixture
def rig(rig_factory):
    return rig_factory("gw-field", site=FIELD_SITE, only=WIRED)


def test_water_leak_is_an_alarm_of_kind_water(rig):
    rig.hw.water_leak(WATER)
    (alarm,) = rig.sink.wait(lambda: rig.sink.of(WATER))
    assert (alarm.kind, alarm.type) == (Kind.WATER, EventType.ALARM)
    rig.hw.water_leak(WATER, False)
    rig.sink.wait(lambda: rig.sink.types(WATER) == [EventType.ALARM, EventType.CLEAR])
    rig.hw.set_input(WATER, "tamper", True)
    rig.sink.wait(lambda: rig.sink.types(WATER)[-1:] == [EventType.TAMPER])


def test_either_circuit_trip_is_one_power_alarm_until_both_are_released(rig):
    rig.hw.circuit_trip(POWER, "overcurrent")
    rig.sink.wait(lambda: rig.sink.of(POWER))
    rig.hw.circuit_trip(POWER, "residual")
    settle(0.3)
    rig.hw.circuit_trip(POWER, "overcurrent", tripped=False)
    settle(0.3)
    assert rig.sink.types(POWER) == [EventType.ALARM]
    assert rig.sink.of(POWER)[0].kind is Kind.POWER
    assert "overcurrent" in rig.sink.of(POWER)[0].detail
    rig.hw.circuit_trip(POWER, "residual", tripped=False)
    rig.sink.wait(lambda: rig.sink.types(POWER) == [EventType.ALARM, EventType.CLEAR])
    rig.hw.circuit_trip(POWER, "residual")
    rig.sink.wait(lambda: rig.sink.types(POWER)[-1] is EventType.ALARM)
    assert "residual" in rig.sink.of(POWER)[-1].detail


def test_a_circuit_monitor_needs_one_trip_contact(tmp_path):
    site = yaml.safe_load(FIELD_SITE.read_text(encoding="utf-8"))
    power = next(d for d in site["gateways"][0]["devices"] if d["id"] == POWER)
    power["pins"] = {"fault": 21}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    with pytest.raises(GatewayConfigError, match="needs a pin for at least one of 'overcurrent'"):
        load_gateway_config(path, "gw-field")


def test_the_smoke_alarms_self_test_is_a_test_never_an_alarm(rig):
    # The test button closes the alarm relay while the test output is active.
    rig.hw.set_input(SMOKE, "test", True)
    rig.hw.trip_smoke(SMOKE)
    rig.sink.wait(lambda: rig.sink.of(SMOKE))
    rig.hw.clear_smoke(SMOKE)
    rig.hw.set_input(SMOKE, "test", False)
    settle(0.3)
    assert rig.sink.types(SMOKE) == [EventType.TEST]
    # A real alarm afterwards is an alarm again.
    rig.hw.trip_smoke(SMOKE)
    rig.sink.wait(lambda: rig.sink.types(SMOKE) == [EventType.TEST, EventType.ALARM])


def test_smoke_still_in_alarm_when_the_test_ends_is_an_alarm(rig):
    rig.hw.set_input(SMOKE, "test", True)
    rig.hw.trip_smoke(SMOKE)
    rig.sink.wait(lambda: rig.sink.of(SMOKE))
    rig.hw.set_input(SMOKE, "test", False)
    rig.sink.wait(lambda: rig.sink.types(SMOKE) == [EventType.TEST, EventType.ALARM])


def test_low_battery_and_tamper_are_passed_on(rig):
    rig.hw.set_input(SMOKE, "battery_low", True)
    rig.hw.set_input(SMOKE, "tamper", True)
    rig.sink.wait(lambda: len(rig.sink.of(SMOKE)) == 2)
    assert set(rig.sink.types(SMOKE)) == {EventType.BATTERY_LOW, EventType.TAMPER}
    assert all(e.kind is Kind.SMOKE for e in rig.sink.of(SMOKE))
