"""The options of `python -m bench`, and the part of them the results record."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.sitegen import max_devices_per_gateway


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the cloud's alarm path and ingest on loopback (see "
        "docs/benchmarks.md).",
    )
    parser.add_argument("--gateways", type=int, default=20, help="simulated gateways (20)")
    parser.add_argument(
        "--devices-per-gateway",
        type=int,
        default=4,
        help=f"devices per gateway, call/smoke/gas/air in turn (4; at most "
        f"{max_devices_per_gateway()})",
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="length of each latency run (30)"
    )
    parser.add_argument(
        "--rate", type=float, default=50.0, help="events/s in the latency runs (50)"
    )
    parser.add_argument("--store", choices=["sqlite", "influx"], default="sqlite")
    parser.add_argument(
        "--raw-count", type=int, default=50000, help="messages in the raw broker blast (50000)"
    )
    parser.add_argument(
        "--events", type=int, default=10000, help="events in the ingest/peer blasts (10000)"
    )
    parser.add_argument(
        "--batches", type=int, default=5000, help="telemetry batches in the ingest blast (5000)"
    )
    parser.add_argument("--batch-size", type=int, default=10, help="readings per batch (10)")
    parser.add_argument(
        "--peer",
        nargs="?",
        const="python",
        choices=["python", "node-red", "both"],
        help="also measure a bare parse → threshold → republish flow (python: aiomqtt; "
        "node-red: a stock Node-RED 4 flow, installed into bench/.node-red)",
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s run with small counts")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument(
        "--profile-cloud",
        type=Path,
        metavar="FILE",
        help="run the cloud under cProfile and write its stats to FILE (slows it down)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder (databases, logs, site file) and print its path",
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.seconds, opts.raw_count, opts.events, opts.batches = 5.0, 3000, 1000, 300
    if opts.gateways < 1 or opts.rate <= 0 or opts.seconds <= 0:
        parser.error("--gateways, --rate and --seconds must be positive")
    if opts.gateways > 9999:
        parser.error("--gateways: at most 9999")
    return opts


def run_config(o: argparse.Namespace) -> dict[str, Any]:
    """The options that shape the figures, for the results."""
    return {
        "gateways": o.gateways,
        "devices_per_gateway": o.devices_per_gateway,
        "seconds": o.seconds,
        "rate": o.rate,
        "store": o.store,
        "raw_count": o.raw_count,
        "events": o.events,
        "batches": o.batches,
        "batch_size": o.batch_size,
        "peer": o.peer,
        "quick": o.quick,
    }
