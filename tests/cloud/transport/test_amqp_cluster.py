"""The cluster shape's transport against a real 3-node RabbitMQ cluster: gateways speak MQTT to
any node, the cloud consumes over AMQP from a quorum queue on another, acknowledges only what
it says is stored, sends commands back to a gateway on any node, and loses nothing to a topic
that matches no binding.

Each test consumes from a queue of its own (deleted at the end), so what one test leaves
unacknowledged never reaches another.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import aio_pika
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.transport.amqp import AmqpTransport, ClusterAddress, Node
from cloud.transport.base import Received
from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import BrokerLink
from contract import topics
from tests.servers import RabbitCluster, RabbitNode, free_port

# the first test to ask for the session's cluster waits for it to start (~25-40 s on 2 cores)
# the session's one RabbitMQ cluster: every test that uses it runs on the same pytest worker
pytestmark = [pytest.mark.timeout(180), pytest.mark.xdist_group("rabbitmq")]


@pytest.fixture
def queue_name(rabbit_cluster: RabbitCluster) -> Iterator[str]:
    name = f"sc.test-{uuid.uuid4().hex[:8]}"
    yield name
    asyncio.run(_delete_queue(rabbit_cluster, name))


async def _delete_queue(cluster: RabbitCluster, name: str) -> None:
    """Over AMQP (a `rabbitmqctl` call costs an Erlang start-up)."""
    node = cluster.any_running()
    connection = await aio_pika.connect(
        host="127.0.0.1", port=node.amqp_port, login="cloud", password=cluster.users["cloud"]
    )
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


def transport(cluster: RabbitCluster, queue: str, nodes: list[Node] | None = None) -> AmqpTransport:
    return AmqpTransport(
        ClusterAddress(
            nodes=tuple(nodes or [Node("127.0.0.1", cluster.nodes[0].amqp_port)]),
            username="cloud",
            password=cluster.users["cloud"],
            client_id="test-cloud",
            queue=queue,
            heartbeat_s=2,
        ),
        link=BrokerLink(),
        drops=DropWatch(),
        retry_min_s=0.1,
        retry_max_s=0.5,
    )


@asynccontextmanager
async def consuming(
    t: AmqpTransport, on_item: Callable[[Received], None]
) -> AsyncIterator[list[Received]]:
    """Run the transport, handing each item to `on_item`; yields what arrived."""
    got: list[Received] = []

    async def consume(batch: list[Received]) -> None:
        for item in batch:
            got.append(item)
            on_item(item)

    task = asyncio.create_task(t.run(consume))
    try:
        await asyncio.wait_for(t.link.connected.wait(), 30)
        yield got
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def gateway_client(
    cluster: RabbitCluster, node: RabbitNode, user: str, received: list[str] | None = None
) -> mqtt.Client:
    """A gateway's MQTT session on `node` (subscribed to its commands when `received`)."""
    # the gateway id as client id: its account may make only `mqtt-subscription-{id}qos1`
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
    client.username_pw_set(user, cluster.users[user])
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_subscribe(*_: object) -> None:
        loop.call_soon_threadsafe(subscribed.set)

    if received is not None:
        client.on_message = lambda _c, _u, msg: received.append(msg.topic)
        client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", node.mqtt_port)
    client.loop_start()
    if received is not None:
        client.subscribe(topics.subscription(topics.Channel.CMD, user), qos=1)
    client._sc_subscribed = subscribed  # type: ignore[attr-defined]
    return client


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def test_an_event_sent_to_one_node_is_consumed_from_another(
    rabbit_cluster: RabbitCluster, queue_name: str
) -> None:
    t = transport(rabbit_cluster, queue_name)
    async with consuming(t, t.ack) as got:
        gw = gateway_client(rabbit_cluster, rabbit_cluster.nodes[2], "gw-ld01")
        try:
            info = gw.publish(topics.event("gw-ld01"), b'{"n": 1}', qos=1)
            await asyncio.to_thread(info.wait_for_publish, 10)
            assert info.is_published()  # the PUBACK: the quorum queue has it
        finally:
            close(gw)
        await until(lambda: len(got) == 1)
    assert (got[0].topic, got[0].payload, got[0].gateway) == (
        "sc/v1/gw-ld01/event",
        b'{"n": 1}',
        "gw-ld01",
    )


async def test_what_is_not_acknowledged_is_delivered_again_and_what_is_is_not(
    rabbit_cluster: RabbitCluster, queue_name: str
) -> None:
    first = transport(rabbit_cluster, queue_name)
    async with consuming(first, lambda _item: None):  # declares the queue; acknowledges nothing
        pass
    gw = gateway_client(rabbit_cluster, rabbit_cluster.nodes[1], "gw-ld01")
    try:
        for n in (1, 2):
            info = gw.publish(topics.event("gw-ld01"), f'{{"n": {n}}}'.encode(), qos=1)
            await asyncio.to_thread(info.wait_for_publish, 10)
    finally:
        close(gw)

    def ack_only_the_first(item: Received) -> None:
        if item.payload == b'{"n": 1}':
            second.ack(item)

    second = transport(rabbit_cluster, queue_name)
    async with consuming(second, ack_only_the_first) as got:
        await until(lambda: len(got) == 2)
        # stored-and-acknowledged vs. taken-but-not-stored (the session then ends)
    third = transport(
        rabbit_cluster, queue_name, [Node("127.0.0.1", rabbit_cluster.nodes[2].amqp_port)]
    )
    async with consuming(third, third.ack) as again:
        await until(lambda: len(again) == 1)
        await asyncio.sleep(0.3)  # anything more would be a redelivery of the acknowledged one
    assert [item.payload for item in again] == [b'{"n": 2}']


async def test_a_command_reaches_the_gateway_on_whichever_node_it_is(
    rabbit_cluster: RabbitCluster, queue_name: str
) -> None:
    t = transport(rabbit_cluster, queue_name)
    async with consuming(t, t.ack):
        for node in rabbit_cluster.nodes:
            received: list[str] = []
            gw = gateway_client(rabbit_cluster, node, "gw-ld02", received)
            try:
                await asyncio.wait_for(gw._sc_subscribed.wait(), 10)  # type: ignore[attr-defined]
                assert await t.publish(topics.command("gw-ld02", "ack"), b"{}")
                await until(lambda: received == ["sc/v1/gw-ld02/cmd/ack"])  # noqa: B023
            finally:
                close(gw)


async def test_nothing_is_silently_dropped_when_no_binding_matches(
    rabbit_cluster: RabbitCluster, queue_name: str
) -> None:
    """The shipped policy makes `sc.unrouted` amq.topic's alternate exchange: a topic the
    cloud does not bind reaches ingest all the same (to be refused with its reason), and a
    command for a gateway that is not connected is counted."""
    t = transport(rabbit_cluster, queue_name)
    async with consuming(t, t.ack) as got:
        odd = gateway_client(rabbit_cluster, rabbit_cluster.nodes[1], "cloud")
        try:
            info = odd.publish("sc/v1/gw-ld01/unknown_channel", b"junk", qos=1)
            await asyncio.to_thread(info.wait_for_publish, 10)
        finally:
            close(odd)
        assert await t.publish(topics.command("gw-nobody", "config"), b"{}")
        await until(lambda: [i.topic for i in got] == ["sc/v1/gw-ld01/unknown_channel"])
        await until(lambda: t.counts["unrouted_commands"] >= 1)
    assert t.counts["unrouted"] == 1
    assert t.drops.dropped == 0


async def test_a_node_that_does_not_answer_is_skipped_for_the_next(
    rabbit_cluster: RabbitCluster, queue_name: str
) -> None:
    dead = Node("127.0.0.1", free_port())  # nothing listens there
    alive = Node("127.0.0.1", rabbit_cluster.nodes[1].amqp_port)
    t = transport(rabbit_cluster, queue_name, [dead, alive])
    started = asyncio.get_running_loop().time()
    async with consuming(t, t.ack):
        assert t.node == alive
        assert t.link.address == str(alive)
    # at once, not after a back-off: another node was there
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_gateway_cannot_publish_as_another(
    rabbit_cluster: RabbitCluster, queue_name: str
) -> None:
    """Per-gateway topic permissions: gw-ld02 writing on gw-ld01's event topic is refused (the
    MQTT plugin closes its connection; no PUBACK) and the cloud gets nothing of it."""
    t = transport(rabbit_cluster, queue_name)
    async with consuming(t, t.ack) as got:
        gw = gateway_client(rabbit_cluster, rabbit_cluster.nodes[0], "gw-ld02")
        try:
            await until(gw.is_connected)
            info = gw.publish(topics.event("gw-ld01"), b'{"forged": true}', qos=1)
            await until(lambda: not gw.is_connected())
            assert not info.is_published()
        finally:
            close(gw)
        # a round trip through the same queue: what the cloud got by then is all it gets
        own = gateway_client(rabbit_cluster, rabbit_cluster.nodes[0], "gw-ld01")
        try:
            done = own.publish(topics.status("gw-ld01"), b"{}", qos=1)
            await asyncio.to_thread(done.wait_for_publish, 10)
        finally:
            close(own)
        await until(lambda: any(i.topic == "sc/v1/gw-ld01/status" for i in got))
    assert [i.topic for i in got] == ["sc/v1/gw-ld01/status"]
