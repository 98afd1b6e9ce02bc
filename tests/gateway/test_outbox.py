"""The durable outbox: order, ack, persistence across reopen, thread safety."""

from __future__ import annotations

import threading

from gateway.outbox import Outbox


def test_pending_is_oldest_first_and_ack_deletes_only_what_was_acked(tmp_path):
    with Outbox(tmp_path / "o.sqlite3") as box:
        rows = [box.put("sc/v1/gw/event", f"m{i}".encode(), 1) for i in range(5)]
        assert rows == sorted(rows)
        assert [e.payload for e in box.pending(3)] == [b"m0", b"m1", b"m2"]
        assert [e.payload for e in box.pending(10, after=rows[2])] == [b"m3", b"m4"]
        assert box.ack([rows[1], rows[3]]) == 2
        assert box.ack([rows[1]]) == 0  # acked twice: nothing more to delete
        assert [e.payload for e in box.pending()] == [b"m0", b"m2", b"m4"]
        entry = box.pending(1)[0]
        assert (entry.topic, entry.qos) == ("sc/v1/gw/event", 1)


def test_unacked_messages_survive_reopen_in_order_and_ids_are_not_reused(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    first = [box.put("t", bytes([i]), 1) for i in range(4)]
    box.ack(first[:2])
    last = box.put("t", b"last", 1)
    box.ack([last])  # the highest id acked: must not be handed out again
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
        acked += box.ack(e.row for e in box.pending(20))
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
