"""The cloud's PostgreSQL read from outside (tests/faults/records.py), on a real server made as
the database-kill scenario makes it (tests/faults/database.py), with the cloud's own schema:
storing order is the order of commits — not of the rows on disk — and a kill -9 of the server
keeps it, without the transaction it cut."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cloud.db.database import Database
from tests.faults.database import CloudPostgres
from tests.faults.ledger import measure
from tests.faults.records import PostgresRecords, UnknownOrder

GW = "gw-f01"
T0 = 1_800_000_000.0


def insert(conn: psycopg.Connection[tuple[object, ...]], seq: int, event_id: str = "") -> str:
    event_id = event_id or str(uuid.uuid4())
    conn.execute(
        'INSERT INTO events (id, gateway, device, boot, seq, ts, kind, type, "values",'
        " clock_synced, replayed, received_at)"
        " VALUES (%s, %s, 'smoke-01', 'bootA', %s, %s, 'smoke', 'clear', '{}', 1, 0, %s)",
        (event_id, GW, seq, T0 + seq, T0 + seq),
    )
    return event_id


@pytest.fixture
def postgres() -> Iterator[CloudPostgres]:
    # in /tmp as the scenario's work folder: the server's user must reach its data folder
    workdir = Path(tempfile.mkdtemp(prefix="sc-faults-records-"))
    workdir.chmod(0o755)
    pg = CloudPostgres(workdir / "postgres")
    pg.start()

    async def schema() -> None:
        db = await Database.open(pg.url)
        await db.close()

    asyncio.run(schema())
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_storing_order_is_commit_order_and_survives_a_kill(postgres: CloudPostgres) -> None:
    url = postgres.url
    with psycopg.connect(url) as first, psycopg.connect(url) as second:
        insert(first, 1)  # on disk first, committed second
        insert(second, 2)
        second.commit()
        first.commit()
    cut = psycopg.connect(url)
    cut_id = insert(cut, 3)  # in flight when the server dies: never stored
    postgres.kill9()
    cut.close()
    postgres.start()
    with psycopg.connect(url) as conn:
        insert(conn, 4)

    records = postgres.records
    assert [s.key[2] for s in records.stored([GW])] == [2, 1, 4]
    assert records.count([GW]) == 3 and not records.has_event(cut_id)
    with psycopg.connect(url) as conn:  # on disk, seq 1 comes before seq 2
        on_disk = conn.execute("SELECT seq FROM events ORDER BY ctid").fetchall()
    assert [r[0] for r in on_disk] == [1, 2, 4]
    counts = measure(gateways=[GW], agent_logs={}, outboxes=[], records=records, faults=[])
    assert (counts.sent, counts.stored, counts.lost, counts.out_of_order) == (3, 3, 0, 1)


def test_an_event_stored_before_the_order_was_recorded_is_an_error(
    postgres: CloudPostgres,
) -> None:
    with psycopg.connect(postgres.url) as conn:
        insert(conn, 1)
    late = PostgresRecords(postgres.url, slot="made_late")
    late.watch()
    with pytest.raises(UnknownOrder, match="made before the cloud first started"):
        late.stored([GW])


def test_a_commit_unanswered_at_the_kill_is_stored_after_the_restart(
    postgres: CloudPostgres,
) -> None:
    """What `database-kill` aims at: a commit written, never answered, there after recovery."""
    tried: list[str] = []
    failed: list[BaseException] = []

    def keep_committing() -> None:  # as the cloud's writer would, one event a unit
        with psycopg.connect(postgres.url, application_name="sc-cloud") as conn:
            try:
                for seq in range(1, 100_000):
                    tried.append(insert(conn, seq))
                    conn.commit()
            except psycopg.OperationalError as exc:
                failed.append(exc)

    writer = threading.Thread(target=keep_committing)
    writer.start()
    _, waiting = postgres.kill9_at_commit(within_s=10)
    writer.join(timeout=30)
    assert waiting and failed, "no commit was left unanswered"
    postgres.start()  # and commits are answered again
    with psycopg.connect(postgres.url) as conn:
        insert(conn, 0)
    assert postgres.records.has_event(tried[-1])  # the unanswered one
    assert postgres.records.count([GW]) == len(tried) + 1
