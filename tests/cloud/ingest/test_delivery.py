"""End-to-end delivery of version-2 events (cloud/ingest/delivery.py and ingest): the cloud's
acknowledgement, gaps asked for again, order kept per boot, gaps given up on as a fault."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.ingest.delivery import Delivery
from cloud.ingest.pipeline import Ingest
from cloud.ingest.rejects import RejectLog
from cloud.telemetry.open import open_store
from contract.models import Ack
from tests.cloud.conftest import RunningCloud, cloud_settings, eventually, running_cloud
from tests.cloud.helpers import T0, FakeClock, book_parts
from tests.servers import Mosquitto

GW = "gw-ld01"
TOPIC = f"sc/v1/{GW}/event"


def v2(seq: int, *, boot: str = "boot-a", device: str = "smoke-0102", **over: Any) -> bytes:
    kinds = {
        "smoke-0102": ("smoke", "alarm"),
        "call-0101": ("call", "press"),
        "gas-0101": ("gas", "fault"),
    }
    kind, type_ = kinds.get(device, ("smoke", "alarm"))
    data: dict[str, Any] = {
        "v": 2,
        "id": str(uuid.uuid4()),
        "gateway": GW,
        "device": device,
        "boot": boot,
        "seq": seq,
        "ts": datetime.fromtimestamp(T0, UTC).isoformat(),
        "kind": kind,
        "type": type_,
    }
    data.update(over)
    return json.dumps(data).encode()


# ---- the bookkeeping on its own --------------------------------------------------------------


def test_in_order_arrivals_pass_at_once_and_the_watermark_follows_the_commits() -> None:
    clock = FakeClock()
    d: Delivery[str] = Delivery(clock=clock)
    key = (GW, "b")
    assert d.admit(key, 1, "e1") == ["e1"]
    assert d.admit(key, 2, "e2") == ["e2"]
    assert d.ack(key).upto == 0  # nothing committed yet
    d.committed(key, [1, 2])
    due = d.ack(key)
    assert (due.upto, due.replay) == (2, False)
    assert d.admit(key, 2, "again") == ["again"]  # a duplicate goes on (the store drops it)
    assert d.watermarks() == [(GW, "b", 2)]
    assert d.watermarks() == []  # written once


def test_an_event_after_a_gap_waits_and_goes_on_in_order_when_the_gap_fills() -> None:
    clock = FakeClock()
    d: Delivery[str] = Delivery(clock=clock, hold_s=2.0)
    key = (GW, "b")
    d.committed(key, [1])
    d.admit(key, 1, "e1")
    assert d.admit(key, 3, "e3") == []  # 2 is missing
    assert d.admit(key, 4, "e4") == []
    assert d.ack(key).replay  # the gateway is asked to send again what follows 1
    assert not d.ack(key).replay  # …at most once a second
    clock.advance(1.0)
    assert d.ack(key).replay
    assert d.admit(key, 2, "e2") == ["e2", "e3", "e4"]
    d.committed(key, [2, 3, 4])
    assert (d.ack(key).upto, d.ack(key).replay) == (4, False)


def test_held_events_go_on_after_the_hold_and_an_unfilled_gap_becomes_a_fault() -> None:
    clock = FakeClock()
    d: Delivery[str] = Delivery(clock=clock, hold_s=2.0, gap_fault_s=30.0)
    key = (GW, "b")
    d.admit(key, 1, "e1")
    d.committed(key, [1])
    assert d.admit(key, 5, "e5") == []
    clock.advance(1.0)
    assert d.expire()[0] == []  # still within the hold
    clock.advance(1.5)
    released, gaps, _ = d.expire()
    assert released == ["e5"]  # an alarm never waits longer than the hold
    assert gaps == []
    d.committed(key, [5])
    assert d.ack(key).upto == 1  # 2–4 still missing: the gateway keeps everything after 1
    clock.advance(30)
    released, gaps, asks = d.expire()
    assert [(g.first, g.last) for g in gaps] == [(2, 4)]
    assert asks[0].upto == 5  # given up on: the gateway may forget through 5
    assert d.counts["lost"] == 3
    # a late one still counts as committed, and is not a second gap
    assert d.admit(key, 3, "e3") == ["e3"]


def test_a_new_boot_is_a_new_stream_not_a_gap() -> None:
    clock = FakeClock()
    d: Delivery[str] = Delivery(clock=clock)
    d.admit((GW, "old"), 1, "a")
    d.committed((GW, "old"), [1])
    assert d.admit((GW, "new"), 1, "b") == ["b"]
    d.committed((GW, "new"), [1])
    assert not d.ack((GW, "new")).replay


def test_a_stream_loaded_from_the_database_knows_what_is_stored_past_a_gap() -> None:
    d: Delivery[str] = Delivery(clock=FakeClock())
    key = (GW, "b")
    d.load(key, 3, [4, 5, 7])
    assert d.ack(key).upto == 5
    assert d.admit(key, 7, "dup") == ["dup"]
    assert d.admit(key, 8, "e8") == []  # 6 is missing


# ---- in ingest, on a real database -----------------------------------------------------------


@contextlib.asynccontextmanager
async def ingest_on(database: str, tmp_path: Path, **options: Any) -> AsyncIterator[Ingest]:
    clock = FakeClock()
    async with book_parts(database, clock) as parts:
        store = open_store(f"sqlite:///{tmp_path / 'telemetry.db'}")
        try:
            yield Ingest(
                registry=parts.registry,
                core=parts.core,
                book=parts.book,
                store=store,
                announcer=parts.announcer,
                rejects=RejectLog(parts.db),
                clock=clock,
                **options,
            )
        finally:
            with contextlib.suppress(Exception):
                await store.close()


async def rows(ingest: Ingest, sql: str) -> list[tuple[Any, ...]]:
    """What the cloud's database holds (read through it: SQLite or PostgreSQL)."""
    return [tuple(row) for row in await ingest.book.db.fetch_all(sql)]


async def test_events_after_a_gap_are_evaluated_in_seq_order_once_it_fills(
    tmp_path: Path, database_url: str
) -> None:
    async with ingest_on(database_url, tmp_path) as ingest:
        await ingest.handle(TOPIC, v2(1), T0)
        await ingest.handle(TOPIC, v2(3, device="call-0101"), T0)  # 2 lost on the way
        assert await rows(ingest, "SELECT seq FROM events") == [(1,)]
        assert [r[0] for r in await rows(ingest, "SELECT rule FROM alarms")] == ["smoke_alarm"]
        # the replay brings 2: then 2 and 3 are stored and evaluated, in that order
        await ingest.handle(TOPIC, v2(2, device="gas-0101"), T0)
        assert await rows(ingest, "SELECT seq FROM events ORDER BY seq") == [(1,), (2,), (3,)]
        # evaluated in seq order: the alarms they raised were numbered in that order
        rules = [r[0] for r in await rows(ingest, "SELECT rule FROM alarms ORDER BY id")]
        assert rules == ["smoke_alarm", "device_fault", "call_for_help"]
        assert ingest.delivery.upto((GW, "boot-a")) == 3


async def test_a_gap_never_filled_is_a_fault_naming_the_gateway_and_the_range(
    tmp_path: Path, database_url: str
) -> None:
    async with ingest_on(database_url, tmp_path, gap_hold_s=2.0, gap_fault_s=30.0) as ingest:
        clock: FakeClock = ingest.clock  # type: ignore[assignment]
        await ingest.handle(TOPIC, v2(1), T0)
        await ingest.handle(TOPIC, v2(4, device="call-0101"), T0)
        clock.advance(2.5)
        await ingest.tick()  # the call waited its 2 s: it goes on without 2 and 3
        assert [r[0] for r in await rows(ingest, "SELECT rule FROM alarms ORDER BY id")] == [
            "smoke_alarm",
            "call_for_help",
        ]
        clock.advance(30)
        await ingest.tick()
        [(level, title_en, title_zh)] = await rows(
            ingest,
            "SELECT level, title_en, title_zh FROM alarms WHERE rule = 'events_missing'",
        )
        assert level == 3
        assert "boot-a" in title_en and "2–3" in title_en and "(2)" in title_en
        assert "网关事件缺失" in title_zh
        assert ingest.delivery.upto((GW, "boot-a")) == 4


async def test_the_watermark_survives_a_restart(tmp_path: Path, database_url: str) -> None:
    async with ingest_on(database_url, tmp_path) as ingest:
        for seq in (1, 2, 3, 5):
            await ingest.handle(TOPIC, v2(seq, device="gas-0101"), T0)
        clock: FakeClock = ingest.clock  # type: ignore[assignment]
        clock.advance(3)
        await ingest.tick()  # 5 waited its hold and was stored; the watermarks are written
    async with ingest_on(database_url, tmp_path) as ingest:
        await ingest.handle(TOPIC, v2(5, device="gas-0101"), T0)  # sent again
        assert ingest.delivery.upto((GW, "boot-a")) == 3  # 4 is still missing
        await ingest.handle(TOPIC, v2(4, device="gas-0101"), T0)
        assert ingest.delivery.upto((GW, "boot-a")) == 5


async def test_a_refused_event_is_acknowledged_once_its_refusal_is_kept(
    tmp_path: Path, database_url: str
) -> None:
    async with ingest_on(database_url, tmp_path) as ingest:
        await ingest.handle(TOPIC, v2(1), T0)
        await ingest.handle(TOPIC, v2(2, device="smoke-9999"), T0)  # removed from the registry
        await ingest.handle(TOPIC, v2(3, type="clear"), T0)
        assert ingest.rejects.counts == {"unknown_device": 1}
        assert await rows(ingest, "SELECT reason FROM rejected") == [("unknown_device",)]
        assert ingest.delivery.upto((GW, "boot-a")) == 3  # no gap: the gateway moves on


# ---- against the real broker: the acknowledgement reaches the gateway --------------------------


class GatewayClient:
    """The gateway's side of the protocol with plain paho: publish events, hear `cmd/ack`."""

    def __init__(self, broker: Mosquitto) -> None:
        self.acks: list[Ack] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=GW)
        self.client.username_pw_set(GW, broker.users[GW])
        self.client.on_connect = lambda c, *a: c.subscribe(f"sc/v1/{GW}/cmd/ack", qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(5)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.acks.append(Ack.model_validate_json(msg.payload))

    def latest(self) -> Ack | None:
        with self._lock:
            return self.acks[-1] if self.acks else None

    def publish(self, payload: bytes) -> None:
        self.client.publish(TOPIC, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_the_cloud_acknowledges_committed_events_on_the_gateways_command_topic(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    settings = cloud_settings(tmp_path, mosquitto, gap_hold_s=30.0, database=database_url)
    gateway = await asyncio.to_thread(GatewayClient, mosquitto)
    now = datetime.now(UTC).isoformat()
    try:
        async with running_cloud(settings) as running:
            cloud: RunningCloud = running
            boot = f"b{uuid.uuid4().hex[:8]}"
            for seq in (1, 2):
                gateway.publish(v2(seq, boot=boot, ts=now, device="gas-0101"))
            ack = await eventually(lambda: _acked(gateway, boot, 2))
            assert not ack.replay
            # 3 lost: 4 waits, and the cloud asks for what follows 2
            gateway.publish(v2(4, boot=boot, ts=now, device="call-0101"))
            ask = await eventually(lambda: _replay_asked(gateway, boot))
            assert ask.upto == 2
            assert cloud.cloud.ingest.counts["events"] == 2  # 4 is held, not evaluated
            gateway.publish(v2(3, boot=boot, ts=now, type="clear"))
            await eventually(lambda: _acked(gateway, boot, 4))
            assert cloud.cloud.ingest.counts["events"] == 4
            # the same event again: stored once, acknowledged again
            before = len(gateway.acks)
            gateway.publish(v2(4, boot=boot, ts=now, device="call-0101"))
            await eventually(lambda: len(gateway.acks) > before)
            assert gateway.latest() is not None and gateway.latest().upto == 4  # type: ignore[union-attr]
    finally:
        gateway.close()


def _acked(gateway: GatewayClient, boot: str, upto: int) -> Ack | None:
    ack = gateway.latest()
    return ack if ack is not None and ack.boot == boot and ack.upto >= upto else None


def _replay_asked(gateway: GatewayClient, boot: str) -> Ack | None:
    with gateway._lock:
        return next((a for a in reversed(gateway.acks) if a.boot == boot and a.replay), None)
