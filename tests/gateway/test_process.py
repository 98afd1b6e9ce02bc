"""The agent as a process (`python -m gateway run`): last will on a crash, kill -9 durability."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time

from contract.models import Event, EventType, GatewayState, Status
from tests.gateway.helpers import (
    DEMO_SITE,
    AgentProcess,
    clear_retained_status,
    outbox_rows,
    wait_until,
)
from tests.servers import free_port

SCRIPT = """\
- {at: 0.1, do: trip_smoke, device: smoke-0102}
- {at: 0.3, do: clear_smoke, device: smoke-0102}
- {at: 0.5, do: press_call, device: call-0101, hold_s: 0.1}
- {at: 0.8, do: gas_relay, device: gas-0101, alarm: true}
- {at: 1.0, do: gas_relay, device: gas-0101, alarm: false}
- {at: 1.2, do: trip_smoke, device: smoke-0102}
- {at: 1.4, do: clear_smoke, device: smoke-0102}
"""
EXPECTED = [
    EventType.HEARTBEAT,
    EventType.ALARM,
    EventType.CLEAR,
    EventType.PRESS,
    EventType.ALARM,
    EventType.CLEAR,
    EventType.ALARM,
    EventType.CLEAR,
]


def _args(broker, gateway: str, outbox, *extra: str) -> list[str]:
    return [
        "--site",
        str(DEMO_SITE),
        "--gateway",
        gateway,
        "--broker-port",
        str(broker.port),
        "--username",
        gateway,
        "--password",
        broker.users[gateway],
        "--outbox",
        str(outbox),
        "--simulate",
        "--heartbeat-s",
        "3600",
        "--telemetry-period-s",
        "0.5",
        "--backoff-max-s",
        "0.5",
        *extra,
    ]


def test_last_will_says_offline_when_the_agent_is_killed(mosquitto, cloud_factory, tmp_path):
    gateway = "gw-ld02"
    status_topic = f"sc/v1/{gateway}/status"
    cloud = cloud_factory(mosquitto, status_topic)
    agent = AgentProcess(tmp_path / "agent.log", *_args(mosquitto, gateway, tmp_path / "o.db"))
    try:

        def online() -> Status | None:
            for message in cloud.on("/status"):
                status = Status.model_validate_json(message.payload)
                if status.state is GatewayState.ONLINE and not message.retain:
                    return status
            return None

        birth = cloud.wait(online, timeout=20)
        agent.kill9()
        will = cloud.wait(
            lambda: [
                s
                for m in cloud.on("/status")
                if (s := Status.model_validate_json(m.payload)).state is GatewayState.OFFLINE
                and s.boot == birth.boot
            ]
        )[-1]
        late = cloud_factory(mosquitto, status_topic)
        retained = late.wait(lambda: late.on("/status"))[0]
        assert retained.retain
        assert Status.model_validate_json(retained.payload) == will
    finally:
        agent.terminate()
        clear_retained_status(mosquitto, gateway)


def test_kill_9_loses_nothing_and_replays_in_order(private_broker, cloud_factory, tmp_path):
    broker = private_broker
    broker.port = free_port()  # not started: nothing can be delivered
    outbox = tmp_path / "outbox.sqlite3"
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    log = tmp_path / "agent.log"

    first = AgentProcess(log, *_args(broker, "gw-ld01", outbox, "--script", str(script)))
    try:
        wait_until(
            lambda: first.alive() and len(outbox_rows(outbox)) >= len(EXPECTED),
            timeout=30,
            what="the scripted events in the outbox",
        )
        first.kill9()
    finally:
        first.terminate()
    stored = [Event.model_validate_json(payload) for _, payload in outbox_rows(outbox)]
    assert [e.type for e in stored] == EXPECTED, log.read_text()
    old_boot = stored[0].boot
    assert [e.seq for e in stored] == list(range(1, len(EXPECTED) + 1))

    broker.start()
    cloud = cloud_factory(broker, "sc/v1/gw-ld01/event")
    second = AgentProcess(log, *_args(broker, "gw-ld01", outbox))
    try:

        def replayed():
            events = cloud.events()
            new = [e for e in events if e.boot != old_boot]
            return events if len(events) - len(new) >= len(EXPECTED) and new else None

        events = cloud.wait(replayed, timeout=30)
        time.sleep(0.3)  # anything doubled would arrive right behind
        events = cloud.events()
        assert second.terminate() == 0, second.log_text()
    finally:
        second.terminate()

    old = [e for e in events if e.boot == old_boot]
    assert [e.seq for e in old] == list(range(1, len(EXPECTED) + 1)), "in order, none missing"
    assert [e.id for e in old] == [e.id for e in stored], "the very events that were stored"
    assert len({e.id for e in events}) == len(events), "nothing doubled"
    assert all(e.replayed for e in old)
    new = [e for e in events if e.boot != old_boot]
    assert [(e.seq, e.type) for e in new] == [(1, EventType.HEARTBEAT), (2, EventType.RESTORE)]
    assert events.index(new[0]) == len(old), "the backlog goes first"
    # The outage began in the first run (no broker at all) and is measured across the kill.
    assert new[1].values.offline_s > 1.0
    assert outbox_rows(outbox) == [], "everything acknowledged and deleted"
    assert "signal received" in log.read_text() and os.path.getsize(log) > 0


def test_kill_9_in_the_middle_of_writing(private_broker, cloud_factory, tmp_path):
    """Killed at a random moment while events pour into the outbox during an outage: the file
    is intact, and exactly the events it holds arrive after the restart, once, in order."""
    broker = private_broker
    broker.port = free_port()
    outbox = tmp_path / "outbox.sqlite3"
    script = tmp_path / "script.yaml"
    steps = []
    for i in range(40):  # 0.15 s apart: longer than the contact's debounce (0.1 s)
        step = "trip_smoke" if i % 2 == 0 else "clear_smoke"
        steps.append(f"- {{at: {0.05 + i * 0.15:.2f}, do: {step}, device: smoke-0102}}")
    script.write_text("\n".join(steps) + "\n")
    log = tmp_path / "agent.log"
    first = AgentProcess(log, *_args(broker, "gw-ld01", outbox, "--script", str(script)))
    try:
        wait_until(lambda: first.alive() and len(outbox_rows(outbox)) >= 8, 30, "writing")
        time.sleep(random.uniform(0.0, 0.5))
        first.kill9()
    finally:
        first.terminate()
    db = sqlite3.connect(outbox)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    stored = [Event.model_validate_json(payload) for _, payload in outbox_rows(outbox)]
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))

    broker.start()
    cloud = cloud_factory(broker, "sc/v1/gw-ld01/event")
    second = AgentProcess(log, *_args(broker, "gw-ld01", outbox))
    try:
        old_boot = stored[0].boot
        cloud.wait(
            lambda: len([e for e in cloud.events() if e.boot == old_boot]) >= len(stored),
            timeout=30,
        )
        time.sleep(0.3)
        events = cloud.events()
    finally:
        second.terminate()
    old = [e for e in events if e.boot == old_boot]
    assert [e.id for e in old] == [e.id for e in stored], "all of them, once, in order"


def test_sighup_reloads_the_configuration_and_keeps_the_outbox(private_broker, tmp_path):
    """`systemctl reload sc-gateway`: the files are read again; the stored events stay."""
    private_broker.port = free_port()  # no uplink: the events stay in the outbox
    outbox = tmp_path / "outbox.sqlite3"
    script = tmp_path / "script.yaml"
    script.write_text(
        "- {at: 0.1, do: trip_smoke, device: smoke-0102}\n"
        "- {at: 1.5, do: clear_smoke, device: smoke-0102}\n"
    )
    agent = AgentProcess(
        tmp_path / "agent.log", *_args(private_broker, "gw-ld01", outbox, "--script", str(script))
    )
    try:
        wait_until(lambda: agent.alive() and len(outbox_rows(outbox)) == 2, 20, "two events")
        before = outbox_rows(outbox)
        agent.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded" in agent.log_text(), 10, "the reload")
        wait_until(lambda: len(outbox_rows(outbox)) == 3, 10, "the clear after the reload")
        assert outbox_rows(outbox)[:2] == before
        assert agent.alive()
    finally:
        assert agent.terminate() == 0
    types = [Event.model_validate_json(p).type for _, p in outbox_rows(outbox)]
    assert types == [EventType.HEARTBEAT, EventType.ALARM, EventType.CLEAR], "not re-raised"
