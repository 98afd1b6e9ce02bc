"""The broker's ACL, as the cloud writes it: a gateway publishes only under its own subtree
and reads only its own commands; the cloud rejects a payload that names another gateway."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from cloud.access.credentials import IssuedCredential
from contract.models import Reply, encode
from tests.cloud.conftest import RunningCloud, eventually, rejections_kept
from tests.security.helpers import Session, can_connect, open_session
from tests.servers import Mosquitto


def event(gateway: str, device: str) -> bytes:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "gateway": gateway,
            "device": device,
            "boot": "boot1",
            "seq": 1,
            "ts": datetime.now(UTC).isoformat(),
            "kind": "smoke",
            "type": "alarm",
        }
    ).encode()


async def issued(cloud: RunningCloud, broker: Mosquitto, gateway: str) -> IssuedCredential:
    credential = await cloud.cloud.credentials.issue(gateway, "inst")
    await eventually(lambda: can_connect(broker.port, gateway, credential.password))
    return credential


@pytest.fixture
async def gw1(managed: RunningCloud, broker: Mosquitto) -> AsyncIterator[Session]:
    credential = await issued(managed, broker, "gw-ld01")
    session = await open_session(broker.port, "gw-ld01", credential.password)
    yield session
    session.close()


@pytest.fixture
async def listener(broker: Mosquitto) -> AsyncIterator[Session]:
    """Another client on the cloud's account, reading everything under sc/v1/."""
    session = await open_session(broker.port, "cloud", broker.users["cloud"])
    assert session.subscribe("sc/v1/#")[0].value == 1
    yield session
    session.close()


async def test_a_gateway_cannot_publish_into_another_gateways_subtree(
    managed: RunningCloud, gw1: Session, listener: Session
) -> None:
    # Mosquitto acknowledges a denied publish and drops it; the marker published after it on
    # the same connection arrives, so had the spoof been passed on it would have come first.
    # (the marker is a well-formed reply: the cloud reads replies too)
    marker = encode(Reply(id=str(uuid.uuid4()), gateway="gw-ld01", ok=True, detail="marker"))
    await asyncio.to_thread(gw1.publish, "sc/v1/gw-ld02/event", event("gw-ld02", "smoke-0201"))
    await asyncio.to_thread(gw1.publish, "sc/v1/gw-ld01/reply", marker)
    topic, payload = await asyncio.to_thread(listener.next_message)
    assert (topic, payload) == ("sc/v1/gw-ld01/reply", marker)
    await eventually(lambda: managed.cloud.ingest.counts["replies"] == 1)
    assert listener.messages.empty()
    assert not gw1.gone.is_set()  # refused silently, not disconnected
    # and the cloud neither raised an alarm for gw-ld02 nor saw anything to reject
    assert not await managed.cloud.book.open_keys()
    assert not managed.cloud.rejects.counts


async def test_a_payload_naming_another_gateway_is_rejected_and_recorded_by_the_cloud(
    managed: RunningCloud, gw1: Session
) -> None:
    # its own subtree, so the broker lets it through: the cloud must catch the lie
    await asyncio.to_thread(gw1.publish, "sc/v1/gw-ld01/event", event("gw-ld02", "smoke-0201"))
    await eventually(lambda: managed.cloud.rejects.counts["gateway_mismatch"] == 1)
    await eventually(lambda: rejections_kept(managed, 1))
    (kept,) = await managed.cloud.rejects.recent()
    assert kept.topic == "sc/v1/gw-ld01/event" and "gw-ld02" in kept.detail


async def test_a_gateway_cannot_subscribe_to_another_gateways_commands(
    managed: RunningCloud, broker: Mosquitto, gw1: Session
) -> None:
    # Mosquitto 2.0.11 grants these in the SUBACK (MQTT 3.1.1 and 5 alike) and checks read
    # access on every message it would deliver: what counts is that nothing arrives.
    for topic in ("sc/v1/gw-ld02/cmd/#", "sc/v1/+/cmd/#", "sc/v1/#", "#"):
        gw1.subscribe(topic)
    gw1.subscribe("sc/v1/gw-ld01/cmd/#")

    sender = await open_session(broker.port, "cloud", broker.users["cloud"])
    try:
        await asyncio.to_thread(sender.publish, "sc/v1/gw-ld02/cmd/ack", b"for gw-ld02")
        await asyncio.to_thread(sender.publish, "sc/v1/gw-ld02/event", b"gw-ld02's event")
        await asyncio.to_thread(sender.publish, "sc/v1/gw-ld01/cmd/ack", b"for gw-ld01")
        # an end marker on its own commands: everything sent before it has been delivered
        # (or withheld) once the marker has come, on every subscription it matches
        await asyncio.to_thread(sender.publish, "sc/v1/gw-ld01/cmd/end", b"end")
    finally:
        sender.close()
    seen: list[tuple[str, bytes]] = []
    while not seen or seen[-1][0] != "sc/v1/gw-ld01/cmd/end":
        # one publisher, one subscriber: the broker keeps their order, so whatever of the
        # earlier messages was to be delivered has come before the marker
        seen.append(await asyncio.to_thread(gw1.next_message))
    # its own command arrives (once per matching subscription), the others' never
    assert seen[0] == ("sc/v1/gw-ld01/cmd/ack", b"for gw-ld01")
    assert {topic for topic, _ in seen} == {"sc/v1/gw-ld01/cmd/ack", "sc/v1/gw-ld01/cmd/end"}
