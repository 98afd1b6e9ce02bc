"""Supervision: a device silent past its model's report interval is one fault, and a restore
when it reports again; time is monotonic and injected, so these run instantly."""

from __future__ import annotations

from contract.models import EventType, Kind, Values
from edge.config import load_gateway_config
from edge.drivers.base import DeviceEvent, Sample
from edge.supervision import Supervisor, report_intervals
from tests.edge.helpers import DEMO_SITE, FIELD_SITE, Recorder


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(intervals=None):
    clock, out = Clock(), Recorder()
    supervisor = Supervisor(out, clock=clock)
    supervisor.watch(intervals or {"air-1": (Kind.AIR, 30.0), "zb-1": (Kind.SMOKE, 600.0)})
    return clock, out, supervisor


def test_silence_past_the_interval_is_one_fault_then_a_restore():
    clock, out, supervisor = make()
    clock.now += 29
    supervisor.check()
    assert out.events == []
    clock.now += 2  # 31 s without a word
    supervisor.check()
    clock.now += 100
    supervisor.check()  # still silent: no second fault
    assert [(e.device, e.kind, e.type) for e in out.events] == [
        ("air-1", Kind.AIR, EventType.FAULT)
    ]
    assert "silent for 31 s" in out.events[0].detail
    assert supervisor.silent("air-1") and not supervisor.silent("zb-1")

    supervisor.sample(Sample("air-1", Kind.AIR, Values(pm25_ugm3=3)))
    restore = out.events[-1]
    assert (restore.type, restore.values.offline_s) == (EventType.RESTORE, 131.0)
    assert out.samples[-1].values.pm25_ugm3 == 3, "the report itself is passed on, after"
    assert not supervisor.silent("air-1")
    assert (supervisor.faults, supervisor.restores) == (1, 1)


def test_any_report_but_a_fault_counts():
    clock, out, supervisor = make({"zb-1": (Kind.SMOKE, 10.0)})
    for report in (
        lambda: supervisor.alive("zb-1"),
        lambda: supervisor.event(DeviceEvent("zb-1", Kind.SMOKE, EventType.BATTERY_LOW)),
        lambda: supervisor.sample(Sample("zb-1", Kind.SMOKE, Values(battery_pct=80))),
    ):
        clock.now += 9
        report()
        supervisor.check()
    assert [e.type for e in out.events] == [EventType.BATTERY_LOW]
    # A fault the device (or its driver) reports is passed on but is no sign of life.
    clock.now += 9
    supervisor.event(DeviceEvent("zb-1", Kind.SMOKE, EventType.FAULT, detail="offline"))
    clock.now += 2
    supervisor.check()
    assert [e.type for e in out.events] == [
        EventType.BATTERY_LOW,
        EventType.FAULT,
        EventType.FAULT,
    ]


def test_unsupervised_devices_pass_through():
    clock, out, supervisor = make()
    clock.now += 10_000
    supervisor.event(DeviceEvent("smoke-1", Kind.SMOKE, EventType.ALARM))
    assert [e.device for e in out.events] == ["smoke-1"]
    supervisor.check()
    assert {e.device for e in out.events if e.type is EventType.FAULT} == {"air-1", "zb-1"}


def test_rewatching_keeps_the_state_of_devices_that_stay():
    clock, out, supervisor = make()
    clock.now += 40
    supervisor.check()  # air-1 silent
    supervisor.watch({"air-1": (Kind.AIR, 30.0), "co2-1": (Kind.AIR, 60.0)})
    assert supervisor.silent("air-1")
    clock.now += 59
    supervisor.check()
    assert [e.device for e in out.events] == ["air-1"], "co2-1 counts from when it was added"
    supervisor.alive("air-1")
    assert out.events[-1].type is EventType.RESTORE
    assert supervisor.check_period_s == 7.5


def test_report_intervals_come_from_the_models():
    demo = report_intervals(load_gateway_config(DEMO_SITE, "gw-ld01"))
    assert demo == {"air-0201": (Kind.AIR, 30.0)}  # wired contacts have their fault contact
    field = report_intervals(load_gateway_config(FIELD_SITE, "gw-field"))
    assert field["co2-0201"] == (Kind.AIR, 60.0)
    assert field["zsmoke-0201"] == (Kind.SMOKE, 14400.0)
    assert field["zsos-0101"][0] is Kind.CALL
    assert "smoke-0102" not in field and "call-0101" not in field


def test_a_silent_sensor_on_the_wire(rig_factory):
    """End to end below the driver: the PMS5003 stops sending frames, then sends again."""
    rig = rig_factory(
        frame_interval_s=0.05, air_pms5003={"sample_period_s": 0.05, "report_interval_s": 0.3}
    )
    rig.sink.wait(lambda: rig.sink.samples_of("air-0201"))
    rig.hw.stop()  # the sensor goes quiet
    rig.sink.wait(lambda: rig.sink.of("air-0201", EventType.FAULT), timeout=3)
    rig.hw.start()
    rig.sink.wait(lambda: rig.sink.of("air-0201", EventType.RESTORE), timeout=3)
    assert rig.sink.types("air-0201") == [EventType.FAULT, EventType.RESTORE]
