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

        # what a new alarm sets off beyond the board (one-key voice offers the home a call)
        raised: list[tuple[str, str]] = []
        drill_cloud.cloud.announcer.on_raised.append(
            lambda alarm: raised.append((alarm.device, alarm.mode.value))
        )
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
        await eventually(lambda: _at_least(raised, 2))
        assert sorted(raised) == [("call-0101", "live"), ("smoke-0102", "live")]
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

        # the shift handover hands over the real cases, not the drill's
        made = await operator.post("/api/handovers", json={"note": "演练进行中"})
        assert made.status_code == 201, made.text
        handed = {c["id"] for c in made.json()["summary"]["open_cases"]}
        assert handed == {a["id"] for a in alarms if a["mode"] == "live"}

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


async def _at_least(items: list[Any], n: int) -> list[Any] | None:
    return items if len(items) >= n else None


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


_TIMES = "received_at, shown_at, accepted_at, dispatched_at, resolved_at, resolved_by, accept_by"


async def _drill_rows(cloud: RunningCloud, drill_id: int) -> dict[int, dict[str, Any]]:
    rows = await cloud.cloud.db.fetch_all(
        f"SELECT id, device, rule, level, accepted_by, {_TIMES} FROM alarms WHERE window_id = ?",
        (drill_id,),
    )
    return {r["id"]: dict(zip(r.keys(), r, strict=True)) for r in rows}


def _expected_steps(row: dict[str, Any], deliver_within_s: float | None) -> list[tuple[Any, ...]]:
    """(step, seconds, budget, within) from the recorded times, by hand."""
    start = row["received_at"]

    def since(at: float | None) -> float | None:
        return None if at is None else round(at - start, 3)

    accept_budget = round(row["accept_by"] - start, 3)
    resolved = row["resolved_at"] if row["resolved_by"] != "system" else None
    shown, accepted = since(row["shown_at"]), since(row["accepted_at"])
    return [
        ("shown", shown, deliver_within_s, shown is not None and shown <= (deliver_within_s or 0)),
        ("accepted", accepted, accept_budget, accepted is not None and accepted <= accept_budget),
        ("dispatched", since(row["dispatched_at"]), None, None),
        ("resolved", since(resolved), None, None),
    ]


async def test_a_drills_report_measures_each_step_per_operator_beside_the_previous_drill(
    drill_cloud: RunningCloud, agent: GatewayAgent
) -> None:
    """Two drills through the real agent: the first with one incident, accepted; the second
    with two, worked by two people, and a real call during it, worked as real. The second's
    report equals the figures computed here from the recorded times."""
    assert agent.hardware is not None
    supervisor = await signed_in(drill_cloud.url, "sup")
    operator = await signed_in(drill_cloud.url, "op")
    rules = drill_cloud.cloud.core.config
    try:
        now = datetime.now(UTC)

        async def plan(starts_s: int) -> int:
            body = {
                "gateway": "gw-ld01",
                "devices": ["smoke-0102", "gas-0101"],
                "starts_at": (now - timedelta(seconds=starts_s)).isoformat(),
                "ends_at": (now + timedelta(minutes=30)).isoformat(),
            }
            planned = await supervisor.post("/api/drills", json=body)
            assert planned.status_code == 201, planned.text
            return int(planned.json()["id"])

        async def inject(drill_id: int, incident: dict[str, Any]) -> None:
            sent = await supervisor.post(f"/api/drills/{drill_id}/incidents", json=incident)
            assert sent.status_code == 202, sent.text

        async def drill_alarms(drill_id: int, n: int) -> list[dict[str, Any]] | None:
            rows = await _drill_rows(drill_cloud, drill_id)
            return list(rows.values()) if len(rows) >= n else None

        smoke = {"device": "smoke-0102", "type": "alarm"}
        leak = {"device": "gas-0101", "type": "alarm", "values": {"ch4_pct_lel": 30.0}}
        # the earlier drill: one incident, accepted, then the drill ends
        first = await plan(20)
        await inject(first, smoke)
        (earlier,) = await eventually(lambda: drill_alarms(first, 1))
        assert (await operator.post(f"/api/alarms/{earlier['id']}/accept")).status_code == 200
        assert (await supervisor.post(f"/api/maintenance/{first}/end")).status_code == 200

        second = await plan(10)
        await inject(second, smoke)
        await inject(second, leak)
        alarms = await eventually(lambda: drill_alarms(second, 2))
        by_device = {a["device"]: a["id"] for a in alarms}
        # a real call during the drill: ahead of the drill's on the board, worked as real
        agent.hardware.press_call("call-0101")
        board = await eventually(lambda: _real_first(operator))
        real = board[0]
        assert (real["device"], real["mode"]) == ("call-0101", "live")

        smoke_id, leak_id = by_device["smoke-0102"], by_device["gas-0101"]
        shown = await operator.post("/api/alarms/shown", json={"ids": [smoke_id, leak_id]})
        assert shown.status_code == 200
        for step, body in (
            ("accept", None),
            ("hush", {}),
            ("dispatch", {"to": "网格员", "note": "演练"}),
            ("feedback", {"note": "到场，演练处置完毕"}),
            ("resolve", {"outcome": "handled"}),
        ):
            for alarm_id in (real["id"], smoke_id):
                done = await operator.post(f"/api/alarms/{alarm_id}/{step}", json=body)
                if step == "hush":  # a real call has no sounder; a drill's smoke case is
                    assert done.status_code == 409  # not hushed: its detector is not sounding
                    assert ("演练" in done.text) is (alarm_id == smoke_id), done.text
                else:
                    assert done.status_code == 200, done.text
        assert (await supervisor.post(f"/api/alarms/{leak_id}/accept")).status_code == 200
        dispatch = {"to": "物业", "note": ""}
        assert (await supervisor.post(f"/api/alarms/{leak_id}/dispatch", json=dispatch)).is_success
        # the drill ends with the leak still open: closed by the system, not resolved by anyone
        assert (await supervisor.post(f"/api/maintenance/{second}/end")).status_code == 200

        got = await supervisor.get(f"/api/drills/{second}/report")
        assert got.status_code == 200, got.text
        report = got.json()
        rows = await _drill_rows(drill_cloud, second)
        assert sorted(i["alarm_id"] for i in report["incidents"]) == sorted(rows)
        assert real["id"] not in {i["alarm_id"] for i in report["incidents"]}
        for item in report["incidents"]:
            row = rows[item["alarm_id"]]
            deliver = rules.policy_for(row["rule"], row["level"]).deliver_within_s
            assert item["operator"] == row["accepted_by"]
            steps = [(s["step"], s["seconds"], s["budget_s"], s["within"]) for s in item["steps"]]
            assert steps == _expected_steps(row, deliver)
        assert rows[leak_id]["resolved_by"] == "system"

        # per operator: op worked the smoke alarm to the end, sup accepted and sent the leak
        groups = {g["operator"]: g for g in report["by_operator"]}
        assert set(groups) == {"op", "sup"}
        smoke_row, leak_row = rows[smoke_id], rows[leak_id]
        op_steps = {s["step"]: s for s in groups["op"]["steps"]}
        assert op_steps["resolved"]["taken"] == 1
        assert op_steps["resolved"]["mean_s"] == round(
            smoke_row["resolved_at"] - smoke_row["received_at"], 3
        )
        sup_steps = {s["step"]: s for s in groups["sup"]["steps"]}
        assert sup_steps["resolved"]["taken"] == 0
        assert sup_steps["dispatched"]["mean_s"] == round(
            leak_row["dispatched_at"] - leak_row["received_at"], 3
        )
        accepted = {s["step"]: s for s in report["steps"]}["accepted"]
        times = [round(r["accepted_at"] - r["received_at"], 3) for r in (smoke_row, leak_row)]
        assert accepted["taken"] == 2
        assert accepted["mean_s"] == pytest.approx(sum(times) / 2, abs=0.001)
        assert accepted["max_s"] == max(times)

        # the earlier drill beside: its one incident, accepted by op, never resolved by anyone
        previous = report["previous"]
        assert previous["drill_id"] == first and previous["incidents"] == 1
        earlier_row = (await _drill_rows(drill_cloud, first))[earlier["id"]]
        earlier_steps = {s["step"]: s for s in previous["steps"]}
        assert earlier_steps["accepted"]["mean_s"] == round(
            earlier_row["accepted_at"] - earlier_row["received_at"], 3
        )
        assert earlier_steps["resolved"]["taken"] == 0

        # the ledger's report never counts a drill; only supervisors read a drill's report
        with_drills = {"include_tests": "true"}
        ledger = (await supervisor.get("/api/ledger/report", params=with_drills)).json()
        assert ledger["count"] == 1  # the real call alone
        # ... but its rows and export show each drill case, marked as one
        rows_page = (await supervisor.get("/api/ledger", params=with_drills)).json()["items"]
        assert sorted(r["mode"] for r in rows_page) == ["drill", "drill", "drill", "live"]
        export = await supervisor.get("/api/ledger/export.csv", params=with_drills)
        assert export.text.count("应急演练") == 3
        assert (await operator.get(f"/api/drills/{second}/report")).status_code == 403
        assert (await supervisor.get(f"/api/drills/{second + 99}/report")).status_code == 404
    finally:
        for client in (supervisor, operator):
            await client.aclose()
