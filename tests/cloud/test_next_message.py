"""Waiting a short while for the broker's next message never loses one.

Ingest waits for the next message at most a while when it has a backlog of its own to go
through. aiomqtt's iterator loses the message its inner `queue.get()` has just taken when such a
wait times out at the wrong moment (a valid alarm never stored, seen under the fuzzer's flood).
Here a real broker delivers thousands of numbered messages, in bursts and pauses, to a consumer
whose waits keep timing out; every message must arrive, once, in order.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid

import aiomqtt

from cloud.ingest import _NextMessage
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
    client = aiomqtt.Client(
        "127.0.0.1",
        mosquitto.port,
        username="cloud",
        password=mosquitto.users["cloud"],
        identifier=f"test-next-{uuid.uuid4().hex[:6]}",
    )
    got: list[int] = []
    timeouts = 0
    async with client:
        await client.subscribe(topics.event("gw-ld01"), qos=1)
        sender = threading.Thread(target=_publish_in_bursts, args=(mosquitto, COUNT, 11))
        sender.start()
        messages = _NextMessage(client)
        queue = client._queue
        deadline = time.monotonic() + 60
        try:
            while len(got) < COUNT and time.monotonic() < deadline:
                arrived = await messages.first(random.choice((0.0, 0.0001, 0.0005, 0.001)))
                if not arrived:
                    timeouts += 1
                while not queue.empty():
                    arrived.append(queue.get_nowait())
                got.extend(int(bytes(m.payload)) for m in arrived)  # type: ignore[arg-type]
                await asyncio.sleep(0)
            # what came after the last one would show as a doubled message
            arrived = await messages.first(0.2)
        finally:
            messages.close()
        await asyncio.to_thread(sender.join)
    assert timeouts > 100, "the waits must have timed out often for this to test anything"
    missing = sorted(set(range(COUNT)) - set(got))
    assert not missing, f"{len(missing)} of {COUNT} messages lost, e.g. {missing[:5]}"
    assert arrived == []
    bad = next((i for i, n in enumerate(got) if n != i), None)
    assert got == list(range(COUNT)), (bad, got[bad - 3 : bad + 5] if bad else None)
