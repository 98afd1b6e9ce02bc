"""Supervision through the real broker: a gateway's retained status and last will make one
gateway_offline alarm that mutes its devices' silence and closes by itself when it is back;
silent devices, faults and restores; and a restore never pages."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.cloud.conftest import (
    Publisher,
    cloud_settings,
    eventually,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.cloud.helpers import gateway_with_last_will, rules_file
from tests.cloud.ingest.test_ingest import active, event
from tests.servers import Mosquitto


def status(gateway: str, state: str) -> dict[str, Any]:
    return {"gateway": gateway, "state": state, "boot": "b1", "ts": datetime.now(UTC).isoformat()}


def quick_fault_clear(data: dict[str, Any]) -> None:
    """A device's fault clears at its restore at once (no hold)."""
    for rule in data["events"]:
        if rule["rule"] == "device_fault":
            rule["clear_hold_s"] = 0


def quick_supervision(data: dict[str, Any]) -> None:
    """Devices silent after 1 s; gateways only by their status (no silence timer)."""
    data["supervision"]["device_silent"]["models"] = {"gas_mcp3008": 1, "air_pms5003": 1}
    data["supervision"]["gateway_offline"]["silent_after_s"] = 0
    for rule in data["events"]:
        if rule["rule"] == "device_fault":
            rule["clear_hold_s"] = 0


async def by_rule(client: httpx.AsyncClient) -> dict[tuple[str, str], dict[str, Any]]:
    return {(a["rule"], a["device"]): a for a in await active(client)}


async def test_an_offline_gateway_is_one_alarm_muting_its_devices_and_clears_when_back(
    tmp_path: Path, mosquitto: Mosquitto, gw1: Publisher, database_url: str
) -> None:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(
        tmp_path,
        mosquitto,
        rules_file=rules_file(tmp_path, quick_supervision),
        tick_s=0.1,
        database=database_url,
    )
    gw1.publish("sc/v1/gw-ld01/status", status("gw-ld01", "offline"), retain=True)
    try:
        async with running_cloud(settings) as running:
            client = await signed_in(running.url, "op")
            try:
                # gw-ld02 is online but its gas and air monitors say nothing: silent
                alarms = await eventually(lambda: _when(by_rule(client), 3))
                assert set(alarms) == {
                    ("gateway_offline", "gw-ld01"),
                    ("device_silent", "gas-0101"),
                    ("device_silent", "air-0101"),
                }
                assert {a["gateway"] for k, a in alarms.items() if k[0] == "device_silent"} == {
                    "gw-ld02"
                }
                offline = alarms[("gateway_offline", "gw-ld01")]
                assert (offline["level"], offline["kind"], offline["building"]) == (
                    2,
                    "gateway",
                    "红星小区1栋",
                )
                assert offline["group_key"] == "ld-01/supervision"
                case = (await client.get(f"/api/alarms/{offline['id']}")).json()
                muted = [h["detail"] for h in case["history"] if h["action"] == "inhibited"]
                assert sorted(muted) == [
                    "device_silent of gw-ld01/air-0201 muted while this is open",
                    "device_silent of gw-ld01/gas-0101 muted while this is open",
                ]
                assert running.cloud.ingest.counts["inhibited"] >= 2

                # back online: the alarm closes by itself, recorded as cleared
                gw1.publish("sc/v1/gw-ld01/status", status("gw-ld01", "online"), retain=True)
                closed = await eventually(lambda: _closed(client, offline["id"]))
                assert (closed["outcome"], closed["resolved_by"]) == ("cleared", "system")
                # a reading from gw-ld02's gas monitor: heard again, its silence alarm closes
                gw1_ld02 = Publisher(mosquitto, "gw-ld02")
                try:
                    gw1_ld02.publish(
                        "sc/v1/gw-ld02/telemetry",
                        {
                            "id": "batch-0001-abc",
                            "gateway": "gw-ld02",
                            "boot": "b",
                            "seq": 1,
                            "readings": [
                                {
                                    "device": "gas-0101",
                                    "ts": datetime.now(UTC).isoformat(),
                                    "kind": "gas",
                                    "values": {"ch4_pct_lel": 1.0},
                                }
                            ],
                        },
                    )
                finally:
                    gw1_ld02.close()
                # its silence alarm closes (by id: silent again 1 s later, a new one may be open)
                silent = alarms[("device_silent", "gas-0101")]
                closed = await eventually(lambda: _closed(client, silent["id"]))
                assert (closed["outcome"], closed["resolved_by"]) == ("cleared", "system")
            finally:
                await client.aclose()
    finally:
        forget_gateway_status(mosquitto)


async def test_the_last_will_of_a_gateway_that_dies_raises_the_alarm(
    tmp_path: Path, mosquitto: Mosquitto, operator: httpx.AsyncClient
) -> None:
    # mosquitto_sub as a gateway with a last will (retained `offline`), killed like a power cut
    will = json.dumps(status("gw-ld02", "offline"))
    proc = await gateway_with_last_will(mosquitto.port, "gw-ld02", mosquitto.users["gw-ld02"], will)
    cloud_client = Publisher(mosquitto, "cloud")
    try:
        # it is connected once a command sent to gw-ld02 comes out of it
        assert proc.stdout is not None
        line = asyncio.create_task(proc.stdout.readline())
        for _ in range(100):
            await asyncio.to_thread(cloud_client.publish, "sc/v1/gw-ld02/cmd/ping", b"{}", 1)
            done, _ = await asyncio.wait({line}, timeout=0.1)
            if done:
                break
        assert line.done(), "mosquitto_sub did not connect"
        proc.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sends the last will
        await asyncio.wait_for(proc.wait(), 5)
        alarms = await eventually(lambda: active(operator))
        assert [(a["rule"], a["gateway"], a["level"]) for a in alarms] == [
            ("gateway_offline", "gw-ld02", 2)
        ]
    finally:
        cloud_client.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        forget_gateway_status(mosquitto)


async def test_a_fault_is_an_alarm_and_its_restore_closes_it_but_never_pages(
    tmp_path: Path, mosquitto: Mosquitto, gw1: Publisher, database_url: str
) -> None:
    # the shipped silence limits (minutes): a 1 s limit would raise the gas and air
    # monitors' silence while a loaded machine is slow to get here
    settings = cloud_settings(
        tmp_path,
        mosquitto,
        rules_file=rules_file(tmp_path, quick_fault_clear),
        database=database_url,
    )
    async with running_cloud(settings) as running:
        client = await signed_in(running.url, "op")
        try:
            gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="restore"))
            await eventually(lambda: running.cloud.ingest.counts["events"] == 1)
            assert await active(client) == []  # a restore alone: nothing
            gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="fault"))
            [fault] = await eventually(lambda: active(client))
            assert (fault["rule"], fault["level"]) == ("device_fault", 3)
            gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="restore"))
            closed = await eventually(lambda: _closed(client, fault["id"]))
            assert closed["outcome"] == "cleared"
            assert await active(client) == []
        finally:
            await client.aclose()


async def _when(coro: Any, n: int) -> Any:
    value = await coro
    return value if len(value) == n else None


async def _closed(client: httpx.AsyncClient, alarm_id: int) -> dict[str, Any] | None:
    alarm = (await client.get(f"/api/alarms/{alarm_id}")).json()["alarm"]
    return alarm if alarm["state"] == "resolved" else None
