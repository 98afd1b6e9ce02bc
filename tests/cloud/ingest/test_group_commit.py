"""Group commit in ingest: a batch of messages is stored with one commit, and still every
message gets exactly what it would have got on its own — duplicates make nothing, a bad one is
rejected with its reason, an internal error in one spoils none of the others, one open alarm
per device and rule, and the broker hears the acknowledgement only after the commit."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from cloud.alarms.arrivals import batch_arrival, event_arrival
from cloud.alarms.model import Mode
from cloud.alarms.queries import AlarmQueries
from cloud.errors import CloudError
from cloud.ingest.pipeline import Ingest
from cloud.ingest.rejects import RejectLog
from cloud.rules import AlarmDraft, Evaluation
from cloud.telemetry.open import open_store
from tests.cloud.conftest import Publisher, RunningCloud, eventually
from tests.cloud.helpers import T0, FakeClock, book_parts, event
from tests.db_backends import outside_connection

EVENT_TOPIC = "sc/v1/gw-ld01/event"


def body(**overrides: Any) -> bytes:
    data: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "gateway": "gw-ld01",
        "device": "smoke-0102",
        "boot": "b",
        "seq": 1,
        "ts": datetime.fromtimestamp(T0, UTC).isoformat(),
        "kind": "smoke",
        "type": "alarm",
    }
    data.update(overrides)
    return json.dumps(data).encode()


@contextlib.asynccontextmanager
async def ingest_on(database: str, tmp_path: Path) -> AsyncIterator[Ingest]:
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
            )
        finally:
            with contextlib.suppress(Exception):
                await store.close()


def count(database: str, sql: str) -> int:
    with contextlib.closing(outside_connection(database)) as conn:  # what is committed
        return int(conn.execute(sql).fetchone()[0])


async def test_a_mixed_batch_gives_exactly_the_right_alarms_and_rejections(
    tmp_path: Path, database_url: str
) -> None:
    async with ingest_on(database_url, tmp_path) as ingest:
        earlier = body(device="call-0101", kind="call", type="press")
        await ingest.handle(EVENT_TOPIC, earlier, T0)
        first = body()
        telemetry = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "gateway": "gw-ld01",
                "boot": "b",
                "seq": 2,
                "readings": [
                    {
                        "device": "gas-0101",
                        "kind": "gas",
                        "ts": datetime.fromtimestamp(T0, UTC).isoformat(),
                        "values": {"ch4_pct_lel": 1.0},
                    }
                ],
            }
        ).encode()
        batch = [
            (EVENT_TOPIC, first, T0),
            (EVENT_TOPIC, first, T0),  # redelivered within the batch
            (EVENT_TOPIC, earlier, T0),  # stored by an earlier commit
            (EVENT_TOPIC, b"{not json", T0),
            (EVENT_TOPIC, body(device="smoke-9999"), T0),
            ("sc/v1/gw-ld01/telemetry", telemetry, T0),
            ("sc/v1/gw-ld01/telemetry", telemetry, T0),
            (EVENT_TOPIC, body(), T0),  # same device and rule: a repeat, not a second alarm
        ]
        raised = await ingest.handle_many(batch)

        assert [(r.new, r.change, r.alarm.device) for r in raised] == [
            (True, "raised", "smoke-0102"),
            (False, "repeat", "smoke-0102"),
        ]
        assert ingest.counts["duplicates"] == 3
        assert ingest.counts["events"] == 3 and ingest.counts["telemetry_batches"] == 1
        assert ingest.rejects.counts == {"malformed_json": 1, "unknown_device": 1}
        assert ingest.counts["group_commits"] == 2  # the earlier message, then the batch
        assert count(database_url, "SELECT count(*) FROM events") == 3
        assert count(database_url, "SELECT count(*) FROM telemetry_batches") == 1
        assert count(database_url, "SELECT count(*) FROM rejected") == 2
        smoke = "SELECT count(*) FROM alarms WHERE device = 'smoke-0102' AND open_key IS NOT NULL"
        assert count(database_url, smoke) == 1
        assert count(database_url, "SELECT repeats FROM alarms WHERE device = 'smoke-0102'") == 1

        # announced after the commit; the live message carries the time it was pushed
        sub = ingest.announcer.hub.subscribe()
        ingest.clock.advance(0.25)  # type: ignore[attr-defined]
        await ingest.announce(raised)
        pushed = [sub.queue.get_nowait().body()["alarm"] for _ in range(sub.queue.qsize())]
        assert pushed[0]["pushed_at"] is not None
        stored = await AlarmQueries(ingest.book.db).get(pushed[0]["id"])
        assert stored.pushed_at is not None
        assert pushed[0]["pushed_at"] == stored.model_dump(mode="json")["pushed_at"]


async def test_an_internal_error_in_one_message_spoils_none_of_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    async with ingest_on(database_url, tmp_path) as ingest:
        bad = str(uuid.uuid4())
        real = ingest.core.event

        def event_or_bug(ev: Any, at: float) -> Any:
            if ev.id == bad:
                raise RuntimeError("a bug in a rule")
            return real(ev, at)

        monkeypatch.setattr(ingest.core, "event", event_or_bug)
        await ingest.handle_many(
            [
                (EVENT_TOPIC, body(), T0),
                (EVENT_TOPIC, body(id=bad, device="gas-0101", kind="gas", type="alarm"), T0),
                (EVENT_TOPIC, body(device="call-0101", kind="call", type="press"), T0),
            ]
        )
        assert ingest.rejects.counts == {"internal_error": 1}
        assert count(database_url, "SELECT count(*) FROM events") == 2
        assert count(database_url, f"SELECT count(*) FROM events WHERE id = '{bad}'") == 0
        assert count(database_url, "SELECT count(*) FROM alarms") == 2


async def test_a_failure_while_storing_one_message_rolls_back_that_one_only(
    database_url: str,
) -> None:
    clock = FakeClock()
    async with book_parts(database_url, clock) as parts:
        good = event("smoke-0102")
        broken = event("call-0101", kind="call", type_="press")
        nowhere = AlarmDraft(
            rule="smoke",
            level=1,
            kind="smoke",
            gateway="gw-nowhere",
            device="x",
            title_zh="烟雾",
            title_en="smoke",
            device_ts=datetime.fromtimestamp(T0, UTC),
            event_id=broken.id,
        )
        arrivals = [
            event_arrival(good, T0),
            event_arrival(broken, T0),
            batch_arrival("batch-1", "gw-ld01", 0, T0),
        ]
        assert await parts.book.unseen(arrivals) == [True, True, True]
        results = await parts.book.record(
            [
                (arrivals[0], parts.core.event(good, T0)),
                (arrivals[1], Evaluation([nowhere])),  # no place: fails inside the transaction
                (arrivals[2], Evaluation([])),
            ]
        )
        assert isinstance(results[0], list) and results[0][0].new
        assert isinstance(results[1], CloudError)
        assert results[2] == []
        assert await parts.alarms.count_events() == 1
        assert [a.device for a in await parts.alarms.active()] == ["smoke-0102"]
        # the failed one was not stored, so it is new when it comes again; the others are not
        assert await parts.book.unseen(arrivals) == [False, True, False]


async def test_a_failed_group_commit_is_retried_message_by_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    async with ingest_on(database_url, tmp_path) as ingest:
        real = ingest.book.record
        asked: list[str] = []
        real_event = ingest.core.event

        def event(ev: Any, at: float) -> Any:
            asked.append(ev.device)
            return real_event(ev, at)

        async def fail_groups(plans: Any, **kwargs: Any) -> Any:
            if len(plans) > 1:
                raise sqlite3.OperationalError("disk I/O error")
            return await real(plans, **kwargs)

        monkeypatch.setattr(ingest.book, "record", fail_groups)
        monkeypatch.setattr(ingest.core, "event", event)
        raised = await ingest.handle_many(
            [
                (EVENT_TOPIC, body(), T0),
                (EVENT_TOPIC, body(device="call-0101", kind="call", type="press"), T0),
            ]
        )
        assert ingest.counts["group_fallbacks"] == 1
        assert asked == ["smoke-0102", "call-0101"]  # the rules were asked once each
        assert [r.alarm.device for r in raised] == ["smoke-0102", "call-0101"]
        assert all(r.alarm.mode is Mode.LIVE for r in raised)
        assert ingest.rejects.counts == {}


async def test_the_broker_is_acknowledged_only_after_the_commit(
    cloud: RunningCloud, gw1: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cloud.cloud.settings.database
    acked_before_stored: list[tuple[int, int]] = []
    acks = 0
    real_ack = mqtt.Client.ack

    def ack(self: mqtt.Client, mid: int, qos: int) -> Any:
        nonlocal acks
        acks += 1
        with contextlib.closing(outside_connection(path)) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        if stored < acks:
            acked_before_stored.append((acks, stored))
        return real_ack(self, mid, qos)

    monkeypatch.setattr(mqtt.Client, "ack", ack)
    n = 300
    now = datetime.now(UTC).isoformat()  # this cloud runs on the real clock
    infos = [
        gw1.client.publish(
            EVENT_TOPIC, body(device="call-0101", kind="call", type="press", ts=now), 1
        )
        for _ in range(n)
    ]
    for info in infos:
        info.wait_for_publish(timeout=10)
    ingest = cloud.cloud.ingest
    await eventually(lambda: ingest.counts["events"] == n, timeout=30)
    await eventually(lambda: acks >= n)
    assert acked_before_stored == []
    assert ingest.counts["group_commits"] < n  # the messages were batched
