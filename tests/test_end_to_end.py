"""The whole first path on real parts: a simulated button press (gpiozero's mock pins, below
the driver) → the gateway agent → Mosquitto → ingest → alarm book → the live stream; the
operator accepts → a command back through Mosquitto → the button's LED says help is coming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.config import load_gateway_config
from edge.drivers.call_button import CallButton, Indicator
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.uplink_settings import BrokerParams
from tests.cloud.conftest import RunningCloud, cloud, eventually, operator  # noqa: F401
from tests.cloud.web.test_duty_api import read_stream
from tests.conftest import DEMO_SITE
from tests.servers import Mosquitto


def simulated_gw_ld01(
    mosquitto: Mosquitto, outbox: Path, *, gas_warmup_s: float | None = None
) -> GatewayAgent:
    config = load_gateway_config(DEMO_SITE, "gw-ld01")
    if gas_warmup_s is not None:
        config = config.with_model("gas_mcp3008", warmup_s=gas_warmup_s)
    return GatewayAgent(
        config,
        broker=BrokerParams(
            host="127.0.0.1",
            port=mosquitto.port,
            username="gw-ld01",
            password=mosquitto.users["gw-ld01"],
        ),
        outbox_path=outbox,
        simulate=True,
        options=AgentOptions(heartbeat_s=3600, telemetry_period_s=0.3),
    )


@pytest.fixture
def gateway(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[GatewayAgent]:
    agent = simulated_gw_ld01(mosquitto, tmp_path / "outbox.sqlite3")
    agent.start()
    assert agent.wait_connected(10)
    yield agent
    agent.stop()
    agent.close()


async def test_a_button_press_reaches_the_duty_room_and_help_is_shown_at_the_button(
    cloud: RunningCloud, operator: httpx.AsyncClient, gateway: GatewayAgent
) -> None:
    hardware = gateway.hardware
    assert hardware is not None
    stream = asyncio.create_task(read_stream(operator, want=2))
    await eventually(lambda: cloud.cloud.hub.listeners == 1)

    await asyncio.to_thread(hardware.press_call, "call-0101", 0.2)

    (_, snapshot), (kind, message) = await stream
    assert snapshot == [] and kind == "alarm"
    alarm = message["alarm"]
    assert (alarm["level_name"], alarm["rule"]) == ("I", "call_for_help")
    assert (alarm["gateway"], alarm["device"]) == ("gw-ld01", "call-0101")
    assert (alarm["building"], alarm["home"]) == ("红星小区1栋", "1单元101")
    # the button already shows "call sent" (steady LED) before anyone answers
    driver = gateway.drivers["call-0101"]
    assert isinstance(driver, CallButton)
    assert driver.indicator is Indicator.CALL_SENT

    accepted = await operator.post(f"/api/alarms/{alarm['id']}/accept")
    assert accepted.status_code == 200
    await eventually(lambda: driver.indicator is Indicator.HELP_COMING)

    case = (await operator.get(f"/api/alarms/{alarm['id']}")).json()
    assert any("sent" in h["detail"] for h in case["history"] if h["action"] == "command")


async def test_a_long_press_is_a_test_not_an_emergency(
    cloud: RunningCloud, operator: httpx.AsyncClient, gateway: GatewayAgent
) -> None:
    hardware = gateway.hardware
    assert hardware is not None
    await asyncio.to_thread(hardware.press_call, "call-0101", 3.3)
    await eventually(lambda: cloud.cloud.ingest.counts["events"] >= 1)
    assert (await operator.get("/api/alarms")).json() == []


async def test_gas_readings_from_the_adc_become_a_graded_alarm_and_a_stored_series(
    cloud: RunningCloud, operator: httpx.AsyncClient, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    agent = simulated_gw_ld01(mosquitto, tmp_path / "gas-outbox.sqlite3", gas_warmup_s=0)
    agent.start()
    try:
        assert agent.wait_connected(10) and agent.hardware is not None
        agent.hardware.set_gas("gas-0101", 12.0)
        alarms = await eventually(
            lambda: _json_if(operator.get("/api/alarms"), lambda a: len(a) == 1), timeout=20
        )
    finally:
        agent.stop()
        agent.close()
    assert (alarms[0]["rule"], alarms[0]["level"]) == ("methane_high", 2)
    assert alarms[0]["value"] == pytest.approx(12.0, abs=0.5)
    # readings reach the store in batches off the alarm path: wait for the flush
    params = {"gateway": "gw-ld01", "device": "gas-0101", "field": "ch4_pct_lel"}
    points = await eventually(
        lambda: _json_if(operator.get("/api/telemetry", params=params), lambda p: len(p) > 0)
    )
    assert points[-1]["value"] == pytest.approx(12.0, abs=0.5)


async def _json_if(request: Awaitable[httpx.Response], predicate: Callable[[Any], bool]) -> Any:
    value = (await request).json()
    return value if predicate(value) else None
