"""A case from raised to verified (四个第一 and 督办落实), each step with who and when; and a
storm from one building grouped for the operator without hiding a life-safety case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.cloud.conftest import Publisher, RunningCloud, eventually, signed_in
from tests.cloud.ingest.test_ingest import active, event


async def test_accept_dispatch_feedback_resolve_verify_each_with_who_and_when(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    [alarm] = await eventually(lambda: active(operator))
    url = f"/api/alarms/{alarm['id']}"
    supervisor = await signed_in(cloud.url, "sup")
    try:
        # out of order: refused with the reason
        early = await operator.post(f"{url}/dispatch", json={"to": "网格员 李网格"})
        assert early.status_code == 409 and "accept it before" in early.json()["detail"]
        assert (await operator.post(f"{url}/feedback", json={"note": "x"})).status_code == 409

        assert (await operator.post(f"{url}/accept")).status_code == 200
        dispatched = await operator.post(
            f"{url}/dispatch", json={"to": "网格员 李网格", "note": "请上门查看"}
        )
        assert dispatched.status_code == 200
        again = await operator.post(f"{url}/dispatch", json={"to": "120", "note": "老人胸闷"})
        assert again.json()["dispatched_to"] == "网格员 李网格; 120"
        fed = await operator.post(f"{url}/feedback", json={"note": "已送医，家属已通知"})
        assert fed.json()["feedback_by"] == "op"

        # verification is the supervisor's, and only of a resolved case
        assert (await operator.post(f"{url}/verify", json={})).status_code == 403
        assert (await supervisor.post(f"{url}/verify", json={})).status_code == 409
        resolved = await operator.post(
            f"{url}/resolve", json={"outcome": "handled", "note": "已处置"}
        )
        assert resolved.status_code == 200
        verified = await supervisor.post(f"{url}/verify", json={"note": "回访属实"})
        assert verified.status_code == 200
        assert (await supervisor.post(f"{url}/verify", json={})).status_code == 409

        case = (await operator.get(url)).json()
    finally:
        await supervisor.aclose()
    a = case["alarm"]
    assert (a["dispatched_by"], a["verified_by"], a["resolved_by"]) == ("op", "sup", "op")
    stamps = [
        datetime.fromisoformat(a[k])
        for k in (
            "received_at",
            "accepted_at",
            "dispatched_at",
            "feedback_at",
            "resolved_at",
            "verified_at",
        )
    ]
    assert stamps == sorted(stamps)
    log = [(h["actor"], h["action"], h["detail"]) for h in case["history"]]
    assert ("op", "dispatched", "网格员 李网格: 请上门查看") in log
    assert ("op", "dispatched", "120: 老人胸闷") in log
    assert ("op", "feedback", "已送医，家属已通知") in log
    assert ("sup", "verified", "回访属实") in log


async def test_a_storm_from_one_building_is_grouped_but_never_hides_a_life_safety_case(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    storm = [
        event(device=d, kind=k, type=t)
        for d, k, t in (
            ("gas-0101", "gas", "fault"),
            ("air-0201", "air", "fault"),
            ("smoke-0102", "smoke", "tamper"),
            ("call-0101", "call", "battery_low"),
            ("air-0201", "air", "tamper"),
        )
    ]
    storm.insert(2, event(device="smoke-0102", type="alarm"))
    for body in storm:
        gw1.publish("sc/v1/gw-ld01/event", body)
    await eventually(lambda: _count(operator, 6))
    groups = (await operator.get("/api/alarms/groups")).json()
    # the smoke alarm is first and on its own; the five supervision alarms are one group
    assert groups[0]["key"] is None and groups[0]["life_safety"] and groups[0]["count"] == 1
    assert [g["key"] for g in groups[1:]] == ["ld-01/supervision"]
    assert groups[1]["count"] == 5 and groups[1]["level"] == 3 and groups[1]["unaccepted"] == 5
    smoke = next(a for a in await active(operator) if a["rule"] == "smoke_alarm")
    assert smoke["group_key"] is None and groups[0]["alarm_ids"] == [smoke["id"]]


async def _count(client: httpx.AsyncClient, n: int) -> Any:
    alarms = await active(client)
    return alarms if len(alarms) == n else None
