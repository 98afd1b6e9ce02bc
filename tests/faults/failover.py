"""The `database-failover` scenario: the cloud on PostgreSQL under Patroni (tests/postgres_ha.py:
one etcd, two PostgreSQL 15 nodes in synchronous mode) through a libpq multi-host URL with
`target_session_attrs=read-write`; the primary node dies (kill -9 of its Patroni and of its
postgres processes) while two agents stream, Patroni promotes the synchronous standby, and the
killed node is started again and rejoins as the standby (rewound with pg_rewind where it had
gone ahead). Nothing acknowledged may be lost: synchronous mode puts every commit on the
standby before it returns, and what the cloud had not heard committed it stores again on the
new primary (the gateways resend what was not acknowledged).

The storing order is read as in `database-kill` (tests/faults/records.py), through a logical
slot that Patroni keeps on both nodes (a permanent slot: made on the primary before the cloud
first starts, copied to the standby), so it spans the failover.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.faults.database import DATABASE
from tests.faults.ledger import Fault
from tests.faults.records import SLOT, PostgresRecords
from tests.faults.scenarios import Result, Size, _finish, _say
from tests.faults.site import GATEWAYS
from tests.faults.stack import Options, Stack
from tests.postgres_ha import PatroniCluster, PatroniNode

#: When the primary dies: at its random moment, or once one of the cloud's commits waits for
#: the synchronous standby's answer (written on the primary, not yet confirmed by the standby).
AIMS = ("moment", "commit")

_AT_COMMIT = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event = 'SyncRep'"
    " AND application_name = 'sc-cloud'"
)


class FailoverPostgres:
    """The cloud's database on a Patroni cluster of the scenario's own, in `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.cluster = PatroniCluster(workdir, nodes=2, logical_slots={SLOT: DATABASE})
        self.url = self.cluster.url(DATABASE)
        self._records = PostgresRecords(self.url)

    @property
    def records(self) -> PostgresRecords:
        return self._records

    def start(self) -> float:
        """The cluster, the cloud's database, the storing-order slot on both nodes; returns
        once the standby streams synchronously (time.time())."""
        self.cluster.start()
        with psycopg.connect(self.cluster.primary().url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        self.cluster.wait_slots()
        return self.cluster.wait_replicating()

    def kill_primary(self, aim: str, within_s: float) -> tuple[PatroniNode, float, bool]:
        """kill -9 of the primary node (its Patroni, then its postgres processes), at once or,
        for `aim` "commit", once a commit of the cloud waits for the standby: the standby's
        WAL receiver is paused (SIGSTOP) so that commits stay waiting, the kill comes as soon
        as one does (or after `within_s`), and the receiver goes on (SIGCONT) — from what it
        had, which may lack those commits. Returns (the node, when: time.time(), whether a
        commit was waiting)."""
        node = self.cluster.primary()
        if aim != "commit":
            began = time.time()
            node.kill9()
            return node, began, False
        receivers = [_wal_receiver(n) for n in self.cluster.members if n is not node]
        paused = [pid for pid in receivers if pid is not None]
        waiting = False
        try:
            for pid in paused:
                os.kill(pid, signal.SIGSTOP)
            deadline = time.monotonic() + within_s
            with psycopg.connect(node.url(DATABASE), autocommit=True) as conn:
                while not waiting and time.monotonic() < deadline:
                    row = conn.execute(_AT_COMMIT, (DATABASE,)).fetchone()
                    waiting = row is not None and row[0] > 0
                    if not waiting:
                        time.sleep(0.005)
            began = time.time()
            node.kill9()
        finally:
            for pid in paused:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        return node, began, waiting

    def stop(self) -> None:
        self.cluster.stop()


def database_failover(opts: Options, size: Size, rng: random.Random, kills: int = 0) -> Result:
    """Small: one failover, aimed at a commit waiting for the standby, the killed node
    started again as soon as the standby is promoted. Full: `kills` (default 3) failovers,
    aimed in turn at a random moment and at a waiting commit, the killed node down 0-10 s after
    the promotion; each failover comes once the previous killed node is the synchronous standby
    again (so the new primary's commits are on two nodes)."""
    kills = kills or (1 if size is Size.SMALL else 3)
    aims = ["commit"] if size is Size.SMALL else [AIMS[i % 2] for i in range(kills)]
    downs = [0.0 if size is Size.SMALL else rng.uniform(0.0, 10.0) for _ in range(kills)]
    # each failover's slot of the stream: some streaming, the kill, the promotion (~ttl), the
    # rejoin (a restart, pg_rewind, catching up)
    lead, slot = (3.0, 16.0) if size is Size.SMALL else (8.0, 40.0)
    duration = max(opts.duration_s, round(lead + slot * kills))
    with Stack(opts, duration_s=duration, database=FailoverPostgres) as stack:
        db = stack.database
        assert isinstance(db, FailoverPostgres)
        stack.start()
        faults: list[Fault] = []
        figures: dict[str, list[Any]] = {
            "killed": [],
            "commit_waiting_at_kill": [],
            "promoted_after_s": [],
            "storing_again_after_s": [],
            "down_after_promotion_s": [],
            "rejoined_after_s": [],
            "rewound": [],
        }
        for i, (aim, down) in enumerate(zip(aims, downs, strict=True)):
            at = lead + i * slot + (rng.uniform(0.0, 0.3) * slot if i else 0.0)
            stack.sleep_until(max(stack.at(at), time.time()))
            db.cluster.wait_replicating()  # a synchronous standby to fail over to
            node, began, waiting = db.kill_primary(aim, within_s=2.0)
            what = "at a commit waiting for the standby" if waiting else "at a random moment"
            _say(stack, f"primary {node.name} kill -9 #{i + 1} {what}")
            new, promoted = db.cluster.wait_primary(besides=node)
            on_new = PostgresRecords(new.url(DATABASE))  # read on it alone: no other host tried
            stored_then = on_new.count(GATEWAYS)
            _say(stack, f"{new.name} promoted ({promoted - began:.1f} s after the kill)")
            log_from = _log_size(node)
            if down <= 0:
                db.cluster.start_node(node)
            storing = _stores_again(stack, on_new, stored_then, within_s=60.0)
            if storing is not None:
                _say(stack, f"the cloud stores again ({storing - began:.1f} s after the kill)")
            if down > 0:
                stack.sleep_until(max(promoted + down, time.time()))
                db.cluster.start_node(node)
            rejoined = db.cluster.wait_replicating()
            rewound = "pg_rewind exit code=0" in _log_since(node, log_from)
            _say(
                stack,
                f"{node.name} started again {down:.1f} s after the promotion; a synchronous"
                f" standby again {rejoined - began:.1f} s after the kill"
                + (" (rewound)" if rewound else ""),
            )
            # the cloud must carry on by itself: recovery counts from the kill
            faults.append(Fault(f"primary {node.name} kill -9 #{i + 1} (failover)", began, began))
            figures["killed"].append(node.name)
            figures["commit_waiting_at_kill"].append(waiting)
            figures["promoted_after_s"].append(round(promoted - began, 1))
            figures["storing_again_after_s"].append(
                None if storing is None else round(storing - began, 1)
            )
            figures["down_after_promotion_s"].append(round(down, 1))
            figures["rejoined_after_s"].append(round(rejoined - began, 1))
            figures["rewound"].append(rewound)
        result = _finish(stack, "database-failover", faults, aims=aims, **figures)
        log = stack.cloud_log()
        result.extra["cloud_holds"] = log.holds
        result.extra["cloud_back_after_s"] = log.back_after_s
        result.extra["cloud_holds_cut_in_flight"] = log.holds_cut_in_flight
        result.extra["cloud_tracebacks_database_unavailable"] = dict(log.database_unavailable)
        return result


def _stores_again(
    stack: Stack, records: PostgresRecords, than: int, within_s: float
) -> float | None:
    """When the cloud's count of stored life-safety events in `records` (the new primary)
    first exceeds `than` (time.time()); None if not within `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        stack.check_alive()
        if records.count(GATEWAYS) > than:
            return time.time()
        time.sleep(0.05)
    stack.opts.say(f"    (the cloud stored nothing on the new primary within {within_s:g} s)")
    return None


def _wal_receiver(node: PatroniNode) -> int | None:
    """The pid of a standby's WAL receiver (None: it has none now)."""
    try:
        with psycopg.connect(node.url(), autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT pid FROM pg_stat_wal_receiver").fetchone()
    except psycopg.OperationalError:
        return None
    return int(row[0]) if row is not None and row[0] is not None else None


def _log_size(node: PatroniNode) -> int:
    try:
        return node.log_file.stat().st_size
    except OSError:
        return 0


def _log_since(node: PatroniNode, offset: int) -> str:
    try:
        with node.log_file.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""
