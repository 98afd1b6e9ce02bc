"""Zigbee devices through a local zigbee2mqtt: zigbee2mqtt-shaped JSON published through a
real Mosquitto (the gateway's local broker, with the ACL we ship for it) becomes our events."""

from __future__ import annotations

import pytest

from contract.models import EventType, Kind
from edge.drivers.zigbee import ZigbeeDevice
from edge.sim import Zigbee2MqttFeed
from tests.edge.helpers import FIELD_SITE, settle

ZIGBEE = {"zsmoke-0201", "zgas-0201", "zwater-0102", "zsos-0101", "zbtn-0102"}
SMOKE, GAS, WATER, SOS, BUTTON = "zsmoke-0201", "zgas-0201", "zwater-0102", "zsos-0101", "zbtn-0102"


@pytest.fixture
def zigbee_rig(local_broker, rig_factory):
    def make(**changes):
        rig = rig_factory(
            "gw-field",
            site=FIELD_SITE,
            only=ZIGBEE,
            zigbee=local_broker.broker("sc-gateway"),
            feed=local_broker.broker("zigbee2mqtt"),
            **changes,
        )
        bridge = rig.drivers[SMOKE]._bridge
        assert bridge.wait_subscribed(5), "the bridge did not subscribe at the local broker"
        assert rig.hw.zigbee().wait_connected(5)
        rig.bridge = bridge
        return rig

    return make


def wait_handled(rig, count: int) -> None:
    """Until the bridge has taken `count` messages (what it does with them is then done)."""
    rig.sink.wait(lambda: rig.bridge.stats.messages >= count)


def test_a_zigbee_smoke_alarm(zigbee_rig):
    rig = zigbee_rig()
    state = {
        "smoke": False,
        "battery_low": False,
        "tamper": False,
        "battery": 87,
        "linkquality": 120,
    }
    rig.hw.zigbee_state(SMOKE, **state)
    sample = rig.sink.wait(lambda: rig.sink.samples_of(SMOKE))[0]
    assert (sample.kind, sample.values.present()) == (Kind.SMOKE, {"battery_pct": 87.0})
    assert rig.sink.of(SMOKE) == [], "all is well: nothing to report"

    rig.hw.zigbee_state(SMOKE, **(state | {"smoke": True}))
    (alarm,) = rig.sink.wait(lambda: rig.sink.of(SMOKE))
    assert (alarm.kind, alarm.type, alarm.values.battery_pct) == (Kind.SMOKE, EventType.ALARM, 87)
    rig.hw.zigbee_state(SMOKE, **(state | {"smoke": True}))  # the same state again
    rig.hw.zigbee_state(SMOKE, **(state | {"battery_low": True, "battery": 9}))
    rig.hw.zigbee_state(SMOKE, **(state | {"battery_low": True, "tamper": True}))
    rig.sink.wait(lambda: len(rig.sink.of(SMOKE)) == 4)
    assert rig.sink.types(SMOKE) == [
        EventType.ALARM,
        EventType.CLEAR,
        EventType.BATTERY_LOW,
        EventType.TAMPER,
    ]
    assert rig.sink.of(SMOKE, EventType.BATTERY_LOW)[0].values.battery_pct == 9


def test_gas_and_water_leak(zigbee_rig):
    rig = zigbee_rig()
    rig.hw.zigbee_state(GAS, gas=True)
    rig.hw.zigbee_state(WATER, water_leak=True, battery=91)
    rig.sink.wait(lambda: rig.sink.of(GAS) and rig.sink.of(WATER))
    assert [(e.kind, e.type) for e in rig.sink.of(GAS)] == [(Kind.GAS, EventType.ALARM)]
    assert [(e.kind, e.type) for e in rig.sink.of(WATER)] == [(Kind.WATER, EventType.ALARM)]
    rig.hw.zigbee_state(GAS, gas=False)
    rig.sink.wait(lambda: rig.sink.types(GAS) == [EventType.ALARM, EventType.CLEAR])


def test_sos_buttons_by_their_models_action_table(zigbee_rig):
    rig = zigbee_rig()
    rig.hw.zigbee_state(SOS, action="emergency", battery=100)
    for action in ("single", "", "triple", "hold", "double"):
        rig.hw.zigbee_state(BUTTON, action=action)
    rig.hw.zigbee_state(BUTTON, battery=50)  # no action: no event
    wait_handled(rig, 7)
    assert [(e.kind, e.type) for e in rig.sink.of(SOS)] == [(Kind.CALL, EventType.PRESS)]
    assert rig.sink.types(BUTTON) == [EventType.PRESS, EventType.TEST, EventType.CANCEL]


def test_availability_offline_is_a_fault_online_again_a_restore(zigbee_rig):
    rig = zigbee_rig()
    feed: Zigbee2MqttFeed = rig.hw.zigbee()
    feed.availability(GAS, True)
    feed.availability(GAS, False)
    feed.availability(GAS, False)
    feed.availability(GAS, True)
    rig.sink.wait(lambda: len(rig.sink.of(GAS)) == 2)
    assert rig.sink.types(GAS) == [EventType.FAULT, EventType.RESTORE]
    feed.availability(GAS, False)  # retained by zigbee2mqtt, as the real one does


def test_retained_availability_and_state_at_start(zigbee_rig, local_broker):
    feed = Zigbee2MqttFeed(local_broker.broker("zigbee2mqtt"))
    try:
        feed.availability(WATER, False)  # zigbee2mqtt retains availability
        feed.state(SMOKE, {"smoke": True}, retain=True)  # an old alarm, retained
        rig = zigbee_rig()
        rig.sink.wait(lambda: rig.sink.of(WATER))
        wait_handled(rig, 2)
        assert rig.sink.types(WATER) == [EventType.FAULT], "a device offline now is a fault"
        assert rig.sink.of(SMOKE) == [], "a retained old alarm is not raised again"
        assert rig.drivers[SMOKE].state == {"smoke": True}
        rig.hw.zigbee_state(SMOKE, smoke=False)
        rig.sink.wait(lambda: rig.sink.types(SMOKE) == [EventType.CLEAR])
    finally:
        feed.publish(f"zigbee2mqtt/{SMOKE}", b"", retain=True)  # clear the retained messages
        feed.publish(f"zigbee2mqtt/{WATER}/availability", b"", retain=True)
        feed.close()


def test_bad_messages_are_counted_and_skipped(zigbee_rig):
    rig = zigbee_rig()
    feed = rig.hw.zigbee()
    feed.publish(f"zigbee2mqtt/{SMOKE}", b"{not json")
    feed.publish(f"zigbee2mqtt/{SMOKE}", b"[1, 2]")
    feed.publish(f"zigbee2mqtt/{SMOKE}/availability", b"maybe")
    feed.publish(f"zigbee2mqtt/{SMOKE}", {"smoke": "yes", "battery": 250})
    feed.publish("zigbee2mqtt/bridge/state", {"state": "online"})  # not subscribed
    rig.hw.zigbee_state(SMOKE, smoke=True)
    rig.sink.wait(lambda: rig.sink.of(SMOKE))
    assert rig.sink.types(SMOKE) == [EventType.ALARM]
    assert rig.bridge.stats.unreadable == 3
    assert rig.sink.samples_of(SMOKE) == [], "battery 250 % is out of range: dropped"


def test_a_silent_zigbee_device_is_a_fault(zigbee_rig):
    rig = zigbee_rig(zigbee_water={"report_interval_s": 0.4})
    rig.sink.wait(lambda: rig.sink.of(WATER, EventType.FAULT), timeout=3)
    rig.hw.zigbee_state(WATER, battery=80)
    rig.sink.wait(lambda: rig.sink.types(WATER) == [EventType.FAULT, EventType.RESTORE])
    assert rig.sink.of(WATER, EventType.RESTORE)[0].values.offline_s >= 0.4


def test_the_gateway_account_may_only_read(zigbee_rig, local_broker):
    """deploy/zigbee/acl: the agent's account cannot pose as zigbee2mqtt."""
    rig = zigbee_rig()
    spoof = Zigbee2MqttFeed(local_broker.broker("sc-gateway"))
    try:
        assert spoof.wait_connected(5)
        spoof.state(SMOKE, {"smoke": True})
        rig.hw.zigbee_state(GAS, gas=True)
        rig.sink.wait(lambda: rig.sink.of(GAS))
        settle(0.2)
        assert rig.sink.of(SMOKE) == []
    finally:
        spoof.close()
    assert isinstance(rig.drivers[SOS], ZigbeeDevice)
    assert "no indicator" in rig.drivers[SOS].accept()
