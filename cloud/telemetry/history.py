"""How long readings are kept, and at which resolution (GB/T 45839 expects a year of records).

By default raw points 7 days, 1-minute aggregates 31 days, 1-hour aggregates 400 days: about
110 MB per building-year on SQLite for a 24-home building, 17 MB on InfluxDB 1.x
(`python -m bench.history_disk`, docs/benchmarks.md); 1-minute aggregates for a year as well
would take about 580 MB on SQLite. The SQLite store keeps them in tables of its own
(`sqlite_history.py`), the InfluxDB store in retention policies filled by continuous queries
(`influx_history.py`).

Raw points are kept `raw_days`; 1-minute aggregates (count, mean, min, max per series and
minute) `minute_days`; 1-hour aggregates `hour_days`. A query for bucket means reads the
coarsest table whose resolution still divides its bucket and that reaches back to its start:
a year of daily means reads the hourly table, not a year of raw points. What the aggregates do
not cover yet (the minutes and the hour still open) is read from the raw points, so the newest
bucket of a trend is never missing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud.telemetry.base import TelemetryStore

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class Resolution(StrEnum):
    RAW = "raw"
    MINUTE = "1m"
    HOUR = "1h"

    @property
    def ms(self) -> int:
        return {Resolution.RAW: 1, Resolution.MINUTE: MINUTE_MS, Resolution.HOUR: HOUR_MS}[self]


@dataclass(frozen=True)
class Retention:
    """How many days each resolution is kept (each at least as long as the finer one)."""

    raw_days: float = 7.0
    minute_days: float = 31.0
    hour_days: float = 400.0

    def __post_init__(self) -> None:
        if not 0 < self.raw_days <= self.minute_days <= self.hour_days:
            raise ValueError(
                "retention must be 0 < raw_days <= minute_days <= hour_days, "
                f"got {self.raw_days}, {self.minute_days}, {self.hour_days}"
            )

    def horizon(self, resolution: Resolution, now_ms: int) -> int:
        """The oldest time (ms) this resolution still holds."""
        days = {
            Resolution.RAW: self.raw_days,
            Resolution.MINUTE: self.minute_days,
            Resolution.HOUR: self.hour_days,
        }[resolution]
        return now_ms - int(days * DAY_MS)

    def source(self, start_ms: int, bucket_ms: int | None, now_ms: int) -> Resolution:
        """The table a query from `start_ms` with buckets of `bucket_ms` reads: the coarsest
        whose resolution divides the bucket and whose horizon is not after the start, else the
        finest that still reaches back that far."""
        if bucket_ms is None:
            return Resolution.RAW
        for resolution in (Resolution.HOUR, Resolution.MINUTE):
            if bucket_ms % resolution.ms == 0 and start_ms >= self.horizon(resolution, now_ms):
                return resolution
        if start_ms >= self.horizon(Resolution.RAW, now_ms):
            return Resolution.RAW
        if start_ms >= self.horizon(Resolution.MINUTE, now_ms):
            return Resolution.MINUTE
        return Resolution.HOUR


def floor(ms: int, step: int) -> int:
    return ms - ms % step


async def keep(store: TelemetryStore, every_s: float = 60.0) -> None:
    """Maintain the store's history every `every_s` until cancelled (a failure is logged and
    tried again next time: the raw points wait)."""
    while True:
        try:
            done = await store.maintain()
            log.debug("telemetry history maintained: %s", done)
        except Exception:
            log.exception("telemetry history maintenance failed; trying again in %.0f s", every_s)
        await asyncio.sleep(every_s)
