"""Times as the cloud's database keeps them (UTC epoch seconds, a float) and as the rest of the
cloud reads them (aware datetimes in UTC): the one place that converts between the two."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def from_epoch(ts: float) -> datetime: ...
@overload
def from_epoch(ts: float | None) -> datetime | None: ...
def from_epoch(ts: float | None) -> datetime | None:
    """Epoch seconds → an aware UTC datetime; None (a time not reached yet) stays None."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@overload
def to_epoch(moment: datetime) -> float: ...
@overload
def to_epoch(moment: datetime | None) -> float | None: ...
def to_epoch(moment: datetime | None) -> float | None:
    """An aware datetime → epoch seconds; None stays None."""
    return None if moment is None else moment.timestamp()
