"""The demo's embedded broker (amqtt): its table of subscriptions can grow while a broadcast
walks it — a gateway subscribing as the first messages go out — without ending the walk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt

from sim.broker import EmbeddedBroker


async def test_a_subscription_added_during_a_broadcast_does_not_end_it(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path, ["gw-01", "gw-02"])
    await broker.start()
    try:
        assert broker._broker is not None
        table = broker._broker._subscriptions
        table["sc/v1/+/event"] = []
        walked = []
        for topic_filter, _ in table.items():  # as amqtt's broadcast walks it, across awaits
            walked.append(topic_filter)
            table.setdefault("sc/v1/gw-02/cmd/#", [])  # a gateway subscribes meanwhile
        for _ in table:  # as its retained messages are sent on a reconnect
            table.setdefault("sc/v1/gw-01/cmd/#", [])
        assert walked == ["sc/v1/+/event"]
        assert set(table) == {"sc/v1/+/event", "sc/v1/gw-01/cmd/#", "sc/v1/gw-02/cmd/#"}

        # and the broker still delivers to every subscriber, each on its own filter
        cloud_pw, gw_pw = broker.passwords["cloud"], broker.passwords["gw-01"]
        async with (
            aiomqtt.Client("127.0.0.1", broker.port, username="cloud", password=cloud_pw) as cloud,
            aiomqtt.Client("127.0.0.1", broker.port, username="gw-01", password=gw_pw) as gw,
        ):
            await cloud.subscribe("sc/v1/#", qos=1)
            await gw.subscribe("sc/v1/gw-01/cmd/#", qos=1)
            await gw.publish("sc/v1/gw-01/event", b"{}", qos=1)
            await cloud.publish("sc/v1/gw-01/cmd/ack", b"{}", qos=1)
            heard = await asyncio.wait_for(anext(cloud.messages), 10)
            assert str(heard.topic) == "sc/v1/gw-01/event"
            told = await asyncio.wait_for(anext(gw.messages), 10)
            assert str(told.topic) == "sc/v1/gw-01/cmd/ack"
    finally:
        await broker.stop()
