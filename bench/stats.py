"""Percentiles from raw samples and plain-text (Markdown) tables."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def summary_ms(samples_s: Iterable[float]) -> dict[str, Any]:
    """n, p50, p95, p99, max and mean of latencies given in seconds, returned in ms."""
    values = sorted(v * 1000.0 for v in samples_s)
    n = len(values)
    if n == 0:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    if n == 1:
        v = values[0]
        return {"n": 1, "p50": v, "p95": v, "p99": v, "max": v, "mean": v}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "n": n,
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "max": values[-1],
        "mean": statistics.fmean(values),
    }


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table under a title, columns padded so it also reads well in a terminal."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(parts: Sequence[str]) -> str:
        return "| " + " | ".join(p.ljust(widths[i]) for i, p in enumerate(parts)) + " |"

    out = [f"\n### {title}\n", line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def latency_row(label: str, summary: dict[str, Any]) -> list[Any]:
    return [
        label,
        summary["n"],
        summary["p50"],
        summary["p95"],
        summary["p99"],
        summary["max"],
    ]


LATENCY_HEADERS = ["path", "samples", "p50 ms", "p95 ms", "p99 ms", "max ms"]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b
