"""`cmd/config`: the cloud pushes a configuration; the gateway validates it before anything
changes, keeps the previous one, answers on `reply`; the outbox is never touched."""

from __future__ import annotations

import time

import yaml

from contract.models import Command, EventType, Reply, encode, utc_now
from gateway.config_store import ConfigStore, document_of, parse
from tests.gateway.helpers import wait_until
from tests.servers import free_port

GW = "gw-ld01"


def _push(cloud, document: str) -> Reply:
    command = Command(id=f"cfg-{time.monotonic_ns()}", ts=utc_now(), document=document)
    cloud.publish(f"sc/v1/{GW}/cmd/config", encode(command))
    found = cloud.wait(
        lambda: [
            r
            for m in cloud.on("/reply")
            if (r := Reply.model_validate_json(m.payload)).id == command.id
        ]
    )
    return found[0]


def _document(agent, *, drop: str | None = None, **models) -> str:
    data = yaml.safe_load(document_of(agent.config, version="v2"))
    data["devices"] = [d for d in data["devices"] if d["id"] != drop]
    data["models"] = models
    return yaml.safe_dump(data, allow_unicode=True)


def test_a_pushed_config_is_validated_applied_kept_and_reported(
    mosquitto, make_agent, cloud_factory
):
    cloud = cloud_factory(mosquitto, f"sc/v1/{GW}/reply", f"sc/v1/{GW}/event")
    agent = make_agent(mosquitto)
    agent.start()
    assert agent.wait_connected(5)
    store = agent.config_store

    # A mistake: nothing changes, and the reply names the field.
    bad = yaml.safe_load(_document(agent))
    bad["devices"][0]["pins"].pop("led")
    reply = _push(cloud, yaml.safe_dump(bad))
    assert not reply.ok
    assert "devices[0].pins: no pin for role 'led'" in reply.detail
    assert "nothing changed" in reply.detail
    assert set(agent.drivers) == {"call-0101", "smoke-0102", "gas-0101", "air-0201"}
    assert not store.current.exists()
    reply = _push(cloud, "devices: [")
    assert not reply.ok and "not valid YAML" in reply.detail
    reply = _push(cloud, _document(agent).replace("id: gw-ld01", "id: gw-ld02"))
    assert not reply.ok and "not gw-ld02" in reply.detail

    # A good one: the air sensor goes, a long press is 1 s now.
    long_press = {"driver": "call_button_gpio", "long_press_s": 1.0}
    reply = _push(cloud, _document(agent, drop="air-0201", call_button_gpio=long_press))
    assert reply.ok, reply.detail
    assert reply.detail.startswith("config v2 applied: 3 devices")
    assert set(agent.drivers) == {"call-0101", "smoke-0102", "gas-0101"}
    assert agent.config.models["call_button_gpio"].long_press_s == 1.0
    assert yaml.safe_load(store.current.read_text())["version"] == "v2"
    previous = yaml.safe_load(store.previous.read_text())
    assert "air-0201" in {d["id"] for d in previous["devices"]}, "the site's config is kept"

    # The new drivers run: a 1.2 s hold is a test press now.
    agent.hardware.press_call("call-0101", 1.2)
    cloud.wait(lambda: [e for e in cloud.events() if e.type is EventType.TEST])
    assert not [e for e in cloud.events() if e.type is EventType.PRESS]

    # Kept across a restart: the store gives it back.
    again = ConfigStore(store.folder).load(GW)
    assert again is not None and set(again.config.models) == {
        "call_button_gpio",
        "smoke_dry_contact",
        "gas_mcp3008",
    }


def test_a_config_change_never_touches_the_outbox(private_broker, make_agent):
    private_broker.port = free_port()  # no uplink: everything waits in the outbox
    agent = make_agent(private_broker)
    agent.start()
    agent.hardware.trip_smoke("smoke-0102")
    agent.hardware.press_call("call-0101")
    wait_until(lambda: agent.outbox.count_events() == 3, 5, "heartbeat, alarm, call stored")
    outbox = agent.outbox
    pushed = parse(_document(agent, drop="air-0201"), GW)
    assert agent.config_push.apply(pushed).startswith("config v2 applied")
    agent.config_push.reload(pushed.config)  # SIGHUP: the files again
    assert agent.outbox is outbox and outbox.count_events() == 3
    agent.hardware.clear_smoke("smoke-0102")
    wait_until(lambda: outbox.count_events() == 4, 5, "the new drivers report")
    assert agent.boot and agent.uplink.offline_s() is not None
