"""Telemetry batch ids are remembered for a while, then forgotten (cloud/ingest/batch_ids.py),
on each backend: a batch resent within the window is stored once; past it, its id is gone
and the table does not grow for ever."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloud.alarms.arrivals import batch_arrival
from cloud.db.database import Conn
from cloud.ingest import batch_ids
from cloud.rules.core import Evaluation
from tests.cloud.helpers import FakeClock, book_parts, record

DAY = 86400.0


async def test_batch_ids_are_forgotten_after_the_window_and_only_then(database_url: str) -> None:
    clock = FakeClock()
    async with book_parts(database_url, clock) as parts:
        book, db = parts.book, parts.db
        old = [batch_arrival(f"old-{i}", "gw-ld01", 3, clock()) for i in range(12)]
        for arrival in old:
            await record(book, arrival, Evaluation)
        clock.advance(1.5 * DAY)
        new = batch_arrival("new-1", "gw-ld01", 3, clock())
        await record(book, new, Evaluation)
        # within the window: a resend of either is known (stored once)
        assert await book.unseen([old[0], new]) == [False, False]

        clock.advance(1.0 * DAY)  # old ones 2.5 days, the new one 1 day
        gone = await batch_ids.forget_old(db, 2 * DAY)
        assert gone == 12
        assert await book.unseen([old[0], new]) == [True, False]
        assert await db.fetch_value("SELECT count(*) FROM telemetry_batches") == 1
        assert await batch_ids.forget_old(db, 2 * DAY) == 0  # nothing more to forget


async def test_many_ids_are_forgotten_a_chunk_per_unit(database_url: str) -> None:
    clock = FakeClock()
    async with book_parts(database_url, clock) as parts:
        db = parts.db
        many = batch_ids.CHUNK * 2 + 7
        await db.execute_many(
            "INSERT INTO telemetry_batches (id, gateway, readings, received_at) VALUES (?,?,?,?)",
            [(f"b-{i}", "gw-ld01", 1, clock()) for i in range(many)],
        )
        clock.advance(3 * DAY)
        units = 0
        write = db.write

        async def counted(fn: Callable[[Conn], Any]) -> Any:
            nonlocal units
            units += 1
            return await write(fn)

        db.write = counted  # type: ignore[method-assign]
        assert await batch_ids.forget_old(db, 2 * DAY) == many
        assert units == 3  # two full chunks and the rest: the writer is never held for long
        assert await db.fetch_value("SELECT count(*) FROM telemetry_batches") == 0
