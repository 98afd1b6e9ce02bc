"""The broker shape is chosen by settings: the single box's MQTT session by default, the
cluster's AMQP consumer with `SC_CLOUD_BROKER=rabbitmq` and its nodes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud.parts import open_transport
from cloud.settings import CloudSettings
from cloud.transport.amqp import AmqpTransport, Node
from cloud.transport.broker_link import BrokerLink
from cloud.transport.mqtt import MqttTransport


def test_the_single_box_is_the_default() -> None:
    transport = open_transport(CloudSettings(), BrokerLink())
    assert isinstance(transport, MqttTransport)
    assert transport.link.address == "127.0.0.1:1883"


def test_the_cluster_shape_knows_every_node() -> None:
    settings = CloudSettings(
        broker="rabbitmq",
        amqp_nodes=["10.0.0.1:5672", "10.0.0.2:5673"],
        amqp_password="secret",
    )
    transport = open_transport(settings, BrokerLink())
    assert isinstance(transport, AmqpTransport)
    assert transport.address.nodes == (Node("10.0.0.1", 5672), Node("10.0.0.2", 5673))
    assert transport.address.heartbeat_s == 5  # not RabbitMQ's 60 s
    assert transport.link.address == "10.0.0.1:5672"


def test_the_cluster_spreads_ingest_over_shards_and_the_single_box_cannot() -> None:
    settings = CloudSettings(broker="rabbitmq", ingest_shards=4, amqp_password="secret")
    transport = open_transport(settings, BrokerLink())
    assert isinstance(transport, AmqpTransport) and transport.address.shards == 4
    with pytest.raises(ValidationError, match="SC_CLOUD_BROKER=rabbitmq"):
        CloudSettings(ingest_shards=2)


@pytest.mark.parametrize("nodes", [[], ["10.0.0.1"], ["10.0.0.1:0"], ["host:port"]])
def test_a_bad_node_list_is_refused_with_the_reason(nodes: list[str]) -> None:
    with pytest.raises(ValidationError, match="HOST:PORT"):
        CloudSettings(broker="rabbitmq", amqp_nodes=nodes)


def test_production_needs_the_cluster_password() -> None:
    with pytest.raises(ValidationError, match="SC_CLOUD_AMQP_PASSWORD"):
        CloudSettings(
            environment="production",
            session_secret="s" * 32,
            broker="rabbitmq",
            mqtt_password="only-the-single-box-one",
        )


def test_a_group_commit_takes_at_most_the_configured_batch_from_either_transport() -> None:
    """SC_CLOUD_INGEST_MAX_BATCH bounds what a transport hands over at once (2000 by
    default: docs/benchmarks.md)."""
    assert CloudSettings().ingest_max_batch == 2000
    single = open_transport(CloudSettings(ingest_max_batch=50), BrokerLink())
    assert isinstance(single, MqttTransport) and single.max_batch == 50
    cluster = open_transport(
        CloudSettings(broker="rabbitmq", amqp_password="secret", ingest_max_batch=50), BrokerLink()
    )
    assert isinstance(cluster, AmqpTransport) and cluster.max_batch == 50
    with pytest.raises(ValidationError, match="ingest_max_batch"):
        CloudSettings(ingest_max_batch=0)
