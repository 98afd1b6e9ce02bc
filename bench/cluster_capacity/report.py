"""The medians of the runs, printed and written as JSON."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from bench.cluster_capacity.phase import Phase
from bench.stats import table

# ---- the report --------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(phases: Sequence[Phase]) -> list[dict[str, Any]]:
    out = []
    for broker in dict.fromkeys(p.broker for p in phases):
        for name in dict.fromkeys(p.phase for p in phases):
            runs = [p for p in phases if p.broker == broker and p.phase == name]
            if not runs:
                continue
            out.append(
                {
                    "broker": broker,
                    "phase": name,
                    "runs": len(runs),
                    "msgs_per_s": _median([p.msgs_per_s for p in runs]),
                    "acked_per_s": _median([p.acked_per_s for p in runs]),
                    "p50_ms": _median([p.latency_ms.get("p50") for p in runs]),
                    "p99_ms": _median([p.latency_ms.get("p99") for p in runs]),
                    "broker_cpu_ms": _median([p.per_1000("broker") for p in runs]),
                    "publishers_cpu_ms": _median([p.per_1000("publishers") for p in runs]),
                    "consumer_cpu_ms": _median([p.per_1000("consumer") for p in runs]),
                    "broker_core_pct": _median(
                        [100 * p.cpu_s["broker"] / p.wall_s for p in runs if p.wall_s]
                    ),
                    "lost": sum(p.messages - p.received for p in runs),
                    "duplicates": sum(p.duplicates for p in runs),
                }
            )
    return out


def report(
    phases: Sequence[Phase], summary: Sequence[dict[str, Any]], idle: dict[str, float]
) -> str:
    per_run = table(
        "Each run",
        [
            "broker",
            "phase",
            "run",
            "msgs",
            "msg/s",
            "acked msg/s",
            "p50 ms",
            "p99 ms",
            "broker CPU ms/msg",
            "publishers",
            "consumer",
            "bytes/msg",
        ],
        [
            [
                p.broker,
                p.phase,
                p.run,
                p.received,
                p.msgs_per_s,
                p.acked_per_s,
                p.latency_ms.get("p50"),
                p.latency_ms.get("p99"),
                p.per_1000("broker"),
                p.per_1000("publishers"),
                p.per_1000("consumer"),
                p.payload_bytes,
            ]
            for p in phases
        ],
    )
    medians = table(
        "Medians of the runs (msg/s: consumed end to end; acked: the publishers' PUBACKs; "
        "CPU seconds per 1,000 messages = ms per message)",
        [
            "broker",
            "phase",
            "runs",
            "msg/s",
            "acked msg/s",
            "p50 ms",
            "p99 ms",
            "broker ms/msg",
            "broker % of a core",
            "publishers ms/msg",
            "consumer ms/msg",
            "lost",
            "doubled",
        ],
        [
            [
                s["broker"],
                s["phase"],
                s["runs"],
                s["msgs_per_s"],
                s["acked_per_s"],
                s["p50_ms"],
                s["p99_ms"],
                s["broker_cpu_ms"],
                s["broker_core_pct"],
                s["publishers_cpu_ms"],
                s["consumer_cpu_ms"],
                s["lost"],
                s["duplicates"],
            ]
            for s in summary
        ],
    )
    lines = [per_run, medians, ""]
    blasts = {s["broker"]: s for s in summary if s["phase"] == "blast"}
    mosq = blasts.pop("Mosquitto", None)
    rabbit = next(iter(blasts.values()), None)
    if rabbit and mosq and rabbit["broker_cpu_ms"] and mosq["broker_cpu_ms"]:
        rates = (rabbit["msgs_per_s"] or 0) / (mosq["msgs_per_s"] or 1)
        lines.append(
            f"broker CPU per message, RabbitMQ ×3 ÷ Mosquitto (blast): "
            f"{rabbit['broker_cpu_ms'] / mosq['broker_cpu_ms']:.1f}×; "
            f"msg/s RabbitMQ ÷ Mosquitto: {rates:.2f}"
        )
    for name, rate in idle.items():
        lines.append(f"{name} idle: {rate * 1000:.0f} ms of CPU per second (all its processes)")
    return "\n".join(lines)
