"""Two cloud processes on one PostgreSQL (several workers, or a rolling restart's overlap) kept
in step by notices (cloud/peers.py): the live push of one reaches the pages of the other once,
a walk test started or ended on one gates the other's ingest, a device added or removed on one
is known to the other's ingest. On SQLite one process owns the database: there are no peers.

Both clouds are opened in this test's process (`open_cloud`, as `python -m cloud` does), their
peers running as `serve` runs them; ingest is handed the gateway's messages directly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from cloud.alarms.model import Mode
from cloud.db.notices import PART_BYTES
from cloud.devices.maintenance import Maintenance
from cloud.errors import Conflict
from cloud.ingest.rejects import Reason
from cloud.live import messages
from cloud.live.hub import Subscription
from cloud.live.messages import LiveMessage
from cloud.notify.base import Notification
from cloud.notify.push import PushChannel
from cloud.parts import Cloud, open_cloud
from cloud.site.edit import add_device, remove_device, replace_all
from cloud.site.hardware import Hardware
from cloud.site.tree import Change
from cloud.web.app import create_app
from contract.site import DeviceSpec, Site
from tests.cloud.conftest import (
    PASSWORDS,
    ROLES,
    Publisher,
    cloud_settings,
    eventually,
    forget_gateway_status,
    signed_in,
)
from tests.servers import Mosquitto, PostgreSQL

GW = "gw-ld01"
SMOKE_0201 = DeviceSpec(
    id="smoke-0201", model="smoke_dry_contact", home="h-01-0201", pins={"alarm": 19, "fault": 20}
)


def event(seq: int, device: str, *, boot: str, kind: str = "smoke", type_: str = "alarm") -> bytes:
    return json.dumps(
        {
            "v": 2,
            "id": str(uuid.uuid4()),
            "gateway": GW,
            "device": device,
            "boot": boot,
            "seq": seq,
            "ts": datetime.now(UTC).isoformat(),
            "kind": kind,
            "type": type_,
        }
    ).encode()


@contextlib.asynccontextmanager
async def peers_running(cloud: Cloud) -> AsyncIterator[Cloud]:
    """The cloud's notices sent and listened to, as `serve` runs them."""
    assert cloud.peers is not None
    task = asyncio.create_task(cloud.peers.run())
    try:
        waiter = asyncio.create_task(cloud.peers.listening.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=10, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()
        assert waiter in done, "the peers did not start listening"
        yield cloud
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def two_clouds(
    url: str, tmp_path: Path, mosquitto: Mosquitto, *, url_b: str | None = None
) -> AsyncIterator[tuple[Cloud, Cloud]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    scrape = {"metrics_token": SecretStr("scrape")}
    async with (
        open_cloud(cloud_settings(tmp_path / "a", mosquitto, database=url, **scrape)) as a,
        open_cloud(cloud_settings(tmp_path / "b", mosquitto, database=url_b or url, **scrape)) as b,
        peers_running(a),
        peers_running(b),
    ):
        yield a, b


class Page:
    """A duty-room page on one cloud's live stream: what it has been sent so far."""

    def __init__(self, cloud: Cloud) -> None:
        self.sub: Subscription = cloud.hub.subscribe()
        self.seen: list[LiveMessage] = []

    def got(self, event: str) -> list[LiveMessage]:
        while not self.sub.queue.empty():
            self.seen.append(self.sub.queue.get_nowait())
        return [m for m in self.seen if m.event == event]


async def metrics_of(cloud: Cloud) -> str:
    transport = httpx.ASGITransport(app=create_app(cloud))
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        scraped = await client.get("/metrics", headers={"authorization": "Bearer scrape"})
    scraped.raise_for_status()
    return scraped.text


async def alarm_of(cloud: Cloud, device: str) -> dict[str, Any] | None:
    rows = await cloud.db.fetch_all(
        "SELECT id, mode, state FROM alarms WHERE device = ? ORDER BY id DESC", (device,)
    )
    return dict(rows[0]) if rows else None


@pytest.mark.parametrize("db_backend", ["postgresql"])
async def test_an_alarm_ingested_by_one_process_reaches_the_other_ones_pages_once(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with two_clouds(database_url, tmp_path, mosquitto) as (a, b):
        page_a, page_b = Page(a), Page(b)
        boot = f"b{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        await a.ingest.handle(f"sc/v1/{GW}/event", event(1, "smoke-0102", boot=boot))
        alarm = await alarm_of(a, "smoke-0102")
        assert alarm is not None and alarm["mode"] == "live"
        await eventually(lambda: page_b.got("alarm"), every=0.005)
        delay = time.monotonic() - started
        # a large message (a call's state, the notes of a case…) arrives whole, after it
        big = messages.call_changed({"id": "c-1", "note": "长" * PART_BYTES})  # 3 bytes each
        assert len(big.data.encode()) > 8000
        a.hub.publish(big)
        a.hub.publish(messages.gateway_state(GW, "online"))  # and what follows it, in order
        await eventually(lambda: page_b.got("gateway"))
        page_a.got("")
        on_a, on_b = page_a.seen, page_b.seen
        scraped_a, scraped_b = await metrics_of(a), await metrics_of(b)
    # B's page got A's alarm once, as A's own page did, then the large message and the next
    assert [m.body()["alarm"]["id"] for m in on_b if m.event == "alarm"] == [alarm["id"]]
    assert [m.event for m in on_a] == [m.event for m in on_b] == ["alarm", "call", "gateway"]
    assert on_b[1] == big
    assert delay < 2.0, f"the alarm took {delay:.3f} s to reach the other process"
    assert 'sc_peer_notices_total{what="sent"}' in scraped_a
    assert 'sc_peer_notices_total{what="received"}' in scraped_b
    assert 'what="send_failed"' not in scraped_a
    assert "sc_peers_listening 1.0" in scraped_a and "sc_peers_listening 1.0" in scraped_b


@pytest.mark.parametrize("db_backend", ["postgresql"])
async def test_a_burst_of_live_messages_arrives_whole_in_order_and_once(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """More than one statement's worth, every seventh too large for one NOTIFY."""
    async with two_clouds(database_url, tmp_path, mosquitto) as (a, b):
        page_b = Page(b)
        burst = [
            messages.gateway_state(f"gw-{n:04d}", "online" if n % 7 else "长" * PART_BYTES)
            for n in range(1200)
        ]
        started = time.monotonic()
        for message in burst:
            a.hub.publish(message)
        await eventually(lambda: len(page_b.got("gateway")) >= len(burst), every=0.01)
        took = time.monotonic() - started
    assert page_b.seen == burst
    assert took < 5.0, f"{len(burst)} messages took {took:.2f} s"


@pytest.mark.parametrize("db_backend", ["postgresql"])
async def test_a_notify_on_the_channel_that_is_no_notice_is_counted_and_the_session_kept(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with two_clouds(database_url, tmp_path, mosquitto) as (a, b):
        assert b.peers is not None
        page_b = Page(b)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as other:
            for payload in ("hello", "1 2 3|x", "a b c d e|f"):
                await other.execute("SELECT pg_notify('sc_notices', %s)", (payload,))
        a.hub.publish(messages.gateway_state(GW, "online"))
        await eventually(lambda: page_b.got("gateway"))
        counts = dict(b.peers.counts)
    assert counts["foreign"] == 3
    assert "listen_lost" not in counts


@pytest.mark.parametrize("db_backend", ["postgresql"])
async def test_the_duty_room_push_is_delivered_while_a_page_is_open_at_another_process(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The process that ingests an alarm and sends its notifications has no page open (an
    ingest worker); another process has one: the alarm's push to the duty room and a later
    notification's count as delivered. When that page closes, the push says no page is open
    (tried again, then its fallback), as on one process."""
    async with two_clouds(database_url, tmp_path, mosquitto) as (a, b):
        peers_a = a.peers
        assert peers_a is not None
        page_b = Page(b)
        await eventually(lambda: peers_a.pages_elsewhere() == 1)
        boot = f"b{uuid.uuid4().hex[:8]}"
        await a.ingest.handle(f"sc/v1/{GW}/event", event(1, "smoke-0102", boot=boot))
        raised = await alarm_of(a, "smoke-0102")
        assert raised is not None
        rows = await a.notifications.of_alarm(raised["id"])
        alarm = await a.alarms.get(raised["id"])
        push = PushChannel(a.hub)
        key = f"{alarm.id}/1/duty_room"
        duty = Notification(key, alarm, 1, "remind", "duty_room", "值班室", None)
        delivered = await push.send(duty)
        await eventually(lambda: len(page_b.got("notify")) == 1)
        b.hub.unsubscribe(page_b.sub)
        await eventually(lambda: peers_a.pages_elsewhere() == 0)
        not_delivered = await push.send(duty)
    [pushed] = [r for r in rows if r["target"] == "duty_room"]
    assert (pushed["status"], pushed["detail"]) == ("delivered", "1 page(s) open")
    assert [m.body()["alarm"]["id"] for m in page_b.got("alarm")] == [alarm.id]
    assert (delivered.ok, delivered.detail) == (True, "1 page(s) open")
    assert [m.body()["key"] for m in page_b.got("notify")] == [key]
    assert (not_delivered.ok, not_delivered.detail) == (False, "no duty-room page open")


@pytest.mark.parametrize("db_backend", ["postgresql"])
async def test_a_walk_test_started_on_one_process_gates_the_others_ingest_until_ended_there(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with two_clouds(database_url, tmp_path, mosquitto) as (a, b):
        boot = f"b{uuid.uuid4().hex[:8]}"
        topic = f"sc/v1/{GW}/event"

        def under_test(maintenance: Maintenance) -> bool:
            return maintenance.mode_for(GW, "gas-0101", time.time())[0] is Mode.WALK_TEST

        def gas(seq: int, type_: str) -> bytes:  # a detector's fault: not life-safety
            return event(seq, "gas-0101", boot=boot, kind="gas", type_=type_)

        window = await b.maintenance.start_walk_test(GW, ["gas-0101"], 30, "inst")
        started = time.monotonic()
        await eventually(lambda: under_test(a.maintenance), timeout=5, every=0.005)
        took = time.monotonic() - started
        page_b = Page(b)
        await a.ingest.handle(topic, gas(1, "fault"))
        first = await alarm_of(a, "gas-0101")
        assert first is not None and first["mode"] == Mode.WALK_TEST.value
        await a.ingest.handle(topic, gas(2, "restore"))

        await b.maintenance.end(window.id, "inst")
        await eventually(lambda: not under_test(a.maintenance), timeout=5, every=0.005)
        await a.ingest.handle(topic, gas(3, "fault"))
        second = await alarm_of(a, "gas-0101")
        assert second is not None and second["id"] != first["id"]
        assert second["mode"] == Mode.LIVE.value
        await eventually(lambda: page_b.got("alarm"))  # live again: B's pages get it
        assert all(m.body()["alarm"]["id"] == second["id"] for m in page_b.got("alarm"))
    assert took < 2.0, f"the walk test took {took:.3f} s to gate the other process"


@pytest.mark.parametrize("db_backend", ["postgresql"])
async def test_a_device_added_on_one_process_is_accepted_by_the_others_and_removed_refused(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with two_clouds(database_url, tmp_path, mosquitto) as (a, b):
        boot = f"b{uuid.uuid4().hex[:8]}"
        topic = f"sc/v1/{GW}/event"
        _, version = await b.site.apply(
            "adm", lambda site: add_device(site, GW, SMOKE_0201, Hardware())
        )
        await eventually(lambda: a.registry.version == version.version, timeout=5, every=0.01)
        assert a.core.model(GW, "smoke-0201") == "smoke_dry_contact"  # the rules core knows it
        await a.ingest.handle(topic, event(1, "smoke-0201", boot=boot))
        added = await alarm_of(a, "smoke-0201")
        stored = await a.db.fetch_value("SELECT count(*) FROM events WHERE device = 'smoke-0201'")

        _, removed = await b.site.apply("adm", lambda site: remove_device(site, GW, "smoke-0201"))
        await eventually(lambda: a.registry.version == removed.version, timeout=5, every=0.01)
        await a.ingest.handle(topic, event(2, "smoke-0201", boot=boot))
        refused = a.ingest.rejects.counts[Reason.UNKNOWN_DEVICE.value]
        after = await a.db.fetch_value("SELECT count(*) FROM events WHERE device = 'smoke-0201'")
    assert added is not None and added["mode"] == "live"
    assert stored == 1
    assert refused == 1 and after == 1
    # what an edit does once (config push, audit) was done by the process that made it
    assert [s.gateway for s in b.config_push.states()] == [GW]
    assert a.config_push.states() == []


@pytest.mark.parametrize("db_backend", ["postgresql"])
async def test_a_gateway_removed_on_one_process_has_its_offline_alarm_cleared_by_the_other(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Gateway gw-ld02 went offline while process A ingested its status: only A's rules core
    knows the alarm is its. Removed from the site through B, the alarm is cleared by A."""
    async with two_clouds(database_url, tmp_path, mosquitto) as (a, b):
        status = {"gateway": "gw-ld02", "state": "offline", "boot": "b-1"}
        now = datetime.now(UTC).isoformat()
        await a.ingest.handle("sc/v1/gw-ld02/status", json.dumps({**status, "ts": now}).encode())
        raised = await alarm_of(a, "gw-ld02")
        assert raised is not None and raised["state"] != "resolved"
        page_b = Page(b)

        def without_ld02(site: Site) -> Change:
            smaller = site.model_copy(
                update={"gateways": [gw for gw in site.gateways if gw.id != "gw-ld02"]}
            )
            return replace_all(site, smaller, "gw-ld02 taken down", Hardware())

        def resolved_on_b() -> list[int]:
            return [
                m.body()["alarm"]["id"]
                for m in page_b.got("alarm")
                if m.body()["alarm"]["state"] == "resolved"
            ]

        await b.site.apply("adm", without_ld02)
        await eventually(resolved_on_b)
        cleared = await alarm_of(a, "gw-ld02")
    assert cleared is not None and cleared["id"] == raised["id"]
    assert cleared["state"] == "resolved"
    assert resolved_on_b() == [raised["id"]]  # cleared once


async def test_an_edit_made_from_a_site_another_process_has_changed_since_is_refused(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """B saved a version A has not taken up yet (its notice on the way): A's edit, made from the
    version before, would undo B's. It is refused with the reason, nothing saved; once A has
    taken up B's version the same edit goes through, and both are in the site."""
    smoke_0202 = SMOKE_0201.model_copy(update={"id": "smoke-0202", "pins": {"alarm": 21}})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        open_cloud(cloud_settings(tmp_path / "a", mosquitto, database=database_url)) as a,
        open_cloud(cloud_settings(tmp_path / "b", mosquitto, database=database_url)) as b,
    ):  # their peers not running: A learns of B's version only when it takes it up
        hardware = Hardware()
        _, saved = await b.site.apply("adm", lambda s: add_device(s, GW, SMOKE_0201, hardware))
        with pytest.raises(Conflict) as refused:
            await a.site.apply("adm", lambda s: add_device(s, GW, smoke_0202, hardware))
        assert refused.value.en == (
            f"the site was changed meanwhile (version {saved.version}): reload and redo"
        )
        assert [v.version for v in await a.site.store.versions()] == [saved.version, 1]
        assert a.registry.device(GW, "smoke-0202") is None
        assert await a.site.take_up() == saved.version
        _, again = await a.site.apply("adm", lambda s: add_device(s, GW, smoke_0202, hardware))
        newest = await a.site.store.newest()
    assert again.version == saved.version + 1
    assert newest is not None
    devices = {d.id for gw in newest[0].gateways if gw.id == GW for d in gw.devices}
    assert {"smoke-0201", "smoke-0202"} <= devices


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_on_sqlite_there_are_no_peers(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with open_cloud(cloud_settings(tmp_path, mosquitto, database=database_url)) as cloud:
        assert cloud.peers is None
        assert cloud.hub.relay is None
        assert cloud.maintenance.on_change == []


@pytest.fixture
def server() -> Iterator[PostgreSQL]:
    """A PostgreSQL of this test's own (it is killed), its data kept across the kill."""
    pg = PostgreSQL(durable=True)
    pg.start()
    try:
        yield pg
    finally:
        pg.cleanup()


def walk_test_of(maintenance: Maintenance, device: str) -> bool:
    return maintenance.mode_for(GW, device, time.time())[0] is Mode.WALK_TEST


async def test_after_postgresql_restarted_notices_arrive_again_and_what_was_missed_is_read(
    server: PostgreSQL, tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL is killed and started again under two processes. Process A (its own role)
    is kept from connecting again until B has started a walk test and sent its notice, which A
    therefore never gets: A reads the windows again once it listens again, and later notices
    reach it as before. Each process logs the lost session once, however often it retries."""
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute("CREATE ROLE cloud_a LOGIN")
        admin.execute("CREATE DATABASE peers OWNER cloud_a")
    url_a = f"postgresql://cloud_a@127.0.0.1:{server.port}/peers"
    caplog.set_level(logging.WARNING, logger="cloud.db.notices")
    async with two_clouds(url_a, tmp_path, mosquitto, url_b=server.url("peers")) as (a, b):
        peers_a, peers_b = a.peers, b.peers
        assert peers_a is not None and peers_b is not None
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute("ALTER ROLE cloud_a CONNECTION LIMIT 0")  # its sessions stay open
        await asyncio.to_thread(server.kill9)
        await eventually(lambda: not peers_a.listening.is_set() and not peers_b.listening.is_set())
        await asyncio.to_thread(server.start)
        await eventually(peers_b.listening.is_set, timeout=20)

        await b.maintenance.start_walk_test(GW, ["gas-0101"], 30, "inst")
        await eventually(lambda: peers_b.link.pending == 0, timeout=20)  # its notice sent
        assert not peers_a.listening.is_set()  # A was not listening: the notice is lost to it
        assert not walk_test_of(a.maintenance, "gas-0101")
        retries = peers_a.counts["listen_lost"]
        await eventually(lambda: peers_a.counts["listen_lost"] > retries, timeout=20)

        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute("ALTER ROLE cloud_a CONNECTION LIMIT -1")
        await eventually(peers_a.listening.is_set, timeout=20)
        assert walk_test_of(a.maintenance, "gas-0101")  # read again once it listened
        page_a = Page(a)
        b.hub.publish(messages.gateway_state(GW, "online"))
        await eventually(lambda: page_a.got("gateway"))
    lost = [r.getMessage() for r in caplog.records if "LISTEN session lost" in r.getMessage()]
    again = [r.getMessage() for r in caplog.records if "listening again" in r.getMessage()]
    assert len(lost) == 2 and len(again) == 2, (lost, again)


@contextlib.contextmanager
def cloud_process(workdir: Path, broker: Mosquitto, database: str) -> Iterator[str]:
    """`python -m cloud` on `broker` and `database`, /metrics open to "scrape"; its URL."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SC_")},
        "SC_CLOUD_MQTT_PORT": str(broker.port),
        "SC_CLOUD_MQTT_USERNAME": "cloud",
        "SC_CLOUD_MQTT_PASSWORD": broker.users["cloud"],
        "SC_CLOUD_MQTT_CLIENT_ID": f"peer-{uuid.uuid4().hex[:8]}",
        "SC_CLOUD_DATABASE": database,
        "SC_CLOUD_TELEMETRY_URL": f"sqlite:///{workdir / 'telemetry.db'}",
        "SC_CLOUD_WEB_PORT": "0",
        "SC_CLOUD_SESSION_SECRET": "peer-secret",
        "SC_CLOUD_METRICS_TOKEN": "scrape",
        "SC_CLOUD_BOOTSTRAP_USERS": json.dumps(
            {name: [ROLES[name], password] for name, password in PASSWORDS.items()}
        ),
    }
    workdir.mkdir()
    with (workdir / "cloud.log").open("w+b") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloud"], env=env, stdout=subprocess.PIPE, stderr=log
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            log.seek(0)
            assert line.startswith("duty room: "), f"{line!r}: {log.read().decode()}"
            yield line.removeprefix("duty room: ").strip()
        finally:
            proc.terminate()
            proc.wait(timeout=20)


async def listening(url: str) -> bool:
    async with httpx.AsyncClient(base_url=url) as client:
        scraped = await client.get("/metrics", headers={"authorization": "Bearer scrape"})
    return "sc_peers_listening 1.0" in scraped.text


@pytest.mark.parametrize("db_backend", ["postgresql"])
async def test_two_cloud_processes_a_gateways_alarm_at_one_is_on_the_others_live_stream(
    database_url: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Real `python -m cloud` processes: A consumes the gateways' broker, B another broker no
    gateway publishes to, so what B's duty-room stream shows of the gateway came from A."""
    other = Mosquitto()
    other.add_user("cloud")
    other.start()
    forget_gateway_status(mosquitto)
    gateway = Publisher(mosquitto, GW)
    try:
        with (
            cloud_process(tmp_path / "a", mosquitto, database_url) as url_a,
            cloud_process(tmp_path / "b", other, database_url) as url_b,
        ):
            await eventually(lambda: listening(url_b), timeout=20)
            client = await signed_in(url_b, "op")
            got: list[tuple[str, Any]] = []

            async def read() -> None:
                async with client.stream("GET", "/api/alarms/stream") as resp:
                    name = ""
                    async for line in resp.aiter_lines():
                        if line.startswith("event:"):
                            name = line.split(":", 1)[1].strip()
                        elif line.startswith("data:") and name != "broker":
                            got.append((name, json.loads(line.split(":", 1)[1])))

            reader = asyncio.create_task(read())
            try:
                await eventually(lambda: got)  # the snapshot: B's page is on the stream
                boot = f"b{uuid.uuid4().hex[:8]}"
                await asyncio.to_thread(
                    gateway.publish, f"sc/v1/{GW}/event", event(1, "call-0101", boot=boot,
                                                                kind="call", type_="press")
                )  # fmt: skip
                await eventually(lambda: len(got) >= 2, timeout=15)
                async with httpx.AsyncClient(base_url=url_a) as to_a:
                    scraped_a = (
                        await to_a.get("/metrics", headers={"authorization": "Bearer scrape"})
                    ).text
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
                await client.aclose()
    finally:
        gateway.close()
        other.cleanup()
    assert got[0] == ("snapshot", [])
    name, body = got[1]
    assert name == "alarm" and body["alarm"]["device"] == "call-0101"
    assert body["alarm"]["state"] == "active"
    assert 'sc_ingest_total{what="events"} 1.0' in scraped_a  # A stored it, B only showed it
