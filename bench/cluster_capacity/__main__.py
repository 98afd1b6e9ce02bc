"""`python -m bench.cluster_capacity`: the options and the run (see the package's docstring)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench.cluster_capacity.idle import Idle, measure_idle_connections
from bench.cluster_capacity.phase import (
    Phase,
    gateway_names,
    run_phase,
    start_cluster,
    start_mosquitto,
)
from bench.cluster_capacity.report import report, summarise
from bench.results import write_results
from bench.stats import fmt
from tests.servers import Mosquitto, RabbitCluster

# ---- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster_capacity",
        description="CPU per message of a 3-node RabbitMQ cluster (MQTT in, quorum queue, AMQP "
        "out) beside one Mosquitto, same load (docs/benchmarks.md).",
    )
    parser.add_argument("--messages", type=int, default=40_000, help="messages per blast (40000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per broker (3)")
    parser.add_argument("--publishers", type=int, default=4, help="publisher processes (4)")
    parser.add_argument("--clients", type=int, default=3, help="MQTT clients per publisher (3)")
    parser.add_argument(
        "--window", type=int, default=100, help="unacknowledged publishes per client (100)"
    )
    parser.add_argument("--readings", type=int, default=5, help="readings per telemetry batch (5)")
    parser.add_argument(
        "--event-every", type=int, default=10, help="one event in every N messages (10; 0: none)"
    )
    parser.add_argument(
        "--paced-rate", type=float, default=1000.0, help="msg/s in the paced phase (1000)"
    )
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="paced phase length (10)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="~2 min (35–45 s of it the cluster's start): 6000 messages, 1 run, 3 s paced, "
        "600 idle connections",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=3000,
        help="idle gateway connections opened to each broker before the runs (3000)",
    )
    parser.add_argument("--json", type=Path, help="write every phase and the medians as JSON")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.messages, opts.runs, opts.paced_seconds, opts.connections = 6000, 1, 3.0, 600
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    began, load = time.monotonic(), os.getloadavg()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    gateways = gateway_names(opts.publishers * opts.clients)
    cluster: RabbitCluster | None = None
    mosquitto: Mosquitto | None = None
    phases: list[Phase] = []
    idle: dict[str, float] = {}
    connections: list[Idle] = []
    try:
        say("starting a 3-node RabbitMQ cluster (~30 s) and one Mosquitto")
        cluster, rabbit = start_cluster(gateways)
        mosquitto, mosq = start_mosquitto(gateways)
        say(f"ready; load average {os.getloadavg()[0]:.1f}")
        # first, while the brokers are fresh (no freed buffers of a blast to reuse)
        window = 3.0 if opts.quick else 10.0
        for broker in (rabbit, mosq):
            say(f"{broker.name}: idle, then {opts.connections:,} idle gateway connections")
            connections.append(
                measure_idle_connections(broker, opts.connections, window / 2, window)
            )
            idle[broker.name] = connections[-1].idle_cpu_s_per_s
            say(
                f"  {connections[-1].kb_per_connection:.0f} KiB each, "
                f"{connections[-1].cpu_ms_per_s_per_1000:.1f} ms CPU/s per 1,000"
            )
        paced_count = round(opts.paced_rate * opts.paced_seconds)
        for run in range(1, opts.runs + 1):
            for broker in (rabbit, mosq) if run % 2 else (mosq, rabbit):
                for phase, count, rate in (
                    ("blast", opts.messages, 0.0),
                    ("paced", paced_count, opts.paced_rate),
                ):
                    say(f"run {run}/{opts.runs}: {broker.name}, {phase}, {count:,} messages")
                    p = run_phase(broker, opts, phase=phase, run=run, count=count, rate=rate)
                    phases.append(p)
                    say(
                        f"  {fmt(p.msgs_per_s)} msg/s, p50 {fmt(p.latency_ms.get('p50'))} ms, "
                        f"p99 {fmt(p.latency_ms.get('p99'))} ms, broker "
                        f"{fmt(p.per_1000('broker'))} CPU ms per message"
                    )
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        say("stopping the brokers (each by its pid)")
        if mosquitto is not None:
            mosquitto.cleanup()
        if cluster is not None:
            cluster.cleanup()
    summary = summarise(phases)
    print(report(phases, summary, idle))
    for c in connections:
        print(
            f"{c.broker}: {c.connections:,} idle MQTT connections, "
            f"{c.kb_per_connection:.0f} KiB of broker memory each, "
            f"{c.cpu_ms_per_s_per_1000:.1f} ms of broker CPU a second per 1,000"
        )
    if opts.json:
        write_results(
            opts.json,
            opts,
            load,
            idle_cpu_s_per_s=idle,
            idle_connections=[asdict(c) for c in connections],
            phases=[asdict(p) for p in phases],
            medians=summary,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
