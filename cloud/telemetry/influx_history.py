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
