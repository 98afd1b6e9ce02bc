"""Remote hush at the drivers: a dry-contact smoke alarm's hush output held for the hush
period (gpiozero's mock pins), a Zigbee smoke alarm's `silence` written through zigbee2mqtt
(a real Mosquitto as the local broker); refused when not in alarm, when hushed already, and
for models that cannot; the alarm reported again when the smoke outlasts the hush."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.models import EventType
from edge.drivers.base import HushRefused
from edge.drivers.contact import ContactDetector
from edge.drivers.zigbee import ZigbeeDevice

HUSH_SITE = Path(__file__).resolve().parent / "hush_site.yaml"
WIRED, UNWIRED, ZHUSH, ZPLAIN = "smoke-0101", "smoke-0102", "zhush-0101", "zsmoke-0101"


def test_a_wired_smoke_alarm_is_hushed_for_the_period_then_sounds_again(rig_factory):
    rig = rig_factory("gw-hush", site=HUSH_SITE, only={WIRED, UNWIRED})
    detector = rig.drivers[WIRED]
    assert isinstance(detector, ContactDetector)
    with pytest.raises(HushRefused, match="not in alarm"):
        detector.hush(0.4)
    assert rig.hw.level(WIRED, "hush") is False

    rig.hw.trip_smoke(WIRED)
    rig.sink.wait(lambda: rig.sink.types(WIRED) == [EventType.ALARM])
    rig.hw.clear_history(WIRED, "hush")
    assert "hushed for 0.4 s" in detector.hush(0.4)
    assert rig.hw.level(WIRED, "hush") is True  # the detector's hush input is driven
    with pytest.raises(HushRefused, match="already hushed"):
        detector.hush(0.4)

    # the smoke is still there when the time is up: released, and the alarm again
    rig.sink.wait(lambda: rig.sink.types(WIRED) == [EventType.ALARM, EventType.ALARM])
    assert rig.hw.level(WIRED, "hush") is False and not detector.hushed
    assert "persists" in rig.sink.of(WIRED)[1].detail
    levels = [level for _, level in rig.hw.history(WIRED, "hush")]
    assert levels.count(True) == 1 and levels[-2:] == [True, False]  # one hush, then released

    # a clear during a hush ends it at once, and nothing more is reported
    detector.hush(30)
    rig.hw.clear_smoke(WIRED)
    rig.sink.wait(lambda: rig.sink.types(WIRED)[-1] is EventType.CLEAR)
    rig.sink.wait(lambda: rig.hw.level(WIRED, "hush") is False)
    assert not detector.hushed

    unwired = rig.drivers[UNWIRED]
    assert isinstance(unwired, ContactDetector)
    rig.hw.trip_smoke(UNWIRED)
    rig.sink.wait(lambda: rig.sink.types(UNWIRED) == [EventType.ALARM])
    with pytest.raises(HushRefused, match="not wired"):
        unwired.hush(0.4)


def test_a_zigbee_smoke_alarm_is_hushed_through_zigbee2mqtt(local_broker, rig_factory):
    rig = rig_factory(
        "gw-hush",
        site=HUSH_SITE,
        only={ZHUSH, ZPLAIN},
        zigbee=local_broker.broker("sc-gateway"),
        feed=local_broker.broker("zigbee2mqtt"),
    )
    device, plain = rig.drivers[ZHUSH], rig.drivers[ZPLAIN]
    assert isinstance(device, ZigbeeDevice) and isinstance(plain, ZigbeeDevice)
    assert device._bridge.wait_subscribed(5) and rig.hw.zigbee().wait_connected(5)
    feed = rig.hw.zigbee()
    with pytest.raises(HushRefused, match="not in alarm"):
        device.hush(0.4)

    rig.hw.zigbee_state(ZHUSH, smoke=True, silence=False, battery=90)
    rig.hw.zigbee_state(ZPLAIN, smoke=True, battery=90)
    rig.sink.wait(lambda: rig.sink.types(ZHUSH) == [EventType.ALARM])
    rig.sink.wait(lambda: rig.sink.types(ZPLAIN) == [EventType.ALARM])
    with pytest.raises(HushRefused, match="no remote hush"):
        plain.hush(0.4)

    assert "silence=true" in device.hush(0.5)
    assert feed.sets[ZHUSH] == [{"silence": True}]
    # still smoky when the time is up: silence=false written, the alarm reported again
    rig.sink.wait(lambda: rig.sink.types(ZHUSH) == [EventType.ALARM, EventType.ALARM])
    rig.sink.wait(lambda: feed.sets[ZHUSH] == [{"silence": True}, {"silence": False}])
    assert ZPLAIN not in feed.sets
