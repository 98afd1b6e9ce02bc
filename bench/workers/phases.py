"""The two measurements of `python -m bench.workers`: a queued backlog drained by the workers
(events/s and CPU per event), and one of two workers killed while events stream (failover)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.load import build_events, paced_events, run_id, wait_acked
from bench.stats import summary_ms
from bench.workers.stack import WorkerStack

Say = Callable[[str], None]


def _stored_so_far(stack: WorkerStack, before: list[dict[str, int]]) -> list[int]:
    """Per worker, events stored (or found already stored) since `before`."""
    out = []
    for worker, base in zip(stack.workers, before, strict=True):
        now = worker.counts()
        out.append(sum(now.get(k, 0) - base.get(k, 0) for k in ("events", "duplicates")))
    return out


def drain(stack: WorkerStack, count: int, say: Say, stall_s: float = 60.0) -> dict[str, Any]:
    """Every worker stopped (SIGSTOP) while `count` events are published and queued in the
    shard queues, then let go (SIGCONT): count ÷ (all stored − let go), and the CPU each part
    used while the workers drained the queues (and the broker's while they were queued)."""
    workers = list(stack.workers)
    prefix = f"dr{len(workers)}-{run_id()}"
    messages = build_events(stack.gateways, count, prefix)
    before = [w.counts() for w in workers]
    shares = [stack.gateways_of(w.held()) for w in workers]
    expected = [sum(1 for gw, _, _ in messages if gw.id in share) for share in shares]
    each_done: list[float | None] = [None] * len(workers)
    say(f"  {len(workers)} worker(s) stopped; {count:,} events published to the shard queues")
    for w in workers:
        os.kill(w.pid, signal.SIGSTOP)
    try:
        queue_start = stack.cpu()
        started = time.time()
        for gw, topic, payload in messages:
            gw.send(topic, payload)
        acked = wait_acked(stack.gateways, timeout=300)
        queued = stack.cpu()
    finally:
        for w in workers:
            os.kill(w.pid, signal.SIGCONT)
    let_go = time.time()
    finished: float | None = None
    last, last_change, next_report = -1, time.monotonic(), time.monotonic() + 2
    per_worker = [0] * len(workers)
    while time.monotonic() - last_change < stall_s:
        per_worker = _stored_so_far(stack, before)
        done = sum(per_worker)
        for i, n in enumerate(per_worker):
            if each_done[i] is None and n >= expected[i]:
                each_done[i] = time.time() - let_go
        if done >= count:
            finished = time.time()
            break
        if done != last:
            last, last_change = done, time.monotonic()
        if time.monotonic() >= next_report:
            say(f"  .. stored {done:,}/{count:,} ({done / (time.time() - let_go):,.0f}/s)")
            next_report += 2
        time.sleep(0.05)
    drained = stack.cpu()
    if finished is None:
        say(f"  !! no progress for {stall_s:g} s at {sum(per_worker):,}/{count:,}")
    seconds = (finished - let_go) if finished else None
    queue_cpu = queued.since(queue_start)
    drain_cpu = drained.since(queued)
    stored = stack.count_stored(prefix)
    counters = [
        {k: v - b.get(k, 0) for k, v in w.counts().items() if v != b.get(k, 0)}
        for w, b in zip(workers, before, strict=True)
    ]
    duplicates = sum(c.get("duplicates", 0) for c in counters)
    result: dict[str, Any] = {
        "workers": len(workers),
        "sent": count,
        "queued_s": (acked - started) if acked else None,
        "seconds": seconds,
        "rate": count / seconds if seconds else None,
        "per_worker": per_worker,
        "per_worker_expected": expected,
        "per_worker_seconds": each_done,
        "stored": stored,
        "lost": count - stored,
        "duplicates": duplicates,
        "counters": counters,  # each worker's /api/stats counters that moved
        "cpu_s": drain_cpu,
        "queue_cpu_s": queue_cpu,
        "cpu_ms_per_event": {k: 1000 * v / count for k, v in drain_cpu.items()},
        "broker_queue_ms_per_event": 1000 * queue_cpu["broker"] / count,
        "worker_core_pct": 100 * drain_cpu["workers"] / seconds if seconds else None,
        # of all cores (100 % = every core busy), and the part of it that was not this run's
        "machine_busy_pct": _pct(drain_cpu["machine"], drained.at - queued.at),
        "others_busy_pct": _pct(
            drain_cpu["machine"] - sum(v for k, v in drain_cpu.items() if k != "machine"),
            drained.at - queued.at,
        ),
    }
    result.update(tier_figures(result))
    cpu, tier = result["cpu_ms_per_event"], result["tier_ms_per_event"]
    say(
        f"  {len(workers)} worker(s): {result['rate'] or 0:,.0f} events/s "
        f"(split {per_worker}, done after {_list_s(each_done)}); CPU ms per event: workers "
        f"{cpu['workers']:.3f}, broker {cpu['broker']:.3f} (+ "
        f"{result['broker_queue_ms_per_event']:.3f} queueing), postgres {cpu['postgres']:.3f}; "
        f"the tier {tier:.3f} (all cores to itself: "
        f"{result['cpu_bound_rate']:,.0f}/s); lost {result['lost']}; all cores "
        f"{result['machine_busy_pct']:.0f} % busy, {result['others_busy_pct']:.0f} % by others"
    )
    return result


def failover(
    stack: WorkerStack, rate: float, seconds: float, kill_after: float, say: Say
) -> dict[str, Any]:
    """Two workers take events streaming at `rate`; after `kill_after` s the older one is
    killed (kill -9). From the events table: when the survivor stored the first event of the
    dead worker's gateways (the takeover), when it had stored everything those gateways had
    sent up to then (the backlog cleared), and publish → cloud received_at around it."""
    victim, survivor = stack.workers[0], stack.workers[1]
    lost_shards = victim.held()
    moved = stack.gateways_of(lost_shards)
    prefix = f"fo-{run_id()}"
    survivor_before = survivor.counts()
    killed: list[float] = []

    def kill() -> None:
        killed.append(victim.kill9())
        say(f"  kill -9 {victim.name} (pid {victim.pid}), which held shards {sorted(lost_shards)}")

    timer = threading.Timer(kill_after, kill)
    say(
        f"  {rate:g} events/s for {seconds:g} s from {len(stack.gateways)} gateways; "
        f"{victim.name} killed after {kill_after:g} s"
    )
    timer.start()
    try:
        sent = paced_events(stack.gateways, rate, seconds, prefix)
    finally:
        timer.cancel()
    stack.workers.remove(victim)
    if not killed:
        raise RuntimeError("the stream ended before the kill")
    kill_at = killed[0]
    deadline = time.monotonic() + 60
    while stack.count_stored(prefix) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.2)
    rows = stack.stored(prefix)
    received = {r[0]: r[3] for r in rows}
    gateway_of = {r[0]: r[1] for r in rows}
    after = survivor.counts()
    took = [(t, h) for t, h in survivor.holdings() if t >= kill_at - 0.01 and h >= lost_shards]
    theirs = [i for i in received if gateway_of[i] in moved]
    again = [received[i] for i in theirs if received[i] > kill_at]
    takeover = min(again) - kill_at if again else None
    cleared = None
    if takeover is not None:
        due = [received[i] for i in theirs if sent[i] <= kill_at + takeover]
        cleared = max(due) - kill_at if due else None
    window = [i for i in received if sent[i] >= kill_at - 1.0]
    result: dict[str, Any] = {
        "sent": len(sent),
        "stored": len(rows),
        "lost": len(sent) - len(rows),
        "redelivered_duplicates": after.get("duplicates", 0) - survivor_before.get("duplicates", 0),
        "out_of_order": _out_of_order(rows),
        "moved_gateways": len(moved),
        "kill_after_s": kill_after,
        "takeover_s": takeover,
        "shards_taken_log_s": (took[0][0] - kill_at) if took else None,
        "backlog_cleared_s": cleared,
        "before_kill_ms": summary_ms(received[i] - sent[i] for i in received if sent[i] < kill_at),
        "moved_after_kill_ms": summary_ms(
            received[i] - sent[i] for i in window if gateway_of[i] in moved
        ),
        "kept_after_kill_ms": summary_ms(
            received[i] - sent[i] for i in window if gateway_of[i] not in moved
        ),
        "slowest_sent_after_kill_s": (
            sent[slowest] - kill_at
            if (slowest := max(received, key=lambda i: received[i] - sent[i], default=None))
            else None
        ),
        "timeline": _timeline(sent, received, moved, gateway_of, kill_at),
    }
    say(
        f"  takeover {_s(takeover)} (log: shards taken {_s(result['shards_taken_log_s'])}), "
        f"backlog cleared {_s(cleared)}, max publish → received "
        f"{_ms(result['moved_after_kill_ms']['max'])} (moved gateways) / "
        f"{_ms(result['kept_after_kill_ms']['max'])} (the survivor's own); "
        f"lost {result['lost']}, out of order {result['out_of_order']}"
    )
    say(
        "  slowest per second of sending from the kill (moved/own, ms): "
        + ", ".join(
            f"{b['second']:+d}: {b.get('moved', 0):.0f}/{b.get('kept', 0):.0f}"
            for b in result["timeline"]
        )
    )
    return result


def _timeline(
    sent: dict[str, float],
    received: dict[str, float],
    moved: set[str],
    gateway_of: dict[str, str],
    kill_at: float,
) -> list[dict[str, Any]]:
    """Per second of sending, from 3 s before the kill: the slowest publish → received_at
    (ms) of the dead worker's gateways and of the survivor's own."""
    buckets: dict[int, dict[str, float]] = {}
    for event_id, at in received.items():
        second = int((sent[event_id] - kill_at) // 1)
        if second < -3:
            continue
        side = "moved" if gateway_of[event_id] in moved else "kept"
        bucket = buckets.setdefault(second, {})
        bucket[side] = max(bucket.get(side, 0.0), 1000 * (at - sent[event_id]))
    return [{"second": k, **buckets[k]} for k in sorted(buckets)]


def _out_of_order(rows: list[tuple[str, str, int, float]]) -> int:
    """Events stored before an earlier one of the same gateway (by its seq)."""
    out = 0
    by_gateway: dict[str, list[tuple[float, int]]] = {}
    for _, gateway, seq, at in rows:
        by_gateway.setdefault(gateway, []).append((at, seq))
    for items in by_gateway.values():
        top = -1
        for _, seq in sorted(items):
            if seq < top:
                out += 1
            top = max(top, seq)
    return out


def tier_figures(drained: dict[str, Any]) -> dict[str, float | None]:
    """Of a drain's result: the CPU of the cloud tier (the workers, the broker, the database)
    per event, queueing and draining, and the rate that CPU would allow if the tier had every
    core of this machine to itself."""
    used = [drained["queue_cpu_s"], drained["cpu_s"]]
    tier = 1000 * sum(c["workers"] + c["broker"] + c["postgres"] for c in used) / drained["sent"]
    return {
        "tier_ms_per_event": tier,
        "cpu_bound_rate": 1000 * (os.cpu_count() or 1) / tier if tier else None,
    }


def _pct(cpu_s: float, wall_s: float) -> float:
    return 100 * cpu_s / wall_s / (os.cpu_count() or 1) if wall_s > 0 else 0.0


def _list_s(values: list[float | None]) -> str:
    return "/".join(_s(v) for v in values)


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"
