"""Trends through the real broker and a running cloud, on both telemetry stores (SQLite and a
real InfluxDB 1.x): readings published as a gateway come back as bucket means for a device, a
home and a building (one labelled line per device, one time axis), over the hour, day or week;
the limit lines are the rules file's; bad input is refused with a reason; strangers get 401.
Also the stores' `latest()`, which the device health page reads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.telemetry.base import Sample, TelemetryStore
from cloud.telemetry.open import open_store
from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    eventually,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.cloud.helpers import default_rules_dict, rules_file
from tests.servers import InfluxDB, Mosquitto


def _telemetry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'telemetry.db'}"
    server: InfluxDB = request.getfixturevalue("influxdb")
    return f"influx://127.0.0.1:{server.port}/t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "influx"])
async def cloud_on(
    request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> AsyncIterator[RunningCloud]:
    """A running cloud whose telemetry store is SQLite, then InfluxDB (on each database)."""
    forget_gateway_status(mosquitto)
    settings = cloud_settings(
        tmp_path,
        mosquitto,
        telemetry_url=_telemetry_url(request, tmp_path),
        database=database_url,
    )
    async with running_cloud(settings) as running:
        yield running


@pytest.fixture
async def op(cloud_on: RunningCloud) -> AsyncIterator[httpx.AsyncClient]:
    client = await signed_in(cloud_on.url, "op")
    yield client
    await client.aclose()


def batch(
    gateway: str, readings: list[tuple[str, str, datetime, dict[str, float]]]
) -> dict[str, Any]:
    return {
        "id": f"t-{uuid.uuid4()}",
        "gateway": gateway,
        "boot": "boot1",
        "seq": 1,
        "readings": [
            {"device": device, "kind": kind, "ts": ts.isoformat(), "values": values}
            for device, kind, ts, values in readings
        ],
    }


def minute(offset: int) -> datetime:
    """The start of the minute `offset` minutes from this one."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now + timedelta(minutes=offset)


async def trend(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    resp = await client.get("/api/trends", params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def has_points(client: httpx.AsyncClient, n: int, **params: str) -> dict[str, Any] | None:
    body = await trend(client, **params)
    return body if len(body["times"]) == n else None


async def test_a_devices_readings_come_back_as_bucket_means(
    cloud_on: RunningCloud, op: httpx.AsyncClient, gw1: Publisher
) -> None:
    a, b = minute(-5), minute(-3)
    gw1.publish(
        "sc/v1/gw-ld01/telemetry",
        batch(
            "gw-ld01",
            [
                ("gas-0101", "gas", a + timedelta(seconds=10), {"ch4_pct_lel": 2.0}),
                ("gas-0101", "gas", a + timedelta(seconds=40), {"ch4_pct_lel": 4.0}),
                ("gas-0101", "gas", b + timedelta(seconds=5), {"ch4_pct_lel": 6.5}),
                # two days ago: in the week, not in the day
                ("gas-0101", "gas", minute(-2 * 24 * 60), {"ch4_pct_lel": 1.0}),
            ],
        ),
    )
    params = {"gateway": "gw-ld01", "device": "gas-0101", "field": "ch4_pct_lel"}
    hour = await eventually(lambda: has_points(op, 2, range="1h", **params))
    assert hour["times"] == [int(a.timestamp()), int(b.timestamp())]
    [series] = hour["series"]
    assert series["values"] == [3.0, 6.5]
    assert (series["label"], series["home"]) == ("gas-0101", "1单元101")
    assert (hour["scope"], hour["target"], hour["bucket_s"], hour["unit"]) == (
        "device",
        "gw-ld01/gas-0101",
        60,
        "%LEL",
    )

    day = await trend(op, range="1d", **params)
    assert day["bucket_s"] == 900
    assert len(day["times"]) in (1, 2)  # a and b share a 15 min bucket unless one starts between
    assert sum(v for v in day["series"][0]["values"] if v is not None) > 0
    week = await trend(op, range="1w", **params)
    assert week["bucket_s"] == 3600
    old = int(minute(-2 * 24 * 60).timestamp()) // 3600 * 3600
    assert week["times"][0] == old
    assert week["series"][0]["values"][0] == 1.0
    # a year of daily means (read from the hourly aggregates and the raw points not rolled up
    # yet): the day two days ago has the old reading alone, today's the three new ones
    year = await trend(op, range="1y", **params)
    assert year["bucket_s"] == 86400
    days = dict(zip(year["times"], year["series"][0]["values"], strict=True))
    assert days[int(minute(-2 * 24 * 60).timestamp()) // 86400 * 86400] == 1.0
    today = int(b.timestamp()) // 86400 * 86400
    if int(a.timestamp()) // 86400 * 86400 == today:  # not across midnight UTC
        assert days[today] == pytest.approx((2.0 + 4.0 + 6.5) / 3)

    # the same device on the other gateway has its own line, and nothing here
    other = await trend(op, range="1h", gateway="gw-ld02", device="gas-0101", field="ch4_pct_lel")
    assert other["times"] == [] and [s["values"] for s in other["series"]] == [[]]


async def test_home_and_building_are_one_labelled_line_per_device(
    cloud_on: RunningCloud, op: httpx.AsyncClient, gw1: Publisher
) -> None:
    a, b = minute(-10), minute(-4)
    gw1.publish(
        "sc/v1/gw-ld01/telemetry",
        batch(
            "gw-ld01",
            [
                ("call-0101", "call", a + timedelta(seconds=1), {"battery_pct": 80}),
                ("call-0101", "call", a + timedelta(seconds=30), {"battery_pct": 90}),
                ("air-0201", "air", b + timedelta(seconds=2), {"battery_pct": 50, "pm25_ugm3": 35}),
                ("gas-0101", "gas", b + timedelta(seconds=3), {"ch4_pct_lel": 1.25}),
            ],
        ),
    )
    building = await eventually(
        lambda: has_points(op, 2, range="1h", building="ld-01", field="battery_pct")
    )
    assert building["times"] == [int(a.timestamp()), int(b.timestamp())]
    lines = {s["label"]: s["values"] for s in building["series"]}
    assert lines == {"1单元101 call-0101": [85.0, None], "1单元201 air-0201": [None, 50.0]}
    assert (building["scope"], building["target_name"]) == ("building", "红星小区1栋")

    # the home h-01-0101 has the call button and the gas monitor: methane is the gas monitor's
    home = await trend(op, range="1h", home="h-01-0101", field="ch4_pct_lel")
    assert [(s["label"], s["values"]) for s in home["series"]] == [("1单元101 gas-0101", [1.25])]
    assert home["target_name"] == "红星小区1栋 1单元101"
    # a building with nothing of that field: no line, and nothing to draw
    empty = await trend(op, range="1h", building="ld-02", field="pm25_ugm3")
    assert (empty["series"], empty["times"]) == ([], [])


def rule_steps(rule: str) -> list[tuple[float, int]]:
    [found] = [r for r in default_rules_dict()["thresholds"] if r["rule"] == rule]
    return [(next(v for k, v in s.items() if k != "level"), s["level"]) for s in found["levels"]]


@pytest.mark.parametrize("cloud_on", ["sqlite"], indirect=True)
async def test_limit_lines_are_the_rules_in_force(op: httpx.AsyncClient) -> None:
    methane = await trend(op, range="1h", building="ld-01", field="ch4_pct_lel")
    assert [(x["value"], x["level"]) for x in methane["limits"]] == rule_steps("methane_high")
    assert [x["label_zh"] for x in methane["limits"]] == [
        "甲烷浓度超标 ≥10 %LEL Ⅱ级",
        "甲烷浓度超标 ≥25 %LEL Ⅰ级",
    ]
    pm25 = await trend(op, range="1d", building="ld-01", field="pm25_ugm3")
    assert [(x["value"], x["level"]) for x in pm25["limits"]] == rule_steps("pm25_24h")
    first = pm25["limits"][0]
    assert (first["standard"], first["window_s"], first["direction"]) == (
        "GB/T 18883-2022",
        86400,
        "above",
    )
    assert first["label_zh"] == "GB/T 18883-2022 24小时均值 >50 µg/m³ Ⅳ级"
    assert first["label_en"] == "GB/T 18883-2022 24 h mean >50 µg/m³ level IV"
    for field, rule in [
        ("pm10_ugm3", "pm10_24h"),
        ("co2_ppm", "co2_1h"),
        ("hcho_mgm3", "hcho_1h"),
        ("tvoc_mgm3", "tvoc_8h"),
    ]:
        body = await trend(op, range="1w", building="ld-02", field=field)
        assert [(x["value"], x["level"]) for x in body["limits"]] == rule_steps(rule), field
        assert {x["standard"] for x in body["limits"]} == {"GB/T 18883-2022"}
    temperature = await trend(op, range="1h", building="ld-01", field="temp_c")
    assert temperature["limits"] == []  # a rate rule, not a limit


@pytest.mark.parametrize("cloud_on", ["sqlite"], indirect=True)
async def test_bad_input_is_refused_with_a_reason(
    cloud_on: RunningCloud, op: httpx.AsyncClient
) -> None:
    async def refused(code: int, **params: str) -> str:
        resp = await op.get("/api/trends", params=params)
        assert resp.status_code == code, (params, resp.text)
        return str(resp.json()["detail"])

    assert "ch4_pct_lel" in await refused(422, range="1h", building="ld-01", field="methane")
    assert "'1h', '1d', '1w', '30d' or '1y'" in await refused(
        422, range="2h", building="ld-01", field="co2_ppm"
    )
    assert "no building 'ld-99'" in await refused(
        404, range="1h", building="ld-99", field="co2_ppm"
    )
    assert "no home 'h-nope'" in await refused(404, range="1h", home="h-nope", field="co2_ppm")
    assert "no device 'gas-9'" in await refused(
        404, range="1h", gateway="gw-ld01", device="gas-9", field="co2_ppm"
    )
    assert "both gateway and device" in await refused(
        422, range="1h", gateway="gw-ld01", field="co2_ppm"
    )
    assert "exactly one" in await refused(
        422, range="1h", building="ld-01", home="h-01-0101", field="co2_ppm"
    )
    assert "exactly one" in await refused(422, range="1h", field="co2_ppm")

    async with httpx.AsyncClient(base_url=cloud_on.url) as stranger:
        for path in ("/api/trends?range=1h&building=ld-01&field=co2_ppm", "/api/trends/targets"):
            resp = await stranger.get(path)
            assert resp.status_code == 401, path
    installer = await signed_in(cloud_on.url, "inst")
    try:
        resp = await installer.get("/api/trends/targets")
        assert resp.status_code == 200
        body = resp.json()
        assert [b["building_id"] for b in body["buildings"]] == ["ld-01", "ld-02"]
        homes = {h["home_id"]: h for b in body["buildings"] for h in b["homes"]}
        assert [d["device"] for d in homes["h-01-0101"]["devices"]] == ["call-0101", "gas-0101"]
        assert "ch4_pct_lel" in {f["field"] for f in body["fields"]}
        resp = await installer.get(
            "/api/trends", params={"range": "1h", "building": "ld-01", "field": "co2_ppm"}
        )
        assert resp.status_code == 200
    finally:
        await installer.aclose()


# ---- the stores' newest point per series (read by the device health page) -------------------


@pytest.fixture(params=["sqlite", "influx"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TelemetryStore]:
    opened = open_store(_telemetry_url(request, tmp_path))
    yield opened
    await opened.close()


async def test_latest_is_the_newest_point_of_each_series_since(store: TelemetryStore) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    await store.write(
        [
            Sample("gw-ld01", "gas-0101", "gas", "ch4_pct_lel", now - timedelta(seconds=30), 1.0),
            Sample("gw-ld01", "gas-0101", "gas", "ch4_pct_lel", now - timedelta(seconds=10), 2.5),
            Sample("gw-ld01", "air-0201", "air", "battery_pct", now - timedelta(seconds=5), 77),
            Sample("gw-ld01", "air-0201", "air", "rssi_dbm", now - timedelta(days=3), -70),
            Sample("gw-ld02", "gas-0101", "gas", "ch4_pct_lel", now - timedelta(seconds=20), 9),
        ]
    )
    found = {
        (p.gateway, p.device, p.field): (p.ts, p.value)
        for p in await store.latest(since=now - timedelta(days=1))
    }
    assert found == {
        ("gw-ld01", "gas-0101", "ch4_pct_lel"): (now - timedelta(seconds=10), 2.5),
        ("gw-ld01", "air-0201", "battery_pct"): (now - timedelta(seconds=5), 77.0),
        ("gw-ld02", "gas-0101", "ch4_pct_lel"): (now - timedelta(seconds=20), 9.0),
    }
    assert await store.latest(since=now + timedelta(seconds=1)) == []


def _methane_for_one_model(data: dict[str, Any]) -> None:
    """A stricter methane variant for a model none of the demo street's buildings has."""
    [methane] = [r for r in data["thresholds"] if r["rule"] == "methane_high"]
    data["thresholds"].append(
        {**methane, "models": ["gas_catalytic_x"], "levels": [{"at_or_above": 9, "level": 2}]}
    )


async def test_a_limit_for_certain_models_is_drawn_only_where_those_models_are(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(
        tmp_path,
        mosquitto,
        rules_file=rules_file(tmp_path, _methane_for_one_model),
        database=database_url,
    )
    async with running_cloud(settings) as running:
        client = await signed_in(running.url, "op")
        try:
            methane = await trend(client, range="1h", building="ld-01", field="ch4_pct_lel")
        finally:
            await client.aclose()
    # ld-01's gas monitor is a gas_mcp3008: only the rule for every model applies there
    assert [(x["value"], x["models"]) for x in methane["limits"]] == [(10, None), (25, None)]
