"""What `python -m bench` prints: the tables of each phase, the processes' CPU and memory, and
the summary with its pass/fail checks (which it also adds to the results)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.procs import PhaseUse
from bench.stats import LATENCY_HEADERS, fmt, latency_row, ratio, table

LATENCY_BUDGET_MS = 1000.0
CLOUD_SHARE_BUDGET_MS = 100.0


def say(text: str) -> None:
    print(text, flush=True)


def progress(label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        say(f"  .. {label}: {done:,}/{total:,}")

    return report


# ---- the phases' tables -----------------------------------------------------------------


def baseline_tables(result: dict[str, Any], rate: float) -> None:
    tput, lat = result["throughput"], result["latency"]
    say(
        table(
            "Baseline: raw broker throughput (one publisher → one subscriber)",
            ["messages", "received", "publisher msg/s", "end-to-end msg/s", "dropped"],
            [
                [
                    tput["sent"],
                    tput["received"],
                    tput["publish_rate"],
                    tput["rate"],
                    _delta(result["dropped_before"], result["dropped_after"]),
                ]
            ],
        )
    )
    say(
        table(
            f"Baseline: raw round trip at {rate:g}/s (publish → subscriber)",
            [*LATENCY_HEADERS, "missing"],
            [[*latency_row("raw broker", lat["latency_ms"]), lat["missing"]]],
        )
    )


def peer_tables(kind: str, result: dict[str, Any], rate: float, gateways: int) -> None:
    tput, lat = result["throughput"], result["latency"]
    say(
        table(
            f"Peer ({kind}): throughput, {gateways} publishers → flow → subscriber",
            ["events", "alarms out", "publisher msg/s", "alarms/s", "dropped"],
            [
                [
                    tput["sent"],
                    tput["received"],
                    tput["publish_rate"],
                    tput["rate"],
                    _delta(result["dropped_before"], result["dropped_after"]),
                ]
            ],
        )
    )
    say(
        table(
            f"Peer ({kind}): latency at {rate:g}/s (publish → alarm out received)",
            [*LATENCY_HEADERS, "missing"],
            [[*latency_row(f"bare flow ({kind})", lat["latency_ms"]), lat["missing"]]],
        )
    )


def alarm_tables(result: dict[str, Any], rate: float, gateways: int) -> None:
    say(
        table(
            f"Alarm latency at {rate:g} events/s ({gateways} gateways)",
            LATENCY_HEADERS,
            [
                latency_row("(a) publish → SSE received", result["device_to_stream_ms"]),
                latency_row(
                    "(b) cloud received_at → SSE received",
                    result["cloud_received_to_stream_ms"],
                ),
                latency_row(
                    "    publish → cloud received_at", result["publish_to_cloud_received_ms"]
                ),
                latency_row(
                    "    new alarms: received_at → stored_at",
                    result["new_alarm_received_to_stored_ms"],
                ),
                latency_row(
                    "    new alarms: received_at → pushed_at",
                    result["new_alarm_received_to_pushed_ms"],
                ),
            ],
        )
    )
    say(
        table(
            "Alarm delivery",
            [
                "sent",
                "on the stream",
                "of which in a later state",
                "missing",
                "events stored",
                "new alarms",
                "repeats",
            ],
            [
                [
                    result["sent"],
                    result["received"],
                    result["coalesced"],
                    result["missing"],
                    result["ingest_events"],
                    result["new_alarms"],
                    result["alarm_repeats"],
                ]
            ],
        )
    )
    say(
        f"  live messages carrying pushed_at: {result['stream_messages_with_pushed_at']:,}"
        f" of {result['stream_messages']:,} (pushed_at above is read from the database)"
    )
    if result["missing"]:
        say(f"  MISSING on the stream: {', '.join(result['missing_ids'])}")
    if result["rejected"]:
        say(f"  REJECTED by ingest: {result['rejected']}")


def ingest_tables(result: dict[str, Any], batch_size: int, raw: float | None) -> None:
    events, telemetry = result["events"], result["telemetry"]
    rows = [
        [
            "events (call/smoke)",
            events["sent"],
            events["processed"],
            events["publish_rate"],
            events["rate"],
            "–",
            fmt(ratio(events["rate"], raw), 3),
        ],
        [
            f"telemetry ({batch_size} readings/batch)",
            telemetry["sent"],
            telemetry["processed"],
            telemetry["publish_rate"],
            telemetry["rate"],
            telemetry["readings_per_s"],
            fmt(ratio(telemetry["rate"], raw), 3),
        ],
    ]
    say(
        table(
            "Ingest throughput (cloud counters, GET /api/stats)",
            [
                "messages",
                "sent",
                "processed",
                "publisher msg/s",
                "cloud msg/s",
                "readings/s",
                "÷ raw broker",
            ],
            rows,
        )
    )
    say(
        table(
            "Telemetry store and broker",
            [
                "samples",
                "stored/s (to last flush)",
                "blast alarms on the stream",
                "stream reconnects",
                "dropped",
            ],
            [
                [
                    telemetry["samples"],
                    telemetry["samples_per_s"],
                    f"{events['stream_received']:,}/{events['sent']:,}",
                    events["stream_reconnects"],
                    _delta(result["dropped_before"], result["dropped_after"]),
                ]
            ],
        )
    )


# ---- phase 4 and the summary ------------------------------------------------------------


def process_table(
    usage: dict[str, dict[str, PhaseUse]], peak_rss: dict[str, int]
) -> dict[str, Any]:
    """Prints CPU and memory per phase and process; returns them for the results."""
    rows = []
    procs = sorted({name for use in usage.values() for name in use})
    for phase, use in usage.items():
        for name in procs:
            if name in use:
                u = use[name]
                rows.append([phase, name, u.wall_s, u.cpu_s, u.core_pct, u.peak_rss_mb])
    peak = {name: rss / 2**20 for name, rss in peak_rss.items()}
    process = {
        "phases": {
            phase: {
                name: {
                    "wall_s": u.wall_s,
                    "cpu_s": u.cpu_s,
                    "core_pct": u.core_pct,
                    "peak_rss_mb": u.peak_rss_mb,
                }
                for name, u in use.items()
            }
            for phase, use in usage.items()
        },
        "peak_rss_mb": peak,
    }
    say("\n== phase 4: processes (psutil; CPU = user + system seconds)")
    say(
        table(
            "CPU and memory per phase",
            ["phase", "process", "wall s", "CPU s", "% of one core", "peak RSS MB"],
            rows,
        )
    )
    say(f"\n  cloud peak RSS over the whole run: {fmt(peak.get('cloud'))} MB")
    return process


def summary(r: dict[str, Any], rate: float) -> int:
    """Prints the summary and adds it to the results; 0 if every check passed, else 3."""
    al = r["alarms"]
    ing = r["ingest"]
    base = r["baseline"]
    a = al["device_to_stream_ms"]
    b = al["cloud_received_to_stream_ms"]
    cloud_use = {p: u["cloud"] for p, u in r["process"]["phases"].items() if "cloud" in u}
    checks = {
        "p99 device event → live stream < 1 s": a["p99"] is not None
        and a["p99"] < LATENCY_BUDGET_MS,
        "p99 cloud share (received_at → stream) < 100 ms": b["p99"] is not None
        and b["p99"] < CLOUD_SHARE_BUDGET_MS,
        "no alarm missing on the live stream": al["missing"] == 0,
        "broker dropped nothing": _delta(ing["dropped_before"], ing["dropped_after"]) == 0
        and _delta(base["dropped_before"], base["dropped_after"]) == 0,
        "nothing rejected by ingest": not al["rejected"]
        and not any(v for k, v in ing["events"]["counters"].items() if k.startswith("rejected."))
        and not any(
            v for k, v in ing["telemetry"]["counters"].items() if k.startswith("rejected.")
        ),
    }
    raw_rate = base["throughput"]["rate"]
    summary: dict[str, Any] = {
        "raw_broker_msgs_per_s": raw_rate,
        "raw_latency_ms": base["latency"]["latency_ms"],
        "alarm_latency_ms": a,
        "cloud_share_ms": b,
        "alarms_sent": al["sent"],
        "alarms_missing": al["missing"],
        "cloud_events_per_s": ing["events"]["rate"],
        "cloud_batches_per_s": ing["telemetry"]["rate"],
        "cloud_readings_per_s": ing["telemetry"]["readings_per_s"],
        "cloud_samples_stored_per_s": ing["telemetry"]["samples_per_s"],
        "cloud_events_vs_raw": ratio(ing["events"]["rate"], raw_rate),
        "cloud_cpu": cloud_use,
        "cloud_peak_rss_mb": r["process"]["peak_rss_mb"].get("cloud"),
        "checks": checks,
    }
    rows = [
        ["raw broker throughput (1 → 1, QoS 1)", f"{fmt(raw_rate)} msg/s"],
        [
            f"raw broker latency p50 / p99 at {rate:g}/s",
            _p50_p99(base["latency"]["latency_ms"]),
        ],
    ]
    for kind, peer in r.get("peers", {}).items():
        p_rate = peer["throughput"]["rate"]
        summary[f"peer_{kind}_alarms_per_s"] = p_rate
        summary[f"peer_{kind}_latency_ms"] = peer["latency"]["latency_ms"]
        summary[f"cloud_events_vs_peer_{kind}"] = ratio(ing["events"]["rate"], p_rate)
        summary[f"cloud_drain_vs_peer_{kind}_drain"] = ratio(
            ing["events"].get("drain", {}).get("rate"), peer.get("drain", {}).get("rate")
        )
        summary[f"cloud_drain_cpu_vs_peer_{kind}_drain"] = ratio(
            ing["events"].get("drain", {}).get("cpu_us_per_message"),
            peer.get("drain", {}).get("cpu_us_per_message"),
        )
        summary[f"cloud_p50_vs_peer_{kind}"] = ratio(a["p50"], peer["latency"]["latency_ms"]["p50"])
        summary[f"cloud_p99_vs_peer_{kind}"] = ratio(a["p99"], peer["latency"]["latency_ms"]["p99"])
        rows += [
            [f"bare flow ({kind}) throughput", f"{fmt(p_rate)} alarms/s"],
            [
                f"bare flow ({kind}) draining a queued backlog",
                f"{fmt(peer.get('drain', {}).get('rate'))} alarms/s",
            ],
            [
                f"bare flow ({kind}) CPU per alarm while draining",
                f"{fmt(peer.get('drain', {}).get('cpu_us_per_message'))} µs",
            ],
            [f"bare flow ({kind}) latency p50 / p99", _p50_p99(peer["latency"]["latency_ms"])],
        ]
    rows += [
        ["alarm latency (a) publish → SSE, p50 / p95 / p99 / max", _pcts(a)],
        ["cloud share (b) received_at → SSE, p50 / p95 / p99 / max", _pcts(b)],
        [
            "alarms sent / on the stream / missing",
            f"{al['sent']} / {al['received']} / {al['missing']}",
        ],
        ["cloud events/s (blast)", fmt(ing["events"]["rate"])],
        [
            "cloud events/s draining a queued backlog",
            fmt(ing["events"].get("drain", {}).get("rate")),
        ],
        [
            "cloud CPU per event while draining",
            f"{fmt(ing['events'].get('drain', {}).get('cpu_us_per_message'))} µs",
        ],
        [
            "cloud telemetry batches/s, readings/s",
            f"{fmt(ing['telemetry']['rate'])}, {fmt(ing['telemetry']['readings_per_s'])}",
        ],
        ["cloud events/s ÷ raw broker msg/s", fmt(summary["cloud_events_vs_raw"], 4)],
    ]
    for kind in r.get("peers", {}):
        rows += [
            [
                f"cloud events/s ÷ bare flow ({kind}) alarms/s",
                fmt(summary[f"cloud_events_vs_peer_{kind}"], 4),
            ],
            [
                f"cloud drain ÷ bare flow ({kind}) drain",
                fmt(summary[f"cloud_drain_vs_peer_{kind}_drain"], 4),
            ],
            [
                f"cloud CPU per event ÷ bare flow ({kind}), draining",
                fmt(summary[f"cloud_drain_cpu_vs_peer_{kind}_drain"], 4),
            ],
            [
                f"cloud p50 / p99 latency ÷ bare flow ({kind})",
                f"{fmt(summary[f'cloud_p50_vs_peer_{kind}'], 1)} / "
                f"{fmt(summary[f'cloud_p99_vs_peer_{kind}'], 1)}",
            ],
        ]
    for phase, use in cloud_use.items():
        rows.append(
            [
                f"cloud CPU in {phase}",
                f"{use['cpu_s']:.1f} s = {use['core_pct']:.0f} % of a core",
            ]
        )
    rows.append(["cloud peak RSS", f"{fmt(summary['cloud_peak_rss_mb'])} MB"])
    for name, ok in checks.items():
        rows.append([name, "PASS" if ok else "FAIL"])
    r["summary"] = summary
    say(table("Summary", ["figure", "value"], rows))
    return 0 if all(checks.values()) else 3


def _delta(before: int | None, after: int | None) -> int | None:
    if before is None or after is None:
        return None
    return after - before


def _p50_p99(s: dict[str, Any]) -> str:
    return f"{fmt(s['p50'])} / {fmt(s['p99'])} ms"


def _pcts(s: dict[str, Any]) -> str:
    return f"{fmt(s['p50'])} / {fmt(s['p95'])} / {fmt(s['p99'])} / {fmt(s['max'])} ms"
