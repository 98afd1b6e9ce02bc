"""The duty desk through the API, on the running cloud: who may edit the roster, a swap as the
page makes it, and a shift handover made by one operator and acknowledged by another, with
what it reports (an overdue call, a gateway offline) — refusals with their reasons."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from cloud.ledger.filters import BEIJING
from cloud.rules import AlarmDraft
from contract.models import Status
from tests.cloud.conftest import RunningCloud, signed_in


async def test_the_roster_through_the_api(cloud: RunningCloud, operator: httpx.AsyncClient) -> None:
    sup = await signed_in(cloud.url, "sup")
    try:
        person = {"name": "赵带班", "phone": "138 2222 0009"}
        refused = await operator.post("/api/roster/people", json=person)
        assert refused.status_code == 403 and "edit the duty roster" in refused.text
        bad = await sup.post("/api/roster/people", json={"name": "x", "phone": "call me"})
        assert bad.status_code == 422
        # a control character is refused with its reason (PostgreSQL cannot store NUL at all)
        nul = await sup.post(
            "/api/roster/people", json={"name": "赵\x00", "phone": "138 2222 0009"}
        )
        assert nul.status_code == 422 and "control character U+0000" in nul.text
        zhao = (await sup.post("/api/roster/people", json=person)).json()
        qian = (
            await sup.post("/api/roster/people", json={"name": "钱带班", "phone": "138 2222 0010"})
        ).json()
        today = datetime.now(BEIJING).date()
        tomorrow = today + timedelta(days=1)
        for day, who in ((today, zhao), (tomorrow, qian)):
            slot = {
                "day": ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()],
                "shift": "night",
                "role": "on_call_leader",
                "scope": "jd-jinjiang",
                "person_id": who["id"],
            }
            assert (await sup.put("/api/roster/weekly", json=slot)).status_code == 204
        swap = {
            "role": "on_call_leader",
            "scope": "jd-jinjiang",
            "first": {"day": today.isoformat(), "shift": "night"},
            "second": {"day": tomorrow.isoformat(), "shift": "night"},
            "reason": "家中有事",
        }
        swapped = await sup.post("/api/roster/swap", json=swap)
        assert swapped.status_code == 200, swapped.text
        assert [(a["person"]["name"], a["replaces"]) for a in swapped.json()] == [
            ("钱带班", "赵带班"),
            ("赵带班", "钱带班"),
        ]
        again = await sup.post(
            "/api/roster/swap", json={**swap, "second": {"day": today.isoformat(), "shift": "day"}}
        )
        assert again.status_code == 422 and "白班" in again.json()["zh"]
        page = (
            await operator.get("/api/roster", params={"start": today.isoformat(), "days": 2})
        ).json()
        nights = [
            (s["day"], a["person"]["name"], a["source"])
            for s in page["shifts"]
            for a in s["assignments"]
            if s["shift"] == "night"
        ]
        assert nights == [
            (today.isoformat(), "钱带班", "swap"),
            (tomorrow.isoformat(), "赵带班", "swap"),
        ]
        assert {s["role"] for s in page["slots"]} == {
            "duty_officer",
            "on_call_leader",
            "grid_worker",
        }
        now = (await operator.get("/api/roster/now")).json()
        assert now["shift"] in ("day", "night")
    finally:
        await sup.aclose()


async def test_a_handover_is_made_by_one_operator_and_acknowledged_by_the_next(
    cloud: RunningCloud, operator: httpx.AsyncClient
) -> None:
    parts = cloud.cloud
    now = time.time()
    waited = now - 300  # a call received five minutes ago, never accepted: overdue
    draft = AlarmDraft(
        "call_for_help", 1, "call", "gw-ld01", "call-0101", "一键呼叫求助", "Emergency call",
        datetime.fromtimestamp(waited, UTC), life_safety=True,
    )  # fmt: skip
    [raised] = await parts.book.apply([draft], waited)
    day_ago = now - 25 * 3600  # a smoke fault taken a day ago and still open: overdue too
    stale = AlarmDraft(
        "device_fault", 3, "smoke", "gw-ld02", "smoke-0301", "设备故障", "Device fault",
        datetime.fromtimestamp(day_ago, UTC),
    )  # fmt: skip
    [old] = await parts.book.apply([stale], day_ago)
    (await operator.post(f"/api/alarms/{old.alarm.id}/accept")).raise_for_status()
    gone = Status(gateway="gw-ld02", state="offline", boot="b1", ts=datetime.now(UTC))
    await parts.book.record_status(gone, now)

    assert (await operator.post("/api/handovers", json={"note": "\x00"})).status_code == 422
    made = await operator.post("/api/handovers", json={"note": "2栋网关离线，已报物业"})
    assert made.status_code == 201, made.text
    handover = made.json()
    summary = handover["summary"]
    assert [c["id"] for c in summary["overdue"]] == [raised.alarm.id, old.alarm.id]
    assert raised.alarm.id in [c["id"] for c in summary["open_cases"]]
    assert [(d["gateway"], d["device"], d["state"]) for d in summary["devices"]] == [
        ("gw-ld02", None, "offline")
    ]
    assert handover["made_by"] == "op" and handover["acknowledged_by"] is None

    url = f"/api/handovers/{handover['id']}/acknowledge"
    own = await operator.post(url, json={"note": ""})
    assert own.status_code == 422 and "交班人不能自己接班" in own.json()["zh"]
    sup = await signed_in(cloud.url, "sup")
    try:
        taken = await sup.post(url, json={"note": "已知悉"})
        assert taken.status_code == 200
        assert (taken.json()["acknowledged_by"], taken.json()["ack_note"]) == ("sup", "已知悉")
        twice = await sup.post(url, json={"note": ""})
        assert twice.status_code == 409
    finally:
        await sup.aclose()
    [kept] = (await operator.get("/api/handovers")).json()
    assert kept["acknowledged_by"] == "sup" and kept["note"] == "2栋网关离线，已报物业"
    actions = [e.action for e in await parts.audit.recent(10)]
    assert "handover_made" in actions and "handover_acknowledged" in actions
