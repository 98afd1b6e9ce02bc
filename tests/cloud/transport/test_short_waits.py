"""Waiting a short while for the broker's next message never loses one.

Ingest waits for the next message at most a while when it has a backlog of its own to go
through. aiomqtt's iterator loses the message its inner `queue.get()` has just taken when such a
wait times out at the wrong moment (a valid alarm never stored, seen under the fuzzer's flood).
Here a real broker delivers thousands of numbered messages, in bursts and pauses, to the cloud's
transport whose waits keep timing out; every message must arrive, once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid

from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import BrokerLink
from cloud.transport.mqtt import BrokerAddress, MqttTransport, Received
from contract import topics
from tests.cloud.conftest import Publisher
from tests.servers import Mosquitto

COUNT = 4_000


def _publish_in_bursts(broker: Mosquitto, count: int, seed: int) -> None:
    rng = random.Random(seed)
    publisher = Publisher(broker, "gw-ld01")
    try:
        infos = []
        for n in range(count):
            infos.append(publisher.client.publish(topics.event("gw-ld01"), str(n), qos=1))
            if rng.random() < 0.2:  # a pause about as long as the consumer's waits
                time.sleep(rng.uniform(0.0, 0.002))
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        publisher.close()


async def test_short_waits_that_time_out_lose_no_message(mosquitto: Mosquitto) -> None:
    transport = MqttTransport(
        BrokerAddress(
            host="127.0.0.1",
            port=mosquitto.port,
            username="cloud",
            password=mosquitto.users["cloud"],
            client_id=f"test-waits-{uuid.uuid4().hex[:6]}",
        ),
        link=BrokerLink(),
        drops=DropWatch(),
    )
    got: list[int] = []
    empty_batches = 0
    done = asyncio.Event()
    rng = random.Random(3)

    async def consume(batch: list[Received]) -> None:
        nonlocal empty_batches
        empty_batches += not batch
        for item in batch:
            if item.topic == topics.event("gw-ld01"):
                got.append(int(item.payload))
            transport.ack(item)
        if len(got) >= COUNT:
            done.set()

    running = asyncio.create_task(
        transport.run(consume, wait_s=lambda: rng.choice((0.0, 0.0001, 0.0005, 0.001)))
    )
    try:
        async with asyncio.timeout(10):
            await transport.link.connected.wait()
        sender = threading.Thread(target=_publish_in_bursts, args=(mosquitto, COUNT, 11))
        sender.start()
        try:
            # all of them, or the missing ones counted below once the sender is done
            await asyncio.wait_for(asyncio.to_thread(sender.join), 60)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 5)
            await asyncio.sleep(0.2)  # what came after the last one would be a doubled message
        finally:
            await asyncio.to_thread(sender.join)
    finally:
        running.cancel()
    assert empty_batches > 100, "the waits must have timed out often for this to test anything"
    missing = sorted(set(range(COUNT)) - set(got))
    assert not missing, f"{len(missing)} of {COUNT} messages lost, e.g. {missing[:5]}"
    assert got == list(range(COUNT)), "doubled or out of order"
