"""Medians of several runs' JSON results (written by `python -m bench --json FILE`).

python -m bench.median run1.json run2.json run3.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.stats import fmt, table

# a figure's place in a run's JSON: object keys, and list indices where the value is a list
JsonPath = tuple[str | int, ...]

FIGURES: list[tuple[str, JsonPath]] = [
    ("raw broker msg/s (1 → 1, QoS 1)", ("baseline", "throughput", "rate")),
    ("raw broker latency p50 ms", ("baseline", "latency", "latency_ms", "p50")),
    ("raw broker latency p99 ms", ("baseline", "latency", "latency_ms", "p99")),
    ("bare flow (python) alarms/s", ("peers", "python", "throughput", "rate")),
    ("bare flow (python) latency p50 ms", ("peers", "python", "latency", "latency_ms", "p50")),
    ("bare flow (python) latency p99 ms", ("peers", "python", "latency", "latency_ms", "p99")),
    ("bare flow (node-red) alarms/s", ("peers", "node-red", "throughput", "rate")),
    (
        "bare flow (node-red) latency p50 ms",
        ("peers", "node-red", "latency", "latency_ms", "p50"),
    ),
    (
        "bare flow (node-red) latency p99 ms",
        ("peers", "node-red", "latency", "latency_ms", "p99"),
    ),
    ("(a) publish → SSE p50 ms", ("alarms", "device_to_stream_ms", "p50")),
    ("(a) publish → SSE p95 ms", ("alarms", "device_to_stream_ms", "p95")),
    ("(a) publish → SSE p99 ms", ("alarms", "device_to_stream_ms", "p99")),
    ("(a) publish → SSE max ms", ("alarms", "device_to_stream_ms", "max")),
    ("(b) received_at → SSE p50 ms", ("alarms", "cloud_received_to_stream_ms", "p50")),
    ("(b) received_at → SSE p95 ms", ("alarms", "cloud_received_to_stream_ms", "p95")),
    ("(b) received_at → SSE p99 ms", ("alarms", "cloud_received_to_stream_ms", "p99")),
    ("(b) received_at → SSE max ms", ("alarms", "cloud_received_to_stream_ms", "max")),
    ("publish → received_at p50 ms", ("alarms", "publish_to_cloud_received_ms", "p50")),
    ("publish → received_at p99 ms", ("alarms", "publish_to_cloud_received_ms", "p99")),
    (
        "new alarms received_at → pushed_at p99 ms",
        ("alarms", "new_alarm_received_to_pushed_ms", "p99"),
    ),
    ("alarms missing on the stream", ("alarms", "missing")),
    ("cloud events/s", ("ingest", "events", "rate")),
    ("cloud telemetry batches/s", ("ingest", "telemetry", "rate")),
    ("cloud readings/s", ("ingest", "telemetry", "readings_per_s")),
    ("cloud samples stored/s", ("ingest", "telemetry", "samples_per_s")),
    ("cloud events/s ÷ raw broker", ("summary", "cloud_events_vs_raw")),
    ("cloud events/s ÷ bare flow (python)", ("summary", "cloud_events_vs_peer_python")),
    ("cloud events/s ÷ bare flow (node-red)", ("summary", "cloud_events_vs_peer_node-red")),
    ("cloud events/s draining a backlog", ("ingest", "events", "drain", "rate")),
    ("bare flow (node-red) draining a backlog", ("peers", "node-red", "drain", "rate")),
    ("cloud drain ÷ node-red drain", ("summary", "cloud_drain_vs_peer_node-red_drain")),
    ("cloud CPU µs per event, draining", ("ingest", "events", "drain", "cpu_us_per_message")),
    (
        "bare flow (node-red) CPU µs per alarm, draining",
        ("peers", "node-red", "drain", "cpu_us_per_message"),
    ),
    (
        "cloud CPU per event ÷ node-red's, draining",
        ("summary", "cloud_drain_cpu_vs_peer_node-red_drain"),
    ),
    ("cloud p50 ÷ bare flow (python) p50", ("summary", "cloud_p50_vs_peer_python")),
    ("cloud p99 ÷ bare flow (python) p99", ("summary", "cloud_p99_vs_peer_python")),
    ("cloud p50 ÷ bare flow (node-red) p50", ("summary", "cloud_p50_vs_peer_node-red")),
    ("cloud p99 ÷ bare flow (node-red) p99", ("summary", "cloud_p99_vs_peer_node-red")),
    ("cloud CPU % of a core, alarms (50/s)", ("summary", "cloud_cpu", "alarms", "core_pct")),
    (
        "cloud CPU % of a core, event blast",
        ("summary", "cloud_cpu", "ingest-events", "core_pct"),
    ),
    (
        "cloud CPU % of a core, telemetry blast",
        ("summary", "cloud_cpu", "ingest-telemetry", "core_pct"),
    ),
    ("cloud peak RSS MB", ("summary", "cloud_peak_rss_mb")),
    ("machine load (1-min average) at start", ("machine", "load_avg_at_start", 0)),
]


def dig(data: Any, path: JsonPath) -> float | None:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data if isinstance(data, int | float) else None


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print(__doc__)
        return 2
    runs = [json.loads(p.read_text()) for p in paths]
    rows = []
    for label, path in FIGURES:
        values = [dig(r, path) for r in runs]
        present = [v for v in values if v is not None]
        if not present:
            continue
        digits = 3 if "÷" in label else 2
        middle = statistics.median(present)
        if all(isinstance(v, int) for v in present) and float(middle).is_integer():
            middle = int(middle)
        rows.append([label, fmt(middle, digits), *(fmt(v, digits) for v in values)])
    headers = ["figure", f"median of {len(runs)}", *(p.stem for p in paths)]
    print(table("Medians", headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
