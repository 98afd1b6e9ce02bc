"""The duty-room API: sign-in, roles, the live stream, accept and resolve with a timeline."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.cloud.conftest import PASSWORDS, Publisher, RunningCloud, eventually, signed_in
from tests.cloud.ingest.test_ingest import active, event
from tests.servers import Mosquitto


async def read_stream(
    client: httpx.AsyncClient, want: int, timeout: float = 10, *, broker: bool = False
) -> list[tuple[str, Any]]:
    """Read server-sent events until `want` of them arrived (the `broker` state messages
    counted only if asked for)."""
    got: list[tuple[str, Any]] = []

    async def reader() -> None:
        async with client.stream("GET", "/api/alarms/stream") as resp:
            assert resp.status_code == 200
            name = "message"
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    if broker or name != "broker":
                        got.append((name, json.loads(line.split(":", 1)[1])))
                    name = "message"
                    if len(got) >= want:
                        return

    await asyncio.wait_for(reader(), timeout)
    return got


async def test_wrong_password_is_refused_and_repeated_failures_are_limited(
    cloud: RunningCloud,
) -> None:
    async with httpx.AsyncClient(base_url=cloud.url) as client:
        codes = [
            (
                await client.post("/api/login", json={"username": "op", "password": "nope"})
            ).status_code
            for _ in range(6)
        ]
        assert codes[:5] == [401] * 5 and codes[5] == 429
        # even the right password waits out the limit
        right = await client.post(
            "/api/login", json={"username": "op", "password": PASSWORDS["op"]}
        )
        assert right.status_code == 429


async def test_live_stream_snapshot_then_new_alarm_then_accept_and_resolve(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, mosquitto: Mosquitto
) -> None:
    commands: list[mqtt.MQTTMessage] = []
    gw_listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw-ld01-cmd-listener")
    gw_listener.username_pw_set("gw-ld01", mosquitto.users["gw-ld01"])
    gw_listener.on_message = lambda c, u, m: commands.append(m)
    gw_listener.connect("127.0.0.1", mosquitto.port)
    gw_listener.subscribe("sc/v1/gw-ld01/cmd/#", qos=1)
    gw_listener.loop_start()
    try:
        stream = asyncio.create_task(read_stream(operator, want=4, broker=True))
        await eventually(lambda: cloud.cloud.hub.listeners == 1)
        gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
        alarm_id = (await eventually(lambda: active(operator)))[0]["id"]
        await operator.post(f"/api/alarms/{alarm_id}/shown")
        accepted = await operator.post(f"/api/alarms/{alarm_id}/accept")
        assert accepted.status_code == 200 and accepted.json()["accepted_by"] == "op"
        events = await stream
        assert events[0] == ("snapshot", [])
        # then whether alarms can reach the board: the broker is there
        assert events[1] == ("broker", {"type": "broker", "connected": True, "down_since": None})
        assert events[2][0] == "alarm" and events[2][1]["alarm"]["state"] == "active"
        assert events[2][1]["alarm"]["level"] == 1
        assert events[3][1]["alarm"]["state"] == "accepted"

        # accepting twice is a conflict, not a second acceptance
        assert (await operator.post(f"/api/alarms/{alarm_id}/accept")).status_code == 409

        # the resident's gateway is told that help is coming
        await eventually(lambda: commands)
        assert commands[0].topic == "sc/v1/gw-ld01/cmd/call_accepted"
        assert json.loads(commands[0].payload)["device"] == "call-0101"

        resolved = await operator.post(
            f"/api/alarms/{alarm_id}/resolve", json={"outcome": "handled", "note": "已上门"}
        )
        body = resolved.json()
        assert body["state"] == "resolved" and body["outcome"] == "handled"
        stamps = [
            body[k]
            for k in (
                "device_ts",
                "received_at",
                "stored_at",
                "pushed_at",
                "shown_at",
                "accepted_at",
                "resolved_at",
            )
        ]
        assert all(stamps) and stamps[1:] == sorted(stamps[1:])
        assert await active(operator) == []

        case = (await operator.get(f"/api/alarms/{alarm_id}")).json()
        actions = [(h["actor"], h["action"]) for h in case["history"]]
        assert actions[0] == ("system", "raised")
        assert ("op", "accepted") in actions and ("op", "resolved") in actions
        assert any(a == "command" for _, a in actions)
    finally:
        gw_listener.loop_stop()
        gw_listener.disconnect()


async def test_an_installer_cannot_see_or_handle_alarms(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event())
    alarm_id = (await eventually(lambda: active(operator)))[0]["id"]
    installer = await signed_in(cloud.url, "inst")
    try:
        assert (await installer.get("/api/alarms")).status_code == 403
        assert (await installer.post(f"/api/alarms/{alarm_id}/accept")).status_code == 403
    finally:
        await installer.aclose()
    assert (await active(operator))[0]["state"] == "active"


async def test_most_severe_first_then_oldest(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="fault"))  # level III
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="alarm"))
    alarms = await eventually(lambda: _when(active(operator), 3))
    assert [(a["level"], a["rule"]) for a in alarms] == [
        (1, "call_for_help"),
        (1, "smoke_alarm"),
        (3, "device_fault"),
    ]


async def _when(coro: Any, n: int) -> Any:
    value = await coro
    return value if len(value) == n else None


async def test_stats_report_the_brokers_dropped_counter(
    cloud: RunningCloud, operator: httpx.AsyncClient
) -> None:
    # Nothing has been dropped. The session's Mosquitto may be older than the 60 s it keeps
    # its count for a newcomer (it publishes it only when it changes): the cloud then knows
    # "0" from two $SYS passes without a new count (tests/cloud/transport/test_broker_drops.py)
    stats = await eventually(
        lambda: _json_if(operator.get("/api/stats"), lambda s: s["broker_dropped"] is not None)
    )
    assert stats["broker_dropped"] == 0


async def _json_if(coro: Any, predicate: Any) -> Any:
    value = (await coro).json()
    return value if predicate(value) else None


async def test_pages_and_json_travel_compressed_and_the_live_stream_is_not_held_back(
    cloud: RunningCloud, operator: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=cloud.url) as anon:
        script = await anon.get("/static/board.js", headers={"Accept-Encoding": "gzip"})
    assert script.headers["content-encoding"] == "gzip"
    assert "EventSource" in script.text  # httpx undoes the gzip: the script itself came
    async with operator.stream("GET", "/api/alarms/stream") as stream:
        assert "content-encoding" not in stream.headers
        lines = stream.aiter_lines()
        assert await anext(lines) == "event: snapshot"  # arrives at once, not buffered


@pytest.mark.parametrize("db_backend", ["sqlite"])  # SQLite's statement trace and query plans
async def test_open_alarms_and_the_supervisors_list_are_read_through_indexes(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher
) -> None:
    """The database's one thread runs these: each must find its rows through an index
    (never a scan of every case ever), and `limit` is the database's, not a slice."""
    gw1.publish("sc/v1/gw-ld01/event", event(device="smoke-0102", type="fault"))  # level III
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    await eventually(lambda: _when(active(operator), 2))
    statements: list[str] = []
    await cloud.cloud.db.read(lambda c: c.set_trace_callback(statements.append))
    supervisor = await signed_in(cloud.url, "sup")
    try:
        first = (await operator.get("/api/alarms", params={"limit": 1})).json()
        assert [a["rule"] for a in first] == ["call_for_help"]
        assert (await supervisor.get("/api/alarms/unverified")).status_code == 200
    finally:
        await cloud.cloud.db.read(lambda c: c.set_trace_callback(None))
        await supervisor.aclose()
    reads = [s for s in statements if s.startswith("SELECT * FROM alarms WHERE")]
    assert any("LIMIT 1" in s and "state IN" in s for s in reads), reads
    assert any("verified_at IS NULL" in s for s in reads), reads

    def plans(conn: sqlite3.Connection) -> list[list[str]]:
        return [[row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {s}")] for s in reads]

    for sql, plan in zip(reads, await cloud.cloud.db.read(plans), strict=True):
        assert plan[0].startswith("SEARCH alarms USING "), (sql, plan)  # never SCAN alarms


async def test_every_response_carries_the_content_security_policy(cloud: RunningCloud) -> None:
    async with httpx.AsyncClient(base_url=cloud.url) as anon:
        for path in ("/login", "/static/board.js", "/health", "/api/alarms"):
            resp = await anon.get(path)
            policy = resp.headers.get("content-security-policy", "")
            assert "script-src 'self'" in policy, path
            for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
                assert directive in policy, (path, directive)
            assert resp.headers["x-content-type-options"] == "nosniff"
        login = (await anon.get("/login")).text
    assert "<script>" not in login and "onsubmit=" not in login  # no inline script to allow
