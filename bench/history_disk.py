"""The disk a building's year of readings takes, on each telemetry store.

    python -m bench.history_disk                 # SQLite and InfluxDB, a 24-home building
    python -m bench.history_disk --homes 60 --store sqlite

A building is `--homes` gas detectors (methane every 5 s, as `gas_mcp3008` samples), one air
monitor (PM1/PM2.5/PM10 every 10 s, `air_pms5003`) and one CO2 sensor (every 10 s,
`co2_senseair_s8`). One simulated day of its raw readings is written through the store's own
`write` (a day's worth of batches, times spread over the day) and, for SQLite, rolled up into
its 1-minute and 1-hour tables on the store's clock; the bytes each table holds per day
(SQLite's `dbstat`, pages actually used) then give a year for any retention. On InfluxDB the
day goes to the raw policy and is rolled up into `rp_1m` and `rp_1h` by the store's own
statements (those of its continuous queries); each policy's shard folder and WAL are
measured (`du`) once the cache is snapshotted to TSM files and compacted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.report import say
from bench.stats import table
from cloud.telemetry.base import Sample, TelemetryStore
from cloud.telemetry.history import Retention
from cloud.telemetry.influx import InfluxStore
from cloud.telemetry.sqlite import SqliteStore

DAY0 = datetime(2026, 1, 5, tzinfo=UTC)
#: (device prefix, kind, fields, period s)
AIR = ("air", "air", ("pm1_ugm3", "pm25_ugm3", "pm10_ugm3"), 10)
CO2 = ("co2", "co2", ("co2_ppm",), 10)
GAS_PERIOD_S = 5


def building_day(homes: int) -> list[Sample]:
    """One day of a building's readings, oldest first."""
    rng = random.Random(7)
    out: list[Sample] = []
    devices: list[tuple[str, str, tuple[str, ...], int]] = [
        (f"gas-{h:03d}", "gas", ("ch4_pct_lel",), GAS_PERIOD_S) for h in range(homes)
    ]
    devices += [(f"{AIR[0]}-01", AIR[1], AIR[2], AIR[3]), (f"{CO2[0]}-01", CO2[1], CO2[2], CO2[3])]
    for device, kind, fields, period in devices:
        offset = rng.uniform(0, period)  # devices do not tick together
        for k in range(int(86400 / period)):
            ts = DAY0 + timedelta(seconds=offset + k * period)
            for field in fields:
                value = round(abs(rng.gauss(20, 5)), 1) if kind != "gas" else rng.choice((0, 0.5))
                out.append(Sample("gw-b0001", device, kind, field, ts, value))
    out.sort(key=lambda s: s.ts)
    return out


async def write_day(store: TelemetryStore, samples: list[Sample]) -> float:
    started = time.perf_counter()
    for first in range(0, len(samples), 5000):
        await store.write(samples[first : first + 5000])
    return time.perf_counter() - started


def table_bytes(path: Path) -> dict[str, tuple[int, int]]:
    """(rows, bytes used) per table of the store."""
    out = {}
    with sqlite3.connect(path) as conn:
        for name in ("point", "point_1m", "point_1h"):
            (rows,) = conn.execute(f"SELECT count(*) FROM {name}").fetchone()
            (used,) = conn.execute(
                "SELECT sum(pgsize - unused) FROM dbstat WHERE name = ?", (name,)
            ).fetchone()
            out[name] = (rows, int(used or 0))
    return out


async def sqlite_day(workdir: Path, samples: list[Sample]) -> dict[str, tuple[int, int]]:
    now = DAY0 + timedelta(days=1, minutes=2)
    store = SqliteStore(workdir / "telemetry.db", clock=now.timestamp)
    try:
        seconds = await write_day(store, samples)
        say(f"  sqlite: {len(samples):,} points written in {seconds:.1f} s")
        await store.maintain()
    finally:
        await store.close()
    return table_bytes(workdir / "telemetry.db")


async def influx_day(workdir: Path, samples: list[Sample]) -> dict[str, int]:
    from tests.servers import InfluxDB  # the test harness's server, started on a free port

    # influxd reads these over its config file: write the cache out to TSM files and compact
    # them once the shard has been cold for a second (the defaults wait 10 min and 4 h)
    os.environ["INFLUXDB_DATA_CACHE_SNAPSHOT_WRITE_COLD_DURATION"] = "1s"
    os.environ["INFLUXDB_DATA_COMPACT_FULL_WRITE_COLD_DURATION"] = "1s"
    server = InfluxDB(workdir / "influx")
    server.start()
    try:
        # policies long enough to take the day at its real times; the store's clock is the
        # day's end, so the whole day is rolled up as readings too late for the continuous
        # queries (which run on the server's clock, on the last minutes only)
        now = DAY0 + timedelta(days=1, minutes=2)
        store = InfluxStore(
            server.url, "sc", retention=Retention(400, 400, 400), clock=now.timestamp
        )
        try:
            seconds = await write_day(store, samples)
            say(f"  influxdb: {len(samples):,} points written in {seconds:.1f} s")
            started = time.perf_counter()
            await store.maintain()
            say(f"  influxdb: rolled up in {time.perf_counter() - started:.1f} s")
        finally:
            await store.close()
        await wait_compacted(server.workdir / "wal" / "sc")
        # the shards' TSM files and WAL per policy, not the series file (`_series`,
        # preallocated once per database: ~32 MB however few buildings)
        return {
            policy: await du(server.workdir / "data" / "sc" / policy)
            + await du(server.workdir / "wal" / "sc" / policy)
            for policy in ("autogen", "rp_1m", "rp_1h")
        }
    finally:
        server.stop()


async def wait_compacted(wal: Path) -> None:
    """Until the WAL is written out to TSM files (at most a minute), and a little more for the
    compaction after it (influxd tells nobody when it is done)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await du(wal) < 1_000_000:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(3)


async def du(folder: Path) -> int:
    out = await asyncio.to_thread(
        subprocess.run, ["du", "-sb", str(folder)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[0])


def year_bytes(per_day: dict[str, int], retention: Retention) -> int:
    """A year of a building under `retention` (each table or policy holds min(its days, 365)
    days)."""
    days = {
        "point": retention.raw_days,
        "point_1m": retention.minute_days,
        "point_1h": retention.hour_days,
        "autogen": retention.raw_days,
        "rp_1m": retention.minute_days,
        "rp_1h": retention.hour_days,
    }
    return sum(int(per_day[name] * min(days[name], 365)) for name in per_day)


CHOICES = [
    ("default (raw 7 d, 1-min 31 d, 1-h 400 d)", Retention()),
    ("raw 30 d, 1-min 400 d, 1-h 1830 d", Retention(30, 400, 1830)),
    ("raw 7 d, 1-min and 1-h 400 d", Retention(7, 400, 400)),
    ("raw 2 d, 1-min 7 d, 1-h 400 d", Retention(2, 7, 400)),
    ("raw forever (a year of raw points)", Retention(400, 400, 400)),
]


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--homes", type=int, default=24, help="gas detectors (one per home)")
    p.add_argument("--store", choices=["sqlite", "influx", "both"], default="both")
    args = p.parse_args()
    samples = building_day(args.homes)
    series = args.homes + len(AIR[2]) + len(CO2[2])
    say(f"== a building of {args.homes} homes: {series} series, {len(samples):,} points a day")
    workdir = Path(tempfile.mkdtemp(prefix="sc-history-"))
    try:
        if args.store in ("sqlite", "both"):
            tables = await sqlite_day(workdir, samples)
            per_day = {name: used for name, (_rows, used) in tables.items()}
            say(
                table(
                    "SQLite: one day of the building",
                    ["table", "rows", "MB", "bytes per row"],
                    [
                        [name, rows, mb(used), f"{used / max(rows, 1):.1f}"]
                        for name, (rows, used) in tables.items()
                    ],
                )
            )
            say(
                table(
                    "SQLite: a building-year by retention (a year of each table, at most)",
                    ["retention", "MB per building-year"],
                    [[label, mb(year_bytes(per_day, r))] for label, r in CHOICES[:4]],
                )
            )
        if args.store in ("influx", "both"):
            if shutil.which("influxd") is None:
                say("  influxdb: influxd is not installed (apt-get install influxdb); skipped")
            else:
                policies = await influx_day(workdir, samples)
                say(
                    table(
                        "InfluxDB 1.x: one day of the building per retention policy",
                        ["policy", "MB a day", "bytes per raw point"],
                        [
                            [name, mb(used), f"{used / len(samples):.3f}"]
                            for name, used in policies.items()
                        ],
                    )
                )
                say(
                    table(
                        "InfluxDB 1.x: a building-year by retention (a year of each policy)",
                        ["retention", "MB per building-year"],
                        [[label, mb(year_bytes(policies, r))] for label, r in CHOICES],
                    )
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
