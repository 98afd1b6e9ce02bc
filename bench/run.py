"""`python -m bench`: the alarm path and ingest of the cloud, measured against real servers
started here on loopback, next to the raw broker (and optionally a bare flow) in the same run.

Phases:
1. baseline  – raw Mosquitto throughput (one paho QoS 1 publisher → one paho subscriber) and
               round-trip latency at the alarm phase's rate;
   peer      – (--peer) a bare parse → threshold → republish flow, measured the same way;
2. alarms    – N simulated gateways publish call presses / smoke alarms at a steady rate while
               a signed-in reader holds the live stream (SSE): latency device event → stream;
3. ingest    – events, then telemetry batches, blasted as fast as the publishers can;
               the cloud's processing rate from its own counters; the broker's drop counter;
4. process   – CPU and peak RSS of the cloud (and the other processes) per phase.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Sequence
from typing import Any

from bench.broker_phases import baseline, peers
from bench.cloud_phases import alarms, ingest
from bench.options import parse_args, run_config
from bench.report import process_table, say, summary
from bench.stack import Stack, machine


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # also when started in the background, where SIGINT may arrive ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    code = 1
    with contextlib.ExitStack() as exits:
        stack = Stack(opts, exits)
        results: dict[str, Any] = {"config": run_config(opts), "machine": machine()}
        try:
            stack.start_servers()
            results["baseline"] = baseline(stack)
            results["peers"] = peers(stack)
            stack.start_cloud()
            results["alarms"] = alarms(stack)
            results["ingest"] = ingest(stack, results["baseline"]["throughput"]["rate"])
            results["process"] = process_table(stack.usage, stack.watch.peak_rss)
            code = summary(results, opts.rate)
        except KeyboardInterrupt:
            say("\ninterrupted; stopping every process this run started")
            return 130
        finally:
            say(f"\nstopping (run took {time.monotonic() - started:.0f} s)")
            if opts.json and "summary" in results:
                opts.json.parent.mkdir(parents=True, exist_ok=True)
                opts.json.write_text(json.dumps(results, indent=2, default=str))
                say(f"results written to {opts.json}")
    return code
