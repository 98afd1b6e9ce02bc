"""Emergency drills (应急演练): a supervisor plans a drill of some devices; an event that carries
the drill's number is the drill's (recorded with mode `drill`, on the duty room's board behind
every real alarm, told to nobody but the duty room, closed when the drill ends), while every
other alarm during the drill, from the same device too, is real, and so is an event whose drill
number is wrong."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.models import Event, encode, utc_now
from edge.config import load_gateway_config
from gateway.agent import AgentOptions, GatewayAgent
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


@pytest.fixture
async def drill_cloud(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[RunningCloud]:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(tmp_path, mosquitto)
    async with running_cloud(settings) as running:
        yield running
    await asyncio.to_thread(end_session, mosquitto, settings.mqtt_client_id)


def marked(e: Event, drill: int | None) -> bytes:
    return encode(e.model_copy(update={"drill": drill}))


async def _alarms(cloud: RunningCloud) -> list[dict[str, Any]]:
    rows = await cloud.cloud.db.fetch_all(
        "SELECT id, device, rule, mode, window_id, state, outcome FROM alarms ORDER BY id"
    )
    return [dict(zip(r.keys(), r, strict=True)) for r in rows]


async def test_only_the_drills_own_incidents_are_drills_and_a_real_alarm_stays_real(
    drill_cloud: RunningCloud, gw1: Publisher
) -> None:
    supervisor = await signed_in(drill_cloud.url, "sup")
    operator = await signed_in(drill_cloud.url, "op")
    admin = await signed_in(drill_cloud.url, "adm")
    try:
        now = datetime.now(UTC)
        plan = {
            "gateway": "gw-ld01",
            "devices": ["smoke-0102"],
            "starts_at": (now - timedelta(seconds=5)).isoformat(),
            "ends_at": (now + timedelta(minutes=30)).isoformat(),
            "note": "2栋烟感演练",
        }
        assert (await operator.post("/api/drills", json=plan)).status_code == 403
        planned = await supervisor.post("/api/drills", json=plan)
        assert planned.status_code == 201, planned.text
        drill = planned.json()
        assert drill["mode"] == "drill"
        running = (await operator.get("/api/windows/now")).json()
        assert [(w["id"], w["mode"]) for w in running] == [(drill["id"], "drill")]

        # the drill's incident: recorded as the drill's, on the board, only the duty room told
        gw1.publish("sc/v1/gw-ld01/event", marked(event("smoke-0102", ts=utc_now()), drill["id"]))
        await eventually(lambda: _count(drill_cloud, 1))
        # during the drill, from the same device, without the mark: a real fire
        gw1.publish("sc/v1/gw-ld01/event", marked(event("smoke-0102", ts=utc_now()), None))
        # a mark that names no running drill, and one for a device the drill does not cover
        gw1.publish("sc/v1/gw-ld01/event", marked(event("smoke-0102", ts=utc_now()), 999))
        press = event("call-0101", kind="call", type_="press", ts=utc_now())
        gw1.publish("sc/v1/gw-ld01/event", marked(press, drill["id"]))
        alarms = await eventually(lambda: _count(drill_cloud, 3))
        modes = {(a["device"], a["mode"], a["window_id"]) for a in alarms}
        assert modes == {
            ("smoke-0102", "drill", drill["id"]),
            ("smoke-0102", "live", None),
            ("call-0101", "live", None),
        }
        board = (await operator.get("/api/alarms")).json()
        # the real ones first (the real fire ahead of the drill's, though the drill's came first)
        assert [(a["device"], a["mode"]) for a in board] == [
            ("smoke-0102", "live"),
            ("call-0101", "live"),
            ("smoke-0102", "drill"),
        ]
        repeats = board[0]["repeats"]
        assert repeats == 1  # the wrongly marked one is the real fire's repeat
        drill_alarm = next(a for a in alarms if a["mode"] == "drill")
        told = await drill_cloud.cloud.db.fetch_all(
            "SELECT target, channel FROM notifications WHERE alarm_id = ?", (drill_alarm["id"],)
        )
        assert [(r["target"], r["channel"]) for r in told] == [("duty_room", "push")]
        counts = drill_cloud.cloud.ingest.counts
        assert (counts["drill_events"], counts["drill_marks_refused"]) == (1, 2)

        # the drill ends: its alarm is closed, the real ones stay open
        ended = await supervisor.post(f"/api/maintenance/{drill['id']}/end")
        assert ended.status_code == 200
        after = {a["id"]: a for a in await _alarms(drill_cloud)}
        assert after[drill_alarm["id"]]["state"] == "resolved"
        left = (await operator.get("/api/alarms")).json()
        assert sorted((a["device"], a["mode"]) for a in left) == [
            ("call-0101", "live"),
            ("smoke-0102", "live"),
        ]
        audit = (await admin.get("/api/audit", params={"limit": 50})).json()
        assert {"drill_started", "drill_ended"} <= {e["action"] for e in audit}
    finally:
        for client in (supervisor, operator, admin):
            await client.aclose()


async def _count(cloud: RunningCloud, n: int) -> list[dict[str, Any]] | None:
    alarms = await _alarms(cloud)
    return alarms if len(alarms) >= n else None


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[GatewayAgent]:
    gateway = GatewayAgent(
        load_gateway_config(DEMO_SITE, "gw-ld01"),
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


async def test_a_drills_incident_goes_through_the_real_gateway_and_a_real_fire_stays_real(
    drill_cloud: RunningCloud, agent: GatewayAgent
) -> None:
    assert agent.hardware is not None
    supervisor = await signed_in(drill_cloud.url, "sup")
    operator = await signed_in(drill_cloud.url, "op")
    try:
        now = datetime.now(UTC)
        plan = {
            "gateway": "gw-ld01",
            "devices": ["smoke-0102", "gas-0101"],
            "starts_at": (now - timedelta(seconds=5)).isoformat(),
            "ends_at": (now + timedelta(minutes=30)).isoformat(),
        }
        drill = (await supervisor.post("/api/drills", json=plan)).json()
        url = f"/api/drills/{drill['id']}/incidents"
        # a device the drill does not cover; an operator may not inject
        refused = await supervisor.post(url, json={"device": "call-0101", "type": "press"})
        assert refused.status_code == 409 and "call-0101" in refused.text
        smoke = {"device": "smoke-0102", "type": "alarm"}
        assert (await operator.post(url, json=smoke)).status_code == 403

        sent = await supervisor.post(url, json=smoke)
        assert sent.status_code == 202, sent.text
        leak = {"device": "gas-0101", "type": "alarm", "values": {"ch4_pct_lel": 30.0}}
        assert (await supervisor.post(url, json=leak)).status_code == 202
        alarms = await eventually(lambda: _count(drill_cloud, 2))
        assert {(a["device"], a["mode"], a["window_id"]) for a in alarms} >= {
            ("smoke-0102", "drill", drill["id"])
        }
        assert all(a["mode"] == "drill" for a in alarms)
        board = (await operator.get("/api/alarms")).json()
        assert {a["mode"] for a in board} == {"drill"}  # nothing real yet
        # the building's sounder stays quiet for a drill
        assert agent.local_alarm is not None and not agent.local_alarm.lit

        # a real fire at the drill's device, during the drill: on the board, as real
        agent.hardware.trip_smoke("smoke-0102")
        board = await eventually(lambda: _real_first(operator))
        real = board[0]
        assert (real["device"], real["mode"], real["level"]) == ("smoke-0102", "live", 1)
        assert sorted((a["device"], a["mode"]) for a in board[1:]) == [
            ("gas-0101", "drill"),
            ("smoke-0102", "drill"),
        ]
        assert drill_cloud.cloud.ingest.counts["drill_events"] == 2
    finally:
        for client in (supervisor, operator):
            await client.aclose()


async def _real_first(client: Any) -> list[dict[str, Any]] | None:
    board: list[dict[str, Any]] = (await client.get("/api/alarms")).json()
    return board if board and board[0]["mode"] == "live" else None
