"""A message is acknowledged to the broker only on the session it came on.

Ingest stores a batch while the transport goes on receiving; if the broker session ends in
between, the batch's PUBACKs must not go out on the next session (its packet ids are the
broker's numbering for another connection). The broker delivers such a message again on the
new session, where it is acknowledged once stored.
"""

from __future__ import annotations

import asyncio
import uuid

import paho.mqtt.client as mqtt

from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import BrokerLink
from cloud.transport.mqtt import BrokerAddress, MqttTransport, Received
from contract import topics
from tests.cloud.conftest import Publisher
from tests.servers import Mosquitto


def _take_over(broker: Mosquitto, client_id: str) -> None:
    """Connect with the transport's client id (the broker ends the transport's connection)
    and leave again without acknowledging anything, so the session keeps what it held."""
    intruder = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
    )
    intruder.manual_ack_set(True)
    intruder.username_pw_set("cloud", broker.users["cloud"])
    intruder.connect("127.0.0.1", broker.port)
    intruder.loop_start()
    try:
        intruder.publish("sc/v1/nobody/noop", b"", qos=1).wait_for_publish(5)  # a round trip
    finally:
        intruder.disconnect()
        intruder.loop_stop()


async def test_a_message_of_an_ended_session_is_delivered_again_not_acknowledged(
    mosquitto: Mosquitto,
) -> None:
    client_id = f"test-acks-{uuid.uuid4().hex[:6]}"
    transport = MqttTransport(
        BrokerAddress(
            host="127.0.0.1",
            port=mosquitto.port,
            username="cloud",
            password=mosquitto.users["cloud"],
            client_id=client_id,
        ),
        link=BrokerLink(),
        drops=DropWatch(),
        retry_min_s=0.1,
        retry_max_s=0.5,
    )
    taken: list[Received] = []
    arrived, again_arrived = asyncio.Event(), asyncio.Event()

    async def consume(batch: list[Received]) -> None:
        for item in batch:
            if item.topic == topics.event("gw-ld01"):
                taken.append(item)
                (again_arrived if arrived.is_set() else arrived).set()

    running = asyncio.create_task(transport.run(consume))
    publisher = Publisher(mosquitto, "gw-ld01")
    try:
        async with asyncio.timeout(10):
            await transport.link.connected.wait()
        publisher.publish(topics.event("gw-ld01"), b"one")
        async with asyncio.timeout(10):
            await arrived.wait()
        first = taken[0]  # taken, not yet stored: not acknowledged

        await asyncio.to_thread(_take_over, mosquitto, client_id)
        async with asyncio.timeout(10):  # the transport is back, on a new session
            await again_arrived.wait()
        again = taken[1]
        assert again.payload == b"one", "the broker delivers the unacknowledged message again"

        transport.ack(first)  # the old batch is stored only now
        assert not first.acked, "a PUBACK of the old session must not go out on the new one"
        transport.ack(again)
        assert again.acked
    finally:
        publisher.close()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
