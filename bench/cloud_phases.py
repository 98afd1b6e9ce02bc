"""The phases with the cloud: alarm latency at a steady rate, device event → live stream
(phase 2), and ingest throughput, events and telemetry blasted from every gateway (phase 3).
The cloud's own counters (GET /api/stats) and database give its share of each."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.duty import shown_at
from bench.load import (
    Gateway,
    blast,
    build_batches,
    build_events,
    paced_events,
    run_id,
    wait_acked,
)
from bench.procs import tree_cpu_s
from bench.report import alarm_tables, ingest_tables, progress, say
from bench.stack import Stack
from bench.stats import summary_ms


def alarms(stack: Stack) -> dict[str, Any]:
    o = stack.opts
    say(
        f"\n== phase 2: alarm latency, {len(stack.gateways)} gateways, {o.rate:g} events/s "
        f"for {o.seconds:g}s, reader on GET /api/alarms/stream"
    )
    begun = stack.phase("alarms")
    before = stack.counts()
    messages, with_pushed = stack.stream.messages, stack.stream.with_pushed_at
    order: dict[str, list[str]] = {}
    sent = paced_events(
        stack.gateways,
        o.rate,
        o.seconds,
        f"al-{run_id()}",
        progress("events sent"),
        order=order,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(i in stack.stream.arrivals for i in (ids[-1] for ids in order.values())):
            break
        time.sleep(0.05)
    after = stack.counts()
    stack.phase_end("alarms", begun)
    own = dict(stack.stream.arrivals)
    arrivals = shown_at(own, order)
    received_at, new_alarms = _cloud_times(stack.workdir, sent)
    e2e = [arrivals[i] - t for i, t in sent.items() if i in arrivals]
    share = [arrivals[i] - received_at[i] for i in sent if i in arrivals and i in received_at]
    transport = [received_at[i] - t for i, t in sent.items() if i in received_at]
    pushed = [p - r for r, s, p in new_alarms if p is not None]
    stored = [s - r for r, s, p in new_alarms]
    missing = [i for i in sent if i not in arrivals]
    d = _deltas(before, after)
    result: dict[str, Any] = {
        "sent": len(sent),
        "received": len(e2e),
        "missing": len(missing),
        "missing_ids": missing[:20],
        # shown only through a later state of their alarm (one message per alarm per batch)
        "coalesced": sum(1 for i in sent if i in arrivals and i not in own),
        "ingest_events": d.get("events", 0),
        "ingest_duplicates": d.get("duplicates", 0),
        "rejected": {k: v for k, v in d.items() if k.startswith("rejected.") and v},
        "stream_messages_with_pushed_at": stack.stream.with_pushed_at - with_pushed,
        "stream_messages": stack.stream.messages - messages,
        "new_alarms": len(new_alarms),
        "alarm_repeats": d.get("alarm_repeats", 0),
        "device_to_stream_ms": summary_ms(e2e),
        "cloud_received_to_stream_ms": summary_ms(share),
        "publish_to_cloud_received_ms": summary_ms(transport),
        "new_alarm_received_to_stored_ms": summary_ms(stored),
        "new_alarm_received_to_pushed_ms": summary_ms(pushed),
    }
    alarm_tables(result, o.rate, len(stack.gateways))
    return result


def _cloud_times(
    workdir: Path, sent: dict[str, float]
) -> tuple[dict[str, float], list[tuple[float, float, float | None]]]:
    """Per event the cloud's `received_at` (events table), and for alarms first raised by
    these events (received_at, stored_at, pushed_at), read from the cloud's database."""
    db = sqlite3.connect(f"file:{workdir / 'cloud.db'}?mode=ro", uri=True, timeout=30)
    try:
        received = {
            row[0]: row[1]
            for row in db.execute("SELECT id, received_at FROM events")
            if row[0] in sent
        }
        alarms = [
            (row[1], row[2], row[3])
            for row in db.execute(
                "SELECT first_event_id, received_at, stored_at, pushed_at FROM alarms"
            )
            if row[0] in sent
        ]
    finally:
        db.close()
    return received, alarms


def ingest(stack: Stack, raw: float | None) -> dict[str, Any]:
    """Phase 3; `raw` is the raw broker's rate, which the table compares against."""
    o = stack.opts
    say("\n== phase 3: ingest throughput (QoS 1 blasts from every gateway)")
    drop0 = stack.sys.read() if stack.sys else None
    begun = stack.phase("ingest-events")
    prefix = f"ev-{run_id()}"
    connects = stack.stream.connects
    order: dict[str, list[str]] = {}
    events = _blast(
        stack,
        "events",
        build_events(stack.gateways, o.events, prefix, order=order),
        done=lambda d: d.get("events", 0) + d.get("duplicates", 0),
    )
    stack.phase_end("ingest-events", begun)
    lasts = [ids[-1] for ids in order.values()]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(i in stack.stream.arrivals for i in lasts):
        time.sleep(0.05)
    events["stream_received"] = len(shown_at(dict(stack.stream.arrivals), order))
    events["stream_reconnects"] = stack.stream.connects - connects
    events["drain"] = drain_backlog(stack, o.events)
    begun = stack.phase("ingest-telemetry")
    batches, samples = build_batches(stack.gateways, o.batches, o.batch_size, f"tm-{run_id()}")
    telemetry = _blast(
        stack,
        "telemetry batches",
        batches,
        done=lambda d: d.get("telemetry_batches", 0) + d.get("duplicates", 0),
        then=("samples_stored", samples),
    )
    stack.phase_end("ingest-telemetry", begun)
    drop1 = stack.sys.read() if stack.sys else None
    telemetry["readings"] = o.batches * o.batch_size
    telemetry["samples"] = samples
    elapsed = telemetry["seconds"]
    telemetry["readings_per_s"] = telemetry["readings"] / elapsed if elapsed else None
    stored_s = telemetry.get("stored_seconds")
    telemetry["samples_per_s"] = samples / stored_s if stored_s else None
    result = {
        "events": events,
        "telemetry": telemetry,
        "dropped_before": drop0,
        "dropped_after": drop1,
        "broker_log_drop_lines": stack.broker.log_text().count("are being dropped"),
    }
    ingest_tables(result, o.batch_size, raw)
    return result


def _blast(
    stack: Stack,
    label: str,
    messages: list[tuple[Gateway, str, bytes]],
    done: Callable[[dict[str, int]], int],
    then: tuple[str, int] | None = None,
    stall_s: float = 30.0,
) -> dict[str, Any]:
    total = len(messages)
    before = stack.counts()
    say(f"  blasting {total:,} {label} ...")
    started = blast(messages)
    acked_at: float | None = None
    finished: float | None = None
    stored_at: float | None = None
    last_value, last_change, next_report = -1, time.monotonic(), time.monotonic() + 2
    while True:
        if acked_at is None and all(gw.acked >= gw.published for gw in stack.gateways):
            acked_at = time.time()
        d = _deltas(before, stack.counts())
        value = done(d)
        now = time.time()
        if finished is None and value >= total:
            finished = now
        if then is not None and stored_at is None and d.get(then[0], 0) >= then[1]:
            stored_at = now
        if finished is not None and acked_at is not None and (then is None or stored_at):
            break
        if value != last_value:
            last_value, last_change = value, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            say(f"  !! {label}: no progress for {stall_s:g}s at {value:,}/{total:,}")
            break
        if time.monotonic() >= next_report:
            say(f"  .. {label} processed {value:,}/{total:,} ({value / (now - started):,.0f}/s)")
            next_report += 2
        time.sleep(0.1)  # each poll costs the cloud a session check; keep them few
    d = _deltas(before, stack.counts())
    seconds = (finished - started) if finished else None
    out: dict[str, Any] = {
        "sent": total,
        "processed": done(d),
        "publish_rate": total / (acked_at - started) if acked_at else None,
        "seconds": seconds,
        "rate": total / seconds if seconds else None,
        "counters": d,
    }
    if then is not None:
        out["stored_seconds"] = (stored_at - started) if stored_at else None
    if acked_at and finished and finished - acked_at < 0.05 * (finished - started):
        out["publisher_limited"] = True
    return out


def drain_backlog(stack: Stack, count: int, stall_s: float = 30.0) -> dict[str, Any]:
    """The cloud's own capacity, whatever the publishers manage: the cloud is stopped
    (SIGSTOP) while `count` events are published and queued at the broker for its session,
    then let go (SIGCONT); the rate is count ÷ (all stored − the moment it was let go)."""
    assert stack.cloud is not None
    pid = stack.cloud.pid
    messages = build_events(stack.gateways, count, f"dr-{run_id()}")
    say(f"  {count:,} events queued at the broker while the cloud is stopped, then drained")
    before = stack.counts()
    cpu_before = tree_cpu_s(pid)
    os.kill(pid, signal.SIGSTOP)
    try:
        started = blast(messages)
        acked = wait_acked(stack.gateways, timeout=300)
    finally:
        let_go = time.time()
        os.kill(pid, signal.SIGCONT)
    finished, last, last_change = None, -1, time.monotonic()
    while finished is None and time.monotonic() - last_change < stall_s:
        d = _deltas(before, stack.counts())
        value = d.get("events", 0) + d.get("duplicates", 0)
        if value >= count:
            finished = time.time()
        elif value != last:
            last, last_change = value, time.monotonic()
        time.sleep(0.05)
    seconds = (finished - let_go) if finished else None
    cpu_s = tree_cpu_s(pid) - cpu_before
    return {
        "sent": count,
        "queued_s": (acked - started) if acked else None,
        "seconds": seconds,
        "rate": count / seconds if seconds else None,
        "cpu_s": cpu_s,
        "cpu_us_per_message": cpu_s / count * 1e6,
    }


def _deltas(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}
