"""`python -m bench.workers`: the options, the runs and the summary (the package's docstring)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.results import write_results
from bench.stats import table
from bench.workers.phases import drain, failover
from bench.workers.stack import WorkerStack


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.workers",
        description="Ingest workers, 1 against 2, on a 3-node RabbitMQ cluster and PostgreSQL: "
        "a queued backlog drained (events/s, CPU per event) and a worker killed "
        "(failover); docs/benchmarks.md.",
    )
    parser.add_argument("--gateways", type=int, default=16, help="simulated gateways (16)")
    parser.add_argument("--shards", type=int, default=4, help="SC_CLOUD_INGEST_SHARDS (4)")
    parser.add_argument("--events", type=int, default=10_000, help="events per drain (10000)")
    parser.add_argument("--runs", type=int, default=3, help="runs; the summary is their median")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="events/s while a worker is killed (200)"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="length of the failover stream (20)"
    )
    parser.add_argument(
        "--kill-after", type=float, default=8.0, help="seconds into the stream of the kill (8)"
    )
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=30,
        help="SC_CLOUD_AMQP_HEARTBEAT_S of the workers (30: a worker stopped while the "
        "backlog is published is not taken for a dead host; a kill -9 closes its sockets)",
    )
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="PostgreSQL without fsync (commits wait for no disk flush: what the disk costs)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 run, 2000 events, 10 s stream killed after 4 s"
    )
    parser.add_argument("--json", type=Path, help="write every run and the medians as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.runs, opts.events, opts.seconds, opts.kill_after = 1, 2000, 10.0, 4.0
    if opts.shards % 2:
        parser.error("--shards must be even (two workers share them equally)")
    return opts


def _get(run: dict[str, Any], *path: str) -> float | None:
    value: Any = run
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


FIGURES: list[tuple[str, tuple[str, ...]]] = [
    ("drain events/s, 1 worker", ("drain_1", "rate")),
    ("drain events/s, 2 workers", ("drain_2", "rate")),
    ("**2 workers ÷ 1 worker**", ("ratio",)),
    ("workers' CPU ms per event, 1 worker", ("drain_1", "cpu_ms_per_event", "workers")),
    ("workers' CPU ms per event, 2 workers", ("drain_2", "cpu_ms_per_event", "workers")),
    ("workers, % of a core while draining, 1", ("drain_1", "worker_core_pct")),
    ("workers, % of a core while draining, 2", ("drain_2", "worker_core_pct")),
    ("broker CPU ms per event delivered, 1", ("drain_1", "cpu_ms_per_event", "broker")),
    ("broker CPU ms per event delivered, 2", ("drain_2", "cpu_ms_per_event", "broker")),
    ("broker CPU ms per event queued", ("drain_1", "broker_queue_ms_per_event")),
    ("PostgreSQL CPU ms per event, 1", ("drain_1", "cpu_ms_per_event", "postgres")),
    ("PostgreSQL CPU ms per event, 2", ("drain_2", "cpu_ms_per_event", "postgres")),
    ("the gateways (this process) CPU ms per event, 2", ("drain_2", "cpu_ms_per_event", "bench")),
    (
        "cloud tier (workers, broker, database) CPU ms per event, 1",
        ("drain_1", "tier_ms_per_event"),
    ),
    (
        "cloud tier (workers, broker, database) CPU ms per event, 2",
        ("drain_2", "tier_ms_per_event"),
    ),
    ("events/s that CPU allows, the tier alone on all cores, 1", ("drain_1", "cpu_bound_rate")),
    ("events/s that CPU allows, the tier alone on all cores, 2", ("drain_2", "cpu_bound_rate")),
    ("seconds to queue the backlog", ("drain_1", "queued_s")),
    ("all cores busy while draining, %, 1 worker", ("drain_1", "machine_busy_pct")),
    ("all cores busy while draining, %, 2 workers", ("drain_2", "machine_busy_pct")),
    ("of which other programs, %, 1 worker", ("drain_1", "others_busy_pct")),
    ("of which other programs, %, 2 workers", ("drain_2", "others_busy_pct")),
    (
        "failover: takeover s (first event of the dead worker's gateways)",
        ("failover", "takeover_s"),
    ),
    ("failover: shards taken, survivor's log, s", ("failover", "shards_taken_log_s")),
    ("failover: backlog cleared s", ("failover", "backlog_cleared_s")),
    (
        "failover: max publish → received ms, moved gateways",
        ("failover", "moved_after_kill_ms", "max"),
    ),
    (
        "failover: max publish → received ms, survivor's own",
        ("failover", "kept_after_kill_ms", "max"),
    ),
    ("failover: p50 publish → received ms before the kill", ("failover", "before_kill_ms", "p50")),
    ("lost (drains + failover)", ("lost",)),
    ("out of order (failover)", ("failover", "out_of_order")),
]


def summarise(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for label, path in FIGURES:
        values = [v for run in runs if (v := _get(run, *path)) is not None]
        out[label] = statistics.median(values) if values else None
    return out


def report(runs: list[dict[str, Any]], medians: dict[str, float | None]) -> str:
    headers = ["figure", f"median of {len(runs)}", *(f"run {r['run']}" for r in runs)]
    rows = [[label, medians[label], *(_get(run, *path) for run in runs)] for label, path in FIGURES]
    return table("Ingest workers: 1 vs 2 on the cluster", headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    runs: list[dict[str, Any]] = []
    load = os.getloadavg()
    code = 0
    with contextlib.ExitStack() as exits:
        stack = WorkerStack(opts, exits)
        try:
            say(f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; {stack.workdir}")
            stack.start_servers(say)
            first = stack.start_worker()
            say(f"{first.name} (pid {first.pid}) at {first.url}")
            stack.wait_balanced()
            for n in range(1, opts.runs + 1):
                run: dict[str, Any] = {"run": n, "load_average": os.getloadavg()}
                say(f"run {n}/{opts.runs}: drain with 1 worker ({stack.workers[0].name})")
                run["drain_1"] = drain(stack, opts.events, say)
                second = stack.start_worker()
                shared = stack.wait_balanced()
                say(
                    f"{second.name} (pid {second.pid}) joined; shards shared in {shared:.1f} s: "
                    + ", ".join(f"{w.name} {sorted(w.held())}" for w in stack.workers)
                )
                run["join_s"] = shared
                say(f"run {n}/{opts.runs}: drain with 2 workers")
                run["drain_2"] = drain(stack, opts.events, say)
                one, two = run["drain_1"]["rate"], run["drain_2"]["rate"]
                run["ratio"] = two / one if one and two else None
                say(f"run {n}/{opts.runs}: failover")
                run["failover"] = failover(stack, opts.rate, opts.seconds, opts.kill_after, say)
                run["lost"] = sum(run[k]["lost"] for k in ("drain_1", "drain_2", "failover"))
                stack.wait_balanced()
                runs.append(run)
        except KeyboardInterrupt:
            say("interrupted; stopping every process this run started (each by its pid)")
            code = 130
        except Exception:  # the runs so far are still reported
            traceback.print_exc()
            code = 1
        finally:
            say("stopping the workers, the gateways, PostgreSQL and the cluster")
    medians = summarise(runs)
    if runs:
        print(report(runs, medians))
    if opts.json:
        write_results(opts.json, opts, load, runs=runs, medians=medians)
    if code == 0 and any(r["lost"] or r["failover"]["out_of_order"] for r in runs):
        code = 3
    return code


if __name__ == "__main__":
    sys.exit(main())
