"""The rules benchmark's figures: percentiles, and the printed table with its verdict."""

from __future__ import annotations

import statistics
from typing import Any


def pct(values: list[float]) -> dict[str, float | int | None]:
    values = sorted(values)
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    if len(values) == 1:
        v = values[0]
        return {"n": 1, "p50": v, "p95": v, "p99": v, "max": v}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"n": len(values), "p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": values[-1]}


def say(text: str) -> None:
    print(text, flush=True)


def _ms(row: dict[str, Any]) -> str:
    if not row["n"]:
        return "n=0"
    return (
        f"n={row['n']:<6} p50 {row['p50'] * 1000:8.2f} ms  p95 {row['p95'] * 1000:8.2f} ms  "
        f"p99 {row['p99'] * 1000:8.2f} ms  max {row['max'] * 1000:8.2f} ms"
    )


def report(r: dict[str, Any]) -> bool:
    c = r["counts"]
    say("")
    say(
        f"handled: {c.get('events', 0)} events, {c.get('telemetry_batches', 0)} batches "
        f"({c.get('readings', 0)} readings), {c.get('alarms_raised', 0)} alarms raised, "
        f"{c.get('alarm_repeats', 0)} repeats, {c.get('alarms_cleared', 0)} cleared; "
        f"rejected {sum(r['rejected'].values())}"
    )
    rows = [
        ("alarm latency, fire burst (arrival → live push at a page)", "alarm_latency_fire_s"),
        ("alarm latency, all alarms", "alarm_latency_all_s"),
        ("handling time per message", "handle_s"),
        ("first notification to people (arrival → grid worker webhook)", "first_notification_s"),
        ("budget expiry → escalation step fired", "expiry_to_step_fired_s"),
        ("budget expiry → street supervisor's webhook received", "expiry_to_supervisor_webhook_s"),
    ]
    for label, key in rows:
        say(f"{label:<64} {_ms(r[key])}")
    ok = (
        r["escalated"] == r["fire_alarms"]
        and r["escalated_twice"] == 0
        and r["duplicate_deliveries"] == 0
        and (r["first_notification_s"]["max"] or 99) < 15
    )
    say(
        f"fire alarms {r['fire_alarms']}, escalated {r['escalated']}, twice "
        f"{r['escalated_twice']}, duplicate deliveries {r['duplicate_deliveries']}: "
        f"{'OK' if ok else 'FAILED'}"
    )
    return ok
