"""The agent in-process against the real Mosquitto: events, birth, telemetry, commands."""

from __future__ import annotations

import time

from contract.models import (
    Command,
    Event,
    EventType,
    GatewayState,
    Kind,
    Reply,
    Status,
    Telemetry,
    encode,
    utc_now,
)
from edge.drivers.call_button import CallButton, Indicator
from gateway.commands import UNREADABLE_ID
from tests.gateway.helpers import wait_until

GW = "gw-ld01"


def test_events_are_contract_valid_and_birth_is_retained(mosquitto, make_agent, cloud_factory):
    cloud = cloud_factory(mosquitto, f"sc/v1/{GW}/event")
    agent = make_agent(mosquitto)
    agent.start()
    agent.start()  # idempotent
    assert agent.wait_connected(5)
    hw = agent.hardware
    hw.press_call("call-0101")
    hw.trip_smoke("smoke-0102")

    events = cloud.wait(lambda: len(cloud.events()) >= 3 and cloud.events())
    heartbeat, call, smoke = events[:3]
    assert (heartbeat.kind, heartbeat.type, heartbeat.device) == (
        Kind.GATEWAY,
        EventType.HEARTBEAT,
        GW,
    )
    assert (call.kind, call.type, call.device) == (Kind.CALL, EventType.PRESS, "call-0101")
    assert (smoke.kind, smoke.type) == (Kind.SMOKE, EventType.ALARM)
    assert [e.seq for e in events] == [1, 2, 3]
    assert {e.boot for e in events} == {agent.boot}
    assert len({e.id for e in events}) == 3
    assert all(e.gateway == GW and not e.replayed for e in events)
    assert call.values.press_ms > 100
    assert abs((utc_now() - call.ts).total_seconds()) < 5

    # A client that subscribes later gets the retained birth status of this boot.
    late = cloud_factory(mosquitto, f"sc/v1/{GW}/status")
    status = late.wait(lambda: late.on("/status"))[0]
    assert status.retain
    assert Status.model_validate_json(status.payload).state is GatewayState.ONLINE
    assert Status.model_validate_json(status.payload).boot == agent.boot

    agent.stop()
    agent.stop()  # idempotent
    offline = late.wait(lambda: len(late.on("/status")) >= 2 and late.on("/status")[-1])
    assert Status.model_validate_json(offline.payload).state is GatewayState.OFFLINE


def test_readings_are_batched_into_telemetry(mosquitto, make_agent, cloud_factory):
    cloud = cloud_factory(mosquitto, f"sc/v1/{GW}/telemetry")
    agent = make_agent(
        mosquitto,
        models={
            "gas_mcp3008": {"warmup_s": 0, "sample_period_s": 0.1},
            "air_pms5003": {"sample_period_s": 0.1},
        },
    )
    agent.start()
    agent.hardware.set_gas("gas-0101", 40)
    agent.hardware.set_air("air-0201", 12, 35, 60)

    def readings():
        batches = [Telemetry.model_validate_json(m.payload) for m in cloud.on("/telemetry")]
        found = [r for b in batches for r in b.readings]
        kinds = {r.kind for r in found}
        return (batches, found) if {Kind.GAS, Kind.AIR} <= kinds else None

    batches, found = cloud.wait(readings)
    assert [b.seq for b in batches] == list(range(1, len(batches) + 1))
    assert all(b.boot == agent.boot and b.gateway == GW for b in batches)
    air = [r for r in found if r.kind is Kind.AIR]
    assert any(r.values.pm25_ugm3 == 35 for r in air)

    def gas_at_40() -> bool:
        _, found = readings()
        return any(r.kind is Kind.GAS and abs(r.values.ch4_pct_lel - 40) < 0.3 for r in found)

    cloud.wait(gas_at_40)


def _command(device: str | None = "call-0101", **kw) -> tuple[str, bytes]:
    command = Command(id=f"cmd-{time.monotonic_ns()}", ts=utc_now(), device=device, **kw)
    return command.id, encode(command)


def test_call_accepted_lights_help_and_replies(mosquitto, make_agent, cloud_factory):
    cloud = cloud_factory(mosquitto, f"sc/v1/{GW}/reply", f"sc/v1/{GW}/event")
    agent = make_agent(mosquitto)
    agent.start()
    assert agent.wait_connected(5)
    hw = agent.hardware
    hw.press_call("call-0101")
    cloud.wait(lambda: [e for e in cloud.events() if e.type is EventType.PRESS])
    assert hw.led_lit("call-0101")
    button = agent.drivers["call-0101"]
    assert isinstance(button, CallButton) and button.call_open

    command_id, payload = _command()
    cloud.publish(f"sc/v1/{GW}/cmd/call_accepted", payload)
    message = cloud.wait(lambda: cloud.on("/reply"))[0]
    reply = Reply.model_validate_json(message.payload)
    assert (reply.id, reply.gateway, reply.ok) == (command_id, GW, True)
    assert "help is coming" in reply.detail
    assert button.indicator is Indicator.HELP_COMING and not button.call_open
    hw.clear_history("call-0101", "led")
    wait_until(lambda: len(hw.history("call-0101", "led")) >= 3, 3, "the LED to blink")


def test_bad_commands_get_a_reason_and_never_crash(mosquitto, make_agent, cloud_factory):
    cloud = cloud_factory(mosquitto, f"sc/v1/{GW}/reply", f"sc/v1/{GW}/event")
    base = f"sc/v1/{GW}/cmd"
    # A retained command is delivered again on every (re)connect: it is refused, not replayed.
    retained_id, retained_cmd = _command()
    cloud.publish(f"{base}/call_accepted", retained_cmd, retain=True)
    agent = make_agent(mosquitto)
    try:
        agent.start()
        assert agent.wait_connected(5)
        cloud.wait(lambda: cloud.on("/reply"))
    finally:
        cloud.publish(f"{base}/call_accepted", b"", retain=True)  # clear it
    smoke_id, smoke_cmd = _command("smoke-0102")
    ghost_id, ghost_cmd = _command("call-9999")
    nodev_id, nodev_cmd = _command(None)
    other_id, other_cmd = _command()
    cloud.publish(f"{base}/call_accepted", b"{not json")
    cloud.publish(f"{base}/call_accepted", b'{"v":1,"id":"cmd-12345678","ts":"yesterday"}')
    cloud.publish(f"{base}/call_accepted", smoke_cmd)
    cloud.publish(f"{base}/call_accepted", ghost_cmd)
    cloud.publish(f"{base}/call_accepted", nodev_cmd)
    cloud.publish(f"{base}/reboot_now", other_cmd)
    expected = {retained_id, UNREADABLE_ID, "cmd-12345678", smoke_id, ghost_id, nodev_id, other_id}

    def replies() -> dict[str, Reply]:
        found = [Reply.model_validate_json(m.payload) for m in cloud.on("/reply")]
        return {r.id: r for r in found} if expected <= {r.id for r in found} else {}

    by_id = cloud.wait(replies)
    assert not any(r.ok for r in by_id.values())
    assert "invalid command" in by_id[UNREADABLE_ID].detail
    assert "ts" in by_id["cmd-12345678"].detail
    assert "not a call button" in by_id[smoke_id].detail
    assert "no device 'call-9999'" in by_id[ghost_id].detail
    assert "needs 'device'" in by_id[nodev_id].detail
    assert "unknown command 'reboot_now'" in by_id[other_id].detail
    assert "retained" in by_id[retained_id].detail
    # Still working.
    agent.hardware.trip_smoke("smoke-0102")
    cloud.wait(lambda: [e for e in cloud.events() if e.type is EventType.ALARM])


def test_events_raised_while_the_broker_is_down_arrive_after_it_returns(
    private_broker, make_agent, cloud_factory
):
    broker = private_broker
    broker.start()
    cloud = cloud_factory(broker, f"sc/v1/{GW}/event")
    agent = make_agent(broker)
    agent.start()
    assert agent.wait_connected(5)
    hw = agent.hardware
    hw.trip_smoke("smoke-0102")
    cloud.wait(lambda: len(cloud.events()) == 2)  # heartbeat, alarm

    broker.stop()
    wait_until(lambda: not agent.uplink.connected, 5, "the agent to see the outage")
    hw.clear_smoke("smoke-0102")
    hw.press_call("call-0101")
    wait_until(lambda: agent.stats.events == 4, 5, "events raised during the outage")
    assert hw.led_lit("call-0101"), "the call is confirmed locally without an uplink"

    # The broker returns; the gateway is kept out until the cloud listens again, so the
    # test sees what the gateway sends rather than racing the cloud's reconnect.
    gateway_password = broker.users[GW]
    broker.add_user(GW, "not-yet")
    broker.start()
    assert cloud.subscribed.wait(10)
    broker.add_user(GW, gateway_password)
    broker.reload()

    events = cloud.wait(lambda: len(cloud.events()) >= 5 and cloud.events())
    assert [(e.seq, e.type) for e in events] == [
        (1, EventType.HEARTBEAT),
        (2, EventType.ALARM),
        (3, EventType.CLEAR),
        (4, EventType.PRESS),
        (5, EventType.RESTORE),  # the uplink is back: how long it was away, after the backlog
    ]
    assert [e.replayed for e in events] == [False, False, True, True, False]
    back = events[-1]
    assert (back.kind, back.device) == (Kind.GATEWAY, GW)
    assert back.values.offline_s > 0.1
    time.sleep(0.3)
    assert len(cloud.events()) == 5, "nothing doubled"
    wait_until(lambda: agent.outbox.count() == 0 or _only_telemetry(agent), 5, "acks")


def _only_telemetry(agent) -> bool:
    return all(e.topic.endswith("/telemetry") for e in agent.outbox.pending(1000))


def test_two_gateways_in_one_process(mosquitto, make_agent, cloud_factory):
    cloud = cloud_factory(mosquitto, "sc/v1/+/event")
    one, two = make_agent(mosquitto, "gw-ld01"), make_agent(mosquitto, "gw-ld02")
    one.start()
    two.start()
    assert one.wait_connected(5) and two.wait_connected(5)
    one.hardware.press_call("call-0101")
    two.hardware.trip_smoke("smoke-0301")

    def seen() -> dict[str, list]:
        by_gateway: dict[str, list] = {}
        for message in cloud.on("/event"):
            event = Event.model_validate_json(message.payload)
            assert message.topic == f"sc/v1/{event.gateway}/event"
            if event.kind is not Kind.GATEWAY:
                by_gateway.setdefault(event.gateway, []).append((event.device, event.type))
        return by_gateway if len(by_gateway) == 2 else {}

    assert cloud.wait(seen) == {
        "gw-ld01": [("call-0101", EventType.PRESS)],
        "gw-ld02": [("smoke-0301", EventType.ALARM)],
    }
    assert one.hardware.led_lit("call-0101") and not two.hardware.led_lit("call-0101")
