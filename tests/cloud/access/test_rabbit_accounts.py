"""The cluster shape's gateway accounts, kept by the cloud through RabbitMQ's management API
against a real 3-node cluster: a credential issued in the cloud logs in to any node and may
publish only as its own gateway; a rotated one cuts the old session and refuses the old
password; a revoked one is gone from the cluster, its session cut; accounts the cloud did not
make are left alone; one node's API down changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.access.audit import Audit
from cloud.access.credentials import GatewayCredentials
from cloud.access.rabbit_accounts import RabbitAccounts
from cloud.db.database import Database
from contract import topics
from tests.cloud.transport.test_amqp_cluster import consuming, queue_name, transport, until
from tests.servers import RabbitCluster, RabbitNode, free_port

__all__ = ["queue_name"]  # the fixture, shared with the transport's cluster tests

pytestmark = [pytest.mark.timeout(180), pytest.mark.xdist_group("rabbitmq")]


@pytest.fixture
async def credentials(
    tmp_path: Path, rabbit_cluster: RabbitCluster
) -> AsyncIterator[GatewayCredentials]:
    """The cloud's credentials on SQLite, kept in the cluster through the management API; the
    first URL names a node that is not there (the next ones are tried)."""
    urls = [f"http://127.0.0.1:{free_port()}", *(n.management_url for n in rabbit_cluster.nodes)]
    accounts = RabbitAccounts(urls, "cloud", rabbit_cluster.users["cloud"], timeout_s=2)
    db = await Database.open(tmp_path / "cloud.db")
    try:
        yield GatewayCredentials(db, Audit(db), accounts)
    finally:
        await db.close()


class Login:
    """A gateway's MQTT session on one node, as paho sees it."""

    def __init__(self, node: RabbitNode, user: str, password: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
        self.client.username_pw_set(user, password)
        self.refused: str | None = None
        self.dropped = False
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: setattr(self, "dropped", True)
        self.client.connect("127.0.0.1", node.mqtt_port)
        self.client.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            self.refused = str(reason)

    async def outcome(self) -> str:
        """ "connected", or why the node refused it."""
        await until(lambda: self.client.is_connected() or self.refused is not None or self.dropped)
        return "connected" if self.client.is_connected() else (self.refused or "dropped")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_a_gateway_account_follows_its_credential_in_the_cluster(
    credentials: GatewayCredentials, rabbit_cluster: RabbitCluster, queue_name: str
) -> None:
    gw = f"gw-acct-{uuid.uuid4().hex[:6]}"
    node1, node2 = rabbit_cluster.nodes[0], rabbit_cluster.nodes[1]
    first = await credentials.issue(gw, "inst")

    # issued: logs in to any node and what it publishes as itself reaches the cloud's queue
    t = transport(rabbit_cluster, queue_name)
    async with consuming(t, t.ack) as got:
        login = Login(node2, gw, first.password)
        try:
            assert await login.outcome() == "connected"
            info = login.client.publish(topics.status(gw), b"{}", qos=1)
            await asyncio.to_thread(info.wait_for_publish, 10)
            await until(lambda: any(i.topic == f"sc/v1/{gw}/status" for i in got))
            # and not as another gateway: the node closes its connection
            login.client.publish(topics.event("gw-ld01"), b"{}", qos=1)
            await until(lambda: login.dropped)
        finally:
            login.close()
    assert [i.topic for i in got] == [f"sc/v1/{gw}/status"]

    # rotated: the session on the old password is cut, the old password refused, the new works
    old = Login(node1, gw, first.password)
    try:
        assert await old.outcome() == "connected"
        second = await credentials.issue(gw, "inst")
        await until(lambda: old.dropped)
    finally:
        old.close()
    stale = Login(node1, gw, first.password)
    fresh = Login(node1, gw, second.password)
    try:
        assert await stale.outcome() != "connected"
        assert await fresh.outcome() == "connected"
        # revoked: its session cut, no login any more, the account gone from the cluster
        await credentials.revoke(gw, "adm")
        await until(lambda: fresh.dropped)
    finally:
        stale.close()
        fresh.close()
    again = Login(node2, gw, second.password)
    try:
        assert await again.outcome() != "connected"
    finally:
        again.close()
    users = rabbit_cluster.ctl(rabbit_cluster.nodes[2], "list_users", "--silent")
    assert gw not in users
    assert "gw-ld01" in users  # made by hand (not tagged as ours): left alone


async def test_no_management_api_answering_is_reported_and_the_credential_stands(
    tmp_path: Path, rabbit_cluster: RabbitCluster
) -> None:
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    db = await Database.open(tmp_path / "cloud.db")
    try:
        creds = GatewayCredentials(db, Audit(db), RabbitAccounts(dead, "cloud", "x", timeout_s=1))
        with pytest.raises(Exception, match="no RabbitMQ management API answered"):
            await creds.issue("gw-acct-down", "inst")
        assert (await creds.info("gw-acct-down")) is not None  # recorded all the same
    finally:
        await db.close()
