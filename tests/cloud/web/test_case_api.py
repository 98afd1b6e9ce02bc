"""The case behind a board row, through the real broker and the real cloud: the acceptance
budget every live alarm carries (from its routing policy, kept across a restart), closing a
false alarm only with its cause, the supervisor's list of cases awaiting verification, and the
resident's profile — for duty roles only, every read in the audit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.alarms.model import Outcome
from cloud.db.database import Database
from cloud.rules import Clear, load_rules
from cloud.settings import DEFAULT_RULES
from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    eventually,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.cloud.helpers import FakeClock, book_parts
from tests.cloud.ingest.test_ingest import active, event
from tests.cloud.ledger.test_cases import draft
from tests.servers import Mosquitto


def budget_of(rule: str, level: int) -> float:
    return load_rules(DEFAULT_RULES).policy_for(rule, level).budget_s


def stamp(alarm: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(alarm[key])


async def one_alarm(client: httpx.AsyncClient, device: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        return next((a for a in await active(client) if a["device"] == device), None)

    return await eventually(find)


async def test_every_live_alarm_carries_the_acceptance_budget_of_its_policy(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", kind="smoke", type="fault"))
    call = await one_alarm(operator, "call-0101")
    fault = await one_alarm(operator, "smoke-0102")

    # a call (level I, life safety): 60 s; a device fault (level III, routine): an hour
    assert budget_of(call["rule"], call["level"]) == 60
    assert stamp(call, "accept_by") - stamp(call, "received_at") == timedelta(seconds=60)
    fault_budget = budget_of(fault["rule"], fault["level"])
    assert fault_budget == 3600
    assert stamp(fault, "accept_by") - stamp(fault, "received_at") == timedelta(seconds=3600)

    # the one case, the live list and the live stream's messages all carry it
    case = (await operator.get(f"/api/alarms/{call['id']}")).json()
    assert case["alarm"]["accept_by"] == call["accept_by"]
    # accepting does not move it: it is what the budget was, for the report
    accepted = (await operator.post(f"/api/alarms/{call['id']}/accept")).json()
    assert accepted["accept_by"] == call["accept_by"]


async def test_the_acceptance_budget_survives_a_restart_and_old_alarms_get_one(
    tmp_path: Path, mosquitto: Mosquitto, gw1: Publisher, database_url: str
) -> None:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(tmp_path, mosquitto, database=database_url)
    async with running_cloud(settings) as first:
        client = await signed_in(first.url, "op")
        try:
            gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
            gw1.publish("sc/v1/gw-ld01/event", event(device="air-0201", kind="air", type="fault"))
            before = await one_alarm(client, "call-0101")
            fault = await one_alarm(client, "air-0201")
        finally:
            await client.aclose()

    # as a database written by a version without budgets would have it
    db = await Database.open(database_url)
    try:
        await db.execute("UPDATE alarms SET accept_by = NULL WHERE id = ?", (fault["id"],))
    finally:
        await db.close()

    async with running_cloud(settings) as second:
        client = await signed_in(second.url, "op")
        try:
            after = (await client.get(f"/api/alarms/{before['id']}")).json()["alarm"]
            refilled = (await client.get(f"/api/alarms/{fault['id']}")).json()["alarm"]
        finally:
            await client.aclose()
    assert after["accept_by"] == before["accept_by"]  # the same instant, not restarted
    assert refilled["accept_by"] == fault["accept_by"]  # received_at + its policy's budget


async def test_a_false_alarm_is_closed_only_with_its_cause(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", kind="smoke", type="alarm"))
    alarm = await one_alarm(operator, "smoke-0102")
    url = f"/api/alarms/{alarm['id']}/resolve"

    refused = await operator.post(url, json={"outcome": "false_alarm", "note": "厨房"})
    assert refused.status_code == 422
    assert "needs its cause" in str(refused.json()["detail"])
    unknown = await operator.post(url, json={"outcome": "false_alarm", "cause": "ghosts"})
    assert unknown.status_code == 422
    other = await operator.post(url, json={"outcome": "false_alarm", "cause": "other"})
    assert other.status_code == 422 and "needs a note" in str(other.json()["detail"])
    stray = await operator.post(url, json={"outcome": "handled", "cause": "cooking"})
    assert stray.status_code == 422 and "only for a false alarm" in str(stray.json()["detail"])
    system = await operator.post(url, json={"outcome": "cleared"})
    assert system.status_code == 422
    # none of these closed it
    assert (await operator.get(f"/api/alarms/{alarm['id']}")).json()["alarm"]["state"] == "active"

    assert (await operator.post(f"/api/alarms/{alarm['id']}/accept")).status_code == 200
    done = await operator.post(
        url, json={"outcome": "false_alarm", "cause": "cooking", "note": "炒菜油烟"}
    )
    assert done.status_code == 200
    closed = done.json()
    assert (closed["outcome"], closed["cause"], closed["note"]) == (
        "false_alarm",
        "cooking",
        "炒菜油烟",
    )
    case = (await operator.get(f"/api/alarms/{alarm['id']}")).json()
    log = [(h["actor"], h["action"], h["detail"]) for h in case["history"]]
    assert ("op", "resolved", "false_alarm (cooking): 炒菜油烟") in log


async def test_an_unaccepted_alarm_is_not_closed_by_resolve(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    """办结 of a case nobody accepted is refused (409, the reason in both languages): the
    ledger's accept time is then always a person's act, never the resolve time copied."""
    gw1.publish("sc/v1/gw-ld01/event", event(device="gas-0101", kind="gas", type="alarm"))
    alarm = await one_alarm(operator, "gas-0101")
    url = f"/api/alarms/{alarm['id']}"
    for body in (
        {"outcome": "handled"},
        {"outcome": "false_alarm", "cause": "mistouch", "note": "误报"},
    ):
        refused = await operator.post(f"{url}/resolve", json=body)
        assert refused.status_code == 409
        answer = refused.json()
        assert answer["zh"] == f"告警 {alarm['id']} 尚未受理，不能办结：请先受理"
        assert (
            answer["en"]
            == f"alarm {alarm['id']} is not accepted yet: accept it before resolving it"
        )
        assert answer["detail"] == f"{answer['zh']} / {answer['en']}"
    case = (await operator.get(url)).json()
    assert case["alarm"]["state"] == "active" and case["alarm"]["accepted_at"] is None
    assert "resolved" not in [h["action"] for h in case["history"]]

    assert (await operator.post(f"{url}/accept")).status_code == 200
    done = await operator.post(f"{url}/resolve", json={"outcome": "handled"})
    assert done.status_code == 200
    closed = done.json()
    assert closed["accepted_at"] < closed["resolved_at"]


async def test_supervisors_list_resolved_cases_until_they_verify_them(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    alarm = await one_alarm(operator, "call-0101")
    url = f"/api/alarms/{alarm['id']}"
    supervisor = await signed_in(cloud.url, "sup")
    installer = await signed_in(cloud.url, "inst")
    try:
        assert (await supervisor.get("/api/alarms/unverified")).json() == []
        assert (await operator.get("/api/alarms/unverified")).status_code == 403
        assert (await installer.get("/api/alarms/unverified")).status_code == 403
        bad = await supervisor.get("/api/alarms/unverified", params={"hours": 0})
        assert bad.status_code == 422

        await operator.post(f"{url}/accept")
        await operator.post(f"{url}/resolve", json={"outcome": "handled", "note": "已上门"})
        [waiting] = (await supervisor.get("/api/alarms/unverified")).json()
        assert (waiting["id"], waiting["resolved_by"]) == (alarm["id"], "op")
        assert (await supervisor.post(f"{url}/verify", json={"note": "电话回访属实"})).is_success
        assert (await supervisor.get("/api/alarms/unverified")).json() == []
    finally:
        await supervisor.aclose()
        await installer.aclose()


async def resident_reads(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    resp = await client.get("/api/audit", params={"action": "resident_read"})
    resp.raise_for_status()
    return resp.json()


@pytest.mark.parametrize("reader", ["op", "sup", "adm"])
async def test_duty_roles_read_the_residents_profile_and_each_read_is_audited(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, reader: str
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    alarm = await one_alarm(operator, "call-0101")
    client = await signed_in(cloud.url, reader)
    auditor = await signed_in(cloud.url, "adm")
    try:
        resp = await client.get(f"/api/alarms/{alarm['id']}/resident")
        assert resp.status_code == 200
        profile = resp.json()
        assert (profile["home_id"], profile["home"], profile["building"]) == (
            "h-01-0101",
            "1单元101",
            "红星小区1栋",
        )
        [resident] = profile["residents"]
        assert (resident["name"], resident["age"]) == ("王秀英", 82)
        assert "高血压" in resident["conditions"]
        assert resident["contacts"] == [
            {"name": "王建国", "relation": "儿子", "phone": "139 0000 1001"}
        ]
        await client.get(f"/api/alarms/{alarm['id']}/resident")  # a second read: a second line

        reads = await resident_reads(auditor)
        assert len(reads) == 2
        for entry in reads:
            assert entry["actor"] == reader
            assert f"alarm {alarm['id']}" in entry["detail"]
            assert "h-01-0101" in entry["detail"] and "王秀英" in entry["detail"]
    finally:
        await client.aclose()
        await auditor.aclose()


async def test_an_installer_cannot_read_a_residents_profile_and_nothing_is_read(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    alarm = await one_alarm(operator, "call-0101")
    installer = await signed_in(cloud.url, "inst")
    supervisor = await signed_in(cloud.url, "sup")
    try:
        refused = await installer.get(f"/api/alarms/{alarm['id']}/resident")
        assert refused.status_code == 403
        assert "王秀英" not in refused.text
        signed_out = httpx.AsyncClient(base_url=cloud.url)
        async with signed_out:
            assert (await signed_out.get(f"/api/alarms/{alarm['id']}/resident")).status_code == 401
        # nobody read a profile; and an installer cannot read the audit either
        assert await resident_reads(supervisor) == []
        assert (await installer.get("/api/audit")).status_code == 403
    finally:
        await installer.aclose()
        await supervisor.aclose()


async def test_a_profile_needs_an_alarm_from_a_home(
    cloud: RunningCloud, operator: httpx.AsyncClient
) -> None:
    missing = await operator.get("/api/alarms/999999/resident")
    assert missing.status_code == 404 and "no alarm" in missing.json()["detail"]


async def test_a_board_reports_what_it_drew_in_one_request(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", kind="smoke", type="fault"))
    call = await one_alarm(operator, "call-0101")
    fault = await one_alarm(operator, "smoke-0102")
    ids = [call["id"], fault["id"], 999999]

    first = await operator.post("/api/alarms/shown", json={"ids": ids})
    assert first.status_code == 200
    assert sorted(first.json()["first_shown"]) == sorted([call["id"], fault["id"]])
    # the first showing counts: a second report changes nothing
    assert (await operator.post("/api/alarms/shown", json={"ids": ids})).json() == {
        "first_shown": []
    }
    case = (await operator.get(f"/api/alarms/{call['id']}")).json()
    assert case["alarm"]["shown_at"] is not None
    assert [(h["actor"], h["action"]) for h in case["history"]].count(("op", "shown")) == 1

    assert (await operator.post("/api/alarms/shown", json={"ids": []})).status_code == 422
    installer = await signed_in(cloud.url, "inst")
    try:
        assert (await installer.post("/api/alarms/shown", json={"ids": ids})).status_code == 403
    finally:
        await installer.aclose()
    # a page that only asks whether it may look gets one alarm, not all of them
    [top] = (await operator.get("/api/alarms", params={"limit": 1})).json()
    assert top["id"] == call["id"]  # the most severe
    assert (await operator.get("/api/alarms", params={"limit": 0})).status_code == 422


async def test_an_alarm_made_more_severe_gets_the_shorter_budget_of_its_new_level(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    def methane(value: float) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "gateway": "gw-ld01",
            "boot": "boot1",
            "seq": 1,
            "readings": [
                {
                    "device": "gas-0101",
                    "ts": datetime.now(UTC).isoformat(),
                    "kind": "gas",
                    "values": {"ch4_pct_lel": value},
                }
            ],
        }

    gw1.publish("sc/v1/gw-ld01/telemetry", methane(14.5))  # level II: five minutes
    alarm = await one_alarm(operator, "gas-0101")
    assert alarm["level"] == 2
    assert stamp(alarm, "accept_by") - stamp(alarm, "received_at") == timedelta(seconds=300)

    gw1.publish("sc/v1/gw-ld01/telemetry", methane(30.0))  # level I now: a minute

    async def raised() -> dict[str, Any] | None:
        now = await one_alarm(operator, "gas-0101")
        return now if now["level"] == 1 else None

    worse = await eventually(raised)
    assert worse["id"] == alarm["id"] and worse["received_at"] == alarm["received_at"]
    assert stamp(worse, "accept_by") - stamp(worse, "received_at") == timedelta(seconds=60)


@pytest.mark.parametrize("resolver", ["sup", "adm"])
async def test_nobody_verifies_a_case_they_resolved_themselves(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, resolver: str
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    alarm = await one_alarm(operator, "call-0101")
    url = f"/api/alarms/{alarm['id']}"
    own = await signed_in(cloud.url, resolver)
    other = await signed_in(cloud.url, "adm" if resolver == "sup" else "sup")
    try:
        assert (await own.post(f"{url}/accept")).status_code == 200
        done = await own.post(f"{url}/resolve", json={"outcome": "handled", "note": "已上门"})
        assert done.status_code == 200
        refused = await own.post(f"{url}/verify", json={"note": "属实"})
        assert refused.status_code == 409
        assert f"resolved by {resolver}" in refused.json()["detail"]
        case = (await operator.get(url)).json()
        assert case["alarm"]["verified_at"] is None
        assert "verified" not in [h["action"] for h in case["history"]]
        verified = await other.post(f"{url}/verify", json={"note": "电话回访属实"})
        assert verified.status_code == 200
    finally:
        await own.aclose()
        await other.aclose()


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("note", {"outcome": "handled", "note": "门铃\x0b坏了"}),
        ("to", {"to": "网格员\x1b[31m"}),
        ("note", {"note": "已送医\x00"}),
    ],
)
async def test_control_characters_in_typed_text_are_refused_with_the_reason(
    cloud: RunningCloud,
    operator: httpx.AsyncClient,
    gw1: Publisher,
    field: str,
    body: dict[str, str],
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    alarm = await one_alarm(operator, "call-0101")
    url = f"/api/alarms/{alarm['id']}"
    assert (await operator.post(f"{url}/accept")).status_code == 200
    action = "resolve" if "outcome" in body else "dispatch" if "to" in body else "feedback"
    refused = await operator.post(f"{url}/{action}", json=body)
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    assert problem["loc"][-1] == field and "control character U+" in problem["msg"]
    # line breaks and tabs are text
    fine = {**body, field: "第一行\n第二行\t完"}
    assert (await operator.post(f"{url}/{action}", json=fine)).status_code == 200
    supervisor = await signed_in(cloud.url, "sup")
    try:
        if action != "resolve":
            await operator.post(f"{url}/resolve", json={"outcome": "handled"})
        bad_note = await supervisor.post(f"{url}/verify", json={"note": "ok\x07"})
        assert bad_note.status_code == 422
    finally:
        await supervisor.aclose()


async def test_the_supervisors_list_covers_a_week_of_cases_people_resolved(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    """Resolved 3 days ago (a weekend): listed; 10 days ago: not; closed by the system when
    the device recovered (outcome cleared): nobody's work to verify, not listed."""
    now = datetime.now(UTC).timestamp()
    clock = FakeClock(now - 10 * 86400)
    made: dict[str, int] = {}
    async with book_parts(database_url, clock) as parts:
        for name, days in (("old", 10), ("weekend", 3)):
            clock.now = at = now - days * 86400
            [raised] = await parts.book.apply(
                [draft("call_for_help", 1, "call", "gw-ld01", "call-0101", at)], at
            )
            made[name] = raised.alarm.id
            await parts.casework.accept(raised.alarm.id, "op")
            await parts.casework.resolve(raised.alarm.id, "op", Outcome.HANDLED, "已上门")
        clock.now = at = now - 2 * 86400
        d = draft("device_fault", 3, "gas", "gw-ld01", "gas-0101", at)
        [raised] = await parts.book.apply([d], at)
        made["cleared"] = raised.alarm.id
        clear = Clear(d.rule, d.gateway, d.device, datetime.fromtimestamp(at + 5, UTC), "ok")
        [closed] = await parts.book.apply([clear], at + 5)
        assert closed.alarm.outcome == "cleared"
    forget_gateway_status(mosquitto)
    async with running_cloud(cloud_settings(tmp_path, mosquitto, database=database_url)) as running:
        supervisor = await signed_in(running.url, "sup")
        try:
            listed = (await supervisor.get("/api/alarms/unverified")).json()
            assert [a["id"] for a in listed] == [made["weekend"]]
            fortnight = await supervisor.get("/api/alarms/unverified", params={"hours": 24 * 14})
            assert [a["id"] for a in fortnight.json()] == [made["weekend"], made["old"]]
        finally:
            await supervisor.aclose()
