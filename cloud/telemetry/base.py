"""The telemetry store: one small async interface, a backend per module, chosen by URL.

    store = open_store("sqlite:///var/lib/sc/telemetry.db")   # the embedded default
    store = open_store("influx://127.0.0.1:8086/sc")          # an InfluxDB server
    await store.write([Sample("gw-ld01", "gas-0101", "gas", "ch4_pct_lel", ts, 3.5)])
    await store.query(gateway="gw-ld01", device="gas-0101", field="ch4_pct_lel",
                      start=ts - timedelta(hours=1), end=ts, every=timedelta(minutes=1))

Both backends keep time to the millisecond (finer parts are cut off), read ranges as
`start <= ts < end`, align `every` buckets to the Unix epoch and name each bucket by its start
(as InfluxQL's `GROUP BY time(...)` does), and keep one value per (gateway, device, field, ms):
writing the same sample again (a redelivered telemetry batch) replaces it, never doubles it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cloud.errors import Unavailable

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# Line protocol has no escape for line breaks, and InfluxDB versions disagree on backslashes.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\\]")


#: Names already found storable: a street's few thousand devices and fields, checked once each
#: (at most `_STORABLE_MAX` remembered).
_STORABLE: set[str] = set()
_STORABLE_MAX = 100_000


def _check_storable(name: str, text: object) -> None:
    if not isinstance(text, str) or not text or _UNSTORABLE.search(text):
        raise ValueError(
            f"Sample.{name}={text!r}: needs a non-empty string without "
            "backslashes or control characters"
        )
    if len(_STORABLE) >= _STORABLE_MAX:
        _STORABLE.clear()
    _STORABLE.add(text)


class StoreError(Unavailable):
    """The store cannot do what was asked (unreachable, refused, full, broken); says why."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one field (a unit name such as `ch4_pct_lel`) of one device at one time."""

    gateway: str
    device: str
    kind: str
    field: str
    ts: datetime
    value: float

    def __post_init__(self) -> None:
        known = _STORABLE  # the common case, by far: names seen before
        if not (
            self.gateway in known
            and self.device in known
            and self.kind in known
            and self.field in known
        ):
            for name in ("gateway", "device", "kind", "field"):
                text = getattr(self, name)
                if text not in known:
                    _check_storable(name, text)
        if self.ts.tzinfo is not UTC:
            if self.ts.tzinfo is None or self.ts.utcoffset() is None:
                raise ValueError(f"Sample.ts={self.ts!r} is naive; give a time zone (UTC)")
            object.__setattr__(self, "ts", self.ts.astimezone(UTC))
        value = float(self.value)
        if not math.isfinite(value):
            raise ValueError(f"Sample.value={self.value!r} is not a finite number")
        object.__setattr__(self, "value", value)


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest point of one field of one device."""

    gateway: str
    device: str
    field: str
    ts: datetime
    value: float


class TelemetryStore(Protocol):
    async def write(self, samples: Sequence[Sample]) -> None:
        """Store the samples (an empty sequence does nothing); raises StoreError."""
        ...

    async def query(
        self,
        *,
        gateway: str,
        device: str,
        field: str,
        start: datetime,
        end: datetime,
        every: timedelta | None = None,
    ) -> list[tuple[datetime, float]]:
        """Raw points in `start <= ts < end`, oldest first; or with `every`, the mean of each
        bucket (named by its start, aligned to the epoch), empty buckets left out."""
        ...

    async def mean(
        self, *, gateway: str, device: str, field: str, start: datetime, end: datetime
    ) -> float | None:
        """The mean over `start <= ts < end`, or None when there is no point."""
        ...

    async def latest(self, *, since: datetime) -> list[Latest]:
        """The newest point of every (gateway, device, field) that has one at or after
        `since`: what the device health page shows as last seen, battery and signal."""
        ...

    async def ping(self) -> None:
        """Check that the store can be written and queried now; raises StoreError if not."""
        ...

    async def maintain(self) -> object:
        """Keep the history (`cloud/telemetry/history.py`): aggregates up to date, what is
        past its retention deleted, where the store does not do it itself; what was done."""
        ...

    async def close(self) -> None: ...


def to_ms(when: datetime) -> int:
    """Milliseconds since the epoch (sub-millisecond parts cut off); refuses naive times."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{when!r} is naive; give a time zone (UTC)")
    return (when - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def every_ms(every: timedelta | None) -> int | None:
    if every is None:
        return None
    if every <= timedelta(0) or every % _MS:
        raise ValueError(f"every={every!r} must be a positive whole number of milliseconds")
    return every // _MS
