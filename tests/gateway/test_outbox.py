"""The durable outbox: order, ack, persistence across reopen, thread safety."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbox import Outbox, OutboxFull
from tests.gateway.helpers import REPO


def test_pending_is_oldest_first_and_ack_deletes_only_what_was_acked(tmp_path):
    with Outbox(tmp_path / "o.sqlite3") as box:
        rows = [box.put("sc/v1/gw/event", f"m{i}".encode(), 1) for i in range(5)]
        assert rows == sorted(rows)
        assert [e.payload for e in box.pending(3)] == [b"m0", b"m1", b"m2"]
        assert [e.payload for e in box.pending(10, after=rows[2])] == [b"m3", b"m4"]
        assert box.ack_rows([rows[1], rows[3]]) == 2
        assert box.ack_rows([rows[1]]) == 0  # acked twice: nothing more to delete
        assert [e.payload for e in box.pending()] == [b"m0", b"m2", b"m4"]
        entry = box.pending(1)[0]
        assert (entry.topic, entry.qos) == ("sc/v1/gw/event", 1)


def test_unacked_messages_survive_reopen_in_order_and_ids_are_not_reused(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    first = [box.put("t", bytes([i]), 1) for i in range(4)]
    box.ack_rows(first[:2])
    last = box.put("t", b"last", 1)
    box.ack_rows([last])  # the highest id acked: must not be handed out again
    box.close()

    box = Outbox(path)
    assert [e.row for e in box.pending()] == first[2:]
    assert box.put("t", b"new", 1) > last
    assert [e.payload for e in box.pending()] == [b"\x02", b"\x03", b"new"]
    assert box.count() == 3
    box.close()


def test_concurrent_puts_and_acks(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    per_thread = 50

    def writer(n: int) -> None:
        for i in range(per_thread):
            box.put("t", f"{n}-{i}".encode(), 1)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    acked = 0
    while any(t.is_alive() for t in threads) or box.count():
        acked += box.ack_rows(e.row for e in box.pending(20))
    for thread in threads:
        thread.join()
    assert acked == 4 * per_thread
    assert box.count() == 0
    box.close()


def test_per_writer_order_is_kept(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    for i in range(20):
        box.put("a", str(i).encode(), 1)
        box.put("b", str(i).encode(), 0)
    pending = box.pending(100)
    assert [int(e.payload) for e in pending if e.topic == "a"] == list(range(20))
    assert {e.qos for e in pending if e.topic == "b"} == {0}
    box.close()


EVENT, TELEMETRY = "sc/v1/gw/event", "sc/v1/gw/telemetry"


def test_over_budget_telemetry_is_thinned_oldest_first_and_events_never(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", budget_bytes=20_000)
    events = []
    for i in range(60):
        events.append(box.put(EVENT, f"alarm-{i}".encode(), 1))
        box.put(TELEMETRY, f"batch-{i:03d}".encode() + bytes(1000), 1)
    assert box.size_bytes <= 20_000
    left = box.pending(1000)
    assert [e.row for e in left if e.topic == EVENT] == events, "every event kept, in order"
    batches = [int(e.payload[6:9]) for e in left if e.topic == TELEMETRY]
    assert batches == list(range(60 - len(batches), 60)), "the newest telemetry kept"
    assert box.stats.thinned_rows == 60 - len(batches) > 0
    # The count survives a reopen, and acks give the budget back.
    size = box.size_bytes
    box.close()
    box = Outbox(tmp_path / "o.sqlite3", budget_bytes=20_000)
    assert box.size_bytes == size
    box.ack_rows(events)
    assert box.size_bytes == size - sum(len(f"alarm-{i}") + len(EVENT) + 48 for i in range(60))
    box.close()


def test_events_alone_may_exceed_the_budget(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", budget_bytes=2_000)
    rows = [box.put(EVENT, bytes(100), 1) for _ in range(40)]
    assert [e.row for e in box.pending(100)] == rows
    assert box.stats.over_budget > 0 and box.size_bytes > 2_000
    box.close()


def test_a_full_disk_is_made_room_on_by_dropping_old_telemetry(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    box._conn().execute("PRAGMA max_page_count = 40")  # a tiny disk: SQLITE_FULL soon
    written = []
    for i in range(2000):
        box.put(TELEMETRY, bytes(600), 1)
        written.append(box.put(EVENT, f"e{i}".encode(), 1))
    assert box.stats.disk_full > 0 and box.stats.thinned_rows > 0
    assert [e.row for e in box.pending(5000) if e.topic == EVENT] == written
    box.close()


def test_meta_survives_reopen(tmp_path):
    with Outbox(tmp_path / "o.sqlite3") as box:
        box.set_meta("k", "1.5")
        assert box.get_meta("k") == "1.5"
    with Outbox(tmp_path / "o.sqlite3") as box:
        assert box.get_meta("k") == "1.5"
        box.set_meta("k", None)
        assert box.get_meta("k") is None


WRITER = """
import sys
from gateway.outbox import Outbox

box = Outbox(sys.argv[1], budget_bytes=200_000)
seq = int(sys.argv[2])
while True:
    seq += 1
    row = box.put("sc/v1/gw/event", b'{"seq": %d}' % seq, 1)
    print(row, seq, flush=True)  # only after put() returned: acknowledged as written
    for _ in range(3):
        box.put("sc/v1/gw/telemetry", bytes(2000), 1)
"""


def test_kill_9_while_writing_never_corrupts_nor_loses_a_written_event(tmp_path):
    path = tmp_path / "o.sqlite3"
    acknowledged: list[tuple[int, int]] = []
    rng = random.Random(7)
    for _ in range(6):
        seq = _last_seq(path)  # a put may have committed without being acknowledged
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(seq)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        first = writer.stdout.readline()  # it is writing
        time.sleep(rng.uniform(0.02, 0.3))
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=10)
        # the kill can cut the last acknowledgement in half: only whole lines count
        lines = (first + rest).split("\n")[:-1]
        for line in lines:
            if line.strip():
                row, written = line.split()
                acknowledged.append((int(row), int(written)))
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = db.execute(
            "SELECT row, payload FROM outbox WHERE topic LIKE '%/event' ORDER BY row"
        ).fetchall()
    finally:
        db.close()
    seqs = [json.loads(payload)["seq"] for _, payload in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "in order, none doubled"
    rows = {row for row, _ in stored}
    lost = [(row, seq) for row, seq in acknowledged if row not in rows]
    assert not lost, f"acknowledged-written events lost: {lost[:5]}"
    assert len(acknowledged) > 30
    box = Outbox(path)  # and it opens and takes writes again
    assert box.put(EVENT, b"after", 1) > max(rows)
    box.close()


def _last_seq(path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        row = db.execute(
            "SELECT payload FROM outbox WHERE topic LIKE '%/event' ORDER BY row DESC LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    return json.loads(row[0])["seq"] if row else 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs), for a disk that fills up. Needs root to mount."""
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2048k,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False, capture_output=True)


def _fill(folder: Path) -> Path:
    """Write a file until the filesystem has no room left."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


def test_on_a_full_disk_the_reserve_makes_room_and_events_go_on_being_stored(small_disk):
    with Outbox(small_disk / "outbox.sqlite3") as box:
        assert box.reserve.stat().st_size == 128 * 1024  # a 16th of this small disk
        filler = _fill(small_disk)  # the disk is now full: something else filled it
        for seq in range(1, 101):  # about 30 KB of events
            box.put("sc/v1/gw/event", b"x" * 250, stream=("b", seq))
        assert box.count() == 100
        assert box.stats.disk_full >= 1 and box.stats.reserve_released == 1
        assert not box.reserve.exists()
        # once the disk has room again and the events are delivered, the reserve is made again
        filler.unlink()
        assert box.ack_stream("b", 100) == 100
        assert box.reserve.exists() and not box.room.tight


def test_when_the_reserve_is_spent_deletes_still_make_room_for_new_events(small_disk):
    with Outbox(small_disk / "outbox.sqlite3") as box:
        _fill(small_disk)
        seq = 0
        with pytest.raises(OutboxFull):
            while True:
                box.put("sc/v1/gw/event", b"x" * 250, stream=("b", seq + 1))
                seq += 1
        assert seq > 100  # the reserve (above the floor) held over a hundred events
        assert box.set_meta("k", "v") in (True, False)  # refused or not: logged, never raised
        assert [e.seq for e in box.pending(limit=3)] == [1, 2, 3]
        # the cloud acknowledges the first half: the floor was kept for exactly that
        assert box.ack_stream("b", seq // 2) == seq // 2
        box.put("sc/v1/gw/event", b"new", stream=("b", seq + 1))
        assert box.count() == seq - seq // 2 + 1
