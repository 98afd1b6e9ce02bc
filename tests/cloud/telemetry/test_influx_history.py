"""A year of readings on a real InfluxDB 1.x: a year with explicit timestamps (ending now: the
server's retention runs on its own clock) in a database of before (raw points forever); the
store with its periods sets up the retention policies and continuous queries, rolls the year
up with the continuous queries' own statements before shortening the raw policy, and the
server's retention service deletes what is past each period; the trends' bucket means read the
right policy for the span and equal the means of what was written."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from cloud.telemetry import influx_history
from cloud.telemetry.base import Sample, from_ms, to_ms
from cloud.telemetry.history import DAY_MS, HOUR_MS, MINUTE_MS, Retention
from cloud.telemetry.influx import InfluxStore
from tests.servers import InfluxDB

FIELD = "ch4_pct_lel"
DB = "sc"
IN_FORCE = Retention(raw_days=3, minute_days=10, hour_days=400)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InfluxDB]:
    """An InfluxDB whose retention service looks every second (the default: 30 minutes)."""
    monkeypatch.setenv("INFLUXDB_RETENTION_CHECK_INTERVAL", "1s")
    influx = InfluxDB(tmp_path / "influx")
    influx.start()
    yield influx
    influx.stop()


def value_at(ms: int) -> float:
    return round((ms // 600_000) % 7 + (ms // DAY_MS) % 5 * 0.5, 3)


def sample(ms: int, value: float | None = None) -> Sample:
    return Sample(
        "gw-ld01", "gas-0101", "gas", FIELD, from_ms(ms), value_at(ms) if value is None else value
    )


def influxql(server: InfluxDB, statement: str) -> list[list[object]]:
    answer = httpx.post(
        f"{server.url}/query", params={"db": DB, "epoch": "ms"}, data={"q": statement}
    ).json()
    result = answer["results"][0]
    assert "error" not in result, result
    return [row for series in result.get("series", []) for row in series["values"]]


def oldest(server: InfluxDB, policy: str, column: str) -> int | None:
    rows = influxql(
        server, f'SELECT "{column}" FROM "{DB}"."{policy}"."reading" ORDER BY time LIMIT 1'
    )
    return int(rows[0][0]) if rows else None  # type: ignore[call-overload]


async def means(store: InfluxStore, lo: int, hi: int, every: timedelta) -> dict[int, float]:
    found = await store.query(
        gateway="gw-ld01",
        device="gas-0101",
        field=FIELD,
        start=from_ms(lo),
        end=from_ms(hi),
        every=every,
    )
    return {to_ms(ts): value for ts, value in found}


def expected(values: dict[int, float], lo: int, hi: int, bucket: int) -> dict[int, float]:
    sums: dict[int, list[float]] = defaultdict(list)
    for ms, value in values.items():
        if lo <= ms < hi:
            sums[ms - ms % bucket].append(value)
    return {b: sum(v) / len(v) for b, v in sorted(sums.items())}


async def test_a_year_on_influxdb_is_kept_by_its_policies_and_read_at_the_right_resolution(
    server: InfluxDB,
) -> None:
    now = int(time.time() * 1000)
    frozen = now / 1000
    today = now - now % DAY_MS
    first = today - 365 * DAY_MS
    # a reading every two hours for the year, every five minutes for its last two days
    times = [first + k * 2 * HOUR_MS for k in range(363 * 12)]
    times += range(today - 2 * DAY_MS, today, 5 * MINUTE_MS)
    written = {ms: value_at(ms) for ms in times}
    fresh = {now - 40_000: 9.0, now - 20_000: 11.0}  # this minute's: not rolled up yet

    # a database of before: raw points kept forever, no policies
    before = InfluxStore(server.url, DB)
    try:
        await before.write([sample(ms, v) for ms, v in {**written, **fresh}.items()])
    finally:
        await before.close()

    # the cloud with its periods: what the database holds is rolled up, then the raw policy
    # is shortened, and the server deletes what is past each period
    store = InfluxStore(server.url, DB, retention=IN_FORCE, clock=lambda: frozen)
    try:
        await store.ping()
        policies = {
            row[0]: row[1] for row in influxql(server, f'SHOW RETENTION POLICIES ON "{DB}"')
        }
        assert policies == {"autogen": "72h0m0s", "rp_1m": "240h0m0s", "rp_1h": "9600h0m0s"}
        queries = [str(row[1]) for row in influxql(server, "SHOW CONTINUOUS QUERIES")]
        assert len(queries) == 2 and all("sum(*), count(*) INTO" in q for q in queries)

        def expired() -> bool:
            raw, minutes = oldest(server, "autogen", FIELD), oldest(server, "rp_1m", f"sum_{FIELD}")
            # whole shard groups go: a week's, as the year was written (InfluxDB's rule)
            return (
                raw is not None
                and raw >= now - 10 * DAY_MS
                and minutes is not None
                and minutes >= now - 17 * DAY_MS
            )

        deadline = time.monotonic() + 15
        while not expired():
            assert time.monotonic() < deadline, "the server's retention did not delete in 15 s"
            time.sleep(0.2)
        assert oldest(server, "rp_1h", f"sum_{FIELD}") == first  # the year's hours, all of them
        assert oldest(server, "autogen", FIELD) < now - 2 * DAY_MS  # type: ignore[operator]

        # a year of daily means: from the hourly policy, as written
        year = await means(store, first, now, timedelta(days=1))
        assert year == pytest.approx(expected({**written, **fresh}, first, now, DAY_MS))
        # hourly means of the last two days, minutes of the last hour with this minute's
        # readings (raw: after the cut), each as written
        for span, bucket in ((2 * DAY_MS, HOUR_MS), (HOUR_MS, MINUTE_MS)):
            lo = now - span - (now - span) % bucket
            got = await means(store, lo, now, timedelta(milliseconds=bucket))
            assert got == pytest.approx(expected({**written, **fresh}, lo, now, bucket))
        assert (now - 20_000) - (now - 20_000) % MINUTE_MS in got  # this minute's readings

        # a reading two days late reaches its hour once the store rolls it up; one older than
        # the raw period is the server's to drop, not an error
        late_ms = today - 2 * DAY_MS + 5 * HOUR_MS + 60_000
        await store.write([sample(late_ms, 100.0), sample(now - 5 * DAY_MS, 100.0)])
        assert "1h from" in await store.maintain()
        hour = late_ms - late_ms % HOUR_MS
        hours = await means(store, hour, hour + HOUR_MS, timedelta(hours=1))
        assert hours == pytest.approx(
            expected({**written, late_ms: 100.0}, hour, hour + HOUR_MS, HOUR_MS)
        )
        assert oldest(server, "autogen", FIELD) > now - 10 * DAY_MS  # type: ignore[operator]
    finally:
        await store.close()


def test_the_statements_name_their_policies() -> None:
    statement = influx_history.rollup(
        "sc", "reading", influx_history.Resolution.HOUR, 1, HOUR_MS * 3
    )
    assert statement.startswith('SELECT sum(*), count(*) INTO "sc"."rp_1h".:MEASUREMENT')
    assert 'FROM "sc"."autogen"."reading" WHERE time >= 0ms' in statement
