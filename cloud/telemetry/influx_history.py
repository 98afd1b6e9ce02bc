"""The InfluxDB store's history (`cloud/telemetry/history.py` says how long): InfluxDB 1.x's own
retention policies and continuous queries, with the cloud backfilling what they miss.

- Raw points stay in the database's default policy, `autogen` (so a database from before keeps
  its points), its duration set to `raw_days`. `rp_1m` and `rp_1h` hold, per series and minute
  or hour, `sum_{field}` and `count_{field}` of the raw points (so a bucket's mean is the mean
  of its raw points however the buckets are merged), kept `minute_days` and `hour_days`. The
  server deletes whole shard groups past each policy's duration by itself.
- Continuous queries `cq_1m` and `cq_1h` aggregate on the server as time passes, whether the
  cloud runs or not, and do the last 10 minutes / 2 hours again each time (`RESAMPLE ... FOR`),
  so a reading a little late is counted.
- A continuous query only ever looks at the recent past: readings that arrive later (a
  gateway's outbox after an outage), and everything written when the policies are first set
  up, are aggregated by the cloud's `maintain()` with the same `SELECT ... INTO` over the
  range written (`rollup`), never before the raw horizon.

Queries of bucket means read the table `Retention.source` picks; the minutes and the hour
still open (after `cut`) come from the raw points, merged bucket by bucket through the sums
and counts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from cloud.telemetry.base import from_ms
from cloud.telemetry.history import HOUR_MS, MINUTE_MS, Resolution, Retention, floor

RAW_POLICY = "autogen"
POLICY = {Resolution.MINUTE: "rp_1m", Resolution.HOUR: "rp_1h"}
CONTINUOUS_QUERY = {Resolution.MINUTE: "cq_1m", Resolution.HOUR: "cq_1h"}
_GROUP = {Resolution.MINUTE: "1m", Resolution.HOUR: "1h"}
_RESAMPLE = {Resolution.MINUTE: "EVERY 1m FOR 10m", Resolution.HOUR: "EVERY 1h FOR 2h"}
#: The aggregates are complete before `cut`: a minute is done a little after it ends.
GRACE_MS = 2 * MINUTE_MS


def quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hours(days: float) -> str:
    """An InfluxQL duration of whole hours (InfluxDB's shortest policy is one hour)."""
    return f"{max(1, round(days * 24))}h"


def policies(retention: Retention) -> dict[str, str]:
    """Each policy's duration."""
    return {
        RAW_POLICY: hours(retention.raw_days),
        POLICY[Resolution.MINUTE]: hours(retention.minute_days),
        POLICY[Resolution.HOUR]: hours(retention.hour_days),
    }


def shard_duration(duration: str) -> str:
    """InfluxDB's own rule for a policy's shard groups: an hour under two days, a day up to
    six months, a week beyond. The server deletes whole shard groups, so a policy's oldest
    point may be up to one shard group older than its duration."""
    hours_ = int(duration.removesuffix("h"))
    return "1h" if hours_ < 48 else "1d" if hours_ <= 180 * 24 else "7d"


def policy_statement(database: str, name: str, duration: str, *, exists: bool) -> str:
    verb = "ALTER" if exists else "CREATE"
    replication = "" if exists else " REPLICATION 1"
    return (
        f"{verb} RETENTION POLICY {quote(name)} ON {quote(database)} DURATION {duration}"
        f"{replication} SHARD DURATION {shard_duration(duration)}"
    )


def _into(database: str, measurement: str, resolution: Resolution) -> str:
    return (
        f"SELECT sum(*), count(*) INTO {quote(database)}.{quote(POLICY[resolution])}.:MEASUREMENT"
        f" FROM {quote(database)}.{quote(RAW_POLICY)}.{quote(measurement)}"
    )


def continuous_query(database: str, measurement: str, resolution: Resolution) -> str:
    return (
        f"CREATE CONTINUOUS QUERY {quote(CONTINUOUS_QUERY[resolution])} ON {quote(database)}"
        f" RESAMPLE {_RESAMPLE[resolution]} BEGIN {_into(database, measurement, resolution)}"
        f" GROUP BY time({_GROUP[resolution]}), * END"
    )


def rollup(database: str, measurement: str, resolution: Resolution, lo_ms: int, hi_ms: int) -> str:
    """The continuous query's statement over whole buckets covering [lo_ms, hi_ms)."""
    lo = floor(lo_ms, resolution.ms)
    return (
        f"{_into(database, measurement, resolution)} WHERE time >= {lo}ms AND time < {hi_ms}ms"
        f" GROUP BY time({_GROUP[resolution]}), *"
    )


def cut(resolution: Resolution, now_ms: int) -> int:
    """The aggregates of `resolution` are complete before this time."""
    return floor(now_ms - GRACE_MS, resolution.ms)


def late_before(resolution: Resolution, now_ms: int) -> int:
    """A reading older than this when written is past what the continuous query will still
    look at (its next run covers `FOR` back from the next bucket boundary): the cloud rolls
    it up itself."""
    if resolution is Resolution.MINUTE:
        return floor(now_ms, MINUTE_MS) - 9 * MINUTE_MS
    return floor(now_ms, HOUR_MS) - HOUR_MS


STEP_MS = {Resolution.MINUTE: 7 * 24 * HOUR_MS, Resolution.HOUR: 28 * 24 * HOUR_MS}
"""A backfill is done in statements of at most this span (a week of minutes, four weeks of
hours), so no single statement holds the server for long."""


class Server(Protocol):
    """What the history needs of the store (cloud/telemetry/influx.py)."""

    database: str

    async def select(self, statement: str) -> list[list[Any]]: ...

    async def run(self, statement: str, what: str) -> None: ...

    async def continuous_queries(self) -> set[str]: ...


#: `where(gateway, device, lo_ms, hi_ms)`: the store's WHERE clause for one series and range.
Where = Callable[[str, str, int, int], str]


class History:
    """One database's history: its policies and continuous queries, the readings that came
    too late for them, and bucket means read from the right policy."""

    def __init__(
        self,
        server: Server,
        measurement: str,
        retention: Retention,
        clock: Callable[[], float],
        where: Where,
    ) -> None:
        self.server = server
        self.measurement = measurement
        self.retention = retention
        self._clock = clock
        self._where = where
        #: per resolution, the oldest reading written too late for the continuous query
        self.late_from: dict[Resolution, int] = {}
        #: the policies and continuous queries are in place (until then queries read raw)
        self.ready = False

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def note_late(self, oldest_ms: int) -> None:
        now = self.now_ms()
        for resolution in POLICY:
            if oldest_ms < late_before(resolution, now):
                known = self.late_from.get(resolution)
                self.late_from[resolution] = oldest_ms if known is None else min(known, oldest_ms)

    async def set_up(self) -> None:
        """The retention policies at their durations and the continuous queries. While the raw
        policy still keeps its points forever (a database of before, or a set-up cut short),
        what it holds is rolled up before it is shortened: nothing is lost unaggregated."""
        db = self.server.database
        policies_now = await self.server.select(f"SHOW RETENTION POLICIES ON {quote(db)}")
        existing = {row[0]: row[1] for row in policies_now}  # name: duration
        durations = policies(self.retention)
        for name, duration in durations.items():
            if name != RAW_POLICY:
                statement = policy_statement(db, name, duration, exists=name in existing)
                await self.server.run(statement, "retention policy")
        queries = await self.server.continuous_queries()
        for resolution, name in CONTINUOUS_QUERY.items():
            if name not in queries:
                statement = continuous_query(db, self.measurement, resolution)
                await self.server.run(statement, "continuous query")
        if existing.get(RAW_POLICY, "0s") == "0s":  # raw points kept forever so far
            oldest = await self.server.select(
                f"SELECT * FROM {quote(db)}.{quote(RAW_POLICY)}.{quote(self.measurement)}"
                " ORDER BY time ASC LIMIT 1"
            )
            if oldest:
                self.note_late(int(oldest[0][0]))
                await self.roll_up()
        raw = policy_statement(db, RAW_POLICY, durations[RAW_POLICY], exists=True)
        await self.server.run(raw, "retention policy")
        self.ready = True

    async def roll_up(self) -> str:
        """Roll up the readings that came too late for the continuous queries, never before
        a policy's horizon (the server would drop those points)."""
        done = []
        now = self.now_ms()
        for resolution, since in sorted(self.late_from.items()):
            horizon = self.retention.horizon(resolution, now)
            lo = max(since, horizon - horizon % resolution.ms + resolution.ms)
            hi = cut(resolution, now)
            statements = 0
            for a in range(lo, hi, STEP_MS[resolution]):
                b = min(a + STEP_MS[resolution], hi)
                statement = rollup(self.server.database, self.measurement, resolution, a, b)
                await self.server.run(statement, "roll-up")
                statements += 1
            del self.late_from[resolution]
            done.append(f"{resolution.value} from {from_ms(lo).isoformat()}: {statements}")
        return "late readings rolled up: " + (", ".join(done) or "none")

    async def bucket_means(
        self, gateway: str, device: str, field: str, lo: int, hi: int, bucket: int
    ) -> list[tuple[datetime, float]] | None:
        """Bucket means from the aggregates `Retention.source` picks before their cut and from
        the raw points after it, merged bucket by bucket through sums and counts; None when
        the raw points are the source. Readings too late for the continuous query and not
        rolled up yet move the cut back to them (as the SQLite store reads raw points from
        its `dirty_from`)."""
        source = self.retention.source(lo, bucket, self.now_ms())
        if source is Resolution.RAW or not self.ready:
            return None
        edge = cut(source, self.now_ms())
        late = self.late_from.get(source)
        if late is not None:
            edge = min(edge, floor(late, source.ms))
        edge = max(min(edge, hi), lo)
        db, table = quote(self.server.database), quote(self.measurement)
        parts = [
            (
                f"sum({quote('sum_' + field)}), sum({quote('count_' + field)})",
                f"{db}.{quote(POLICY[source])}.{table}",
                floor(lo, source.ms),
                edge,
            ),
            (
                f"sum({quote(field)}::field), count({quote(field)}::field)",
                f"{db}.{quote(RAW_POLICY)}.{table}",
                edge,
                hi,
            ),
        ]
        totals: dict[int, list[float]] = {}
        for columns, source_table, a, b in parts:
            if a >= b:
                continue
            statement = (
                f"SELECT {columns} FROM {source_table}{self._where(gateway, device, a, b)}"
                f" GROUP BY time({bucket}ms) fill(none)"
            )
            for ts, total, count in await self.server.select(statement):
                if total is not None and count:
                    sums = totals.setdefault(int(ts), [0.0, 0.0])
                    sums[0] += float(total)
                    sums[1] += float(count)
        return [(from_ms(ts), s / n) for ts, (s, n) in sorted(totals.items()) if n]
