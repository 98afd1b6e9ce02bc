"""A Pi has no real-time clock: event times never go back within a boot because of it."""

from __future__ import annotations

import time
from datetime import timedelta

from contract.models import Event, EventType, Kind, Telemetry, Values, utc_now
from edge.drivers.base import DeviceEvent, Sample
from tests.gateway.helpers import outbox_rows
from tests.servers import free_port


def test_event_times_hold_when_the_clock_steps_back(private_broker, make_agent, tmp_path):
    private_broker.port = free_port()  # no broker: everything stays in the outbox to read
    agent = make_agent(private_broker)
    agent.start()
    # the start-up heartbeat (the scheduler's thread) is an event of this boot too: if its
    # time came after t0, the held times below would be its time, not t0
    deadline = time.monotonic() + 10
    while not outbox_rows(agent.outbox_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert outbox_rows(agent.outbox_path), "the start-up heartbeat was never stored"
    t0 = utc_now()

    def event(ts):
        agent.event(DeviceEvent("smoke-0102", Kind.SMOKE, EventType.ALARM, ts=ts))

    event(t0)
    event(t0 - timedelta(milliseconds=200))  # two devices, out of order: real, kept
    event(t0 - timedelta(hours=1))  # the clock stepped back an hour
    event(t0 - timedelta(hours=1) + timedelta(seconds=2))
    event(t0 + timedelta(seconds=3))  # caught up
    agent.sample(Sample("air-0201", Kind.AIR, Values(pm25_ugm3=5), ts=t0))
    agent.sample(Sample("air-0201", Kind.AIR, Values(pm25_ugm3=6), ts=t0 - timedelta(hours=1)))
    agent.stop()

    events = [Event.model_validate_json(p) for _, p in outbox_rows(agent.outbox_path)]
    ours = [e for e in events if e.device == "smoke-0102"]
    assert [e.ts - t0 for e in ours] == [
        timedelta(0),
        timedelta(milliseconds=-200),
        timedelta(0),
        timedelta(0),
        timedelta(seconds=3),
    ]
    assert [e.clock_synced for e in ours] == [True, True, False, False, True]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert agent.stats.clock_steps == 2
    (batch,) = [
        Telemetry.model_validate_json(p) for _, p in outbox_rows(agent.outbox_path, "/telemetry")
    ]
    assert [r.ts for r in batch.readings] == [t0, t0], "a device's readings never go back"


def test_events_say_when_the_clock_is_not_synchronised(private_broker, make_agent):
    private_broker.port = free_port()
    agent = make_agent(private_broker)
    agent.outgoing.clock_synced = lambda: False  # e.g. after a power cut, before NTP
    agent.start()
    # the start-up heartbeat is written by the agent's own thread: wait for it (no broker)
    deadline = time.monotonic() + 10
    while not outbox_rows(agent.outbox_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    agent.stop()
    (heartbeat,) = [Event.model_validate_json(p) for _, p in outbox_rows(agent.outbox_path)]
    assert heartbeat.type is EventType.HEARTBEAT and heartbeat.clock_synced is False
