"""Local safety: with the uplink down, a life-safety event still lights and sounds at once,
the events wait in the outbox, and the gateway says how long it was away when it returns."""

from __future__ import annotations

import time

from contract.models import EventType, Kind
from gateway.outbox import Outbox
from gateway.uplink import DOWN_SINCE, Uplink
from gateway.uplink_settings import BrokerParams
from tests.gateway.helpers import wait_until
from tests.servers import free_port

GW = "gw-ld01"


def test_with_the_uplink_down_alarms_still_sound_and_light(
    private_broker, make_agent, cloud_factory
):
    broker = private_broker
    broker.port = free_port()  # not started yet: the uplink is down from the start
    agent = make_agent(broker)
    agent.start()
    hw, local = agent.hardware, agent.config.profile.local_alarm
    assert local is not None and local.buzzer is not None
    wait_until(lambda: agent.uplink.offline_s() is not None, 5, "the outage to begin")

    hw.clear_history("call-0101", "buzzer")
    hw.board.clear_history(local.buzzer)
    hw.trip_smoke("smoke-0102")
    wait_until(lambda: hw.board.level(local.led), 2, "the gateway's alarm lamp")
    wait_until(lambda: len(hw.board.history(local.buzzer)) >= 4, 2, "the sounder beeping")
    hw.press_call("call-0101")
    wait_until(lambda: hw.led_lit("call-0101"), 2, "the button's own 'call sent' LED")
    assert len(hw.history("call-0101", "buzzer")) >= 2, "the button chirped"
    hw.clear_smoke("smoke-0102")
    wait_until(lambda: "smoke-0102" not in agent.local_alarm.active, 2, "the smoke alarm to end")
    assert hw.board.level(local.led), "the call keeps the lamp lit"
    assert agent.outbox.count_events() >= 4  # heartbeat, alarm, call, clear: all kept

    outage = 0.5
    time.sleep(max(0.0, outage - agent.uplink.offline_s()))
    broker.start()
    cloud = cloud_factory(broker, f"sc/v1/{GW}/event")
    events = cloud.wait(lambda: [e for e in cloud.events() if e.type is EventType.RESTORE])
    events = cloud.events()
    types = [(e.kind, e.type) for e in events]
    assert types[:4] == [
        (Kind.GATEWAY, EventType.HEARTBEAT),
        (Kind.SMOKE, EventType.ALARM),
        (Kind.CALL, EventType.PRESS),
        (Kind.SMOKE, EventType.CLEAR),
    ]
    back = events[-1]
    assert (back.kind, back.type, back.device) == (Kind.GATEWAY, EventType.RESTORE, GW)
    assert back.values.offline_s >= outage
    assert agent.uplink.offline_s() is None
    assert agent.outbox.get_meta(DOWN_SINCE) is None


def test_an_outage_length_never_comes_out_negative(tmp_path):
    """The part of an outage before a restart is by the wall clock; a clock that was ahead
    then must not make it negative."""
    with Outbox(tmp_path / "o.sqlite3") as box:
        box.set_meta(DOWN_SINCE, repr(time.time() + 3600))  # written by a clock an hour ahead
        ahead = Uplink(GW, BrokerParams(port=free_port()), box, boot="b").offline_s()
        assert ahead is not None and 0 <= ahead < 1
        box.set_meta(DOWN_SINCE, repr(time.time() - 120))
        behind = Uplink(GW, BrokerParams(port=free_port()), box, boot="b").offline_s()
        assert behind is not None and 119 < behind < 125
