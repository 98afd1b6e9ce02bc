"""Ingest through the real broker: alarms raised, duplicates ignored, bad input rejected."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.cloud.conftest import Publisher, RunningCloud, eventually, rejections_kept, signed_in
from tests.servers import Mosquitto


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "gateway": "gw-ld01",
        "device": "smoke-0102",
        "boot": "boot1",
        "seq": 1,
        "ts": datetime.now(UTC).isoformat(),
        "kind": "smoke",
        "type": "alarm",
    }
    body.update(overrides)
    return body


async def active(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    resp = await client.get("/api/alarms")
    resp.raise_for_status()
    return resp.json()


async def test_mosquitto_pub_smoke_event_raises_level_one_alarm(
    cloud: RunningCloud, operator: httpx.AsyncClient, mosquitto: Mosquitto
) -> None:
    payload = json.dumps(event())
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(mosquitto.port),
            "-u",
            "gw-ld01",
            "-P",
            mosquitto.users["gw-ld01"],
            "-q",
            "1",
            "-t",
            "sc/v1/gw-ld01/event",
            "-m",
            payload,
        ],
        check=True,
        timeout=10,
    )
    alarms = await eventually(lambda: active(operator))
    assert len(alarms) == 1
    alarm = alarms[0]
    assert (alarm["level"], alarm["level_name"], alarm["kind"]) == (1, "I", "smoke")
    assert alarm["building"] == "红星小区1栋" and alarm["home"] == "1单元102"
    assert alarm["grid"] == "第一网格" and alarm["community"] == "红星社区"
    # the timeline is kept from the first moment
    assert alarm["device_ts"] and alarm["received_at"] and alarm["stored_at"]
    assert alarm["received_at"] <= alarm["stored_at"]


async def test_same_event_delivered_twice_makes_one_alarm(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    body = event(device="call-0101", kind="call", type="press")
    gw1.publish("sc/v1/gw-ld01/event", body)
    gw1.publish("sc/v1/gw-ld01/event", body)
    await eventually(lambda: cloud.cloud.ingest.counts["duplicates"] == 1)
    alarms = await active(operator)
    assert [a["kind"] for a in alarms] == ["call"]
    assert alarms[0]["repeats"] == 0
    assert cloud.cloud.ingest.counts["events"] == 1


async def test_repeated_presses_count_on_the_one_open_alarm(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    for seq in range(3):
        gw1.publish(
            "sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press", seq=seq)
        )
    await eventually(lambda: cloud.cloud.ingest.counts["events"] == 3)
    alarms = await active(operator)
    assert len(alarms) == 1 and alarms[0]["repeats"] == 2


async def test_bad_input_is_rejected_with_a_reason_and_never_an_alarm(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    bad: list[tuple[bytes | dict[str, Any], str]] = [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00", "malformed_json"),
        (event(extra_field=1), "invalid"),
        (event(ts="2026-11-22 10:00:00"), "invalid"),  # no offset
        (event(values={"ch4_ppm": 3}), "invalid"),  # unknown unit
        (event(kind="nuclear"), "invalid"),
        (event(gateway="gw-ld02"), "gateway_mismatch"),  # spoofing another gateway
        (event(device="smoke-9999"), "unknown_device"),
        (json.dumps(event()).encode() + b" " * 5000, "oversize"),
    ]
    for payload, _ in bad:
        gw1.publish("sc/v1/gw-ld01/event", payload)
    expected: dict[str, int] = {}
    for _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    await eventually(lambda: dict(cloud.cloud.rejects.counts) == expected)
    await eventually(lambda: rejections_kept(cloud, len(bad)))
    assert await active(operator) == []

    admin = await signed_in(cloud.url, "adm")  # raw payloads: admins only
    kept = (await admin.get("/api/rejected")).json()
    await admin.aclose()
    assert len(kept) == len(bad)
    mismatch = next(r for r in kept if r["reason"] == "gateway_mismatch")
    assert "gw-ld02" in mismatch["detail"] and '"gateway": "gw-ld02"' in mismatch["payload"]
    invalid = [r["detail"] for r in kept if r["reason"] == "invalid"]
    assert any("extra_field" in d for d in invalid)
    assert any("ts" in d for d in invalid)

    # and ingest carries on: a good event still raises its alarm
    gw1.publish("sc/v1/gw-ld01/event", event())
    alarms = await eventually(lambda: active(operator))
    assert alarms[0]["kind"] == "smoke"


async def test_unregistered_gateway_is_rejected(
    cloud: RunningCloud, operator: httpx.AsyncClient, mosquitto: Mosquitto
) -> None:
    mosquitto.add_user("gw-rogue")
    mosquitto.reload()
    rogue = Publisher(mosquitto, "gw-rogue")
    try:
        rogue.publish("sc/v1/gw-rogue/event", event(gateway="gw-rogue"))
        await eventually(lambda: cloud.cloud.rejects.counts["unknown_gateway"] == 1)
    finally:
        rogue.close()
    assert await active(operator) == []


async def test_methane_readings_raise_graded_alarm_and_are_stored(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    def batch(pct: float) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        return {
            "id": str(uuid.uuid4()),
            "gateway": "gw-ld01",
            "boot": "boot1",
            "seq": 5,
            "readings": [
                {"device": "gas-0101", "ts": now, "kind": "gas", "values": {"ch4_pct_lel": pct}}
            ],
        }

    gw1.publish("sc/v1/gw-ld01/telemetry", batch(4.0))
    await eventually(lambda: cloud.cloud.ingest.counts["samples_stored"] == 1)
    assert await active(operator) == []  # below the level II threshold

    gw1.publish("sc/v1/gw-ld01/telemetry", batch(12.0))
    alarms = await eventually(lambda: active(operator))
    assert (alarms[0]["rule"], alarms[0]["level"]) == ("methane_high", 2)

    gw1.publish("sc/v1/gw-ld01/telemetry", batch(30.0))
    alarms = await eventually(
        lambda: _first_if(active(operator), lambda a: a and a[0]["level"] == 1)
    )
    assert len(alarms) == 1 and alarms[0]["value"] == 30.0 and alarms[0]["repeats"] == 1

    points = await eventually(
        lambda: _json(
            operator.get(
                "/api/telemetry",
                params={"gateway": "gw-ld01", "device": "gas-0101", "field": "ch4_pct_lel"},
            ),
            lambda p: len(p) == 3,
        )
    )
    assert sorted(p["value"] for p in points) == [4.0, 12.0, 30.0]


async def _first_if(coro: Any, predicate: Any) -> Any:
    value = await coro
    return value if predicate(value) else None


async def _json(coro: Any, predicate: Any) -> Any:
    resp = await coro
    resp.raise_for_status()
    value = resp.json()
    return value if predicate(value) else None


async def test_events_sent_while_the_cloud_is_down_arrive_when_it_returns(
    tmp_path: Any, mosquitto: Mosquitto, gw1: Publisher, database_url: str
) -> None:
    from tests.cloud.conftest import cloud_settings, running_cloud, signed_in

    settings = cloud_settings(tmp_path, mosquitto, database=database_url)
    async with running_cloud(settings) as first:
        client = await signed_in(first.url, "op")
        gw1.publish("sc/v1/gw-ld01/event", event())
        before = await eventually(lambda: active(client))
        await client.aclose()
    # the cloud is down; its persistent session at the broker keeps what arrives meanwhile
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    async with running_cloud(settings) as second:
        client = await signed_in(second.url, "op")
        try:
            alarms = await eventually(lambda: _first_if(active(client), lambda a: len(a) == 2))
        finally:
            await client.aclose()
    assert {a["rule"] for a in alarms} == {"smoke_alarm", "call_for_help"}
    assert before[0]["id"] in {a["id"] for a in alarms}  # stored alarms survive the restart


async def test_readings_reach_an_influxdb_server_through_ingest(
    tmp_path: Any, mosquitto: Mosquitto, influxdb: Any, gw1: Publisher, database_url: str
) -> None:
    from tests.cloud.conftest import cloud_settings, running_cloud, signed_in

    port = influxdb.url.rsplit(":", 1)[1]
    settings = cloud_settings(
        tmp_path,
        mosquitto,
        # a database of its own: the points of the run on the other backend are not these
        telemetry_url=f"influx://127.0.0.1:{port}/ingest_{uuid.uuid4().hex[:12]}",
        database=database_url,
    )
    async with running_cloud(settings) as running:
        client = await signed_in(running.url, "op")
        try:
            readings = [
                {
                    "device": "air-0201",
                    "ts": datetime.now(UTC).isoformat(),
                    "kind": "air",
                    "values": {"pm25_ugm3": 35.0, "pm10_ugm3": 60.0, "co2_ppm": 650},
                }
            ]
            gw1.publish(
                "sc/v1/gw-ld01/telemetry",
                {
                    "id": str(uuid.uuid4()),
                    "gateway": "gw-ld01",
                    "boot": "b",
                    "seq": 1,
                    "readings": readings,
                },
            )
            params = {"gateway": "gw-ld01", "device": "air-0201", "field": "co2_ppm"}
            points = await eventually(
                lambda: _json(client.get("/api/telemetry", params=params), lambda p: p)
            )
            # the points can be readable a moment before ingest counts the write as done
            await eventually(lambda: running.cloud.ingest.counts["samples_stored"] == 3)
        finally:
            await client.aclose()
    assert [p["value"] for p in points] == [650.0]
    assert running.cloud.ingest.counts["samples_stored"] == 3
