"""`python -m bench.drain`: the cloud's capacity alone, in a few minutes.

The stack of `python -m bench` (Mosquitto, the simulated gateways, the cloud as a subprocess on
its embedded defaults, a signed-in reader on the live stream) is started once; then, `--runs`
times, `--events` events are queued at the broker while the cloud is stopped (SIGSTOP) and
drained once it is let go (`bench.cloud_phases`' drain): events/s, the cloud's CPU per event,
and that CPU split between its event loop's thread and the others (the database's writer).
Compare two versions of the cloud by running this in each checkout in turn, more than once.

    .venv/bin/python -m bench.drain [--runs 4] [--events 10000] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.cloud_phases import drain_backlog
from bench.options import parse_args as bench_args
from bench.report import say
from bench.results import write_results
from bench.stack import Stack
from bench.stats import table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.drain",
        description="Drain a queued backlog several times on one cloud: events/s and CPU per "
        "event (see docs/benchmarks.md).",
    )
    parser.add_argument("--runs", type=int, default=4, help="drains on the one cloud (4)")
    parser.add_argument("--events", type=int, default=10000, help="events per drain (10000)")
    parser.add_argument("--json", type=Path, help="write the drains and medians as JSON")
    opts = parser.parse_args(argv)
    if opts.runs < 1 or opts.events < 1:
        parser.error("--runs and --events must be positive")
    return opts


def _thread_cpu_s(proc: psutil.Process) -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in proc.threads()}


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    load = os.getloadavg()
    drains: list[dict[str, Any]] = []
    with contextlib.ExitStack() as exits:
        stack = Stack(bench_args(["--events", str(opts.events)]), exits)
        stack.start_servers()
        stack.start_cloud()
        assert stack.cloud is not None
        cloud = psutil.Process(stack.cloud.pid)
        for n in range(1, opts.runs + 1):
            say(f"\ndrain {n}/{opts.runs}")
            threads = _thread_cpu_s(cloud)
            result = drain_backlog(stack, opts.events)
            after = _thread_cpu_s(cloud)
            used = {tid: cpu - threads.get(tid, 0.0) for tid, cpu in after.items()}
            loop_s = used.get(cloud.pid, 0.0)  # the main thread: the event loop
            result["loop_cpu_us_per_event"] = loop_s / opts.events * 1e6
            result["other_threads_cpu_us_per_event"] = (
                (sum(used.values()) - loop_s) / opts.events * 1e6
            )
            drains.append(result)
            say(
                f"  {result['rate']:,.0f} events/s, {result['cpu_us_per_message']:.0f} µs of CPU"
                f" per event (event loop {result['loop_cpu_us_per_event']:.0f}, other threads"
                f" {result['other_threads_cpu_us_per_event']:.0f})"
            )
    keys = [
        ("events/s", "rate"),
        ("CPU µs per event", "cpu_us_per_message"),
        ("event loop's µs", "loop_cpu_us_per_event"),
        ("other threads' µs", "other_threads_cpu_us_per_event"),
    ]
    medians = {
        key: statistics.median(v) if (v := [d[key] for d in drains if d.get(key)]) else None
        for _, key in keys
    }
    rows = [[n, *(d.get(key) for _, key in keys)] for n, d in enumerate(drains, 1)]
    rows.append(["median", *(medians[key] for _, key in keys)])
    print(table("Draining a backlog on one cloud", ["drain", *(h for h, _ in keys)], rows))
    if opts.json:
        write_results(opts.json, opts, load, drains=drains, medians=medians)
    return 0 if len(drains) == opts.runs and all(d.get("rate") for d in drains) else 3


if __name__ == "__main__":
    sys.exit(main())
