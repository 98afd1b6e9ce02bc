"""Remote hush end to end on real parts: the duty room asks through the web API, the cloud
checks role, case and device, the command goes through Mosquitto to a real gateway agent,
the smoke alarm's hush output is driven (gpiozero's mock pins), and the device's answer comes
back onto the case. Refused in each case GB/T 45839-2025 forbids, done in the one it allows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.models import encode, utc_now
from edge.config import load_gateway_config
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.uplink_settings import BrokerParams
from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    end_session,
    eventually,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.cloud.helpers import event
from tests.conftest import DEMO_SITE
from tests.servers import Mosquitto

SMOKE = "smoke-0102"  # gw-ld01's smoke alarm, its hush input wired to GPIO12 here


@pytest.fixture
def hush_site(tmp_path: Path) -> Path:
    """The demo site with gw-ld01's smoke alarm's hush input wired (gw-ld02's is not)."""
    text = DEMO_SITE.read_text(encoding="utf-8")
    wired = text.replace(
        f"{{id: {SMOKE}, model: smoke_dry_contact, home: h-01-0102, pins: {{alarm: 5, fault: 6}}}}",
        f"{{id: {SMOKE}, model: smoke_dry_contact, home: h-01-0102, "
        "pins: {alarm: 5, fault: 6, hush: 12}}",
    )
    assert wired != text
    path = tmp_path / "site.yaml"
    path.write_text(wired, encoding="utf-8")
    return path


@pytest.fixture
async def hush_cloud(
    tmp_path: Path, mosquitto: Mosquitto, hush_site: Path
) -> AsyncIterator[RunningCloud]:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(tmp_path, mosquitto, site_file=hush_site)
    async with running_cloud(settings) as running:
        yield running
    await asyncio.to_thread(end_session, mosquitto, settings.mqtt_client_id)


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Mosquitto, hush_site: Path) -> Iterator[GatewayAgent]:
    gateway = GatewayAgent(
        load_gateway_config(hush_site, "gw-ld01"),
        broker=BrokerParams(
            port=mosquitto.port, username="gw-ld01", password=mosquitto.users["gw-ld01"]
        ),
        outbox_path=tmp_path / "outbox.sqlite3",
        simulate=True,
        options=AgentOptions(heartbeat_s=3600),
    )
    gateway.start()
    assert gateway.wait_connected(10)
    yield gateway
    gateway.close()


async def _open_alarm(client: httpx.AsyncClient, device: str) -> dict[str, Any]:
    def found(alarms: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((a for a in alarms if a["device"] == device), None)

    return await eventually(lambda: _json(client.get("/api/alarms"), found))


async def _json(request: Any, pick: Any) -> Any:
    return pick((await request).json())


async def _log(client: httpx.AsyncClient, alarm_id: int, action: str, n: int) -> list[str]:
    """The details of the case's log lines of `action`, once there are `n` of them."""

    async def lines() -> list[str] | None:
        case = (await client.get(f"/api/alarms/{alarm_id}")).json()
        found = [h["detail"] for h in case["history"] if h["action"] == action]
        return found if len(found) >= n else None

    return await eventually(lines)


async def test_hush_is_refused_where_forbidden_and_silences_the_alarm_where_allowed(
    hush_cloud: RunningCloud, agent: GatewayAgent, mosquitto: Mosquitto
) -> None:
    hardware = agent.hardware
    assert hardware is not None
    operator = await signed_in(hush_cloud.url, "op")
    installer = await signed_in(hush_cloud.url, "inst")
    admin = await signed_in(hush_cloud.url, "adm")
    try:
        hardware.trip_smoke(SMOKE)
        alarm = await _open_alarm(operator, SMOKE)
        url = f"/api/alarms/{alarm['id']}/hush"

        # an installer is not among the roles that may
        assert (await installer.post(url, json={"duration_s": 60})).status_code == 403
        # nobody has accepted the case yet
        refused = await operator.post(url, json={"duration_s": 60})
        assert refused.status_code == 409 and "受理" in refused.text and "accept" in refused.text
        await operator.post(f"/api/alarms/{alarm['id']}/accept")
        # never longer than the limit, nor absurdly short
        for duration in (601, 5):
            assert (await operator.post(url, json={"duration_s": duration})).status_code == 422
        assert hardware.level(SMOKE, "hush") is False

        # accepted, open, a device that can: sent, and the device says it is silent
        answer = await operator.post(url, json={"duration_s": 60})
        assert answer.status_code == 202, answer.text
        (result,) = await _log(operator, alarm["id"], "hush.result", 1)
        assert result.startswith("设备已消音 / hushed") and "60 s" in result
        assert hardware.level(SMOKE, "hush") is True
        # asked again while hushed: the device refuses, and says so on the case
        assert (await operator.post(url, json={"duration_s": 60})).status_code == 202
        second = (await _log(operator, alarm["id"], "hush.result", 2))[1]
        assert second.startswith("设备未消音 / NOT hushed") and "already hushed" in second
        requests = await _log(operator, alarm["id"], "hush", 2)
        assert requests == ["远程消音 60 秒 / remote hush 60 s"] * 2

        # a smoke alarm whose hush input is not wired (gw-ld02's): refused, in both languages
        gw2 = Publisher(mosquitto, "gw-ld02")
        try:
            gw2.publish(
                "sc/v1/gw-ld02/event",
                encode(event("smoke-0301", gateway="gw-ld02", ts=utc_now())),
            )
        finally:
            gw2.close()
        other = await _open_alarm(operator, "smoke-0301")
        await operator.post(f"/api/alarms/{other['id']}/accept")
        unwired = await operator.post(f"/api/alarms/{other['id']}/hush", json={})
        assert unwired.status_code == 409
        assert "消音输入未接" in unwired.text and "cannot be hushed" in unwired.text

        # once resolved there is nothing left to hush
        await operator.post(
            f"/api/alarms/{alarm['id']}/resolve", json={"outcome": "handled", "note": "已处置"}
        )
        closed = await operator.post(url, json={"duration_s": 60})
        assert closed.status_code == 409 and "办结" in closed.text

        audit = (await admin.get("/api/audit", params={"limit": 200})).json()
        hushes = [e for e in audit if e["action"] in ("hush", "hush.reply")]
        assert [e["action"] for e in hushes].count("hush") == 2
        assert [e["action"] for e in hushes].count("hush.reply") == 2
        assert {e["actor"] for e in hushes if e["action"] == "hush"} == {"op"}
    finally:
        for client in (operator, installer, admin):
            await client.aclose()
