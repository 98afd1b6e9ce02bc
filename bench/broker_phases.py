"""The phases against the broker alone: the raw broker (phase 1, the baseline) and the bare
parse → threshold → republish flows (`--peer`), each measured for throughput and latency the
same way, with subscribers in their own processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from bench import nodered
from bench.bareflow import OUT_TOPIC
from bench.load import (
    Gateway,
    blast,
    build_events,
    connect,
    paced_events,
    paho_client,
    run_id,
    wait_acked,
)
from bench.procs import Child, python_tool, tree_cpu_s
from bench.report import baseline_tables, peer_tables, progress, say
from bench.stack import Stack
from bench.stats import summary_ms
from tests.servers import free_port


def measure_latency(stack: Stack, label: str, topic: str) -> dict[str, Any]:
    o = stack.opts
    total = max(1, round(o.rate * o.seconds))
    sink = stack.sink(f"{label}-latency-sink", topic, total, ids=True)
    say(f"  {label}: {total:,} events at {o.rate:g}/s over {len(stack.gateways)} gateways")
    sent = paced_events(
        stack.gateways,
        o.rate,
        o.seconds,
        f"{label}-{run_id()}",
        progress(f"{label} sent"),
        v2=False,  # the raw broker and the peers know nothing of the cloud's acks
    )
    result = sink.result(grace=15)
    stack.watch.remove("subscriber")
    sink.finish()
    arrivals = dict(result["ids"])
    samples = [arrivals[i] - t for i, t in sent.items() if i in arrivals]
    missing = [i for i in sent if i not in arrivals]
    return {
        "sent": len(sent),
        "received": len(samples),
        "missing": len(missing),
        "missing_ids": missing[:20],
        "latency_ms": summary_ms(samples),
    }


def measure_throughput(
    stack: Stack, label: str, topic: str, publishers: Sequence[Gateway], count: int
) -> dict[str, Any]:
    sink = stack.sink(f"{label}-throughput-sink", topic, count, ids=False)
    say(f"  {label}: blasting {count:,} QoS 1 events from {len(publishers)} publisher(s)")
    messages = build_events(publishers, count, f"{label}-{run_id()}", v2=False)
    started = blast(messages)
    acked = wait_acked(publishers, timeout=300)
    result = sink.result(grace=300)
    stack.watch.remove("subscriber")
    sink.finish()
    rate = None
    if result["count"] and result["last"]:
        rate = result["count"] / (result["last"] - started)
    publish_rate = count / (acked - started) if acked else None
    limited = bool(rate and publish_rate and rate >= 0.9 * publish_rate)
    if limited and label.startswith("peer"):
        say(f"  note: {label} kept up with the publishers; its rate is a lower bound")
    return {
        "sent": count,
        "received": result["count"],
        "publish_s": (acked - started) if acked else None,
        "publish_rate": publish_rate,
        "seconds": (result["last"] - started) if result["last"] else None,
        "rate": rate,
        "publisher_limited": limited,
    }


def measure_drain(
    stack: Stack, label: str, topic: str, publishers: Sequence[Gateway], count: int, pid: int
) -> dict[str, Any]:
    """The consumer's own capacity, whatever the publishers manage: the consumer process is
    stopped (SIGSTOP) while `count` events are published and queued at the broker, then let go
    (SIGCONT); the rate is count ÷ (last output − the moment it was let go)."""
    sink = stack.sink(f"{label}-drain-sink", topic, count, ids=False)
    messages = build_events(publishers, count, f"{label}-drain-{run_id()}", v2=False)
    say(f"  {label}: {count:,} events queued at the broker while it is stopped, then drained")
    cpu_before = tree_cpu_s(pid)
    os.kill(pid, signal.SIGSTOP)
    try:
        started = blast(messages)
        acked = wait_acked(publishers, timeout=300)
    finally:
        let_go = time.time()
        os.kill(pid, signal.SIGCONT)
    result = sink.result(grace=300)
    cpu_s = tree_cpu_s(pid) - cpu_before
    stack.watch.remove("subscriber")
    sink.finish()
    seconds = (result["last"] - let_go) if result["last"] else None
    return {
        "sent": count,
        "received": result["count"],
        "queued_s": (acked - started) if acked else None,
        "seconds": seconds,
        "rate": result["count"] / seconds if seconds else None,
        "cpu_s": cpu_s,
        "cpu_us_per_message": cpu_s / count * 1e6,
    }


def baseline(stack: Stack) -> dict[str, Any]:
    say("\n== phase 1: baseline (raw Mosquitto, paho QoS 1 both sides, TCP_NODELAY)")
    begun = stack.phase("baseline")
    drop0 = stack.sys.read() if stack.sys else None
    tput = measure_throughput(
        stack, "raw", "sc/v1/+/event", stack.gateways[:1], stack.opts.raw_count
    )
    lat = measure_latency(stack, "raw", "sc/v1/+/event")
    drop1 = stack.sys.read() if stack.sys else None
    stack.phase_end("baseline", begun)
    result = {
        "throughput": tput,
        "latency": lat,
        "dropped_before": drop0,
        "dropped_after": drop1,
    }
    baseline_tables(result, stack.opts.rate)
    return result


def peers(stack: Stack) -> dict[str, Any]:
    """The `--peer` flows (none without it), one after another."""
    kinds = {"python": ["python"], "node-red": ["node-red"], "both": ["python", "node-red"]}
    return {kind: peer(stack, kind) for kind in (kinds[stack.opts.peer] if stack.opts.peer else [])}


def peer(stack: Stack, kind: str) -> dict[str, Any]:
    say(f"\n== peer: bare flow ({kind}): parse → threshold → republish, QoS 1, TCP_NODELAY")
    if kind == "python":
        child = Child(
            "bareflow",
            python_tool(
                "bench.bareflow",
                "--port",
                str(stack.broker.port),
                "--user",
                "cloud",
                "--password",
                stack.cloud_password,
            ),
            stack.workdir / "bareflow.log",
        )
        child.start()
    else:
        nodered.install(stack.workdir / "npm.log")
        cmd = nodered.write_userdir(
            stack.workdir / "node-red",
            broker_port=stack.broker.port,
            ui_port=free_port(),
            user="cloud",
            password=stack.cloud_password,
        )
        child = Child("node-red", cmd, stack.workdir / "node-red.log")
        child.start(ready=r"Started flows|Server now running", timeout=60)
    stack.exits.callback(child.stop)
    name = f"peer-{kind}"
    stack.watch.add(name, child.pid)
    try:
        wait_flow_ready(stack.broker.port, stack.cloud_password, stack.gateways[0])
        begun = stack.phase(name)
        drop0 = stack.sys.read() if stack.sys else None
        lat = measure_latency(stack, name, OUT_TOPIC)
        tput = measure_throughput(stack, name, OUT_TOPIC, stack.gateways, stack.opts.events)
        drain = measure_drain(stack, name, OUT_TOPIC, stack.gateways, stack.opts.events, child.pid)
        drop1 = stack.sys.read() if stack.sys else None
        stack.phase_end(name, begun)
    finally:
        child.stop()
        stack.watch.remove(name)
    result = {
        "throughput": tput,
        "drain": drain,
        "latency": lat,
        "dropped_before": drop0,
        "dropped_after": drop1,
    }
    peer_tables(kind, result, stack.opts.rate, len(stack.gateways))
    return result


def wait_flow_ready(port: int, password: str, gateway: Gateway, timeout: float = 60.0) -> None:
    """Publish probe events until the peer's output shows up (its subscription is live)."""
    seen = threading.Event()
    client = paho_client("bench-probe", "cloud", password)
    client.on_message = lambda c, u, m: seen.set()
    connect(client, port)
    client.subscribe(OUT_TOPIC, qos=1)
    device = next(d for d in gateway.spec.devices if d.kind in ("call", "smoke", "gas"))
    deadline = time.monotonic() + timeout
    try:
        while not seen.is_set():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the peer flow gave no output within {timeout}s")
            topic, payload = gateway.event(device, f"probe-{run_id()}", v2=False)
            gateway.send(topic, payload)
            seen.wait(0.5)
        time.sleep(0.5)  # let late probe outputs pass before a measurement starts
    finally:
        client.disconnect()
        client.loop_stop()
