"""Gas detector: relay → alarm/clear, MCP3008 volts → %LEL by calibration, warm-up, fault."""

from __future__ import annotations

import pytest

from contract.devices import GasModel
from contract.models import EventType, Kind
from edge.config import load_gateway_config
from tests.edge.helpers import DEMO_SITE, settle

GAS = "gas-0101"
FAST = {"warmup_s": 0.0, "sample_period_s": 0.05}


def test_calibration_maps_volts_to_pct_lel():
    model = load_gateway_config(DEMO_SITE, "gw-ld01").models["gas_mcp3008"]
    assert isinstance(model, GasModel)
    assert model.pct_lel(0.4) == 0.0
    assert model.pct_lel(1.2) == pytest.approx(50.0)
    assert model.pct_lel(2.0) == 100.0
    assert model.pct_lel(0.1) == 0.0 and model.pct_lel(3.0) == 100.0  # clamped
    assert model.volts_for(25.0) == pytest.approx(0.8)


def test_adc_voltage_becomes_the_calibrated_reading(rig_factory):
    rig = rig_factory(gas_mcp3008=FAST)
    rig.hw.set_gas_volts(GAS, 1.2)  # (1.2 - 0.4) / 1.6 = 50 %LEL
    sample = rig.sink.wait(
        lambda: [s for s in rig.sink.samples_of(GAS) if s.values.ch4_pct_lel > 40]
    )[-1]
    assert sample.kind is Kind.GAS
    # one MCP3008 step is 3.3 V / 1023 = 3.2 mV = 0.2 %LEL on this calibration
    assert sample.values.ch4_pct_lel == pytest.approx(50.0, abs=0.25)
    rig.hw.set_gas(GAS, 12.5)
    rig.sink.wait(lambda: abs(rig.sink.samples_of(GAS)[-1].values.ch4_pct_lel - 12.5) < 0.25)


def test_nothing_is_sent_during_warmup(rig_factory):
    rig = rig_factory(gas_mcp3008={"warmup_s": 0.6, "sample_period_s": 0.05})
    rig.hw.set_gas(GAS, 30)
    settle(0.4)
    assert rig.sink.samples_of(GAS) == []
    assert rig.drivers[GAS].samples_in_warmup >= 3
    first = rig.sink.wait(lambda: rig.sink.samples_of(GAS), timeout=2)[0]
    assert first.values.ch4_pct_lel == pytest.approx(30, abs=0.25)


def test_relay_alarm_and_clear_carry_the_latest_reading(rig_factory):
    rig = rig_factory(gas_mcp3008=FAST)
    rig.hw.set_gas(GAS, 60)
    rig.sink.wait(lambda: rig.sink.samples_of(GAS))
    rig.hw.gas_relay(GAS, True)
    (alarm,) = rig.sink.wait(lambda: rig.sink.of(GAS, EventType.ALARM))
    assert alarm.values.ch4_pct_lel == pytest.approx(60, abs=0.25)
    rig.hw.gas_relay(GAS, False)
    rig.sink.wait(lambda: rig.sink.of(GAS, EventType.CLEAR))


def test_broken_current_loop_is_one_fault_and_no_reading(rig_factory):
    rig = rig_factory(gas_mcp3008=FAST)
    rig.sink.wait(lambda: rig.sink.samples_of(GAS))
    rig.hw.set_gas_volts(GAS, 0.0)
    rig.sink.wait(lambda: rig.sink.of(GAS, EventType.FAULT))
    count = len(rig.sink.samples_of(GAS))
    settle(0.3)
    assert len(rig.sink.of(GAS, EventType.FAULT)) == 1
    assert len(rig.sink.samples_of(GAS)) == count
    rig.hw.set_gas(GAS, 5)
    rig.sink.wait(lambda: len(rig.sink.samples_of(GAS)) > count)
