"""Walk tests and maintenance windows: alarms from devices under test are recorded as tests,
shown to the installer, never pushed to the duty room or escalated — except a life-safety
alarm (a call for help, smoke, gas), which is never muted: a real emergency during a walk test
still reaches the duty room. Every start and end is audited; a walk test ends by itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cloud.access.audit import Audit
from cloud.alarms.model import Mode
from cloud.devices.maintenance import Maintenance, Planned
from cloud.errors import Refused
from cloud.rules import AlarmDraft, Clear, Decision, Evaluation
from tests.cloud.conftest import Publisher, RunningCloud, eventually, signed_in
from tests.cloud.helpers import T0, FakeClock, book_parts
from tests.cloud.ingest.test_ingest import active, event
from tests.cloud.web.test_duty_api import read_stream


async def test_a_walk_test_records_tests_for_the_installer_and_a_real_emergency_still_pages(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, mosquitto: Any
) -> None:
    installer = await signed_in(cloud.url, "inst")
    gw2 = Publisher(mosquitto, "gw-ld02")
    try:
        # an operator may not start one; an installer may, for one gateway
        forbidden = await operator.post("/api/walktests", json={"gateway": "gw-ld01"})
        assert forbidden.status_code == 403
        assert (await installer.post("/api/walktests", json={"gateway": "gw-x"})).status_code == 404
        started = await installer.post("/api/walktests", json={"gateway": "gw-ld01", "minutes": 20})
        assert started.status_code == 201
        window = started.json()
        assert window["mode"] == "walk_test" and window["created_by"] == "inst"

        stream = asyncio.create_task(read_stream(operator, want=3))
        await eventually(lambda: cloud.cloud.hub.listeners == 1)
        # the installer presses the smoke detector's test button and trips the gas
        # detector's fault: recorded for the installer, not sent to the duty room …
        gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="test"))
        gw1.publish("sc/v1/gw-ld01/event", event(device="gas-0101", kind="gas", type="fault"))
        await eventually(lambda: cloud.cloud.announcer.counts["test_alarms"] == 1)
        # … while an old man on the same gateway presses his call button for real, and a
        # real alarm comes from the next building: both reach the duty room
        gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
        gw2.publish(
            "sc/v1/gw-ld02/event", event(gateway="gw-ld02", device="smoke-0301", type="alarm")
        )
        (_, snapshot), *messages = await stream
        assert snapshot == []
        assert sorted((m["alarm"]["gateway"], m["alarm"]["rule"]) for _, m in messages) == [
            ("gw-ld01", "call_for_help"),
            ("gw-ld02", "smoke_alarm"),
        ]
        live = await active(operator)
        assert sorted((a["gateway"], a["rule"], a["mode"]) for a in live) == [
            ("gw-ld01", "call_for_help", "live"),
            ("gw-ld02", "smoke_alarm", "live"),
        ]
        [call] = [a for a in live if a["rule"] == "call_for_help"]

        # routed as any live alarm: the escalator plans the policy's first step (tests get none)
        async def routed() -> list[Any]:
            return (await operator.get(f"/api/alarms/{call['id']}")).json()["notifications"]

        await eventually(routed)
        # the call's clear (the resident cancels) during the test reaches the live alarm too
        gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="cancel"))

        async def call_cleared() -> bool:
            case = (await operator.get(f"/api/alarms/{call['id']}")).json()["alarm"]
            return case["cleared_at"] is not None

        await eventually(call_cleared)

        report = (await installer.get(f"/api/walktests/{window['id']}")).json()
        seen = {d["device"]: d for d in report["devices"]}
        assert seen["smoke-0102"]["events"] == 1 and seen["smoke-0102"]["last_type"] == "test"
        assert seen["air-0201"]["events"] == 0  # not tested yet: the installer sees it
        assert seen["call-0101"]["home"] == "1单元101"
        assert [a["rule"] for a in report["alarms"]] == ["device_fault"]
        test_ids = [a["id"] for a in report["alarms"]]

        # tests are never escalated: no notification beyond the record
        for alarm_id in test_ids:
            case = (await operator.get(f"/api/alarms/{alarm_id}")).json()
            assert case["alarm"]["mode"] == "walk_test" and case["notifications"] == []

        ended = await installer.post(f"/api/walktests/{window['id']}/end")
        assert ended.status_code == 200 and ended.json()["ended_by"] == "inst"
        assert (await installer.post(f"/api/walktests/{window['id']}/end")).status_code == 409
        report = (await installer.get(f"/api/walktests/{window['id']}")).json()
        assert {(a["state"]) for a in report["alarms"]} == {"resolved"}

        # after the test the same device pages again
        gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="alarm"))
        await eventually(lambda: _has(active(operator), ("gw-ld01", "smoke_alarm")))

        admin = await signed_in(cloud.url, "adm")
        try:
            audit = (await admin.get("/api/audit")).json()
        finally:
            await admin.aclose()
        actions = [(e["actor"], e["action"]) for e in audit]
        assert ("inst", "walk_test_started") in actions and ("inst", "walk_test_ended") in actions
    finally:
        gw2.close()
        await installer.aclose()


async def test_a_maintenance_window_is_planned_by_a_supervisor_for_chosen_devices(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    supervisor = await signed_in(cloud.url, "sup")
    installer = await signed_in(cloud.url, "inst")
    now = datetime.now(UTC)
    plan = {
        "gateway": "gw-ld01",
        "devices": ["air-0201"],
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=2)).isoformat(),
        "note": "更换空气监测仪",
    }
    try:
        assert (await installer.post("/api/maintenance", json=plan)).status_code == 403
        bad = dict(plan, ends_at=(now - timedelta(hours=1)).isoformat())
        assert (await supervisor.post("/api/maintenance", json=bad)).status_code == 422
        unknown = dict(plan, devices=["nope"])
        assert (await supervisor.post("/api/maintenance", json=unknown)).status_code == 422
        made = await supervisor.post("/api/maintenance", json=plan)
        assert made.status_code == 201 and made.json()["mode"] == "maintenance"

        gw1.publish("sc/v1/gw-ld01/event", event(device="air-0201", kind="air", type="fault"))
        gw1.publish("sc/v1/gw-ld01/event", event(device="gas-0101", kind="gas", type="fault"))
        await eventually(lambda: cloud.cloud.ingest.counts["events"] == 2)
        live = await active(operator)
        assert [a["device"] for a in live] == ["gas-0101"]  # air-0201 is under maintenance
        assert cloud.cloud.announcer.counts["test_alarms"] == 1
    finally:
        await supervisor.aclose()
        await installer.aclose()


async def test_a_forgotten_walk_test_ends_by_itself_and_closes_its_tests(
    database_url: str,
) -> None:
    clock = FakeClock()
    async with book_parts(database_url, clock) as parts:
        maintenance = Maintenance(parts.db, Audit(parts.db))
        window = await maintenance.start_walk_test("gw-ld01", [], 30, "inst")
        mode, window_id = maintenance.mode_for("gw-ld01", "smoke-0102", clock())
        assert (mode, window_id) == (Mode.WALK_TEST, window.id)
        assert maintenance.mode_for("gw-ld02", "smoke-0301", clock()) == (Mode.LIVE, None)
        draft = AlarmDraft(
            "smoke_alarm",
            1,
            "smoke",
            "gw-ld01",
            "smoke-0102",
            "烟雾报警",
            "Smoke",
            datetime.fromtimestamp(T0, UTC),
            life_safety=True,
            mode="walk_test",
            window=window.id,
        )
        [raised] = await parts.book.apply([draft], clock())
        assert raised.alarm.notify_due_at is None  # never escalated
        clock.advance(29 * 60)
        assert await maintenance.expire(clock()) == []
        clock.advance(61)
        [ended] = await maintenance.expire(clock())
        assert ended.ended_by == "system"
        [closed] = await parts.book.close_window(ended.id, "system")
        assert (closed.state, closed.outcome) == ("resolved", "test")
        assert maintenance.mode_for("gw-ld01", "smoke-0102", clock()) == (Mode.LIVE, None)
        # the next walk test is capped at four hours, however long it was asked for
        long = await maintenance.start_walk_test("gw-ld01", [], 10_000, "inst")
        assert long.ends_at - long.starts_at == timedelta(hours=4)


def _draft(device: str, rule: str, kind: str, *, life_safety: bool) -> AlarmDraft:
    at = datetime.fromtimestamp(T0, UTC)
    return AlarmDraft(rule, 1, kind, "gw-ld01", device, rule, rule, at, life_safety=life_safety)


async def test_a_clear_during_a_walk_test_reaches_the_live_alarm_it_ends(
    database_url: str,
) -> None:
    """The condition of a live alarm ends while its device is under a walk test: the live alarm
    learns it — whether it was raised before the test began or let through during it (a call
    for help), and after a restart of the cloud in between."""
    clock = FakeClock()
    at = datetime.fromtimestamp(T0, UTC)
    async with book_parts(database_url, clock) as parts:
        maintenance = Maintenance(parts.db, Audit(parts.db))
        # methane over the limit, live: then the installer starts a walk test of the gateway
        [gas] = await parts.book.apply(
            [_draft("gas-0101", "gas_high", "gas", life_safety=False)], T0
        )
        await maintenance.start_walk_test("gw-ld01", [], 30, "inst")
        call = _draft("call-0101", "call_for_help", "call", life_safety=True)
        [raised_call] = await parts.book.apply(maintenance.gate(Evaluation([call]), T0 + 1), T0 + 1)
        assert raised_call.alarm.mode == "live"  # a call for help is never muted
    async with book_parts(database_url, clock) as parts:  # the cloud restarts
        maintenance = Maintenance(parts.db, Audit(parts.db))
        await maintenance.load()
        clears: list[Decision] = [
            Clear("gas_high", "gw-ld01", "gas-0101", at, "normal from the device"),
            Clear("call_for_help", "gw-ld01", "call-0101", at, "cancel from the device"),
        ]
        await parts.book.apply(maintenance.gate(Evaluation(clears), T0 + 2), T0 + 2)
        gas_row = await parts.db.fetch_one(
            "SELECT state, cleared_at FROM alarms WHERE id = ?", (gas.alarm.id,)
        )
        call_row = await parts.db.fetch_one(
            "SELECT state, cleared_at FROM alarms WHERE id = ?", (raised_call.alarm.id,)
        )
        assert gas_row is not None and call_row is not None
        assert gas_row["state"] == "resolved"  # not latched: the live gas alarm closes
        assert call_row["cleared_at"] is not None  # latched: noted for the operator


async def _has(coro: Any, key: tuple[str, str]) -> bool:
    return key in {(a["gateway"], a["rule"]) for a in await coro}


async def test_each_planned_mode_keeps_its_own_limits(database_url: str) -> None:
    """A maintenance window may last 7 days, a drill 4 hours; neither may end before it starts
    or be over already. A refusal says which limit, for which mode, and plans nothing."""
    clock = FakeClock()
    hour = 3600.0
    async with book_parts(database_url, clock) as parts:
        maintenance = Maintenance(parts.db, Audit(parts.db))
        now = clock()
        refusals: list[tuple[Planned, float, float, str]] = [
            (Mode.DRILL, now, now + 4 * hour + 1, "a drill may last at most 4 hours"),
            (Mode.DRILL, now, now, "a drill must end after it starts"),
            (Mode.DRILL, now - 2 * hour, now, "that drill is already over"),
            (
                Mode.MAINTENANCE,
                now,
                now + 7 * 24 * hour + 1,
                "a maintenance window may last at most 7 days",
            ),
            (Mode.MAINTENANCE, now + hour, now, "a maintenance window must end after it starts"),
            (Mode.MAINTENANCE, now - 2 * hour, now, "that maintenance window is already over"),
        ]
        for mode, starts, ends, reason in refusals:
            with pytest.raises(Refused) as refused:
                await maintenance.schedule(mode, "gw-ld01", [], starts, ends, "sup")
            assert refused.value.en == reason
            assert refused.value.zh and ("演练" if mode is Mode.DRILL else "维护窗口") in str(
                refused.value.zh
            )
        assert await maintenance.windows() == []

        drill = await maintenance.schedule(Mode.DRILL, "gw-ld01", [], now, now + 4 * hour, "sup")
        window = await maintenance.schedule(
            Mode.MAINTENANCE, "gw-ld01", [], now, now + 7 * 24 * hour, "sup"
        )
        assert (drill.mode, window.mode) == (Mode.DRILL, Mode.MAINTENANCE)
        assert window.ends_at - window.starts_at == timedelta(days=7)
        started = await parts.db.fetch_all(
            "SELECT action FROM audit WHERE action LIKE '%_started' ORDER BY id"
        )
        assert [r["action"] for r in started] == ["drill_started", "maintenance_started"]
