"""Two simulated gateways in one process keep their hardware apart (the demo embeds both)."""

from __future__ import annotations

import pytest

from contract.models import EventType
from tests.edge.helpers import settle

FAST_GAS = {"gas_mcp3008": {"warmup_s": 0.0, "sample_period_s": 0.05}}


def test_two_gateways_share_pin_numbers_but_not_pins(rig_factory):
    one = rig_factory("gw-ld01", **FAST_GAS)
    two = rig_factory("gw-ld02", **FAST_GAS)
    assert one.hw.pin_factory is not two.hw.pin_factory
    # Same button GPIO (17) and MCP3008 channel (0) on both boards.
    one.hw.press_call("call-0101")
    one.sink.wait(lambda: one.sink.of("call-0101", EventType.PRESS))
    one.hw.set_gas("gas-0101", 80)
    two.hw.set_gas("gas-0101", 10)
    one.sink.wait(lambda: one.sink.samples_of("gas-0101")[-1].values.ch4_pct_lel > 70)
    two.sink.wait(lambda: 5 < two.sink.samples_of("gas-0101")[-1].values.ch4_pct_lel < 15)
    settle(0.2)
    assert two.sink.of("call-0101") == []
    assert one.hw.led_lit("call-0101") and not two.hw.led_lit("call-0101")
    assert all(s.values.ch4_pct_lel > 70 for s in one.sink.samples_of("gas-0101")[-3:])


def test_simulator_refuses_the_wrong_device_kind(rig_factory):
    rig = rig_factory()
    with pytest.raises(ValueError, match="not a SmokeModel"):
        rig.hw.trip_smoke("call-0101")
    with pytest.raises(KeyError, match="no device 'nope'"):
        rig.hw.press_call("nope")
