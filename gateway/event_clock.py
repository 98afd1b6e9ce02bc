"""The time on a gateway's events: the device's own, unless the wall clock is wrong.

A Raspberry Pi has no real-time clock: it starts in 1970 (a time the contract refuses) until
NTP sets it, and NTP may then step it back. Within a boot an event's time never goes back:
an event the clock would date before the latest one (by more than `CLOCK_STEP_S`), or before
the contract's earliest time, keeps the latest time used (or the earliest) and says so.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from contract.models import EARLIEST

log = logging.getLogger(__name__)

_TIMESYNC = Path("/run/systemd/timesync")
#: An event time this far behind the latest one of the boot means the wall clock stepped
#: back (smaller inversions are real: two devices' changes reach the agent out of order).
CLOCK_STEP_S = 1.0


def clock_synced() -> bool:
    """False while systemd-timesyncd has not synchronised the clock yet (no RTC on a Pi)."""
    if not _TIMESYNC.is_dir():
        return True
    return (_TIMESYNC / "synchronized").exists()


class EventClock:
    """The latest event time of this boot. Not locked: the agent calls it under its lock."""

    def __init__(self) -> None:
        self.latest: datetime | None = None

    def time(self, ts: datetime) -> tuple[datetime, bool]:
        """The time to put on an event, and whether it is not the clock's own: the clock
        stepped back, or it was never set (the latest time used, or the contract's
        earliest, goes instead)."""
        latest = self.latest
        if ts < EARLIEST:
            log.warning("clock not set (%s): event time held", ts.isoformat())
            return max(latest or EARLIEST, EARLIEST), True
        if latest is not None and ts < latest - timedelta(seconds=CLOCK_STEP_S):
            log.warning(
                "clock stepped back: event time held behind=%.3f",
                (latest - ts).total_seconds(),
            )
            return latest, True
        self.latest = ts if latest is None else max(latest, ts)
        return ts, False
