"""The running mean a threshold rule reads over its window (e.g. PM2.5 over 24 h)."""

from __future__ import annotations

import math
from collections import deque


class MeanWindow:
    """A running mean over a time span, kept in at most ~240 buckets however many readings
    arrive (a 24 h mean of 10-second readings stays small). A bucket straddling the horizon is
    kept whole, so the mean can include up to one bucket width more than the span."""

    __slots__ = ("_buckets", "_count", "_latest", "_sum", "span", "width")

    def __init__(self, span_s: float) -> None:
        self.span = span_s
        self.width = max(span_s / 240.0, 1.0)
        self._buckets: deque[list[float]] = deque()  # [start, sum, count]
        self._sum = 0.0
        self._count = 0
        self._latest = -math.inf

    def add(self, ts: float, value: float) -> float:
        start = math.floor(ts / self.width) * self.width
        buckets = self._buckets
        if buckets and buckets[-1][0] == start:
            buckets[-1][1] += value
            buckets[-1][2] += 1
        elif not buckets or start > buckets[-1][0]:
            buckets.append([start, value, 1])
        else:  # an older reading (a replay): find or insert its bucket
            for i in range(len(buckets) - 1, -1, -1):
                if buckets[i][0] == start:
                    buckets[i][1] += value
                    buckets[i][2] += 1
                    break
                if buckets[i][0] < start:
                    buckets.insert(i + 1, [start, value, 1])
                    break
            else:
                buckets.appendleft([start, value, 1])
        self._sum += value
        self._count += 1
        self._latest = max(self._latest, ts)
        horizon = self._latest - self.span
        while buckets and buckets[0][0] + self.width <= horizon:
            _, gone_sum, gone_count = buckets.popleft()
            self._sum -= gone_sum
            self._count -= int(gone_count)
        return self._sum / self._count
