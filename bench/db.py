"""The system of record on each backend: what a unit of work costs, and a group commit's rate.

python -m bench.db [--runs 3] [--batches 20]

SQLite is a file in a temp folder (WAL, synchronous=FULL, as the cloud opens it); PostgreSQL is
a server from Debian started here on loopback, durable (fsync on, synchronous_commit on), as a
real one would be. Each run measures, per backend:

- a read unit's round trip (`fetch_value("SELECT count(*) FROM alarms WHERE id = ?")`) and a
  write unit's (one INSERT, committed), from the event loop: p50 and p99;
- a group commit of 500 events as the alarm book stores them (per event: SAVEPOINT, INSERT …
  ON CONFLICT DO NOTHING, RELEASE; one commit), and the same 500 rows with `executemany`:
  rows per second;
- a read's round trip while group commits run back to back: as the cloud reads (SQLite: on
  the one database thread, behind the writes; PostgreSQL: on a reader connection), and on
  PostgreSQL also with no reader connections (`readers=0`: what made us add them; SQLite
  has none, so its two rows measure the same thing).

The table shows the medians of the runs (docs/deploy.md, "Which database", has the last ones).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.stats import fmt, summary_ms, table
from cloud.db.database import Database
from tests.servers import PostgreSQL

BATCH = 500
EVENT = (
    'INSERT INTO events (id, gateway, device, boot, seq, ts, kind, type, "values",'
    " clock_synced, replayed, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT DO NOTHING"
)


def events(count: int) -> list[tuple[Any, ...]]:
    boot = uuid.uuid4().hex[:8]
    now = time.time()
    return [
        (f"{boot}-{n}", "gw-ld01", f"smoke-{n % 40:02d}", boot, n, now, "alarm", "smoke",
         '{"ppm": 12}', 1, 0, now)
        for n in range(count)
    ]  # fmt: skip


def group_commit(rows: list[tuple[Any, ...]]) -> Callable[[Any], None]:
    def unit(conn: Any) -> None:
        for row in rows:
            conn.execute("SAVEPOINT arrival")
            conn.execute(EVENT, row)
            conn.execute("RELEASE arrival")

    return unit


async def timed(count: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        out.append(time.perf_counter() - start)
    return out


async def write_loop(db: Database, done: asyncio.Event) -> None:
    while not done.is_set():
        await db.write(group_commit(events(BATCH)))


async def measure(url: str, batches: int) -> dict[str, float]:
    db = await Database.open(url)
    alone = await Database.open(url, readers=0)
    try:
        figures: dict[str, float] = {}
        read = "SELECT count(*) FROM alarms WHERE id = ?"
        await timed(200, lambda: db.fetch_value(read, (1,)))  # warm up (prepared statements)
        reads = summary_ms(await timed(2000, lambda: db.fetch_value(read, (1,))))
        figures["read p50 ms"], figures["read p99 ms"] = reads["p50"], reads["p99"]
        insert = "INSERT INTO audit (at, actor, action) VALUES (?, 'bench', 'x')"
        writes = summary_ms(await timed(300, lambda: db.execute(insert, (time.time(),))))
        figures["write p50 ms"], figures["write p99 ms"] = writes["p50"], writes["p99"]

        elapsed = 0.0
        for _ in range(batches):
            unit = group_commit(events(BATCH))
            start = time.perf_counter()
            await db.write(unit)
            elapsed += time.perf_counter() - start
        figures["group commit rows/s"] = batches * BATCH / elapsed
        elapsed = 0.0
        for _ in range(batches):
            rows = events(BATCH)
            start = time.perf_counter()
            await db.execute_many(EVENT, rows)
            elapsed += time.perf_counter() - start
        figures["executemany rows/s"] = batches * BATCH / elapsed

        for label, writing in (("", db), (", readers=0", alone)):
            done = asyncio.Event()
            writer = asyncio.create_task(write_loop(writing, done))
            await asyncio.sleep(0)
            samples = []
            for _ in range(100):
                start = time.perf_counter()
                await writing.fetch_value(read, (1,))
                samples.append(time.perf_counter() - start)
            done.set()
            await writer
            under = summary_ms(samples)
            figures[f"read under writes{label} p50 ms"] = under["p50"]
            figures[f"read under writes{label} p99 ms"] = under["p99"]
        return figures
    finally:
        await alone.close()
        await db.close()


async def run(batches: int, runs: int) -> dict[str, list[dict[str, float]]]:
    import psycopg

    results: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
    server = PostgreSQL(durable=True)
    server.start()
    print(f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), libpq {psycopg.pq.version()}")
    try:
        for n in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                results["sqlite"].append(await measure(str(Path(tmp) / "cloud.db"), batches))
            name = f"bench_{n}"
            results["postgresql"].append(await measure(server.create_database(name), batches))
            server.drop_database(name)
    finally:
        server.cleanup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20, help="group commits per figure")
    args = parser.parse_args()
    results = asyncio.run(run(args.batches, args.runs))
    names = list(results["sqlite"][0])
    rows = [
        [name, *(statistics.median(r[name] for r in results[b]) for b in results)] for name in names
    ]
    print(table(f"system of record, medians of {args.runs} runs", ["", *results], rows))
    print(
        "\nper run:",
        {b: [{k: fmt(v) for k, v in r.items()} for r in rs] for b, rs in results.items()},
    )


if __name__ == "__main__":
    main()
