"""The fault scenarios. Each runs a `Stack` (the shipped broker, the cloud, two agents
streaming life-safety events), does its faults during the stream with real kills, waits for
the system to settle and measures what was lost, doubled or reordered (tests/faults/ledger.py).

Every scenario has a full size (`python -m tests.faults`) and a small size for the pytest
suite (`Size.SMALL`): the same faults, shorter. docs/reliability.md describes each.
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from tests.faults.cluster import ClusterBroker
from tests.faults.ledger import Counts, Fault, read_outbox
from tests.faults.procs import SHIPPED_CONF, autosave_interval_s
from tests.faults.records import Stored
from tests.faults.site import GATEWAYS
from tests.faults.stack import Options, Settled, Stack
from tests.faults.workers import Workers, shard_of
from tests.servers import RabbitCluster


class Size(Enum):
    FULL = "full"
    SMALL = "small"


@dataclass
class Result:
    scenario: str
    counts: Counts
    settled: Settled
    faults: list[Fault]
    cloud_tracebacks: int
    #: scenario-specific figures (outbox peak, the simulated day, …)
    extra: dict[str, Any] = field(default_factory=dict)


#: (options, size, random source, scenario parameters) → result
Run = Callable[..., Result]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Run


def _finish(stack: Stack, scenario: str, faults: list[Fault], **extra: Any) -> Result:
    settled = stack.settle()
    say = stack.opts.say
    if not settled.converged:
        say(
            f"    did not settle in {settled.waited_s:.0f} s: {settled.waiting} life-safety"
            " events still in the outboxes"
        )
    stack.stop()
    counts = stack.measure(faults)
    return Result(scenario, counts, settled, faults, stack.cloud_tracebacks(), extra=dict(extra))


def _say(stack: Stack, text: str) -> None:
    stack.opts.say(f"    [{stack.elapsed():6.1f} s] {text}")


# -- 1. the broker killed -----------------------------------------------------------------------

#: When the broker is killed, relative to its autosave and to the cloud's resubscription:
#: early  — before its first autosave since it started (nothing of the session on disk);
#: late   — after at least one autosave (what came since the last one is in memory only);
#: before-resubscribe — right after a restart, before the cloud is back (the gateways are);
#: after-resubscribe  — once the cloud has resubscribed after a restart.
MOMENTS = ("early", "before-resubscribe", "after-resubscribe", "late")


def broker_kill(
    opts: Options, size: Size, rng: random.Random, moments: tuple[str, ...] | None = None
) -> Result:
    if moments is None:
        moments = MOMENTS if size is Size.FULL else MOMENTS[:3]
    autosave = autosave_interval_s(SHIPPED_CONF.read_text(encoding="utf-8")) or 30.0
    early_at = 5.0 if size is Size.SMALL else rng.uniform(0.3, 0.7) * autosave
    needed = early_at + 6 + (1.6 * autosave if "late" in moments else 0)
    with Stack(opts, duration_s=max(opts.duration_s, needed)) as stack:
        stack.start()
        faults: list[Fault] = []
        uptimes: list[float] = []  # the broker's, at each kill
        for moment in moments:
            uptime = time.time() - stack.broker.started_at
            if moment == "early":
                stack.sleep_until(stack.broker.started_at + max(early_at, uptime + 1))
            elif moment == "late":
                # after at least one autosave of this broker, between two autosaves
                n = max(1, math.ceil(uptime / autosave))
                target = n * autosave + rng.uniform(0.2, 0.8) * autosave
                stack.sleep_until(stack.broker.started_at + target)
            elif moment == "before-resubscribe":
                stack.sleep_until(stack.broker.started_at + rng.uniform(0.05, 0.3))
            elif moment == "after-resubscribe":
                # the broker's log since this start: has the cloud connected (and subscribed)?
                stack.wait_for(lambda: stack.broker.connects("cloud") > 0, 30, "cloud reconnect")
                stack.sleep_until(time.time() + rng.uniform(0.5, 2.0))
            uptime = time.time() - stack.broker.started_at
            began = stack.broker.kill9()
            ended = time.time()  # restarted at once: recovery counts its start-up
            stack.broker.start()
            window = "inside" if uptime < autosave else "after"
            _say(
                stack,
                f"broker kill -9 ({moment}: up {uptime:.1f} s, {window} its first"
                f" {autosave:g} s autosave window), restarted",
            )
            faults.append(Fault(f"broker kill -9 ({moment})", began, ended))
            uptimes.append(round(uptime, 2))
        return _finish(
            stack,
            "broker-kill",
            faults,
            moments=list(moments),
            autosave_s=autosave,
            uptime_at_kill_s=uptimes,
        )


# -- 2. the cloud killed ------------------------------------------------------------------------


def cloud_kill(opts: Options, size: Size, rng: random.Random, kills: int = 3) -> Result:
    duration = max(opts.duration_s, (4.0 if size is Size.SMALL else 8.0) * kills + 2)
    with Stack(opts, duration_s=duration) as stack:
        stack.start()
        faults = []
        for i in range(kills):
            slot = (duration - 2) / kills
            stack.sleep_until(max(stack.at(slot * (i + rng.uniform(0.3, 0.7))), time.time()))
            began = stack.cloud.kill9()
            ended = time.time()  # restarted at once: recovery counts its start-up
            ready = stack.cloud.start()
            _say(stack, f"cloud kill -9 #{i + 1}, restarted (ready after {ready - began:.1f} s)")
            faults.append(Fault(f"cloud kill -9 #{i + 1}", began, ended))
        return _finish(stack, "cloud-kill", faults)


# -- 3. a gateway agent killed ------------------------------------------------------------------


def gateway_kill(opts: Options, size: Size, rng: random.Random, kills: int = 0) -> Result:
    kills = kills or (1 if size is Size.SMALL else 3)
    duration = max(opts.duration_s, 5.0 * kills + 4)
    with Stack(opts, duration_s=duration) as stack:
        stack.start()
        faults = []
        for i in range(kills):
            slot = (duration - 3) / kills
            stack.sleep_until(max(stack.at(slot * (i + rng.uniform(0.2, 0.8))), time.time()))
            gateway = rng.choice(GATEWAYS)
            began = stack.agents[gateway].kill9()
            ended = stack.start_agent(gateway)
            _say(stack, f"agent {gateway} kill -9, restarted (new boot, same outbox)")
            faults.append(Fault(f"agent {gateway} kill -9", began, ended, (gateway,)))
        return _finish(stack, "gateway-kill", faults)


# -- 4. the cloud down while the broker restarts -------------------------------------------------


def cloud_down_broker_restart(
    opts: Options, size: Size, rng: random.Random, down_s: float = 0.0, clean: bool = False
) -> Result:
    down_s = down_s or (6.0 if size is Size.SMALL else 60.0)
    duration = max(opts.duration_s, down_s + 8)
    with Stack(opts, duration_s=duration) as stack:
        stack.start()
        stack.sleep_until(stack.at(rng.uniform(1.5, 3.0)))
        began = stack.cloud.kill9()
        _say(stack, f"cloud kill -9; it stays down {down_s:g} s")
        stack.sleep_until(began + down_s * rng.uniform(0.3, 0.6))
        if clean:
            stack.broker.stop()
        else:
            stack.broker.kill9()
        stack.broker.start()
        _say(
            stack, f"broker {'stopped' if clean else 'kill -9'} and restarted, the cloud still down"
        )
        stack.sleep_until(began + down_s)
        ended = time.time()
        stack.cloud.start()
        _say(stack, "cloud restarted")
        what = f"cloud down {down_s:g} s, broker {'restart' if clean else 'kill -9'} meanwhile"
        return _finish(stack, "cloud-down-broker-restart", [Fault(what, began, ended)])


# -- 5. a gateway offline for a simulated day ---------------------------------------------------

#: A gateway's periodic messages in a day, as shipped: a heartbeat a minute, a telemetry batch
#: every 5 s.
HEARTBEAT_S = 60.0
TELEMETRY_S = 5.0
#: The compressed periods stay above this (the agent's scheduler, the machine's 2 cores).
MIN_PERIOD_S = 0.02


def _compressed(day_s: float, offline_s: float) -> tuple[float, list[str]]:
    factor = day_s / offline_s
    args = [
        "--heartbeat-s",
        f"{max(MIN_PERIOD_S, HEARTBEAT_S / factor):.4f}",
        "--telemetry-period-s",
        f"{max(MIN_PERIOD_S, TELEMETRY_S / factor):.4f}",
    ]
    return factor, args


def _offline(
    stack: Stack, gateway: str, offline_s: float, until: Callable[[], bool] | None = None
) -> tuple[Fault, dict[str, Any]]:
    """Cut `gateway`'s uplink for `offline_s` (or until `until()`), watching its outbox."""
    gate = stack.gates[gateway]
    agent = stack.agents[gateway]
    began = gate.cut()
    _say(stack, f"uplink of {gateway} cut")
    peak_rows = peak_events = 0
    deadline = began + offline_s
    while time.time() < deadline and not (until is not None and until()):
        stack.check_alive()
        rows = _outbox_rows(agent.outbox)
        peak_rows = max(peak_rows, rows)
        peak_events = max(peak_events, len(read_outbox(agent.outbox)))
        time.sleep(0.5)
    ended = gate.restore()
    size = _disk_use(agent.folder)
    _say(
        stack, f"uplink of {gateway} back after {ended - began:.1f} s; outbox peak {peak_rows} rows"
    )
    fault = Fault(f"{gateway} offline {ended - began:.0f} s", began, ended, (gateway,))
    return fault, {
        "outbox_peak_rows": peak_rows,
        "outbox_peak_events": peak_events,
        "outbox_folder_bytes": size,
    }


def _outbox_rows(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def _disk_use(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def gateway_offline_day(
    opts: Options,
    size: Size,
    rng: random.Random,
    offline_s: float = 0.0,
    day_s: float = 0.0,
) -> Result:
    offline_s = offline_s or (8.0 if size is Size.SMALL else 120.0)
    day_s = day_s or (3600.0 if size is Size.SMALL else 86400.0)
    factor, args = _compressed(day_s, offline_s)
    # a short outage must not leave the agent waiting out a 30 s back-off in the small run
    if size is Size.SMALL:
        args += ["--backoff-max-s", "2"]
    gateway = GATEWAYS[0]
    duration = max(opts.duration_s, offline_s + 6)
    with Stack(
        opts, duration_s=duration, compress=factor, gated=(gateway,), agent_args=args
    ) as stack:
        stack.opts.say(
            f"    {gateway} offline {offline_s:g} s = a simulated {day_s / 3600:g} h"
            f" (periods {factor:.0f}x shorter: {' '.join(args)})"
        )
        stack.start()
        stack.sleep_until(stack.at(1.5))
        fault, extra = _offline(stack, gateway, offline_s)
        return _finish(stack, "gateway-offline-day", [fault], day_s=day_s, factor=factor, **extra)


# -- 6. the gateway's disk full -----------------------------------------------------------------


def disk_full(
    opts: Options,
    size: Size,
    rng: random.Random,
    disk_mb: float = 0.0,
    hold_s: float = 0.0,
) -> Result:
    disk_mb = disk_mb or (1.0 if size is Size.SMALL else 8.0)
    hold_s = hold_s or (3.0 if size is Size.SMALL else 20.0)
    offline_max = 7.0 if size is Size.SMALL else 240.0
    factor, args = _compressed(86400.0, 120.0)
    if size is Size.SMALL:
        args += ["--backoff-max-s", "2"]
    gateway = GATEWAYS[0]
    duration = max(opts.duration_s, offline_max + 5)
    with Stack(
        opts,
        duration_s=duration,
        compress=factor,
        gated=(gateway,),
        agent_args=args,
        outbox_disk_mb={gateway: disk_mb},
    ) as stack:
        stack.opts.say(
            f"    {gateway}'s outbox on a {disk_mb:g} MB tmpfs; its uplink cut until full"
        )
        stack.start()
        stack.sleep_until(stack.at(1.0))
        agent = stack.agents[gateway]
        full_since: list[float] = []

        def full_for_hold() -> bool:
            if not full_since and _disk_full_logged(agent.logs[-1]):
                full_since.append(time.time())
                _say(stack, f"{gateway}'s disk is full")
            return bool(full_since) and time.time() - full_since[0] >= hold_s

        fault, extra = _offline(stack, gateway, offline_max, until=full_for_hold)
        return _finish(
            stack, "disk-full", [fault], disk_mb=disk_mb, became_full=bool(full_since), **extra
        )


def _disk_full_logged(log: Path) -> bool:
    return log.exists() and "database or disk is full" in log.read_text(errors="replace")


# -- 7. a node of the cluster killed ------------------------------------------------------------

#: What a cluster kill aims at: the node a gateway is connected to, the quorum queue's leader.
CLUSTER_TARGETS = ("gateway-node", "queue-leader")


def cluster_node_kill(
    opts: Options,
    size: Size,
    rng: random.Random,
    kills: int = 0,
    cluster: RabbitCluster | None = None,
) -> Result:
    """The cluster shape (tests/faults/cluster.py): kill -9 of one node at a time, at random
    moments, while the others carry on; the node is started again after `down_s` (and has
    rejoined before the next kill, so a majority is always there). Small: one kill of the node
    gw-f01 is on. Full: `kills` (default 4), both targets, in random order."""
    if size is Size.SMALL:
        targets = [CLUSTER_TARGETS[0]] * (kills or 1)
    else:
        kills = max(kills or 4, 2)
        targets = [CLUSTER_TARGETS[i % 2] for i in range(kills)]
        rng.shuffle(targets)
    down_s = 2.0 if size is Size.SMALL else 6.0
    slot = 4.0 if size is Size.SMALL else 20.0  # a node takes 10-16 s to start here
    duration = max(opts.duration_s, slot * len(targets) + 2)
    broker = ClusterBroker(cluster)
    try:
        stack = Stack(opts, duration_s=duration, cluster=broker)
    except BaseException:
        broker.stop()  # a cluster of its own is not left running
        raise
    with stack:
        stack.start()
        faults: list[Fault] = []
        leaders: list[bool] = []
        back_after: list[float] = []  # s from each kill until its node ran again
        for i, target in enumerate(targets):
            stack.sleep_until(max(stack.at(slot * (i + rng.uniform(0.2, 0.5))), time.time()))
            leader = broker.leader()
            if target == "gateway-node":
                on = {gw: broker.node_of_agent(a.logs[-1]) for gw, a in stack.agents.items()}
                # full size: a gateway's node that does not lead the queue, if there is one
                # (the other target kills the leader)
                apart = [gw for gw, n in on.items() if n is not leader]
                choices = [GATEWAYS[0]] if size is Size.SMALL else apart or list(GATEWAYS)
                gateway = rng.choice(choices)
                node = on[gateway]
                what = f"node {node.index} kill -9 ({gateway}'s node)"
            else:
                node = leader
                what = f"node {node.index} kill -9 (the queue's leader)"
            if node is leader and target == "gateway-node":
                what = what[:-1] + ", the queue's leader)"
            began = broker.cluster.kill9(node)
            leaders.append(node is leader)
            _say(stack, what)
            stack.sleep_until(began + down_s * rng.uniform(0.75, 1.25))
            broker.cluster.start_node(node)
            back_after.append(round(time.time() - began, 1))
            _say(stack, f"node {node.index} running again ({back_after[-1]:.1f} s after)")
            # recovery is measured from the kill: the cluster must carry on without the node
            faults.append(Fault(what, began, began))
        moved = {
            gw: broker.node_of_agent(agent.logs[-1]).index for gw, agent in stack.agents.items()
        }
        return _finish(
            stack,
            "cluster-node-kill",
            faults,
            targets=targets,
            leader_killed=leaders,
            back_after_s=back_after,
            nodes_of_gateways_at_end=moved,
        )


# -- 8. the cloud's PostgreSQL killed ----------------------------------------------------------


#: When a kill of the cloud's PostgreSQL comes: at its random moment (mostly between two units
#: of work: a group commit takes milliseconds), or once one of the cloud's commits after it is
#: written to disk but not yet answered (the unit in flight, its commit done unbeknown to it).
DB_AIMS = ("moment", "commit")


def database_kill(opts: Options, size: Size, rng: random.Random, kills: int = 0) -> Result:
    """The cloud on a PostgreSQL server of the scenario's own (tests/faults/database.py):
    kill -9 of the server and its backends at random moments of the stream; it stays down a
    while (small: 3 s; full: 3-15 s each) and is started again on the same data folder (crash
    recovery). Small: one kill, aimed at an unanswered commit; full: `kills` (default 3),
    aimed in turn at the moment and at an unanswered commit (DB_AIMS)."""
    kills = kills or (1 if size is Size.SMALL else 3)
    aims = ["commit"] if size is Size.SMALL else [DB_AIMS[i % 2] for i in range(kills)]
    downs = [3.0 if size is Size.SMALL else rng.uniform(3.0, 15.0) for _ in range(kills)]
    # each kill's slot of the stream: some streaming, the kill, the downtime, the recovery
    slots = [down + (4.0 if size is Size.SMALL else 8.0) for down in downs]
    duration = max(opts.duration_s, round(sum(slots) + 2))
    with Stack(opts, duration_s=duration, postgres=True) as stack:
        stack.start()
        faults: list[Fault] = []
        at_commit: list[bool] = []  # a commit of the cloud was waiting for its answer
        slot_at = 0.0
        for i, (aim, down, slot) in enumerate(zip(aims, downs, slots, strict=True)):
            kill_at = slot_at + rng.uniform(0.3, 0.7) * (slot - down)
            stack.sleep_until(max(stack.at(kill_at), time.time()))
            if aim == "commit":
                began, seen = stack.postgres.kill9_at_commit(within_s=2.0)
            else:
                began, seen = stack.postgres.kill9(), False
            at_commit.append(seen)
            what = "at an unanswered commit" if seen else "at a random moment"
            _say(stack, f"PostgreSQL kill -9 #{i + 1} {what}; it stays down {down:.1f} s")
            stack.sleep_until(began + down)  # the cloud must not die meanwhile
            ended = stack.postgres.start()
            _say(stack, f"PostgreSQL started again ({ended - began:.1f} s after the kill)")
            faults.append(Fault(f"PostgreSQL kill -9 #{i + 1} ({down:.0f} s down)", began, ended))
            slot_at += slot
        result = _finish(
            stack,
            "database-kill",
            faults,
            aims=aims,
            commit_unanswered_at_kill=at_commit,
            down_s=[round(d, 1) for d in downs],
            down_until_ready_s=[round(f.ended - f.began, 1) for f in faults],
        )
        log = stack.cloud_log()
        result.extra["cloud_holds"] = log.holds
        result.extra["cloud_back_after_s"] = log.back_after_s
        result.extra["cloud_holds_cut_in_flight"] = log.holds_cut_in_flight
        result.extra["cloud_tracebacks_database_unavailable"] = dict(log.database_unavailable)
        return result


# -- 9. a cloud worker killed ------------------------------------------------------------------

#: The sharded ingest of `worker-kill`: SHARDS shard queues, two cloud workers.
SHARDS = 4
WORKERS = 2
#: One gateway on each shard: gw-f01 (shard 2) and gw-f02 (shard 0) stream at the scenario's
#: rate; gw-f04 (shard 1) and gw-f05 (shard 3) at WITNESS_RATE, so that whichever shards a
#: worker holds, its kill cuts the flow of gateways that have events on the way.
WORKER_GATEWAYS = ("gw-f01", "gw-f02", "gw-f04", "gw-f05")
WITNESS_RATE = 10.0
#: What a worker's kill aims at, in turn.
WORKER_TARGETS = ("gw-f01's worker", "the other worker")
#: Deadlines for the workers' shards to be spread (at the start, after a restart).
SPREAD_S = 60.0


@dataclass
class WorkerKill:
    """One kill of a worker, as the scenario saw it."""

    target: str
    worker: int  # index in stack.clouds
    shards: frozenset[int]  # what it held when killed
    gateways: tuple[str, ...]  # the gateways on those shards
    began: float
    #: when the other worker logged holding those shards (None: not before the restart)
    taken: float | None = None
    restarted: float = 0.0  # when it was started again (before its start-up)
    ready: float = 0.0  # when it served again
    spread: float | None = None  # when the shards were spread again (a worker's log record)


def worker_kill(
    opts: Options,
    size: Size,
    rng: random.Random,
    kills: int = 0,
    cluster: RabbitCluster | None = None,
) -> Result:
    """Sharded ingest (tests/faults/workers.py): the cluster shape with its own PostgreSQL,
    SHARDS shard queues and two cloud workers (`python -m cloud` twice), four gateways, one on
    each shard. At random moments one worker is killed with kill -9 (its process group), stays
    down a few seconds (small: 4 s; full: 4-7 s) and is started again; the kills aim in turn at
    the worker that holds gw-f01's shard and at the other. Measured per kill: the takeover
    (from the kill to the first event of the killed worker's gateways stored before its
    restart, so by the other worker) and the time from the restart until the shards are spread
    again. Small: one kill of gw-f01's worker; full: `kills` (default 4)."""
    kills = kills or (1 if size is Size.SMALL else 4)
    targets = [WORKER_TARGETS[i % len(WORKER_TARGETS)] for i in range(kills)]
    downs = [4.0 if size is Size.SMALL else rng.uniform(4.0, 7.0) for _ in range(kills)]
    # each kill's slot of the stream: events flowing (the agents take ~2 s to start), the kill,
    # the downtime, the worker's start-up (~6 s here), the shards spread again (~3 s), and
    # events flowing through the handover back
    slot, at = (20.0, (0.2, 0.3)) if size is Size.SMALL else (22.0, (0.1, 0.25))
    duration = max(opts.duration_s, slot * kills + 2)
    sharded = replace(opts, cloud_env={"SC_CLOUD_INGEST_SHARDS": str(SHARDS), **opts.cloud_env})
    witnesses = {gw: WITNESS_RATE for gw in WORKER_GATEWAYS[2:]}
    broker = ClusterBroker(cluster, WORKER_GATEWAYS)
    try:
        stack = Stack(
            sharded,
            duration_s=duration,
            cluster=broker,
            postgres=True,
            gateways=WORKER_GATEWAYS,
            rates=witnesses,
            workers=WORKERS,
        )
    except BaseException:
        broker.stop()  # a cluster of its own is not left running
        raise
    with stack:
        workers = Workers(stack.clouds, SHARDS)

        def spread_at_start() -> None:
            found = workers.wait_spread(SPREAD_S)
            if found is None:
                raise AssertionError(
                    f"the {SHARDS} shards were not spread over {WORKERS} workers within"
                    f" {SPREAD_S:g} s of their start: they hold {workers.held()}"
                )
            stack.opts.say(f"    shards held at the start: {_held(found.held)}")

        stack.start(before_stream=spread_at_start)
        # the first kill meets events of every gateway on the way (the agents' start-up)
        stack.wait_for(
            lambda: all(stack.cloud.records.count([gw]) > 0 for gw in WORKER_GATEWAYS),
            30,
            "events of every gateway stored",
        )
        done: list[WorkerKill] = []
        faults: list[Fault] = []
        for i, (target, down) in enumerate(zip(targets, downs, strict=True)):
            stack.sleep_until(max(stack.at(slot * (i + rng.uniform(*at))), time.time()))
            if workers.wait_spread(SPREAD_S) is None:  # each kill meets a spread
                raise AssertionError(f"the shards are not spread before kill #{i + 1}")
            holder = workers.holder(shard_of(WORKER_GATEWAYS[0], SHARDS))
            victim = holder if target == WORKER_TARGETS[0] else 1 - holder
            shards = workers.held()[victim]
            hit = tuple(gw for gw in WORKER_GATEWAYS if shard_of(gw, SHARDS) in shards)
            kill = WorkerKill(target, victim, shards, hit, stack.clouds[victim].kill9())
            what = f"worker {victim + 1} kill -9 ({target}: shards {sorted(shards)})"
            _say(stack, f"{what}; it stays down {down:.1f} s")
            stack.sleep_until(kill.began + down)
            kill.taken = workers.took(1 - victim, shards, kill.began)
            taken = "never" if kill.taken is None else f"{kill.taken - kill.began:.1f} s after"
            _say(stack, f"worker {2 - victim} logged holding {sorted(shards)}: {taken}")
            kill.restarted = time.time()
            kill.ready = stack.clouds[victim].start()
            found = workers.wait_spread(SPREAD_S)
            if found is None:
                spread = f"not spread within {SPREAD_S:g} s: {_held(workers.held())}"
            else:
                kill.spread = found.at
                spread = f"spread {found.at - kill.restarted:.1f} s after: {_held(found.held)}"
            ready = kill.ready - kill.restarted
            _say(stack, f"worker {victim + 1} started again (ready after {ready:.1f} s); {spread}")
            done.append(kill)
            # recovery is measured from the kill: the other worker must carry on alone
            faults.append(Fault(what, kill.began, kill.began, hit))
        result = _finish(stack, "worker-kill", faults)
        stored = stack.cloud.records.stored(WORKER_GATEWAYS)
        result.extra.update(_worker_figures(done, stored))
        return result


def _held(held: list[frozenset[int]]) -> str:
    return ", ".join(f"worker {i + 1} {sorted(h)}" for i, h in enumerate(held))


def _worker_figures(kills: list[WorkerKill], stored: list[Stored]) -> dict[str, Any]:
    """Per kill: the takeover by the other worker, from the events (the first event of the
    killed worker's gateways stored after the kill and before its restart) and from the other
    worker's log (its first record holding the killed worker's shards); the time from the
    restart until the worker served and until the shards were spread again."""
    takeover: list[float | None] = []
    logged: list[float | None] = []
    for kill in kills:
        firsts = [
            s.received_at
            for s in stored
            if s.key[0] in kill.gateways and kill.began < s.received_at < kill.restarted
        ]
        takeover.append(round(min(firsts) - kill.began, 2) if firsts else None)
        logged.append(round(kill.taken - kill.began, 2) if kill.taken is not None else None)
    return {
        "targets": [k.target for k in kills],
        "workers_killed": [k.worker + 1 for k in kills],
        "shards_killed": [sorted(k.shards) for k in kills],
        "gateways_hit": [list(k.gateways) for k in kills],
        "down_s": [round(k.restarted - k.began, 1) for k in kills],
        "takeover_s": takeover,
        "takeover_logged_s": logged,
        "ready_after_restart_s": [round(k.ready - k.restarted, 1) for k in kills],
        "spread_after_restart_s": [
            round(k.spread - k.restarted, 1) if k.spread is not None else None for k in kills
        ],
    }


# -- 10. the primary of the cloud's PostgreSQL cluster killed: a failover ---------------------


def database_failover(opts: Options, size: Size, rng: random.Random, kills: int = 0) -> Result:
    """tests/faults/failover.py (imported when run: it builds on this module)."""
    from tests.faults.failover import database_failover as run

    return run(opts, size, rng, kills=kills)


# -- 11. a node of the cluster cut off the network --------------------------------------------


def cluster_node_cut(opts: Options, size: Size, rng: random.Random, cuts: int = 0) -> Result:
    """tests/faults/cluster_cut.py (imported when run: it builds on this module)."""
    from tests.faults.cluster_cut import cluster_node_cut as run

    return run(opts, size, rng, cuts=cuts)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "broker-kill",
            "kill -9 of the broker: before its first autosave, right after a restart before"
            " and after the cloud resubscribes, after an autosave",
            broker_kill,
        ),
        Scenario("cloud-kill", "kill -9 of the cloud 3x during the stream", cloud_kill),
        Scenario(
            "gateway-kill",
            "kill -9 of a gateway agent, restarted with the same outbox",
            gateway_kill,
        ),
        Scenario(
            "cloud-down-broker-restart",
            "the cloud down (60 s) while the broker is killed and restarted",
            cloud_down_broker_restart,
        ),
        Scenario(
            "gateway-offline-day",
            "one gateway's uplink cut for a simulated day, its outbox filling, then draining",
            gateway_offline_day,
        ),
        Scenario(
            "disk-full",
            "one gateway offline with its outbox on a small filesystem that fills up",
            disk_full,
        ),
        Scenario(
            "cluster-node-kill",
            "the cluster shape (3 RabbitMQ nodes): kill -9 of the node a gateway is on and of"
            " the quorum queue's leader, at random moments",
            cluster_node_kill,
        ),
        Scenario(
            "database-kill",
            "the cloud on PostgreSQL: kill -9 of the server 3x during the stream (at random"
            " and at an unanswered commit), down 3-15 s each, then started again",
            database_kill,
        ),
        Scenario(
            "worker-kill",
            "sharded ingest (4 shards, 2 cloud workers on the cluster and PostgreSQL): kill -9"
            " of the worker holding gw-f01's shard and of the other in turn, each restarted",
            worker_kill,
        ),
        Scenario(
            "database-failover",
            "the cloud on PostgreSQL under Patroni (2 nodes, synchronous mode, a multi-host"
            " URL): kill -9 of the primary node 3x, the standby promoted, the killed node"
            " rejoining as the standby",
            database_failover,
        ),
        Scenario(
            "cluster-node-cut",
            "the cluster shape, each node in a network namespace: one node at a time cut off"
            " the network (gw-f01's node, the queue's leader; long and short cuts), its process"
            " running, then joined again",
            cluster_node_cut,
        ),
    )
}
