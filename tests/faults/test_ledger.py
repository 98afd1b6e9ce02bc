"""The fault suite's counts on a made-up run whose answers are known: agent logs written by
the agent's own log formatter, an outbox made by the agent's Outbox, and a cloud database
made by the cloud's own schema. Each count (docs/reliability.md) is checked to move."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from cloud.db.database import Database
from gateway.logs import KeyValueFormatter
from gateway.outbox import Outbox
from tests.faults.ledger import Fault, measure
from tests.faults.records import SqliteRecords

GW = "gw-f01"
T0 = 1_800_000_000.0


def write_log(path: Path, boot: str, lines: list[tuple[float, str]]) -> None:
    formatter = KeyValueFormatter()
    out = []
    for at, message in [(T0, f"agent started gateway={GW} boot={boot} devices=16"), *lines]:
        record = logging.LogRecord("gateway.agent", logging.INFO, __file__, 0, message, (), None)
        record.created, record.msecs = at, (at % 1) * 1000
        out.append(formatter.format(record))
    path.write_text("\n".join(out) + "\n")


def queued(seq: int, kind: str = "smoke", type_: str = "alarm", device: str = "smoke-01") -> str:
    return f"event queued device={device} kind={kind} type={type_} seq={seq} row={seq}"


def step(device: str = "smoke-01") -> str:
    return f"script step index=0 do=trip_smoke device={device}"


def cloud_database(path: Path) -> Path:
    async def make() -> None:
        db = await Database.open(path)
        await db.close()

    asyncio.run(make())
    return path


def store(db: sqlite3.Connection, boot: str, seq: int, at: float, **kw: Any) -> str:
    event_id = kw.pop("id", str(uuid.uuid4()))
    row = {"kind": "smoke", "type": "alarm", "device": "smoke-01", **kw}
    db.execute(
        'INSERT INTO events (id, gateway, device, boot, seq, ts, kind, type, "values",'
        " clock_synced, replayed, received_at) VALUES (?,?,?,?,?,?,?,?,'{}',1,0,?)",
        (event_id, GW, row["device"], boot, seq, at, row["kind"], row["type"], at),
    )
    return event_id


def alarm(db: sqlite3.Connection, rule: str, first_event_id: str, repeats: int) -> None:
    columns = db.execute("PRAGMA table_info(alarms)").fetchall()
    values: dict[str, Any] = {
        c[1]: (0 if c[2] in ("INTEGER", "REAL") else "x")
        for c in columns
        if c[3] and c[4] is None and c[1] != "id"
    }
    values.update(rule=rule, gateway=GW, first_event_id=first_event_id, repeats=repeats)
    values["open_key"] = str(uuid.uuid4())
    names = ",".join(values)
    db.execute(
        f"INSERT INTO alarms ({names}) VALUES ({','.join('?' * len(values))})",
        list(values.values()),
    )


def test_each_count_is_what_its_definition_says(tmp_path: Path) -> None:
    database = cloud_database(tmp_path / "cloud.db")
    # boot A: seq 1 alarm stored twice under two ids; seq 2 clear never stored (lost);
    # seq 3 a heartbeat (not life safety); seq 4 stored, but its log line was cut;
    # seq 6 stored, seq 5 stored after it (out of order); seq 8 known, seq 7 nowhere (a gap);
    # 7 script steps for 6 life-safety events (one change never became an event), and two
    # steps too close together to be seen
    write_log(
        tmp_path / "a.log",
        "bootA",
        [
            (T0 + 1, queued(1)),
            (T0 + 2, queued(2, type_="clear")),
            (T0 + 3, queued(3, kind="gateway", type_="heartbeat", device=GW)),
            (T0 + 5, queued(5, type_="clear")),
            (T0 + 6, queued(6)),
            (T0 + 8, queued(8, type_="clear")),
            *[(T0 + 0.3 * i, step()) for i in range(7)],
            # and a trip undone 0.05 s later (the script caught up): below the debounce time
            (T0 + 9.0, step("smoke-02")),
            (T0 + 9.05, step("smoke-02")),
        ],
    )
    db = sqlite3.connect(database)
    first = store(db, "bootA", 1, T0 + 1.1)
    store(db, "bootA", 1, T0 + 1.2)  # the same event under a second id
    store(db, "bootA", 4, T0 + 4.1)
    store(db, "bootA", 6, T0 + 6.1)
    store(db, "bootA", 5, T0 + 6.2, type="clear")
    store(db, "bootA", 8, T0 + 9.5, type="clear")
    # two raising events stored (seq 1 twice counts once per id: 3 rows raise), three alarm
    # decisions recorded on one alarm plus a second alarm for the same first event
    alarm(db, "smoke_alarm", first, repeats=3)
    alarm(db, "smoke_alarm", first, repeats=0)
    db.commit()
    db.close()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put(
        f"sc/v1/{GW}/event",
        json.dumps(
            {"gateway": GW, "boot": "bootA", "seq": 2, "id": "e2", "kind": "smoke"}
        ).encode(),
    )
    outbox.close()

    counts = measure(
        gateways=[GW],
        agent_logs={GW: [tmp_path / "a.log"]},
        outboxes=[tmp_path / "outbox.sqlite3"],
        records=SqliteRecords(database),
        faults=[Fault("something", T0 + 2.5, T0 + 7.0)],
    )

    assert counts.sent == 6  # seq 1, 2, 4, 5, 6, 8 (the heartbeat is not life safety)
    assert counts.stored == 5
    assert counts.lost == 1 and counts.detail["lost_still_in_outbox"] == 1
    assert counts.detail["doubled_same_seq_two_ids"] == 1
    assert counts.detail["doubled_alarmed_twice"] == 1
    # decisions: (1 + 3) + (1 + 0) = 5; raising events stored: seq 1 (two rows), 4, 6 = 4
    assert counts.detail["doubled_extra_alarm_decisions"] == 1
    assert counts.doubled == 3
    assert counts.out_of_order == 1
    assert counts.unrecorded == 1
    assert counts.detail["script_steps_squeezed"] == 2
    assert counts.gaps == 1
    [recovery] = counts.recoveries
    # before the end (T0+7): seq 1, 2, 4, 5, 6 — seq 2 lost, so it never recovered
    assert recovery.lost_before == 1 and recovery.recover_s is None
    assert recovery.backlog_s == 0.0  # all stored before it ended (T0+6.2)
    assert recovery.flow_s is not None and abs(recovery.flow_s - 2.5) < 1e-6


def test_a_clean_run_counts_nothing_wrong_and_recovers(tmp_path: Path) -> None:
    database = cloud_database(tmp_path / "cloud.db")
    write_log(tmp_path / "a.log", "bootA", [(T0 + i, queued(i)) for i in range(1, 5)])
    db = sqlite3.connect(database)
    for i in (1, 3, 4, 2):  # seq 2 held up by the fault, stored last
        store(db, "bootA", i, T0 + i + (3.0 if i == 2 else 0.1))
    db.commit()
    db.close()
    # seq 2 stored 3 s late, after seq 3 and 4: out of order, but nothing lost
    counts = measure(
        gateways=[GW],
        agent_logs={GW: [tmp_path / "a.log"]},
        outboxes=[],
        records=SqliteRecords(database),
        faults=[Fault("something", T0 + 2.5, T0 + 2.6)],
    )
    assert (counts.sent, counts.stored, counts.lost, counts.doubled) == (4, 4, 0, 0)
    assert counts.out_of_order == 1
    [recovery] = counts.recoveries
    assert recovery.recover_s is not None and abs(recovery.recover_s - 2.4) < 1e-6
