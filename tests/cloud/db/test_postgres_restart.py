"""PostgreSQL killed with kill -9 and started again, under a real cloud: while it is away a
unit of work fails with `DatabaseUnavailable` (nothing half-written), the web app answers 503
with the reason, ingest holds — nothing it has not stored is acknowledged to the gateway — and
when the server is back the cloud's sessions are opened again by themselves and every event is
stored exactly once and acknowledged."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from cloud.db.database import Database
from cloud.errors import DatabaseUnavailable
from cloud.rules import AlarmDraft, Evaluation
from tests.cloud.conftest import (
    cloud_settings,
    eventually,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.cloud.ingest.test_delivery import GatewayClient, _acked, v2
from tests.servers import Mosquitto, PostgreSQL, free_port


@pytest.fixture
def server() -> Iterator[PostgreSQL]:
    """A PostgreSQL of this test's own (it is killed), its data kept across the kill."""
    pg = PostgreSQL(durable=True)
    pg.start()
    try:
        yield pg
    finally:
        pg.cleanup()


async def test_a_killed_server_fails_units_cleanly_and_the_sessions_come_back(
    server: PostgreSQL,
) -> None:
    db = await Database.open(server.url())
    try:
        await db.execute("CREATE TABLE kept (n INTEGER NOT NULL)")
        await db.execute("INSERT INTO kept VALUES (1)")
        await asyncio.to_thread(server.kill9)
        with pytest.raises(DatabaseUnavailable) as lost:
            await db.execute("INSERT INTO kept VALUES (2)")
        assert lost.value.zh == "数据库暂时无法连接，稍后自动重试"
        with pytest.raises(DatabaseUnavailable):  # the readers' sessions too
            await db.fetch_all("SELECT n FROM kept")
        with pytest.raises(DatabaseUnavailable):  # still away: at once, every time
            await db.execute("INSERT INTO kept VALUES (3)")
        await asyncio.to_thread(server.start)  # crash recovery on the same data folder
        await db.execute("INSERT INTO kept VALUES (4)")
        rows = [r["n"] for r in await db.fetch_all("SELECT n FROM kept ORDER BY n")]
        assert rows == [1, 4]  # what failed was not written; what was committed survived
    finally:
        await db.close()


async def test_ingest_holds_while_the_database_is_down_and_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, server: PostgreSQL
) -> None:
    forget_gateway_status(mosquitto)
    settings = cloud_settings(
        tmp_path,
        mosquitto,
        database=server.url(),
        gap_hold_s=30.0,
        metrics_token=SecretStr("scrape"),
    )
    gateway = await asyncio.to_thread(GatewayClient, mosquitto)
    boot = f"b{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat()
    try:
        async with running_cloud(settings) as running:
            ingest = running.cloud.ingest
            client = await signed_in(running.url, "op")
            try:
                gateway.publish(v2(1, boot=boot, ts=now, device="gas-0101"))
                await eventually(lambda: _acked(gateway, boot, 1))

                await asyncio.to_thread(server.kill9)
                # a resident presses the call button and a smoke alarm goes off meanwhile
                gateway.publish(
                    v2(2, boot=boot, ts=now, device="call-0101", kind="call", type="press")
                )
                gateway.publish(v2(3, boot=boot, ts=now, device="smoke-0102"))
                await eventually(lambda: ingest.counts["database_holds"] >= 1)
                down = await client.get("/api/alarms")
                assert down.status_code == 503
                assert "数据库暂时无法连接" in down.text
                # operations still scrape the cloud, and see why it holds
                scraped = await client.get("/metrics", headers={"authorization": "Bearer scrape"})
                assert scraped.status_code == 200
                assert "sc_database_up 0.0" in scraped.text
                assert "sc_ingest_holding 1.0" in scraped.text
                await asyncio.sleep(1.0)  # held: nothing more is acknowledged meanwhile
                held = gateway.latest()
                assert held is not None and held.upto == 1

                await asyncio.to_thread(server.start)
                await eventually(lambda: _acked(gateway, boot, 3), timeout=20)
                alarms = (await client.get("/api/alarms")).json()
                # (the shared broker may hold another test's retained gateway status: its
                # gateway alarm is not this test's business)
                devices = sorted(a["device"] for a in alarms if a["kind"] != "gateway")
                assert devices == ["call-0101", "gas-0101", "smoke-0102"]
                assert ingest.counts["events"] == 3
                assert ingest.counts["duplicates"] == 0
                assert ingest.counts["internal_error"] == 0
                scraped = await client.get("/metrics", headers={"authorization": "Bearer scrape"})
                assert "sc_database_up 1.0" in scraped.text
                assert "sc_ingest_holding 0.0" in scraped.text
            finally:
                await client.aclose()
    finally:
        gateway.close()


def test_a_cloud_started_while_the_database_is_down_says_so_and_exits(tmp_path: Path) -> None:
    """Nothing to hold yet at start: one readable line and exit code 3 (the service manager
    starts it again), not a traceback."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SC_")},
        "SC_CLOUD_DATABASE": f"postgresql://postgres@127.0.0.1:{free_port()}/sc",
        "SC_CLOUD_WEB_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "cloud"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("cannot start: 数据库暂时无法连接，稍后自动重试")
    assert "Traceback" not in done.stderr


async def test_alarms_stored_but_never_announced_are_announced_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A commit whose answer was lost with the database's session: ingest, trying again,
    finds its alarms stored and has nothing to announce. After a hold the cloud announces what
    was stored and never pushed — once."""
    forget_gateway_status(mosquitto)
    async with running_cloud(cloud_settings(tmp_path, mosquitto)) as running:
        cloud = running.cloud
        sub = cloud.hub.subscribe()
        [stored] = await cloud.book.apply(
            Evaluation([AlarmDraft("call_for_help", 1, "call", "gw-ld01", "call-0101", "呼叫",
                                   "Call", datetime.now(UTC), life_safety=True)], [], 0),
            cloud.db.clock(),
        )  # fmt: skip
        assert sub.queue.empty()  # stored, told nobody
        assert await cloud.announcer.announce_unpushed() == 1
        message = sub.queue.get_nowait().body()
        assert message["alarm"]["id"] == stored.alarm.id and message["alarm"]["pushed_at"]
        assert await cloud.announcer.announce_unpushed() == 0
