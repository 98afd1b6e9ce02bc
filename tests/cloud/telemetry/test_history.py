"""A year of readings in the SQLite store, on a simulated clock: raw points kept for their
period, then 1-minute and 1-hour aggregates; queries read the right table and still see what
was written since the last roll-up; late readings and restarts lose nothing of the history."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.telemetry.base import Sample, from_ms, to_ms
from cloud.telemetry.history import DAY_MS, HOUR_MS, Resolution, Retention
from cloud.telemetry.sqlite import SqliteStore

START = datetime(2025, 12, 1, tzinfo=UTC)
FIELD = "ch4_pct_lel"
#: short periods, so one simulated year deletes from every table
RETENTION = Retention(raw_days=3, minute_days=10, hour_days=400)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> float:
        return self.now.timestamp()


def value_at(ms: int) -> float:
    """A reading that varies within the hour and from day to day (not a constant)."""
    return round((ms // 600_000) % 7 + (ms // DAY_MS) % 5 * 0.5, 3)


def sample(ms: int, value: float | None = None) -> Sample:
    value = value_at(ms) if value is None else value
    return Sample("gw-ld01", "gas-0101", "gas", FIELD, from_ms(ms), value)


async def bucket_means(
    store: SqliteStore, start: datetime, end: datetime, every: timedelta
) -> dict[int, float]:
    found = await store.query(
        gateway="gw-ld01", device="gas-0101", field=FIELD, start=start, end=end, every=every
    )
    return {to_ms(ts): value for ts, value in found}


def rows(path: Path, table: str) -> tuple[int, int | None]:
    with sqlite3.connect(path) as conn:
        count, oldest = conn.execute(f"SELECT count(*), min(ts) FROM {table}").fetchone()
    return count, oldest


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def simulated_year(
    tmp_path: Path, clock: Clock
) -> tuple[SqliteStore, dict[int, list[float]]]:
    """A reading every 20 minutes for 365 days, written a day at a time with the roll-up run
    after each day; returns the store and every value written, by day."""
    store = SqliteStore(tmp_path / "telemetry.db", retention=RETENTION, clock=clock)
    by_day: dict[int, list[float]] = defaultdict(list)
    first = to_ms(START)
    for day in range(365):
        batch = []
        for k in range(72):
            ms = first + day * DAY_MS + k * 1_200_000
            batch.append(sample(ms))
            by_day[first + day * DAY_MS].append(value_at(ms))
        await store.write(batch)
        clock.now = START + timedelta(days=day + 1, minutes=2)
        await store.maintain()
    return store, by_day


async def test_a_year_is_kept_as_hourly_means_and_the_raw_points_only_for_their_period(
    simulated_year: tuple[SqliteStore, dict[int, list[float]]], tmp_path: Path, clock: Clock
) -> None:
    store, by_day = simulated_year
    path = tmp_path / "telemetry.db"
    now = to_ms(clock.now)
    raw, raw_oldest = rows(path, "point")
    minutes, minutes_oldest = rows(path, "point_1m")
    assert minutes <= 11 * 72, "a reading every 20 minutes: 72 minutes with points a day"
    hours, hours_oldest = rows(path, "point_1h")
    assert raw_oldest is not None and raw_oldest >= now - 3 * DAY_MS
    assert raw <= 3 * 72 + 1
    assert minutes_oldest is not None and minutes_oldest >= now - 10 * DAY_MS
    assert hours_oldest == to_ms(START), "the hourly means reach back the whole year"
    assert hours == 365 * 24
    try:
        # a year of daily means reads the hourly table: the same means as the raw points had
        daily = await bucket_means(store, START, clock.now, timedelta(days=1))
        assert sorted(daily) == sorted(by_day)
        for day, values in by_day.items():
            assert daily[day] == pytest.approx(sum(values) / len(values)), from_ms(day)
    finally:
        await store.close()


async def test_queries_pick_the_table_by_span_and_see_what_is_not_rolled_up_yet(
    simulated_year: tuple[SqliteStore, dict[int, list[float]]], clock: Clock
) -> None:
    store, _ = simulated_year
    try:
        now = to_ms(clock.now)
        assert RETENTION.source(now - HOUR_MS, 60_000, now) is Resolution.MINUTE
        assert RETENTION.source(now - 7 * DAY_MS, HOUR_MS, now) is Resolution.HOUR
        assert RETENTION.source(now - 20 * DAY_MS, 15 * 60_000, now) is Resolution.HOUR
        assert RETENTION.source(now - HOUR_MS, 10_000, now) is Resolution.RAW
        # a reading of a minute ago, and one from three hours ago (a gateway's outbox after an
        # outage): both in the answers at once, before any roll-up
        fresh, late = now - 60_000, now - 3 * HOUR_MS + 120_000
        await store.write([sample(fresh, 42.0), sample(late, 40.0)])
        hour = await bucket_means(store, from_ms(now - HOUR_MS), clock.now, timedelta(minutes=1))
        assert hour[fresh - fresh % 60_000] == 42.0
        day = await bucket_means(store, from_ms(now - DAY_MS), clock.now, timedelta(hours=1))
        late_hour = late - late % HOUR_MS
        already = [value_at(late_hour + j * 1_200_000) for j in range(3)]  # every 20 min
        assert day[late_hour] == pytest.approx((40.0 + sum(already)) / 4)
        # and the same after the roll-up, now from the aggregates
        clock.now += timedelta(minutes=5)
        await store.maintain()
        day_after = await bucket_means(store, from_ms(now - DAY_MS), clock.now, timedelta(hours=1))
        assert day_after[late_hour] == pytest.approx(day[late_hour])
    finally:
        await store.close()


async def test_a_late_reading_written_before_a_restart_is_rolled_up_after_it(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "telemetry.db"
    first = to_ms(START)
    store = SqliteStore(path, retention=RETENTION, clock=clock)
    await store.write([sample(first + k * 60_000, 1.0) for k in range(120)])
    clock.now = START + timedelta(hours=3)
    await store.maintain()
    await store.write([sample(first + 30 * 60_000 + 1, 7.0)])  # late, into the first hour
    await store.close()  # no roll-up before the restart

    store = SqliteStore(path, retention=RETENTION, clock=clock)
    try:
        await store.maintain()
        with sqlite3.connect(path) as conn:
            (mean,) = conn.execute("SELECT mean FROM point_1h WHERE ts = ?", (first,)).fetchone()
        assert mean == pytest.approx((60 * 1.0 + 7.0) / 61)
    finally:
        await store.close()


async def test_a_store_of_the_first_version_gains_its_history(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "telemetry.db"
    first = to_ms(START)
    with sqlite3.connect(path) as conn:  # the schema as version 1 made it
        conn.executescript(
            """
            CREATE TABLE series (id INTEGER PRIMARY KEY, gateway TEXT NOT NULL,
                device TEXT NOT NULL, field TEXT NOT NULL, kind TEXT NOT NULL,
                UNIQUE (gateway, device, field));
            CREATE TABLE point (series INTEGER NOT NULL, ts INTEGER NOT NULL,
                value REAL NOT NULL, PRIMARY KEY (series, ts)) WITHOUT ROWID;
            CREATE TABLE store_ping (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
            INSERT INTO series VALUES (1, 'gw-ld01', 'gas-0101', 'ch4_pct_lel', 'gas');
            PRAGMA user_version = 1;
            """
        )
        conn.executemany(
            "INSERT INTO point VALUES (1, ?, ?)", [(first + k * 60_000, 2.0) for k in range(60)]
        )
    clock.now = START + timedelta(hours=2)
    store = SqliteStore(path, retention=RETENTION, clock=clock)
    try:
        await store.maintain()
        assert rows(path, "point_1h") == (1, first)
        hours = await bucket_means(store, START, clock.now, timedelta(hours=1))
        assert hours == {first: 2.0}
    finally:
        await store.close()


def test_retention_periods_must_nest() -> None:
    with pytest.raises(ValueError, match="raw_days <= minute_days"):
        Retention(raw_days=30, minute_days=7, hour_days=400)
