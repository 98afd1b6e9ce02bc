"""The fuzzer's figures and their printed text."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.fuzz.junk import VALID_GATEWAY


@dataclass
class FuzzReport:
    count: int
    reaching: int  # junk messages on topics the ACL lets through to the cloud
    by_mutation: dict[str, int]
    publish_s: float  # publishing the junk
    processed_s: float | None  # until the cloud had handled all of it (None: it did not)
    cloud_died: bool
    tracebacks: int
    internal_errors: int
    rejected: dict[str, int]
    dropped: int  # a flooding gateway's messages over its rate: counted, not checked
    put_aside: int  # a flooding gateway's messages acknowledged to the broker before checking
    junk_stored: dict[str, int]  # invalid messages the cloud stored as if valid, per table
    junk_alarms: list[dict[str, Any]]  # alarms raised by invalid input
    valid_sent: int
    valid_stored: int
    valid_delays_s: list[float]  # published → on the live stream, during the flood
    valid_missing: int  # valid alarms never seen on the live stream
    rss_before_mb: float
    rss_after_mb: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def max_delay_s(self) -> float | None:
        return max(self.valid_delays_s) if self.valid_delays_s else None

    @property
    def lag_s(self) -> float | None:
        """How long after the last junk was published the cloud finished handling the flood."""
        return None if self.processed_s is None else max(0.0, self.processed_s - self.publish_s)

    def text(self) -> str:
        def ms(values: list[float], q: float) -> str:
            if not values:
                return "-"
            ordered = sorted(values)
            return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.2f}"

        d = self.valid_delays_s
        lines = [
            f"junk: {self.count} messages ({self.reaching} on topics the ACL lets through),"
            f" published in {self.publish_s:.1f} s; the cloud handled them by"
            f" {'never' if self.processed_s is None else f'{self.processed_s:.1f} s'}",
            f"crashes: cloud died {'YES' if self.cloud_died else 'no'}, tracebacks in its log"
            f" {self.tracebacks}, internal_error rejects {self.internal_errors}",
            f"rejects by reason: {json.dumps(dict(sorted(self.rejected.items())))}",
            f"flood control: {self.put_aside} put aside for the flooding gateway,"
            f" {self.dropped} of them over its rate (counted, not checked)",
            f"invalid input stored as valid: {json.dumps(self.junk_stored)};"
            f" alarms raised by invalid input: {len(self.junk_alarms)}",
        ]
        for alarm in self.junk_alarms[:5]:
            lines.append(f"  e.g. {json.dumps(alarm, ensure_ascii=False)}")
        lines += [
            f"valid smoke alarms of {VALID_GATEWAY}: {self.valid_sent} sent, {self.valid_stored}"
            f" stored, {self.valid_missing} never on the live stream",
            f"  delay during the flood (published → live stream), s: n={len(d)}"
            f" p50 {ms(d, 0.5)} p95 {ms(d, 0.95)} max {ms(d, 1.0)}"
            + (f" mean {statistics.fmean(d):.2f}" if d else ""),
            f"cloud memory (RSS): {self.rss_before_mb:.0f} MB before,"
            f" {'-' if self.rss_after_mb is None else f'{self.rss_after_mb:.0f}'} MB after",
            f"by mutation: {json.dumps(self.by_mutation)}",
            *self.notes,
        ]
        return "\n".join(lines)
