"""Events leave the outbox only on the cloud's acknowledgement (`cmd/ack`), never on the
broker's PUBACK alone: real Mosquitto, in-process agents, a `cloud` client that follows the
protocol (or, to show what the gateway does without it, one that never acknowledges)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from contract import topics
from contract.models import Ack, EventType, encode, utc_now
from gateway.outbox import Outbox
from tests.gateway.conftest import FAST
from tests.gateway.helpers import CloudClient, outbox_rows, wait_until

GW = "gw-ld01"
#: The cloud's acknowledgement is awaited 0.4 s, then 0.8, 1.6, … (capped at 1.6 s).
QUICK_RESEND = dataclasses.replace(
    FAST,
    uplink=dataclasses.replace(FAST.uplink, ack_timeout_s=0.4, ack_timeout_max_s=1.6),
)


def _ack(cloud: CloudClient, boot: str, upto: int, *, replay: bool = False) -> None:
    ack = Ack(boot=boot, upto=upto, replay=replay, ts=utc_now())
    cloud.publish(topics.command(GW, "ack"), encode(ack))


def test_the_brokers_puback_keeps_an_event_and_the_clouds_ack_deletes_it(mosquitto, make_agent):
    silent = CloudClient(mosquitto, f"sc/v1/{GW}/event", acks=False)
    try:
        agent = make_agent(mosquitto, options=QUICK_RESEND)
        agent.start()
        assert agent.wait_connected(5)
        agent.hardware.trip_smoke("smoke-0102")
        sent = silent.wait(lambda: len(silent.events()) >= 2 and silent.events())
        assert [e.v for e in sent] == [2, 2]  # our gateway asks for the cloud's ack
        # The broker acknowledged both long ago; they stay until the cloud says so.
        wait_until(lambda: agent.uplink.stats.acked >= 2, 5, "the broker's PUBACKs")
        assert agent.outbox.count_events() == 2

        # Nobody acknowledges: they go out again, in order, with back-off.
        silent.wait(lambda: len(silent.sent_events()) >= 6)
        resent = [(e.seq, e.type) for e in silent.sent_events()[:6]]
        assert resent == [(1, EventType.HEARTBEAT), (2, EventType.ALARM)] * 3
        assert agent.uplink.stats.resends >= 2

        # The cloud commits the first: only the second stays.
        _ack(silent, agent.boot, 1)
        wait_until(lambda: agent.outbox.count_events() == 1, 5, "the first to be forgotten")
        [(_, left)] = outbox_rows(agent.outbox.path)
        assert b'"seq":2' in left
        _ack(silent, agent.boot, 2)
        wait_until(lambda: agent.uplink.stats.cloud_acked == 2, 5, "the second acknowledged")
        assert agent.outbox.count_events() == 0
    finally:
        silent.close()


def test_a_replay_request_sends_the_missing_events_again_at_once(mosquitto, make_agent):
    patient = dataclasses.replace(
        FAST, uplink=dataclasses.replace(FAST.uplink, ack_timeout_s=60, ack_timeout_max_s=60)
    )
    silent = CloudClient(mosquitto, f"sc/v1/{GW}/event", acks=False)
    try:
        agent = make_agent(mosquitto, options=patient)
        agent.start()
        assert agent.wait_connected(5)
        hw = agent.hardware
        hw.trip_smoke("smoke-0102")
        silent.wait(lambda: len(silent.sent_events()) == 2)
        hw.clear_smoke("smoke-0102")
        silent.wait(lambda: len(silent.sent_events()) == 3)
        hw.press_call("call-0101")
        silent.wait(lambda: len(silent.sent_events()) == 4)
        # The cloud has 1 and 2 and saw 4, but not 3: it asks for what follows 2.
        _ack(silent, agent.boot, 2, replay=True)
        silent.wait(lambda: len(silent.sent_events()) >= 6)  # far sooner than 60 s
        again = silent.sent_events()[4:]
        assert [e.seq for e in again] == [3, 4]
        assert agent.outbox.count_events() == 2
    finally:
        silent.close()


def test_events_of_an_earlier_boot_are_sent_again_by_the_next_run_and_then_forgotten(
    mosquitto, make_agent
):
    silent = CloudClient(mosquitto, f"sc/v1/{GW}/event", acks=False)
    try:
        first = make_agent(mosquitto, options=QUICK_RESEND)
        first.start()
        assert first.wait_connected(5)
        first.hardware.press_call("call-0101")
        silent.wait(lambda: len(silent.events()) == 2)
        old_boot = first.boot
        first.close()
    finally:
        silent.close()

    # The same outbox file, a new run: a new boot, and the old boot's events still there.
    acking = CloudClient(mosquitto, f"sc/v1/{GW}/event")
    try:
        agent = make_agent(mosquitto, options=QUICK_RESEND, outbox_path=first.outbox_path)
        agent.start()
        assert agent.wait_connected(5)
        assert agent.boot != old_boot
        events = acking.wait(lambda: len(acking.events()) >= 3 and acking.events())
        assert [(e.boot, e.seq) for e in events[:2]] == [(old_boot, 1), (old_boot, 2)]
        assert all(e.replayed for e in events[:2])
        wait_until(lambda: agent.outbox.count_events() == 0, 5, "every boot acknowledged")
    finally:
        acking.close()


def test_telemetry_is_deleted_on_the_brokers_puback(mosquitto, make_agent):
    silent = CloudClient(mosquitto, f"sc/v1/{GW}/#", acks=False)
    try:
        agent = make_agent(mosquitto, options=QUICK_RESEND)
        agent.start()
        assert agent.wait_connected(5)
        agent.hardware.set_gas("gas-0101", 3.0)
        silent.wait(lambda: silent.on("/telemetry"))
        wait_until(lambda: not outbox_rows(agent.outbox.path, "/telemetry"), 5, "telemetry deleted")
        assert agent.outbox.count_events() >= 1  # the heartbeat still waits for the cloud
    finally:
        silent.close()


def test_an_outbox_from_before_the_clouds_acks_is_read_and_sent(tmp_path: Path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE outbox (row INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
        " payload BLOB NOT NULL, qos INTEGER NOT NULL, created REAL NOT NULL)"
    )
    db.execute(
        "INSERT INTO outbox (topic, payload, qos, created) VALUES (?, ?, 1, 0)",
        ("sc/v1/gw-ld01/event", b'{"v":1}'),
    )
    db.commit()
    db.close()
    with Outbox(path) as box:
        [entry] = box.pending()
        assert entry.payload == b'{"v":1}'
        assert not entry.awaits_cloud  # a version-1 event: the broker's PUBACK completes it
        row = box.put("sc/v1/gw-ld01/event", b"new", stream=("b1", 1))
        assert box.first_unacked() == row
        assert box.ack_stream("b1", 1) == 1
        assert box.ack_rows([entry.row]) == 1
        assert box.count() == 0


def test_acks_delete_only_their_own_boot_up_to_their_seq(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite3") as box:
        for boot in ("a", "b"):
            for seq in (1, 2, 3):
                box.put("sc/v1/gw/event", f"{boot}{seq}".encode(), stream=(boot, seq))
        box.put("sc/v1/gw/telemetry", b"t")
        before = box.size_bytes
        assert box.ack_stream("a", 2) == 2
        assert box.ack_stream("a", 2) == 0  # the same ack twice: nothing more
        assert [e.payload for e in box.pending()] == [b"a3", b"b1", b"b2", b"b3", b"t"]
        assert box.size_bytes < before
        assert box.first_unacked("b", 1) == box.pending()[2].row
        assert box.first_unacked("c") is None
