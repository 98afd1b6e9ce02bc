"""A device bound on the site page starts working on its gateway: the cloud pushes the
gateway's new entry as `cmd/config`, the real gateway agent (simulated hardware below the
drivers) validates and applies it and answers, and the new device's alarm reaches the duty
room. A gateway that refuses keeps its running config and the refusal is visible."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from contract.models import Reply, encode
from edge.config import load_gateway_config
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.uplink_settings import BrokerParams, UplinkOptions
from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    eventually,
    rejections_kept,
    running_cloud,
    signed_in,
)
from tests.gateway.helpers import DEMO_SITE
from tests.servers import Mosquitto

NEW_SMOKE = {
    "id": "smoke-0201",
    "model": "smoke_dry_contact",
    "home": "h-01-0201",
    "pins": {"alarm": 19, "fault": 20},
}
FAST = AgentOptions(
    heartbeat_s=3600,
    telemetry_period_s=0.5,
    uplink=UplinkOptions(backoff_min_s=0.05, backoff_max_s=0.5, drain_s=0.5),
)


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[GatewayAgent]:
    agent = GatewayAgent(
        load_gateway_config(DEMO_SITE, "gw-ld01"),
        broker=BrokerParams(
            port=mosquitto.port, username="gw-ld01", password=mosquitto.users["gw-ld01"]
        ),
        outbox_path=tmp_path / "gw-ld01.sqlite3",
        simulate=True,
        options=FAST,
    )
    agent.start()
    assert agent.wait_connected(10)
    yield agent
    agent.close()


@pytest.fixture
async def installer(cloud: RunningCloud) -> AsyncIterator[httpx.AsyncClient]:
    client = await signed_in(cloud.url, "inst")
    yield client
    await client.aclose()


async def _pushes(client: httpx.AsyncClient) -> dict[str, dict[str, object]]:
    resp = await client.get("/api/site/config-pushes")
    assert resp.status_code == 200, resp.text
    return {p["gateway"]: p for p in resp.json()}


async def test_a_device_bound_on_the_site_page_reaches_its_gateway_and_raises_alarms(
    cloud: RunningCloud,
    agent: GatewayAgent,
    installer: httpx.AsyncClient,
    operator: httpx.AsyncClient,
) -> None:
    assert "smoke-0201" not in agent.drivers
    resp = await installer.post("/api/site/gateways/gw-ld01/devices", json=NEW_SMOKE)
    assert resp.status_code == 201, resp.text
    version = resp.json()["version"]

    push = await eventually(lambda: _answered(installer, "gw-ld01"), timeout=15)
    assert push["site_version"] == version and push["sent"] is True
    assert push["applied"] is True, push["detail"]
    assert "smoke-0201" in agent.drivers  # the running gateway took it
    assert "gw-ld02" not in await _pushes(installer)  # an unchanged gateway is left alone

    # the new detector works end to end: tripped below its driver, paged in the duty room
    assert agent.hardware is not None  # the agent runs simulated
    agent.hardware.trip_smoke("smoke-0201")

    async def smoke_alarm() -> list[dict[str, object]]:
        alarms = (await operator.get("/api/alarms")).json()
        return [a for a in alarms if a["device"] == "smoke-0201"]

    (alarm,) = await eventually(smoke_alarm, timeout=15)
    assert (alarm["kind"], alarm["level"], alarm["home_id"]) == ("smoke", 1, "h-01-0201")
    audit = (await cloud_admin_audit(cloud)).get("config.reply", [])
    assert any("gw-ld01" in d and "applied" in d for d in audit)


async def test_a_push_the_broker_cannot_take_is_recorded_as_not_sent(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    broker = Mosquitto()
    broker.add_user("cloud")
    broker.start()
    try:
        async with running_cloud(
            cloud_settings(tmp_path, broker, database=database_url)
        ) as running:
            client = await signed_in(running.url, "inst")
            try:
                broker.stop()
                await eventually(lambda: not running.cloud.ingest.connected.is_set())
                resp = await client.post("/api/site/gateways/gw-ld01/devices", json=NEW_SMOKE)
                assert resp.status_code == 201, resp.text  # the registry change stands
                push = (await _pushes(client))["gw-ld01"]
                assert (push["sent"], push["applied"]) == (False, None)
            finally:
                await client.aclose()
            audit = await cloud_admin_audit(running)
    finally:
        broker.cleanup()
    assert any("NOT sent" in d for d in audit["config.push"])


async def _answered(client: httpx.AsyncClient, gateway: str) -> dict[str, object] | None:
    push = (await _pushes(client)).get(gateway)
    return push if push and push["applied"] is not None else None


async def cloud_admin_audit(cloud: RunningCloud) -> dict[str, list[str]]:
    admin = await signed_in(cloud.url, "adm")
    try:
        entries = (await admin.get("/api/audit", params={"limit": 200})).json()
    finally:
        await admin.aclose()
    found: dict[str, list[str]] = {}
    for entry in entries:
        found.setdefault(entry["action"], []).append(entry["detail"])
    return found


async def test_a_bad_reply_is_rejected_with_its_reason_and_kept(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient
) -> None:
    gw1.publish("sc/v1/gw-ld01/reply", b"{not json")
    lie = Reply(id="cfg-gw-ld02-v1", gateway="gw-ld02", ok=True, detail="")
    gw1.publish("sc/v1/gw-ld01/reply", encode(lie))
    counts = cloud.cloud.rejects.counts
    await eventually(lambda: counts["malformed_json"] == 1 and counts["gateway_mismatch"] == 1)
    await eventually(lambda: rejections_kept(cloud, 2))
    admin = await signed_in(cloud.url, "adm")  # raw payloads: admins only
    kept = (await admin.get("/api/rejected")).json()
    await admin.aclose()
    assert {k["topic"] for k in kept} == {"sc/v1/gw-ld01/reply"}
    assert cloud.cloud.ingest.counts["replies"] == 0
