"""Device health through the real broker and a running cloud: what the duty room's "设备状态"
page reads. A device that reports is online with its battery and signal; one that stops past
its time is silent; an open fault alarm makes it faulty; a low battery reading or alarm makes
it low on battery; a walk test puts it under test; a gateway's last will makes it offline
since then (and its devices silent); installers may read it, strangers may not."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    eventually,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.cloud.helpers import gateway_with_last_will, rules_file
from tests.cloud.ingest.test_ingest import event
from tests.cloud.rules.test_supervision import status
from tests.servers import InfluxDB, Mosquitto


def telemetry(gateway: str, device: str, kind: str, **values: float) -> dict[str, Any]:
    return {
        "id": f"t-{uuid.uuid4()}",
        "gateway": gateway,
        "boot": "boot1",
        "seq": 1,
        "readings": [
            {
                "device": device,
                "ts": datetime.now(UTC).isoformat(),
                "kind": kind,
                "values": values,
            }
        ],
    }


def gas_quick_air_slow(data: dict[str, Any]) -> None:
    """Gas monitors are silent after 1 s; air monitors after an hour; gateways only by their
    status."""
    data["supervision"]["device_silent"]["models"] = {"gas_mcp3008": 1, "air_pms5003": 3600}
    data["supervision"]["gateway_offline"]["silent_after_s"] = 0


@pytest.fixture
async def quick(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> AsyncIterator[RunningCloud]:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(
        tmp_path,
        mosquitto,
        rules_file=rules_file(tmp_path, gas_quick_air_slow),
        tick_s=0.1,
        database=database_url,
    )
    try:
        async with running_cloud(settings) as running:
            yield running
    finally:
        forget_gateway_status(mosquitto)


async def health(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/api/devices/health")
    resp.raise_for_status()
    return dict(resp.json())


def devices(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["gateway"], d["device"]): d for b in report["buildings"] for d in b["devices"]}


def gateways(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["gateway"]: g for b in report["buildings"] for g in b["gateways"]}


async def device_when(
    client: httpx.AsyncClient, key: tuple[str, str], state: str
) -> dict[str, Any] | None:
    device = devices(await health(client))[key]
    return device if device["state"] == state else None


async def test_reporting_devices_are_online_with_battery_and_signal_and_a_quiet_one_goes_silent(
    quick: RunningCloud, gw1: Publisher
) -> None:
    client = await signed_in(quick.url, "op")
    try:
        gw1.publish("sc/v1/gw-ld01/status", status("gw-ld01", "online"), retain=True)
        gw1.publish(
            "sc/v1/gw-ld01/telemetry",
            telemetry("gw-ld01", "air-0201", "air", pm25_ugm3=12, battery_pct=87, rssi_dbm=-61),
        )
        air = await eventually(lambda: _reported(client, ("gw-ld01", "air-0201")))
        assert air["state"] == "online" and air["conditions"] == ["online"]
        assert (air["battery_pct"], air["rssi_dbm"]) == (87, -61)
        assert (air["kind"], air["silent_after_s"]) == ("air", 3600)
        assert air["home"] == "1单元201"

        # the gas monitor reports once, then says nothing past its 1 s: silent
        gw1.publish(
            "sc/v1/gw-ld01/telemetry", telemetry("gw-ld01", "gas-0101", "gas", ch4_pct_lel=1.5)
        )
        reported = datetime.now(UTC)
        gas = await eventually(lambda: _silent_since_reading(client, ("gw-ld01", "gas-0101")))
        seen = datetime.fromisoformat(gas["last_seen"])
        assert abs((seen - reported).total_seconds()) < 5
        assert gas["silent_after_s"] == 1
        assert gas["reasons"] == ["device_silent alarm open"]

        report = await health(client)
        # grouped community → grid → building, every registered device once
        [ld01] = [b for b in report["buildings"] if b["building_id"] == "ld-01"]
        assert (ld01["community"], ld01["grid"], ld01["building"]) == (
            "红星社区",
            "第一网格",
            "红星小区1栋",
        )
        assert sorted(d["device"] for d in ld01["devices"]) == [
            "air-0201",
            "call-0101",
            "gas-0101",
            "smoke-0102",
        ]
        assert sum(report["counts"].values()) == 8
        assert report["counts"]["silent"] >= 1 and report["counts"]["online"] >= 1
        gw = gateways(report)["gw-ld01"]
        assert gw["state"] == "online" and gw["since"] is not None
        assert gateways(report)["gw-ld02"]["state"] == "unknown"  # no status from it yet
    finally:
        await client.aclose()


async def test_fault_low_battery_and_walk_test(quick: RunningCloud, gw1: Publisher) -> None:
    client = await signed_in(quick.url, "op")
    installer = await signed_in(quick.url, "inst")
    try:
        # an open fault alarm: faulty
        gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="fault"))
        smoke = await eventually(lambda: device_when(client, ("gw-ld01", "smoke-0102"), "faulty"))
        assert [a["rule"] for a in smoke["alarms"]] == ["device_fault"]

        # a low battery reading (no alarm yet: the rule waits ten minutes): low battery
        gw1.publish(
            "sc/v1/gw-ld01/telemetry", telemetry("gw-ld01", "call-0101", "call", battery_pct=12)
        )
        call = await eventually(
            lambda: device_when(client, ("gw-ld01", "call-0101"), "low_battery")
        )
        assert call["battery_pct"] == 12 and call["alarms"] == []
        # a battery_low event is an alarm: low battery too
        gw1.publish(
            "sc/v1/gw-ld01/event",
            event(device="air-0201", kind="air", type="battery_low", seq=2),
        )
        air = await eventually(lambda: device_when(client, ("gw-ld01", "air-0201"), "low_battery"))
        assert [a["rule"] for a in air["alarms"]] == ["battery_low"]

        # a walk test of the gateway's call button: under test (and only that device)
        resp = await installer.post(
            "/api/walktests", json={"gateway": "gw-ld01", "devices": ["call-0101"], "minutes": 30}
        )
        assert resp.status_code == 201, resp.text
        window = resp.json()["id"]
        report = await health(installer)  # installers may read it
        call = devices(report)[("gw-ld01", "call-0101")]
        assert call["conditions"] == ["low_battery", "under_test"]
        assert (call["test_mode"], call["test_window"]) == ("walk_test", window)
        assert devices(report)[("gw-ld01", "smoke-0102")]["test_mode"] is None
        # a fault while under test is the installer's test, not a faulty device
        gw1.publish(
            "sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="fault", seq=3)
        )
        await eventually(lambda: quick.cloud.announcer.counts["test_alarms"] >= 1)
        call = devices(await health(client))[("gw-ld01", "call-0101")]
        assert "faulty" not in call["conditions"]

        # the walk test ends: no longer under test
        resp = await installer.post(f"/api/walktests/{window}/end")
        assert resp.status_code == 200, resp.text
        call = devices(await health(client))[("gw-ld01", "call-0101")]
        assert "under_test" not in call["conditions"]
    finally:
        await client.aclose()
        await installer.aclose()


async def test_a_gateways_last_will_makes_it_offline_since_and_its_devices_silent(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    forget_gateway_status(mosquitto)
    async with running_cloud(cloud_settings(tmp_path, mosquitto, database=database_url)) as running:
        client = await signed_in(running.url, "op")
        # mosquitto_sub as gw-ld02 with a retained `offline` last will, killed like a power cut
        will = json.dumps(status("gw-ld02", "offline"))
        proc = await gateway_with_last_will(
            mosquitto.port, "gw-ld02", mosquitto.users["gw-ld02"], will
        )
        cloud_client = Publisher(mosquitto, "cloud")
        gw2 = Publisher(mosquitto, "gw-ld02")
        try:
            gw2.publish("sc/v1/gw-ld02/status", status("gw-ld02", "online"), retain=True)
            online = await eventually(lambda: _gateway_when(client, "gw-ld02", "online"))
            assert online["since"] is not None
            assert proc.stdout is not None
            line = asyncio.create_task(proc.stdout.readline())
            for _ in range(100):
                await asyncio.to_thread(cloud_client.publish, "sc/v1/gw-ld02/cmd/ping", b"{}", 1)
                done, _ = await asyncio.wait({line}, timeout=0.1)
                if done:
                    break
            assert line.done(), "mosquitto_sub did not connect"
            killed = datetime.now(UTC)
            proc.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sends the last will
            await asyncio.wait_for(proc.wait(), 5)
            offline = await eventually(lambda: _gateway_when(client, "gw-ld02", "offline", True))
            since = datetime.fromisoformat(offline["since"])
            assert since >= killed.replace(microsecond=0) and since > datetime.fromisoformat(
                online["since"]
            )
            assert offline["alarm"]["rule"] == "gateway_offline"
            report = await health(client)
            ld02 = [d for (gw, _), d in devices(report).items() if gw == "gw-ld02"]
            assert {d["state"] for d in ld02} == {"silent"}
            assert all(d["reasons"] == ["gateway gw-ld02 offline"] for d in ld02)
            assert report["gateway_counts"]["offline"] == 1
        finally:
            gw2.close()
            cloud_client.close()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await client.aclose()
    forget_gateway_status(mosquitto)


async def _reported(client: httpx.AsyncClient, key: tuple[str, str]) -> dict[str, Any] | None:
    device = devices(await health(client))[key]
    return device if device["last_seen"] else None


async def _silent_since_reading(
    client: httpx.AsyncClient, key: tuple[str, str]
) -> dict[str, Any] | None:
    """Silent, heard before, and the cloud's device_silent alarm is open on it."""
    device = devices(await health(client))[key]
    alarms = [a["rule"] for a in device["alarms"]]
    ok = device["state"] == "silent" and device["last_seen"] and "device_silent" in alarms
    return device if ok else None


async def _gateway_when(
    client: httpx.AsyncClient, gateway: str, state: str, alarm: bool = False
) -> dict[str, Any] | None:
    found = gateways(await health(client))[gateway]
    return found if found["state"] == state and (found["alarm"] or not alarm) else None


async def test_every_role_may_read_it_and_strangers_may_not(cloud: RunningCloud) -> None:
    for user in ("op", "sup", "inst", "adm"):
        client = await signed_in(cloud.url, user)
        try:
            resp = await client.get("/api/devices/health")
            assert resp.status_code == 200, (user, resp.text)
        finally:
            await client.aclose()
    async with httpx.AsyncClient(base_url=cloud.url) as stranger:
        resp = await stranger.get("/api/devices/health")
        assert resp.status_code == 401
        assert resp.json()["detail"] == "sign in first"


async def test_with_the_telemetry_store_down_the_report_still_comes_and_says_so(
    tmp_path: Path, mosquitto: Mosquitto, gw1: Publisher, database_url: str
) -> None:
    server = InfluxDB(tmp_path / "influx")
    server.start()
    forget_gateway_status(mosquitto)
    settings = cloud_settings(
        tmp_path,
        mosquitto,
        telemetry_url=f"influx://127.0.0.1:{server.port}/telemetry",
        database=database_url,
    )
    try:
        async with running_cloud(settings) as running:
            client = await signed_in(running.url, "op")
            try:
                gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="fault"))
                await eventually(lambda: device_when(client, ("gw-ld01", "smoke-0102"), "faulty"))
                server.stop()
                report = await health(client)
                assert "unreachable" in report["store_error"]
                assert devices(report)[("gw-ld01", "smoke-0102")]["state"] == "faulty"
                assert sum(report["counts"].values()) == 8
                # the trend cannot be drawn: 503 with the store's reason
                resp = await client.get(
                    "/api/trends", params={"building": "ld-01", "field": "co2_ppm", "range": "1h"}
                )
                assert resp.status_code == 503 and "unreachable" in resp.json()["detail"]
            finally:
                await client.aclose()
    finally:
        server.stop()


async def test_a_device_and_a_gateway_back_after_their_accepted_alarm_are_online_again(
    quick: RunningCloud, gw1: Publisher, mosquitto: Mosquitto
) -> None:
    """The operator accepted the device_silent and gateway_offline alarms; the device and the
    gateway then came back (the cases stay open until the operator closes them, marked
    cleared): the page says online, not silent/offline, and still lists the open cases."""
    client = await signed_in(quick.url, "op")
    gw2 = Publisher(mosquitto, "gw-ld02")
    key = ("gw-ld01", "gas-0101")
    try:
        gw1.publish("sc/v1/gw-ld01/status", status("gw-ld01", "online"), retain=True)
        gw1.publish("sc/v1/gw-ld01/telemetry", telemetry(*key, "gas", ch4_pct_lel=1.5))
        silent = await eventually(lambda: _silent_since_reading(client, key))
        [alarm] = [a for a in silent["alarms"] if a["rule"] == "device_silent"]
        assert (await client.post(f"/api/alarms/{alarm['id']}/accept")).status_code == 200

        gw2.publish("sc/v1/gw-ld02/status", status("gw-ld02", "offline"), retain=True)
        down = await eventually(lambda: _gateway_when(client, "gw-ld02", "offline", True))
        assert (await client.post(f"/api/alarms/{down['alarm']['id']}/accept")).status_code == 200
        gw2.publish("sc/v1/gw-ld02/status", status("gw-ld02", "online"), retain=True)

        async def reporting() -> None:  # the gas monitor reports again, well within its 1 s
            while True:  # off the event loop, which the cloud under test shares
                reading = telemetry(*key, "gas", ch4_pct_lel=1.2)
                await asyncio.to_thread(gw1.publish, "sc/v1/gw-ld01/telemetry", reading)
                await asyncio.sleep(0.2)

        task = asyncio.create_task(reporting())
        try:
            back = await eventually(lambda: device_when(client, key, "online"))
            assert back["reasons"] == []
            assert [a["id"] for a in back["alarms"]] == [alarm["id"]]  # the case is still open
            case = (await client.get(f"/api/alarms/{alarm['id']}")).json()["alarm"]
            assert case["state"] == "accepted" and case["cleared_at"] is not None
        finally:
            task.cancel()
        up = await eventually(lambda: _gateway_when(client, "gw-ld02", "online"))
        assert up["alarm"] is None
        report = await health(client)
        assert {d["state"] for (gw, _), d in devices(report).items() if gw == "gw-ld02"} != {
            "silent"
        }
    finally:
        gw2.close()
        await client.aclose()


async def test_installers_see_device_states_but_not_the_alarms_behind_them(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    """/api/alarms is the duty room's; the health page must not show installers the open
    alarms' titles (a resident's home) either: the states and reasons stay."""
    gw1.publish("sc/v1/gw-ld01/event", event(device="gas-0101", kind="gas", type="fault"))
    key = ("gw-ld01", "gas-0101")
    duty = await eventually(lambda: device_when(operator, key, "faulty"))
    assert [a["title_zh"] for a in duty["alarms"]] and (await health(operator))["alarms_shown"]
    installer = await signed_in(cloud.url, "inst")
    try:
        assert (await installer.get("/api/alarms")).status_code == 403
        report = await health(installer)
        seen = devices(report)[key]
        assert (seen["state"], seen["reasons"]) == ("faulty", duty["reasons"])
        assert report["alarms_shown"] is False
        assert all(d["alarms"] == [] for d in devices(report).values())
        assert all(g["alarm"] is None for g in gateways(report).values())
        assert "title_zh" not in json.dumps(report)
    finally:
        await installer.aclose()
