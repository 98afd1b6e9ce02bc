"""The rules core under load: `python -m bench.rules_load`.

A street of simulated buildings (one gateway each, a call button, a smoke alarm, a methane
detector and an air monitor per home) reports at design rates — events (heartbeats, test
presses, clears, faults and restores) at `--rate` per second and a telemetry batch per
gateway every 2 s (methane every 5 s, air every 10 s) — while a burst of `--burst` smoke
alarms from different homes of the street arrives within `--burst-window` seconds (GB/T
45839-2025 asks a platform to take 20 fire alarms in 60 s). Nobody accepts the fire alarms,
so each escalates when its acceptance budget runs out.

It drives the cloud's own message path in-process — `Ingest.handle()` (validation, the rules
core, the alarm book in SQLite with synchronous=FULL, the live push) with the escalator and
the webhook channel running — without MQTT, so the figures are the rules core's share. Arrival
is open-loop: messages are queued at their scheduled times and handled in order by one
consumer, as ingest does, so queueing delay counts. A local HTTP server receives the webhook.

Reported: alarm latency (arrival → the live push reaching a subscribed duty-room page),
per-message handling time, first notification to people (arrival → the grid worker's webhook
received), and the time from budget expiry to the escalation step being fired and to the
street supervisor's webhook being received. Every fire alarm must escalate exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bench.rules_load.report import report
from bench.rules_load.run import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rules_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gateways", type=int, default=100, help="buildings, one gateway each")
    parser.add_argument("--homes", type=int, default=4, help="homes per building (4 devices each)")
    parser.add_argument("--seconds", type=float, default=60, help="length of the load")
    parser.add_argument("--rate", type=float, default=50, help="events per second")
    parser.add_argument("--burst", type=int, default=20, help="smoke alarms in the burst")
    parser.add_argument("--burst-window", type=float, default=60, help="seconds the burst spans")
    parser.add_argument("--budget-s", type=float, default=10, help="acceptance budget (all levels)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.burst > args.gateways * args.homes:
        parser.error("more burst alarms than homes")
    try:
        results = asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    ok = report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
