"""A running cloud (ingest + web) against the session's real Mosquitto, and a real gateway
agent to drive it with."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from pydantic import SecretStr

from cloud.access.passwords import hash_password
from cloud.parts import Cloud, open_cloud
from cloud.serve import serve
from cloud.settings import CloudSettings
from edge.config import load_gateway_config
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.uplink_settings import BrokerParams
from tests.cloud.helpers import WebhookReceiver
from tests.servers import Mosquitto

PASSWORDS = {"op": "op-pass-1", "sup": "sup-pass-1", "inst": "inst-pass-1", "adm": "adm-pass-1"}
ROLES = {"op": "operator", "sup": "supervisor", "inst": "installer", "adm": "admin"}


@functools.cache
def password_hashes() -> dict[str, str]:
    """The test accounts' password hashes, made once per test run: a cloud given a hash
    stores it as is, instead of spending scrypt's deliberate slowness at every start."""
    return {name: hash_password(password) for name, password in PASSWORDS.items()}


def cloud_settings(tmp: Path, broker: Mosquitto, **overrides: Any) -> CloudSettings:
    """Settings for a cloud on `broker`, its files in `tmp`; the database is SQLite there
    unless `database=` names another (a test that runs a cloud passes `database_url`)."""
    values: dict[str, Any] = {
        "mqtt_port": broker.port,
        "mqtt_username": "cloud",
        "mqtt_password": SecretStr(broker.users["cloud"]),
        "mqtt_client_id": f"test-cloud-{uuid.uuid4().hex[:8]}",
        "database": tmp / "cloud.db",
        "telemetry_url": f"sqlite:///{tmp / 'telemetry.db'}",
        "web_port": 0,
        "telemetry_flush_s": 0.05,
        "session_secret": SecretStr("test-secret"),
        "bootstrap_users": {
            name: (ROLES[name], SecretStr(hashed)) for name, hashed in password_hashes().items()
        },
    }
    values.update(overrides)
    return CloudSettings(**values)


@dataclass
class RunningCloud:
    cloud: Cloud
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return self.cloud.web_url


@contextlib.asynccontextmanager
async def running_cloud(
    settings: CloudSettings, *, with_broker: bool = True
) -> AsyncIterator[RunningCloud]:
    """The cloud serving its web app; with `with_broker`, also consuming from the broker (so
    what a test publishes next reaches it)."""
    async with open_cloud(settings) as cloud:
        started = asyncio.Event()
        task = asyncio.create_task(serve(cloud, started=started))
        waits = [("web app", started)]
        if with_broker:
            waits.append(("ingest", cloud.ingest.connected))
        for what, ready in waits:
            waiter = asyncio.create_task(ready.wait())
            done, _ = await asyncio.wait({task, waiter}, timeout=30, return_when="FIRST_COMPLETED")
            if task in done:
                waiter.cancel()
                task.result()
            assert waiter in done, f"cloud did not start: {what} not ready"
        try:
            yield RunningCloud(cloud, task)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def forget_gateway_status(broker: Mosquitto) -> None:
    """Remove the retained `status` of the demo gateways from the shared broker: a gateway
    agent stopped by an earlier test leaves `offline` behind, which a new cloud would rightly
    raise as a gateway_offline alarm."""
    for gateway in ("gw-ld01", "gw-ld02"):
        pub = Publisher(broker, gateway)
        try:
            pub.publish(f"sc/v1/{gateway}/status", b"", qos=1, retain=True)
        finally:
            pub.close()


def end_session(broker: Mosquitto, client_id: str) -> None:
    """Drop a stopped cloud's persistent session from the shared broker, which would otherwise
    queue every later test's messages for it until the run ends."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.username_pw_set("cloud", broker.users["cloud"])
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.disconnect()
    finally:
        client.loop_stop()


@contextlib.asynccontextmanager
async def cloud_on(broker: Mosquitto, settings: CloudSettings) -> AsyncIterator[RunningCloud]:
    """The cloud of `settings` on the shared `broker`: the demo gateways' retained status is
    forgotten before it starts, and its session dropped from the broker after it stops."""
    forget_gateway_status(broker)
    async with running_cloud(settings) as running:
        yield running
    await asyncio.to_thread(end_session, broker, settings.mqtt_client_id)


@pytest.fixture
async def cloud(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> AsyncIterator[RunningCloud]:
    """The cloud, once on each database backend (tests/db_backends.py)."""
    async with cloud_on(mosquitto, cloud_settings(tmp_path, mosquitto, database=database_url)) as c:
        yield c


@contextlib.contextmanager
def gateway_agent(broker: Mosquitto, site: Path, outbox: Path) -> Iterator[GatewayAgent]:
    """A real agent of gateway gw-ld01 as `site` describes it, simulated below the drivers
    (its `hardware` trips and presses), connected to `broker` before it is handed over; no
    heartbeat within a test. Closed after."""
    agent = GatewayAgent(
        load_gateway_config(site, "gw-ld01"),
        broker=BrokerParams(port=broker.port, username="gw-ld01", password=broker.users["gw-ld01"]),
        outbox_path=outbox,
        simulate=True,
        options=AgentOptions(heartbeat_s=3600),
    )
    agent.start()
    try:
        assert agent.wait_connected(10)
        yield agent
    finally:
        agent.close()


async def signed_in(base_url: str, user: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url, timeout=10)
    resp = await client.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    resp.raise_for_status()
    return client


@pytest.fixture
async def operator(cloud: RunningCloud) -> AsyncIterator[httpx.AsyncClient]:
    client = await signed_in(cloud.url, "op")
    yield client
    await client.aclose()


class Publisher:
    """A gateway-side MQTT client (paho) logged in as one gateway."""

    def __init__(self, broker: Mosquitto, user: str) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{user}-{uuid.uuid4().hex[:6]}"
        )
        self.client.username_pw_set(user, broker.users[user])
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def publish(
        self,
        topic: str,
        payload: bytes | str | dict[str, Any],
        qos: int = 1,
        retain: bool = False,
    ) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=5)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()  # first: it wakes the network loop, so loop_stop is quick
        self.client.loop_stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def gw1(mosquitto: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(mosquitto, "gw-ld01")
    yield pub
    pub.close()


async def rejections_kept(cloud: RunningCloud, count: int) -> bool:
    """Whether the cloud keeps `count` rejected messages: a rejection is counted at once and
    written with the next commit, which a read on another connection (PostgreSQL's readers)
    does not see before it is done."""
    return len(await cloud.cloud.rejects.recent()) >= count


async def eventually(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.05) -> Any:
    """Poll an async or sync check until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
