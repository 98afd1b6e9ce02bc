"""The grid worker's cases through the API, on the running cloud: a grid worker sees the cases
the duty room dispatched in the grid the roster gives them now, and the check-in visit tasks
there — nothing of another grid — accepts, feeds back with a photo, resolves."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import httpx

from cloud.access.users import Role
from cloud.duty.roster import DutyRole
from cloud.duty.shifts import shift_at
from cloud.rules import AlarmDraft
from tests.cloud.conftest import RunningCloud

#: the first bytes of a PNG file and a little more: enough for the type check
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PASSWORD = "grid-pass-12"


def draft(rule: str, level: int, title: str, device: str = "call-0101") -> AlarmDraft:
    return AlarmDraft(
        rule, level, "call", "gw-ld01", device, title, title, datetime.now(UTC),
        life_safety=level == 1,
    )  # fmt: skip


async def worker(cloud: RunningCloud, account: str, grid: str) -> httpx.AsyncClient:
    """An account of role grid_worker, on the roster for `grid` on the shift in force."""
    parts = cloud.cloud
    await parts.users.ensure(account, Role.GRID_WORKER, PASSWORD)
    person = await parts.duty.roster.add_person(account, "138 4444 0001", "sup", account)
    current = shift_at(time.time())
    await parts.duty.roster.set_weekly(
        current.weekday, current.shift.code, DutyRole.GRID_WORKER, grid, person.id, "sup"
    )
    client = httpx.AsyncClient(base_url=cloud.url, timeout=10)
    resp = await client.post("/api/login", json={"username": account, "password": PASSWORD})
    resp.raise_for_status()
    return client


async def test_a_grid_worker_works_their_cases_and_sees_no_others(
    cloud: RunningCloud, operator: httpx.AsyncClient
) -> None:
    parts = cloud.cloud
    li = await worker(cloud, "li-wg", "wg-01")
    zhang = await worker(cloud, "zhang-wg", "wg-02")
    try:
        [call] = await parts.book.apply([draft("call_for_help", 1, "一键呼叫求助")], time.time())
        assert (await li.get("/api/grid/cases")).json() == []  # not dispatched yet
        assert (await operator.get("/api/grid/cases")).status_code == 403
        url = f"/api/alarms/{call.alarm.id}"
        (await operator.post(f"{url}/accept")).raise_for_status()
        (
            await operator.post(f"{url}/dispatch", json={"to": "网格员 li-wg", "note": ""})
        ).raise_for_status()

        [case] = (await li.get("/api/grid/cases")).json()
        assert (case["id"], case["address"], case["residents"]) == (
            call.alarm.id, "红星路12号1栋", ["王秀英"],
        )  # fmt: skip
        assert (await zhang.get("/api/grid/cases")).json() == []  # another grid's worker
        mine = f"/api/grid/cases/{call.alarm.id}"
        stranger = await zhang.post(f"{mine}/accept")
        assert stranger.status_code == 404 and "不是派给你的" in stranger.json()["zh"]
        early = await li.post(f"{mine}/feedback", json={"note": "到了"})
        assert early.status_code == 422 and "请先接单" in early.json()["zh"]

        taken = (await li.post(f"{mine}/accept")).json()
        assert taken["taken_at"] is not None
        bad = await li.post(
            f"{mine}/feedback", json={"note": "x", "photo": base64.b64encode(b"GIF89a").decode()}
        )
        assert bad.status_code == 422 and "JPEG" in bad.json()["zh"]
        photo = "data:image/png;base64," + base64.b64encode(PNG).decode()
        fed = await li.post(
            f"{mine}/feedback", json={"note": "老人摔倒，已扶起，无外伤", "photo": photo}
        )
        assert fed.status_code == 200, fed.text
        assert fed.json()["photos"] == 1
        history = (await operator.get(url)).json()["history"]
        line = next(h for h in history if h["action"] == "feedback")
        assert line["actor"] == "li-wg" and "老人摔倒" in line["detail"]
        photo_id = int(line["detail"].rsplit("photo ", 1)[1].rstrip("]"))
        seen = await operator.get(f"/api/grid/photos/{photo_id}")
        assert (seen.status_code, seen.headers["content-type"], seen.content) == (
            200,
            "image/png",
            PNG,
        )
        assert (await zhang.get(f"/api/grid/photos/{photo_id}")).status_code == 404

        done = await li.post(f"{mine}/resolve", json={"note": "已处置"})
        assert done.status_code == 200 and done.json()["state"] == "resolved"
        assert done.json()["resolved_by"] == "li-wg"
        assert (await li.get("/api/grid/cases")).json() == []

        # a missed check-in's visit task reaches the grid's worker without a dispatch
        [visit] = await parts.book.apply(
            [draft("checkin_missed", 3, "平安报未报到（请网格员上门探访）")], time.time()
        )
        [task] = (await li.get("/api/grid/cases")).json()
        assert (task["id"], task["state"]) == (visit.alarm.id, "active")
        taken = (await li.post(f"/api/grid/cases/{visit.alarm.id}/accept")).json()
        assert taken["state"] == "accepted"
        assert (await parts.alarms.get(visit.alarm.id)).accepted_by == "li-wg"
    finally:
        await li.aclose()
        await zhang.aclose()
