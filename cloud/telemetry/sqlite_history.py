"""The SQLite store's history: 1-minute and 1-hour aggregate tables maintained by the cloud,
and the deletion of what is past its retention (`cloud/telemetry/history.py` says how long).

`point_1m` and `point_1h` hold per series and bucket start: the count, mean, min and max of the
raw points in it; the hour is computed from the minutes (weighted by their counts, so its mean
is the mean of its raw points). `history_state` keeps, in the file:

- `dirty_from`: the oldest raw time written since the aggregates were last brought up to date.
  Every write lowers it in its own transaction, so a reading that arrives late (a gateway's
  outbox after an outage) is aggregated too, even across a restart.
- `minutes_upto` / `hours_upto`: the aggregates are complete before these times (and before
  `dirty_from`); a query reads raw points from there on, so what was written since the last
  roll-up is never missing from an answer.

`roll_up` recomputes every minute from `dirty_from` (never before the raw horizon: those raw
points may be gone) up to the last complete minute, and every hour from the hour `dirty_from`
falls in up to the last complete hour; the hour still open is done again next time.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from cloud.telemetry.history import HOUR_MS, MINUTE_MS, Resolution, Retention, floor

SCHEMA = """
CREATE TABLE IF NOT EXISTS point_1m (
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,  -- the minute's start, ms since the Unix epoch
    n INTEGER NOT NULL,
    mean REAL NOT NULL,
    lo REAL NOT NULL,
    hi REAL NOT NULL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS point_1h (
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,  -- the hour's start
    n INTEGER NOT NULL,
    mean REAL NOT NULL,
    lo REAL NOT NULL,
    hi REAL NOT NULL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    dirty_from INTEGER,
    minutes_upto INTEGER NOT NULL,
    hours_upto INTEGER NOT NULL
);
INSERT OR IGNORE INTO history_state (id, dirty_from, minutes_upto, hours_upto)
    VALUES (1, (SELECT min(ts) FROM point), 0, 0);
"""

#: Raw points a minute old are aggregated: a reading a little late still makes its minute.
GRACE_MS = 60_000

_TABLE = {Resolution.RAW: "point", Resolution.MINUTE: "point_1m", Resolution.HOUR: "point_1h"}


@dataclass(frozen=True)
class RollUp:
    """What one `roll_up` did."""

    minutes: int  # minute rows written
    hours: int  # hour rows written
    deleted: dict[str, int]  # rows deleted per table (past retention)


async def mark_dirty(db: aiosqlite.Connection, oldest_ms: int) -> None:
    """Inside a write's transaction: raw points from `oldest_ms` on are to be aggregated."""
    await db.execute(
        "UPDATE history_state SET dirty_from = ? WHERE id = 1"
        " AND (dirty_from IS NULL OR dirty_from > ?)",
        (oldest_ms, oldest_ms),
    )


async def roll_up(db: aiosqlite.Connection, retention: Retention, now_ms: int) -> RollUp:
    """Bring the aggregates up to date and delete what is past retention (one transaction,
    which the caller opens and commits)."""
    rows = await db.execute_fetchall(
        "SELECT dirty_from, minutes_upto, hours_upto FROM history_state WHERE id = 1"
    )
    dirty, minutes_upto, hours_upto = next(iter(rows))
    minutes = hours = 0
    end_minute = floor(now_ms - GRACE_MS, MINUTE_MS)
    end_hour = floor(end_minute, HOUR_MS)
    if dirty is not None:
        raw_horizon = retention.horizon(Resolution.RAW, now_ms)
        first_minute = floor(max(dirty, raw_horizon + MINUTE_MS), MINUTE_MS)
        first_hour = floor(first_minute, HOUR_MS)
        if first_minute < end_minute:
            cursor = await db.execute(
                "INSERT OR REPLACE INTO point_1m (series, ts, n, mean, lo, hi)"
                " SELECT series, ts - ts % ? AS bucket, count(*), avg(value), min(value),"
                " max(value) FROM point WHERE ts >= ? AND ts < ? GROUP BY series, bucket",
                (MINUTE_MS, first_minute, end_minute),
            )
            minutes = max(cursor.rowcount, 0)
        if first_hour < end_hour:
            cursor = await db.execute(
                "INSERT OR REPLACE INTO point_1h (series, ts, n, mean, lo, hi)"
                " SELECT series, ts - ts % ? AS bucket, sum(n), sum(mean * n) / sum(n),"
                " min(lo), max(hi) FROM point_1m WHERE ts >= ? AND ts < ?"
                " GROUP BY series, bucket",
                (HOUR_MS, first_hour, end_hour),
            )
            hours = max(cursor.rowcount, 0)
        # the open hour is aggregated again next time, from its raw points
        await db.execute(
            "UPDATE history_state SET dirty_from = ?, minutes_upto = ?, hours_upto = ?"
            " WHERE id = 1",
            (max(end_hour, first_hour), end_minute, end_hour),
        )
    else:
        await db.execute(
            "UPDATE history_state SET minutes_upto = ?, hours_upto = ? WHERE id = 1",
            (max(minutes_upto, end_minute), max(hours_upto, end_hour)),
        )
    deleted: dict[str, int] = {}
    for resolution, table in _TABLE.items():
        # per series, by the primary key (series, ts): never a scan of the whole table
        cursor = await db.execute(
            f"DELETE FROM {table} WHERE series IN (SELECT id FROM series) AND ts < ?",
            (retention.horizon(resolution, now_ms),),
        )
        deleted[table] = max(cursor.rowcount, 0)
    return RollUp(minutes, hours, deleted)


async def bucket_means(
    db: aiosqlite.Connection,
    resolution: Resolution,
    series: int,
    lo: int,
    hi: int,
    bucket: int,
) -> list[tuple[int, float]]:
    """Means per bucket (aligned to the epoch) of one series in `lo <= ts < hi`: from the
    aggregates of `resolution` as far as they are complete, then from the raw points."""
    if resolution is Resolution.RAW:
        return await _raw_means(db, series, lo, hi, bucket)
    column = "minutes_upto" if resolution is Resolution.MINUTE else "hours_upto"
    rows = await db.execute_fetchall(f"SELECT {column}, dirty_from FROM history_state WHERE id = 1")
    complete, dirty = next(iter(rows))
    if dirty is not None:  # written since the last roll-up: read from the raw points
        complete = min(complete, floor(dirty, resolution.ms))
    upto = min(max(complete, lo), hi)
    table = _TABLE[resolution]
    # n-weighted, so a bucket's mean is the mean of the raw points in it
    sql = (
        f"SELECT ts - ((ts % ?) + ?) % ? AS bucket, sum(mean * n), sum(n) FROM {table}"
        " WHERE series = ? AND ts >= ? AND ts < ? GROUP BY bucket ORDER BY bucket"
    )
    found: dict[int, tuple[float, int]] = {}
    for start, total, n in await db.execute_fetchall(
        sql, (bucket, bucket, bucket, series, lo, upto)
    ):
        found[start] = (total, n)
    if upto < hi:  # the newest part, not aggregated yet
        raw = await db.execute_fetchall(
            "SELECT ts - ((ts % ?) + ?) % ? AS bucket, sum(value), count(*) FROM point"
            " WHERE series = ? AND ts >= ? AND ts < ? GROUP BY bucket",
            (bucket, bucket, bucket, series, upto, hi),
        )
        for start, total, n in raw:
            before = found.get(start, (0.0, 0))
            found[start] = (before[0] + total, before[1] + n)
    return [(start, total / n) for start, (total, n) in sorted(found.items()) if n]


async def _raw_means(
    db: aiosqlite.Connection, series: int, lo: int, hi: int, bucket: int
) -> list[tuple[int, float]]:
    # floor to the bucket, right for times before 1970 too
    rows = await db.execute_fetchall(
        "SELECT ts - ((ts % ?) + ?) % ? AS bucket, avg(value) FROM point"
        " WHERE series = ? AND ts >= ? AND ts < ? GROUP BY bucket ORDER BY bucket",
        (bucket, bucket, bucket, series, lo, hi),
    )
    return [(start, float(value)) for start, value in rows]
