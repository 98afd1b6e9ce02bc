"""The single box's MQTT session in both places it can run: inline in the cloud's event loop
(`MqttTransport`) and in a receiver process of its own (`MqttProcessTransport`, the default).
The tests of what a session promises run against both."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import BrokerLink
from cloud.transport.mqtt import BrokerAddress, MqttTransport
from cloud.transport.mqtt_process import MqttProcessTransport
from tests.servers import Mosquitto

Session = MqttTransport | MqttProcessTransport


@pytest.fixture(params=["process", "inline"])
def session_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_session(kind: str, broker: Mosquitto, name: str, **options: Any) -> Session:
    """A session of `kind` on `broker` as the cloud's account, its client id `name` + a
    random tail."""
    address = BrokerAddress(
        host="127.0.0.1",
        port=broker.port,
        username="cloud",
        password=broker.users["cloud"],
        client_id=f"{name}-{uuid.uuid4().hex[:6]}",
    )
    session = MqttProcessTransport if kind == "process" else MqttTransport
    return session(address, link=BrokerLink(), drops=DropWatch(), **options)
