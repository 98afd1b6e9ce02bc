"""Readings collected between two telemetry batches (from any driver's thread); a device's
readings never go back in time, whatever its clock does."""

from __future__ import annotations

import threading
from datetime import datetime

from contract.models import Reading
from edge.drivers.base import Sample


class ReadingBuffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readings: list[Reading] = []
        self._latest: dict[str, datetime] = {}

    def restart(self) -> None:
        """A new boot: no device has a latest time yet."""
        with self._lock:
            self._latest = {}

    def add(self, sample: Sample) -> None:
        """Keep a driver's sample as a contract Reading; ValidationError if it does not fit."""
        with self._lock:
            ts = sample.ts
            latest = self._latest.get(sample.device)
            if latest is not None and ts < latest:
                ts = latest
            self._latest[sample.device] = ts
            self._readings.append(
                Reading(device=sample.device, ts=ts, kind=sample.kind, values=sample.values)
            )

    def take(self) -> list[Reading]:
        """What was kept since the last time, oldest first."""
        with self._lock:
            readings, self._readings = self._readings, []
        return readings
