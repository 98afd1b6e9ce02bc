"""The telemetry store: the same behaviour checks on every backend, against real servers
(a SQLite file, the session's InfluxDB 1.6.7), then what is particular to each."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from cloud.telemetry.base import Sample, StoreError, TelemetryStore
from cloud.telemetry.influx import InfluxStore
from cloud.telemetry.open import open_store
from cloud.telemetry.sqlite import SqliteStore
from tests.servers import InfluxDB

T0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
FIELD = "ch4_pct_lel"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def gas(device: str, seconds: float, value: float, *, gateway: str = "gw-ld01") -> Sample:
    return Sample(gateway, device, "gas", FIELD, at(seconds), value)


@pytest.fixture(params=["sqlite", "influx"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TelemetryStore]:
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'telemetry.db'}"
    else:
        server: InfluxDB = request.getfixturevalue("influxdb")
        url = f"influx://127.0.0.1:{server.port}/t_{uuid.uuid4().hex[:12]}"
    opened = open_store(url)
    yield opened
    await opened.close()


async def points(
    store: TelemetryStore,
    device: str,
    *,
    gateway: str = "gw-ld01",
    field: str = FIELD,
    start: datetime = T0 - timedelta(days=1),
    end: datetime = T0 + timedelta(days=1),
    every: timedelta | None = None,
) -> list[tuple[datetime, float]]:
    return await store.query(
        gateway=gateway, device=device, field=field, start=start, end=end, every=every
    )


# ---- the same behaviour on every backend ----------------------------------------------------


async def test_ping_on_a_working_store(store: TelemetryStore) -> None:
    await store.ping()


async def test_points_come_back_in_time_order_with_exact_values(store: TelemetryStore) -> None:
    values = [0.1, 1e-05, 123456.789, 2.0, 0.30000000000000004, 99.99, 0.0, 7.0 / 3]
    samples = [gas("gas-0101", i * 10, v) for i, v in enumerate(values)]
    random.Random(7).shuffle(samples)
    await store.write(samples)
    assert await points(store, "gas-0101") == [(at(i * 10), v) for i, v in enumerate(values)]


async def test_times_are_utc_to_the_millisecond(store: TelemetryStore) -> None:
    beijing = timezone(timedelta(hours=8))
    local = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=beijing)
    await store.write([Sample("gw-ld01", "gas-0101", "gas", FIELD, local, 4.0)])
    [(ts, value)] = await points(store, "gas-0101", start=local - MIN, end=local + MIN)
    assert ts == datetime(2026, 11, 22, 4, 0, 0, 123000, tzinfo=UTC)
    assert ts.tzinfo is UTC
    assert value == 4.0


async def test_range_is_start_inclusive_end_exclusive(store: TelemetryStore) -> None:
    await store.write([gas("gas-0101", s, s) for s in (0, 30, 60)])
    got = await points(store, "gas-0101", start=at(0), end=at(60))
    assert got == [(at(0), 0.0), (at(30), 30.0)]
    assert await points(store, "gas-0101", start=at(60), end=at(60)) == []


async def test_every_gives_the_mean_per_bucket_and_leaves_out_empty_ones(
    store: TelemetryStore,
) -> None:
    # minute 0: 1, 2, 3; minute 1: 10; minutes 2-4 empty; minute 5: 4, 6
    data = {0: 1.0, 20: 2.0, 40: 3.0, 65: 10.0, 300: 4.0, 359.999: 6.0}
    await store.write([gas("gas-0101", s, v) for s, v in data.items()])
    got = await points(store, "gas-0101", start=at(0), end=at(600), every=MIN)
    assert [ts for ts, _ in got] == [at(0), at(60), at(300)]
    assert [v for _, v in got] == pytest.approx([2.0, 10.0, 5.0])


async def test_buckets_are_aligned_to_the_epoch_not_to_start(store: TelemetryStore) -> None:
    await store.write([gas("gas-0101", s, s) for s in (50, 70, 130)])
    got = await points(store, "gas-0101", start=at(45), end=at(180), every=MIN)
    assert got == [(at(0), 50.0), (at(60), 70.0), (at(120), 130.0)]


async def test_mean_over_a_window(store: TelemetryStore) -> None:
    await store.write([gas("gas-0101", s, v) for s, v in ((0, 1.0), (10, 2.0), (20, 6.0))])
    assert await store.mean(
        gateway="gw-ld01", device="gas-0101", field=FIELD, start=at(0), end=at(20)
    ) == pytest.approx(1.5)
    assert await store.mean(
        gateway="gw-ld01", device="gas-0101", field=FIELD, start=at(0), end=at(21)
    ) == pytest.approx(3.0)
    assert (
        await store.mean(
            gateway="gw-ld01", device="gas-0101", field=FIELD, start=at(100), end=at(200)
        )
        is None
    )
    assert (
        await store.mean(gateway="gw-ld01", device="nobody", field=FIELD, start=at(0), end=at(100))
        is None
    )


async def test_devices_fields_and_gateways_do_not_mix(store: TelemetryStore) -> None:
    await store.write(
        [
            Sample("gw-ld01", "air-0101", "air", "pm25_ugm3", at(0), 35.0),
            Sample("gw-ld01", "air-0101", "air", "co2_ppm", at(0), 800.0),
            Sample("gw-ld01", "air-0201", "air", "pm25_ugm3", at(0), 12.0),
            Sample("gw-ld02", "air-0101", "air", "pm25_ugm3", at(0), 77.0),
            Sample("gw-ld02", "air-0101", "air", "pm25_ugm3", at(60), 79.0),
        ]
    )

    async def get(gateway: str, device: str, field: str) -> list[float]:
        rows = await points(store, device, gateway=gateway, field=field)
        return [v for _, v in rows]

    assert await get("gw-ld01", "air-0101", "pm25_ugm3") == [35.0]
    assert await get("gw-ld01", "air-0101", "co2_ppm") == [800.0]
    assert await get("gw-ld01", "air-0201", "pm25_ugm3") == [12.0]
    assert await get("gw-ld02", "air-0101", "pm25_ugm3") == [77.0, 79.0]
    assert await get("gw-ld02", "air-0101", "co2_ppm") == []
    assert await get("gw-ld02", "air-0201", "pm25_ugm3") == []
    assert await store.mean(
        gateway="gw-ld02", device="air-0101", field="pm25_ugm3", start=at(0), end=at(120)
    ) == pytest.approx(78.0)


async def test_writing_a_sample_again_replaces_it(store: TelemetryStore) -> None:
    """A redelivered telemetry batch must not count twice in a mean."""
    await store.write([gas("gas-0101", 0, 5.0), gas("gas-0101", 10, 1.0)])
    await store.write([gas("gas-0101", 0, 5.0), gas("gas-0101", 10, 3.0)])
    assert await points(store, "gas-0101") == [(at(0), 5.0), (at(10), 3.0)]


AWKWARD = [
    "with space",
    "comma,inside",
    "equals=sign",
    'double"quote',
    "single'quote",
    "烟感-厨房 1号",
    "  lead and trail  ",
    "混合, \"all\"='of' them",
]


@pytest.mark.parametrize("name", AWKWARD)
async def test_awkward_tag_values_round_trip(store: TelemetryStore, name: str) -> None:
    await store.write(
        [
            Sample(name, name, "air", "pm25_ugm3", at(0), 1.5),
            Sample("gw-ld01", "plain", "air", "pm25_ugm3", at(0), 9.0),
        ]
    )
    rows = await points(store, name, gateway=name, field="pm25_ugm3")
    assert rows == [(at(0), 1.5)]
    assert [v for _, v in await points(store, "plain", field="pm25_ugm3")] == [9.0]


INJECTIONS = [
    "x' OR 1=1 --",
    "gas-0101' OR 'a'='a",
    '"; DROP DATABASE telemetry; --',
    "x'; DROP TABLE point; --",
    "gas-0101\\' OR 1=1 --",
    "gas-0101\n",
    "*",
    "%",
    "/.*/",
]


@pytest.mark.parametrize("device", INJECTIONS)
async def test_injection_like_device_ids_neither_fail_nor_leak(
    store: TelemetryStore, device: str
) -> None:
    await store.write([gas("gas-0101", 0, 42.0)])
    assert await points(store, device) == []
    assert await points(store, device, every=MIN) == []
    assert (
        await store.mean(gateway="gw-ld01", device=device, field=FIELD, start=at(0), end=at(60))
        is None
    )
    assert await points(store, "gas-0101", gateway=device) == []
    assert await points(store, "gas-0101", field=device) == []
    if "\\" not in device and "\n" not in device:  # storable: round-trips like any id
        await store.write([gas(device, 5, 7.0)])
        assert await points(store, device) == [(at(5), 7.0)]
    assert await points(store, "gas-0101") == [(at(0), 42.0)]  # nothing dropped


async def test_an_empty_write_is_a_no_op(store: TelemetryStore) -> None:
    await store.write([])
    assert await points(store, "gas-0101") == []


async def test_a_large_batch(store: TelemetryStore) -> None:
    samples = [
        Sample("gw-ld01", f"air-{d:03d}", "air", unit, at(s), float(s + d))
        for d in range(40)
        for s in range(0, 600, 5)
        for unit in ("pm25_ugm3", "co2_ppm")
    ]  # 9,600 samples, 4,800 InfluxDB lines: more than one request
    await store.write(samples)
    rows = await points(store, "air-007", field="co2_ppm")
    assert rows == [(at(s), float(s + 7)) for s in range(0, 600, 5)]
    assert await store.mean(
        gateway="gw-ld01", device="air-039", field="pm25_ugm3", start=at(0), end=at(600)
    ) == pytest.approx(39 + 297.5)


async def test_concurrent_writers_and_readers(store: TelemetryStore) -> None:
    async def writer(device: int) -> None:
        for second in range(0, 50, 10):
            await store.write([gas(f"gas-{device:02d}", second, float(device))])
            await points(store, f"gas-{device:02d}")

    await asyncio.gather(*(writer(d) for d in range(8)))
    for device in range(8):
        rows = await points(store, f"gas-{device:02d}")
        assert rows == [(at(s), float(device)) for s in range(0, 50, 10)]


async def test_naive_times_and_bad_buckets_are_refused(store: TelemetryStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await points(store, "gas-0101", start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="every"):
        await points(store, "gas-0101", every=timedelta(0))
    with pytest.raises(ValueError, match="every"):
        await points(store, "gas-0101", every=timedelta(microseconds=1500))


async def test_a_closed_store_says_so(store: TelemetryStore) -> None:
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.write([gas("gas-0101", 0, 1.0)])
    with pytest.raises(StoreError, match="closed"):
        await store.ping()


# ---- Sample and open_store -----------------------------------------------------------------


def test_sample_refuses_what_no_backend_can_store() -> None:
    with pytest.raises(ValueError, match="naive"):
        Sample("gw", "d", "gas", FIELD, datetime(2026, 1, 1), 1.0)
    for bad in ("", "back\\slash", "line\nbreak", "nul\x00"):
        with pytest.raises(ValueError, match="device"):
            Sample("gw", bad, "gas", FIELD, T0, 1.0)
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            Sample("gw", "d", "gas", FIELD, T0, value)
    local = Sample("gw", "d", "gas", FIELD, T0.astimezone(timezone(timedelta(hours=8))), 1)
    assert local.ts == T0 and local.ts.tzinfo is UTC and local.value == 1.0


def test_open_store_reads_the_url(tmp_path: Path) -> None:
    lite = open_store(f"sqlite://{tmp_path}/a.db")
    assert isinstance(lite, SqliteStore) and lite.path == f"{tmp_path}/a.db"
    memory = open_store("sqlite://:memory:")
    assert isinstance(memory, SqliteStore) and memory.path == ":memory:"

    influx = open_store("influx://db.example:9999/sc?user=writer&password=s%3Dcret")
    assert isinstance(influx, InfluxStore)
    assert (influx.base_url, influx.database) == ("http://db.example:9999", "sc")
    assert isinstance(influx._http.auth, httpx.BasicAuth)
    secure = open_store("influxs://writer:pw@db.example/sc")
    assert isinstance(secure, InfluxStore)
    assert secure.base_url == "https://db.example:8086"
    assert "pw" not in repr(secure)

    for bad in (
        "postgres://x/y",
        "telemetry.db",
        "sqlite://",
        "influx://host",
        "influx://host:8086/",
        "influx://host/db?pasword=x",
    ):
        with pytest.raises(ValueError):
            open_store(bad)


# ---- SQLite ---------------------------------------------------------------------------------


async def test_sqlite_keeps_data_across_reopening(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/deep/er/telemetry.db"
    first = open_store(url)
    await first.write([gas("gas-0101", 0, 1.25)])
    await first.close()
    second = open_store(url)
    try:
        assert await points(second, "gas-0101") == [(at(0), 1.25)]
    finally:
        await second.close()


async def test_sqlite_unusable_path_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    broken = open_store(f"sqlite://{tmp_path}/a-file/telemetry.db")
    try:
        with pytest.raises(StoreError, match="a-file"):
            await broken.ping()
        with pytest.raises(StoreError):
            await broken.write([gas("gas-0101", 0, 1.0)])
    finally:
        await broken.close()


# ---- InfluxDB -------------------------------------------------------------------------------


async def test_influx_lines_escape_tags() -> None:
    [line] = InfluxStore.lines(
        [
            Sample("gw 1", 'a,b="c"', "gas", FIELD, at(0), 2.5),
            Sample("gw 1", 'a,b="c"', "gas", "temp_c", at(0), -3.0),
        ]
    )
    ms = int(at(0).timestamp() * 1000)
    tags = 'device=a\\,b\\="c",gateway=gw\\ 1,kind=gas'
    assert line == f"reading,{tags} {FIELD}=2.5,temp_c=-3.0 {ms}"


async def test_influx_stopped_server_raises_readable_store_error(tmp_path: Path) -> None:
    server = InfluxDB(tmp_path / "influx")
    server.start()
    store = open_store(f"influx://127.0.0.1:{server.port}/telemetry")
    try:
        await store.write([gas("gas-0101", 0, 1.0)])
        await store.ping()
        server.stop()
        with pytest.raises(StoreError) as caught:
            await store.write([gas("gas-0101", 1, 2.0)])
        message = str(caught.value)
        assert f"127.0.0.1:{server.port}" in message and "unreachable" in message, message
        with pytest.raises(StoreError, match="unreachable"):
            await store.ping()
        with pytest.raises(StoreError, match="unreachable"):
            await points(store, "gas-0101")
        await store.write([])  # nothing to do, so nothing to fail
    finally:
        server.stop()
        await store.close()


async def test_influx_server_refusal_carries_the_server_message(influxdb: InfluxDB) -> None:
    database = f"t_{uuid.uuid4().hex[:12]}"
    store = open_store(f"influx://127.0.0.1:{influxdb.port}/{database}")
    try:
        await store.ping()  # creates the database
        async with httpx.AsyncClient(base_url=influxdb.url) as http:
            ms = int(at(0).timestamp() * 1000)  # same shard: field types are per shard
            response = await http.post(
                "/write",
                params={"db": database, "precision": "ms"},
                content=f"reading,device=x {FIELD}=1i {ms}",
            )
            assert response.status_code == 204
        with pytest.raises(StoreError, match="field type conflict") as caught:
            await store.write([gas("gas-0101", 0, 1.0)])
        assert "write refused: HTTP 400" in str(caught.value)
    finally:
        await store.close()


async def test_influx_ping_fails_when_the_database_cannot_be_created(influxdb: InfluxDB) -> None:
    store = open_store(f"influx://127.0.0.1:{influxdb.port}/bad%0Aname")
    try:
        with pytest.raises(StoreError, match="database not found"):
            await store.ping()
    finally:
        await store.close()
