"""Readings on their way to the time-series store, written in batches off the message path.

A telemetry batch is stored (its id, for redelivery) with the group commit; its readings wait
here and are written every `flush_interval_s`. A store that fails keeps them for the next try,
at most `max_pending` (the oldest go first, counted as `samples_dropped`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from cloud.telemetry.base import Sample, TelemetryStore
from contract.models import Telemetry

log = logging.getLogger(__name__)


class SampleBuffer:
    def __init__(
        self,
        store: TelemetryStore,
        *,
        flush_interval_s: float = 0.2,
        max_pending: int = 1_000_000,
    ) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.counts: Counter[str] = Counter()
        self._pending: list[Sample] = []

    @property
    def pending(self) -> int:
        """Samples waiting for the next flush (or for a store that failed to come back)."""
        return len(self._pending)

    def add(self, batch: Telemetry) -> None:
        """A stored telemetry batch's readings, one sample per value present."""
        pending = self._pending
        for reading in batch.readings:
            for unit, value in reading.values.present().items():
                pending.append(
                    Sample(
                        gateway=batch.gateway,
                        device=reading.device,
                        kind=reading.kind.value,
                        field=unit,
                        ts=reading.ts,
                        value=value,
                    )
                )
        self.counts["telemetry_batches"] += 1
        self.counts["readings"] += len(batch.readings)

    async def flush(self) -> int:
        """Write what waits; how many samples were written."""
        batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            await self.store.write(batch)
        except Exception:
            # keep them for the next try; the store may come back
            self._pending = batch + self._pending
            excess = len(self._pending) - self.max_pending
            if excess > 0:  # bounded: the oldest readings go first, and are counted
                del self._pending[:excess]
                self.counts["samples_dropped"] += excess
            log.exception("telemetry store write failed; %d samples kept", len(self._pending))
            self.counts["store_errors"] += 1
            return 0
        self.counts["samples_stored"] += len(batch)
        return len(batch)

    async def run(self) -> None:
        """Flush every `flush_interval_s` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self.flush_interval_s)
                await self.flush()
        finally:
            await self.flush()
