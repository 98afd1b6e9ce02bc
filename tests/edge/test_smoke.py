"""Smoke alarm dry contacts: alarm / clear / fault, debounced, and the state at start."""

from __future__ import annotations

import time

from contract.models import EventType, Kind
from edge.drivers.contact import ContactDetector
from tests.edge.helpers import settle

SMOKE = "smoke-0102"


def types(rig) -> list[EventType]:
    return [e.type for e in rig.sink.of(SMOKE)]


def test_alarm_then_clear(rig_factory):
    rig = rig_factory()
    rig.hw.trip_smoke(SMOKE)
    (alarm,) = rig.sink.wait(lambda: rig.sink.of(SMOKE))
    assert (alarm.kind, alarm.type) == (Kind.SMOKE, EventType.ALARM)
    # The model's alarm contact is active low: the pin really went low.
    assert rig.hw.level(SMOKE, "alarm") is False
    rig.hw.clear_smoke(SMOKE)
    rig.sink.wait(lambda: types(rig) == [EventType.ALARM, EventType.CLEAR])
    assert alarm.ts < rig.sink.of(SMOKE)[1].ts


def test_fault_contact_is_a_fault_and_its_return_a_restore(rig_factory):
    rig = rig_factory()
    rig.hw.smoke_fault(SMOKE)
    rig.sink.wait(lambda: types(rig) == [EventType.FAULT])
    # The fault contact is normally closed (active high): a cut wire reads as a fault.
    assert rig.hw.level(SMOKE, "fault") is True
    rig.hw.smoke_fault(SMOKE, on=False)
    rig.sink.wait(lambda: types(rig) == [EventType.FAULT, EventType.RESTORE])


def test_relay_chatter_is_one_alarm(rig_factory):
    rig = rig_factory()
    for _ in range(5):
        rig.hw.trip_smoke(SMOKE)
        time.sleep(0.005)
        rig.hw.clear_smoke(SMOKE)
        time.sleep(0.005)
    rig.hw.trip_smoke(SMOKE)
    rig.sink.wait(lambda: rig.sink.of(SMOKE))
    settle(0.3)
    assert types(rig) == [EventType.ALARM]


def test_detector_in_alarm_at_start_is_reported(rig_factory):
    rig = rig_factory()
    rig.drivers[SMOKE].close()
    rig.hw.trip_smoke(SMOKE)
    rig.hw.smoke_fault(SMOKE)
    detector = ContactDetector(
        rig.config.device(SMOKE),
        rig.config.models["smoke_dry_contact"],
        scheduler=rig.scheduler,
        sink=rig.sink,
        pin_factory=rig.hw.pin_factory,
    )
    rig.drivers[SMOKE] = detector
    rig.scheduler.run_sync(detector.start)
    assert types(rig) == [EventType.ALARM, EventType.FAULT]
    assert detector.in_alarm and detector.faulted
