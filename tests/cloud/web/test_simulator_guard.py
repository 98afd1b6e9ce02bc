"""The demo's simulator routes (cloud/web/simulator.py) are guarded (issue 15, point 10): a
production cloud refuses to start with the setting; a cloud without it serves no simulator even
when one is given; with it, supervisors and admins only, every injection audited, a malformed
one refused before it reaches the simulator. (The simulator itself, on the demo's gateways, is
tested in the browser: tests/e2e/test_sim_panel.py.)"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from cloud.parts import open_cloud
from cloud.settings import CloudSettings
from cloud.simulation import Injected, Injection, SimAction, SimGateway, SimPanel
from cloud.web.app import create_app
from tests.cloud.conftest import PASSWORDS, cloud_settings
from tests.servers import Mosquitto


class RecordingSimulator:
    """Stands in for the demo's simulator (sim/panel.py): records what reached it."""

    def __init__(self) -> None:
        self.injected: list[Injection] = []

    def panel(self) -> SimPanel:
        return SimPanel(
            gateways=[SimGateway(gateway="gw-ld01", building="1栋", link_up=True)], devices=[]
        )

    async def inject(self, injection: Injection) -> Injected:
        self.injected.append(injection)
        return Injected(action=injection.action, zh="已执行", en="done")


def test_a_production_cloud_refuses_to_start_with_the_simulator() -> None:
    with pytest.raises(ValidationError, match="SC_CLOUD_SIMULATOR is for the demo"):
        CloudSettings(
            environment="production",
            session_secret=SecretStr("a-real-secret"),
            mqtt_password=SecretStr("a-real-password"),
            simulator=True,
        )


@pytest.fixture
def simulator() -> RecordingSimulator:
    return RecordingSimulator()


@contextlib.asynccontextmanager
async def app_client(
    settings: CloudSettings, simulator: RecordingSimulator
) -> AsyncIterator[httpx.AsyncClient]:
    async with open_cloud(settings) as cloud:
        cloud.simulator = simulator
        transport = httpx.ASGITransport(app=create_app(cloud))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def sign_in(client: httpx.AsyncClient, user: str) -> None:
    client.cookies.clear()
    resp = await client.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    assert resp.status_code == 200, resp.text


PRESS = {"action": "press_call", "gateway": "gw-ld01", "device": "call-0101"}


async def test_without_the_setting_no_simulator_is_served_even_when_one_is_given(
    tmp_path: Path, mosquitto: Mosquitto, simulator: RecordingSimulator
) -> None:
    settings = cloud_settings(tmp_path, mosquitto)
    assert settings.simulator is False  # the default
    async with app_client(settings, simulator) as client:
        await sign_in(client, "adm")
        listed = await client.get("/api/sim")
        assert listed.status_code == 404
        assert listed.json()["zh"] == "本系统未启用模拟器（仅演示环境提供）"
        assert (await client.post("/api/sim/inject", json=PRESS)).status_code == 404
        client.cookies.clear()
        assert (await client.post("/api/sim/inject", json=PRESS)).status_code == 401
    assert simulator.injected == []


async def test_with_the_setting_supervisors_and_admins_inject_and_each_is_audited(
    tmp_path: Path, mosquitto: Mosquitto, simulator: RecordingSimulator
) -> None:
    settings = cloud_settings(tmp_path, mosquitto, simulator=True)
    async with app_client(settings, simulator) as client:
        for user in ("op", "inst"):
            await sign_in(client, user)
            assert (await client.get("/api/sim")).status_code == 403
            assert (await client.post("/api/sim/inject", json=PRESS)).status_code == 403
        assert simulator.injected == []

        await sign_in(client, "sup")
        assert (await client.get("/api/sim")).json()["gateways"][0]["gateway"] == "gw-ld01"
        done = await client.post("/api/sim/inject", json=PRESS)
        assert done.status_code == 200 and done.json()["zh"] == "已执行"
        methane = {"action": "methane", "gateway": "gw-ld01", "device": "gas-0101", "value": 30}
        await sign_in(client, "adm")
        assert (await client.post("/api/sim/inject", json=methane)).status_code == 200
        for bad in (
            {"action": "methane", "gateway": "gw-ld01", "device": "gas-0101"},  # no value
            {"action": "press_call", "gateway": "gw-ld01"},  # no device
            {"action": "cut_link"},  # no gateway
            {**methane, "value": 101},
            {"action": "open_the_door"},
        ):
            refused = await client.post("/api/sim/inject", json=bad)
            assert refused.status_code == 422, bad
        assert [i.action for i in simulator.injected] == [SimAction.PRESS_CALL, SimAction.METHANE]

        audit = (await client.get("/api/audit", params={"action": "sim_inject"})).json()
        assert sorted((a["actor"], a["detail"]) for a in audit) == [
            ("adm", "methane gw-ld01/gas-0101 30 %LEL"),
            ("sup", "press_call gw-ld01/call-0101"),
        ]
