"""The cloud survives its broker: without one (at start-up or after a crash) the web app keeps
serving and says since when the broker is missing; ingest retries with capped back-off and
consumes again once the broker is back, starting with what waited in its persistent session.

Each test has a broker of its own (real Mosquitto), which it starts late, kills (-9, by its
pid) or keeps the cloud out of (its account removed, then restored with a reload).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.transport.broker_link import Backoff
from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    eventually,
    running_cloud,
    signed_in,
)
from tests.cloud.helpers import rules_file
from tests.cloud.ingest.test_ingest import active, event
from tests.cloud.web.test_duty_api import _when, read_stream
from tests.servers import REPO, Mosquitto, free_port

#: Fast retries for the tests (the default is 1 s doubling up to 30 s).
RETRY_MIN_S, RETRY_MAX_S = 0.1, 1.0


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A broker of this test's own, with the cloud's and one gateway's accounts, not started:
    its port is chosen, so the cloud can be pointed at it before it exists."""
    own = Mosquitto()
    for user in ("cloud", "gw-ld01"):
        own.add_user(user)
    own.port = free_port()
    yield own
    own.cleanup()


@pytest.fixture
def begun() -> datetime:
    """When the test began (ask for it before the cloud, which it then precedes)."""
    return datetime.now(UTC)


@pytest.fixture
async def cloud_and_operator(
    tmp_path: Path, broker: Mosquitto, database_url: str
) -> AsyncIterator[tuple[RunningCloud, httpx.AsyncClient]]:
    """The cloud, pointed at `broker` (not waiting for it: the test starts it when it wants),
    and the operator signed in."""
    settings = cloud_settings(
        tmp_path,
        broker,
        mqtt_retry_min_s=RETRY_MIN_S,
        mqtt_retry_max_s=RETRY_MAX_S,
        database=database_url,
    )
    async with running_cloud(settings, with_broker=False) as running:
        client = await signed_in(running.url, "op")
        try:
            yield running, client
        finally:
            await client.aclose()


async def broker_state(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/api/stats")
    resp.raise_for_status()
    return resp.json()["broker"]


async def _broker_if(client: httpx.AsyncClient, predicate: Any) -> dict[str, Any] | None:
    state = await broker_state(client)
    return state if predicate(state) else None


async def health(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as anonymous:
        resp = await anonymous.get("/health")
    assert resp.status_code == 200
    return resp.json()


def outage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the broker link logged, since the cloud started (in the fixture) or the last
    `caplog.clear()`."""
    records = caplog.get_records("setup") + caplog.get_records("call")
    return [r for r in records if r.name == "cloud.transport.broker_link"]


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in outage_records(caplog) if r.levelno >= logging.WARNING]


async def test_without_its_broker_the_cloud_serves_and_consumes_once_the_broker_comes(
    begun: datetime,
    broker: Mosquitto,
    cloud_and_operator: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cloud.transport.broker_link")
    running, op = cloud_and_operator  # nothing listens at the broker's address yet

    # the web app answers; /health (open to all) says only that the cloud is degraded
    assert await health(running.url) == {"status": "degraded", "broker_connected": False}
    down = await eventually(lambda: _broker_if(op, lambda b: b["failed_attempts"] >= 2))
    assert down["connected"] is False
    assert "refused" in down["last_error"].lower()
    since = datetime.fromisoformat(down["down_since"])
    assert begun - timedelta(seconds=1) <= since <= datetime.now(UTC)
    assert datetime.fromisoformat(down["next_attempt_at"]) <= datetime.now(UTC) + timedelta(
        seconds=RETRY_MAX_S
    )
    assert (await op.get("/api/alarms")).json() == []  # the board's API works meanwhile

    # The broker starts, but keeps the cloud out for now (its account is missing), while a
    # gateway publishes a smoke alarm, which the broker acknowledges.
    cloud_password = broker.users["cloud"]
    broker.remove_user("cloud")
    broker.start()
    gateway = Publisher(broker, "gw-ld01")
    try:
        gateway.publish("sc/v1/gw-ld01/event", event(device="smoke-0102"))
        kept_out = await eventually(
            lambda: _broker_if(op, lambda b: b["last_error"] != down["last_error"])
        )
        assert kept_out["connected"] is False and kept_out["down_since"] == down["down_since"]
        assert "not authorized" in kept_out["last_error"].lower(), kept_out

        broker.add_user("cloud", cloud_password)
        broker.reload()
        up = await eventually(lambda: _broker_if(op, lambda b: b["connected"]))
        assert up == {
            "connected": True,
            "down_since": None,
            "last_error": None,
            "failed_attempts": 0,
            "next_attempt_at": None,
        }
        assert await health(running.url) == {"status": "ok", "broker_connected": True}

        gateway.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
        alarms = await eventually(lambda: active(op))
    finally:
        gateway.close()
    # The call became an alarm. The smoke alarm published before the cloud's first session at
    # this broker did not, and never will: nothing was subscribed to keep it (a persistent
    # session keeps messages only once it exists), and the broker had acknowledged it to the
    # gateway. Had it been queued, it would have come first (the broker keeps the order).
    assert [a["rule"] for a in alarms] == ["call_for_help"]

    # one warning when the outage began, one when it ended — not one per retry
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines
    assert "unreachable" in lines[0] and "reachable again after an outage of" in lines[1]
    retries = [r for r in outage_records(caplog) if "still" in r.msg]
    assert retries and all(r.levelno == logging.DEBUG for r in retries)


async def test_a_killed_broker_leaves_the_board_serving_and_is_reconnected_within_the_backoff(
    broker: Mosquitto, cloud_and_operator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    running, op = cloud_and_operator
    broker.start()
    await eventually(lambda: running.cloud.ingest.connected.is_set())
    for when in ("setup", "call"):
        caplog.get_records(when).clear()  # the cloud started before its broker: not this outage
    gateway = Publisher(broker, "gw-ld01")
    stream = asyncio.create_task(read_stream(op, want=7, timeout=60, broker=True))
    try:
        await eventually(lambda: running.cloud.hub.listeners == 1)
        gateway.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
        call = (await eventually(lambda: active(op)))[0]

        broker.kill()  # kill -9, by its pid
        gateway.close()
        down = await eventually(lambda: _broker_if(op, lambda b: b["failed_attempts"] >= 3))
        assert down["connected"] is False and down["down_since"] is not None
        assert await health(running.url) == {"status": "degraded", "broker_connected": False}
        # the board stays usable: the open alarm is listed and can be accepted (its command
        # to the gateway cannot be sent now, which does not stop the acceptance)
        assert [a["id"] for a in await active(op)] == [call["id"]]
        accepted = await op.post(f"/api/alarms/{call['id']}/accept")
        assert accepted.status_code == 200 and accepted.json()["state"] == "accepted"

        broker.start()  # the same port; a fresh broker (no persistence here)
        back = time.monotonic()
        await eventually(lambda: running.cloud.ingest.connected.is_set(), every=0.01)
        waited = time.monotonic() - back
        # the next attempt was at most RETRY_MAX_S away (capped back-off) when it came back
        assert waited <= RETRY_MAX_S + 3.0, f"reconnected {waited:.1f} s after the broker"

        gateway = Publisher(broker, "gw-ld01")
        gateway.publish("sc/v1/gw-ld01/event", event(device="smoke-0102"))
        alarms = await eventually(lambda: _when(active(op), 2))
        assert {a["rule"] for a in alarms} == {"call_for_help", "smoke_alarm"}

        # the live pages were told without a reload: up, down since when, up again (between
        # the snapshot and the smoke alarm: 3 broker messages and the call's 2 alarm messages)
        events = await stream
    finally:
        gateway.close()
        stream.cancel()
    told = [body for name, body in events if name == "broker"]
    assert told == [
        {"type": "broker", "connected": True, "down_since": None},
        {"type": "broker", "connected": False, "down_since": down["down_since"]},
        {"type": "broker", "connected": True, "down_since": None},
    ]
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines


async def test_what_waited_in_the_cloud_session_arrives_after_a_broker_crash(
    broker: Mosquitto, cloud_and_operator: Any
) -> None:
    """The broker saves its sessions (as the shipped config does); after a kill -9 it comes
    back with the cloud's session from its last save, so what gateways publish before the
    cloud is back in waits for it."""
    broker.persistent = True
    running, op = cloud_and_operator
    broker.start()
    await eventually(lambda: running.cloud.ingest.connected.is_set())
    subscribed_at = time.time()
    saved = broker.data_dir / "mosquitto.db"
    await eventually(lambda: saved.exists() and saved.stat().st_mtime > subscribed_at)

    broker.kill()
    await eventually(lambda: _broker_if(op, lambda b: not b["connected"]))
    cloud_password = broker.users["cloud"]
    broker.remove_user("cloud")  # back, but the cloud cannot come in yet
    broker.start()
    gateway = Publisher(broker, "gw-ld01")
    try:
        gateway.publish("sc/v1/gw-ld01/event", event(device="smoke-0102"))
        broker.add_user("cloud", cloud_password)
        broker.reload()
        alarms = await eventually(lambda: active(op))
    finally:
        gateway.close()
    assert [a["rule"] for a in alarms] == ["smoke_alarm"]


def test_the_cloud_process_prints_its_address_without_a_broker_then_when_ingest_connects(
    tmp_path: Path, broker: Mosquitto, database_url: str
) -> None:
    """`python -m cloud` (as systemd, the benchmark and an operator run it): the address of
    the duty room comes first, whether or not the broker is there; `ingest connected` follows
    once it is."""
    env = dict(
        os.environ,
        SC_CLOUD_MQTT_PORT=str(broker.port),
        SC_CLOUD_MQTT_PASSWORD=broker.users["cloud"],
        SC_CLOUD_MQTT_RETRY_MIN_S=str(RETRY_MIN_S),
        SC_CLOUD_MQTT_RETRY_MAX_S=str(RETRY_MAX_S),
        SC_CLOUD_DATABASE=database_url,
        SC_CLOUD_TELEMETRY_URL=f"sqlite:///{tmp_path / 'telemetry.db'}",
        SC_CLOUD_WEB_PORT="0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "cloud.log").open("wb"),
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("duty room: http://127.0.0.1:"), first
        url = first.removeprefix("duty room: ").strip()
        got = httpx.get(f"{url}/health", timeout=10).json()
        assert got == {"status": "degraded", "broker_connected": False}
        broker.start()
        assert proc.stdout.readline() == "ingest connected\n"
        assert httpx.get(f"{url}/health", timeout=10).json()["broker_connected"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
    log = (tmp_path / "cloud.log").read_text()
    assert log.count("unreachable") == 1 and log.count("reachable again") == 1, log


def test_backoff_doubles_with_jitter_up_to_its_cap_and_starts_again_after_a_reset() -> None:
    draws: list[tuple[float, float]] = []

    def draw(low: float, high: float) -> float:
        draws.append((low, high))
        return high

    backoff = Backoff(0.5, 4.0, draw)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert draws[:2] == [(0.25, 0.5), (0.5, 1.0)]  # each wait drawn from its step's upper half
    backoff.reset()
    assert backoff.next() == 0.5
    with pytest.raises(ValueError, match="first <= cap"):
        Backoff(5.0, 1.0)


async def test_the_clouds_own_outage_is_not_every_gateway_going_silent(
    tmp_path: Path, broker: Mosquitto, database_url: str
) -> None:
    """Nothing reaches a cloud without its broker; that says nothing of the gateways. A
    gateway is called offline for silence only once the cloud could have heard it."""
    silent_after = 2.0

    def quick_silence(data: dict[str, Any]) -> None:
        data["supervision"]["gateway_offline"]["silent_after_s"] = silent_after

    settings = cloud_settings(
        tmp_path,
        broker,
        rules_file=rules_file(tmp_path, quick_silence),
        mqtt_retry_min_s=RETRY_MIN_S,
        mqtt_retry_max_s=RETRY_MAX_S,
        tick_s=0.2,
        database=database_url,
    )
    broker.start()
    async with running_cloud(settings) as running:
        op = await signed_in(running.url, "op")
        try:
            gateway = Publisher(broker, "gw-ld01")
            gateway.publish(
                "sc/v1/gw-ld01/event", event(device="gw-ld01", kind="gateway", type="heartbeat")
            )
            gateway.close()
            await eventually(lambda: running.cloud.ingest.counts["events"] >= 1)
            broker.kill()
            await eventually(lambda: not running.cloud.ingest.connected.is_set())
            await asyncio.sleep(silent_after * 2)  # blind for twice the silence limit
            assert await active(op) == []
            broker.start()
            await eventually(lambda: running.cloud.ingest.connected.is_set())
            # heard from neither gateway since: now the silence counts, from the reconnect
            alarms = await eventually(lambda: _when(active(op), 2), timeout=silent_after * 5)
            assert {a["rule"] for a in alarms} == {"gateway_offline"}
        finally:
            await op.aclose()
