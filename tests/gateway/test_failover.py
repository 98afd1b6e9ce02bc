"""A gateway that knows every node of a clustered broker (`BrokerParams.nodes`): a node that is
not there is skipped at once, and when the node it is on dies, the events the cloud has not
acknowledged go out again on the next node, where the cloud's acknowledgement reaches it.

Two separate Mosquittos stand for two nodes here (each test in a second; the same behaviour
through a real RabbitMQ cluster, with the real cloud: tests/faults/test_cluster.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.config import load_gateway_config
from gateway.agent import GatewayAgent
from gateway.settings import GatewaySettings
from gateway.uplink_settings import BrokerParams
from tests.gateway.conftest import FAST
from tests.gateway.helpers import DEMO_SITE, CloudClient, wait_until
from tests.servers import Mosquitto, free_port

GW = "gw-ld01"


@pytest.fixture
def two_nodes() -> Iterator[tuple[Mosquitto, Mosquitto]]:
    """Two brokers with the same accounts (as the nodes of one cluster share them)."""
    first, second = Mosquitto(), Mosquitto()
    for name in ("cloud", GW):
        password = first.add_user(name)
        second.add_user(name, password)
    first.start()
    second.start()
    yield first, second
    first.cleanup()
    second.cleanup()


def agent_on(nodes: list[int], tmp_path: Path, password: str) -> GatewayAgent:
    return GatewayAgent(
        load_gateway_config(DEMO_SITE, GW),
        broker=BrokerParams(
            username=GW, password=password, nodes=tuple(("127.0.0.1", p) for p in nodes)
        ),
        outbox_path=tmp_path / "outbox.sqlite3",
        simulate=True,
        options=FAST,
    )


def test_a_node_that_is_not_there_is_skipped_at_once(
    two_nodes: tuple[Mosquitto, Mosquitto], tmp_path: Path
) -> None:
    _, second = two_nodes
    cloud = CloudClient(second, f"sc/v1/{GW}/event")
    # the first node in the list does not answer; the back-off would wait 0.05 s, 0.1 s, …
    agent = agent_on([free_port(), second.port], tmp_path, second.users[GW])
    try:
        started = time.monotonic()
        agent.start()
        assert agent.wait_connected(5)
        assert agent.uplink and agent.hardware and agent.outbox
        assert agent.uplink.stats.connect_failures == 1
        assert time.monotonic() - started < 2
        agent.hardware.trip_smoke("smoke-0102")
        cloud.wait(lambda: any(e.type == "alarm" for e in cloud.events()))
        wait_until(
            lambda: agent.outbox is not None and agent.outbox.count_events() == 0,
            5,
            "the cloud's acknowledgement",
        )
    finally:
        agent.close()
        cloud.close()


def test_when_its_node_dies_the_unacknowledged_events_go_to_the_next_node(
    two_nodes: tuple[Mosquitto, Mosquitto], tmp_path: Path
) -> None:
    first, second = two_nodes
    # on the first node, a cloud that takes the events and never acknowledges them (as if its
    # acknowledgement were lost with the node)
    silent = CloudClient(first, f"sc/v1/{GW}/event", acks=False)
    cloud = CloudClient(second, f"sc/v1/{GW}/event")
    agent = agent_on([first.port, second.port], tmp_path, first.users[GW])
    try:
        agent.start()
        assert agent.wait_connected(5)
        assert agent.uplink and agent.hardware and agent.outbox
        agent.hardware.trip_smoke("smoke-0102")
        alarm = silent.wait(lambda: [e for e in silent.events() if e.type == "alarm"])[0]
        assert agent.outbox.count_events() == 2  # heartbeat and alarm: not acknowledged
        assert cloud.events() == []

        first.kill()  # kill -9 of the node the gateway is on
        # the same alarm (same id, same seq) reaches the cloud through the second node, and
        # the cloud's acknowledgement there lets the gateway forget it
        again = cloud.wait(lambda: [e for e in cloud.events() if e.type == "alarm"])[0]
        assert (again.id, again.seq, again.boot) == (alarm.id, alarm.seq, alarm.boot)
        wait_until(
            lambda: agent.outbox is not None and agent.outbox.count_events() == 0,
            5,
            "the cloud's acknowledgement",
        )
        assert agent.uplink.stats.connects == 2
    finally:
        agent.close()
        silent.close()
        cloud.close()


def test_the_nodes_setting_gives_every_node_in_order_and_refuses_a_bad_one() -> None:
    settings = GatewaySettings(
        site=DEMO_SITE, gateway=GW, broker_nodes="10.0.0.1:1883, 10.0.0.2:1884,[::1]:1885"
    )
    assert settings.broker_params().addresses() == (
        ("10.0.0.1", 1883),
        ("10.0.0.2", 1884),
        ("::1", 1885),
    )
    # without a list: the single broker, as before
    single = GatewaySettings(site=DEMO_SITE, gateway=GW, broker_host="b", broker_port=1999)
    assert single.broker_params().addresses() == (("b", 1999),)
    with pytest.raises(ValidationError, match=re.escape("not HOST:PORT: '10.0.0.2'")):
        GatewaySettings(site=DEMO_SITE, gateway=GW, broker_nodes="10.0.0.1:1883,10.0.0.2")
