"""One phase against one broker (the publishers and the consumer as processes, their figures
collected), and starting the two brokers."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.cluster_capacity.traffic import (
    Account,
    ConsumerJob,
    PublisherJob,
    consumer_process,
    cpu_s,
    publisher_process,
)
from bench.stats import summary_ms
from tests.servers import Mosquitto, RabbitCluster

# ---- one phase ---------------------------------------------------------------------------------


@dataclass
class Phase:
    broker: str
    phase: str
    run: int
    messages: int
    received: int = 0
    duplicates: int = 0
    payload_bytes: float = 0.0
    msgs_per_s: float | None = None
    acked_per_s: float | None = None
    latency_ms: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)

    def per_1000(self, who: str) -> float | None:
        if who not in self.cpu_s or not self.received:
            return None
        return 1000.0 * self.cpu_s[who] / self.received


@dataclass
class Broker:
    name: str
    accounts: list[Account]
    consumer: ConsumerJob
    pids: list[int]


class Children:
    """The processes of a phase, each stopped by its own pid."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list[tuple[BaseProcess, Connection]] = []

    def start(self, target: Callable[..., None], job: object) -> tuple[BaseProcess, Connection]:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=target, args=(job, child), daemon=True)
        proc.start()
        child.close()
        self.procs.append((proc, parent))
        return proc, parent

    def stop(self) -> None:
        for _, conn in self.procs:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send("exit")
        for proc, _ in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()  # SIGTERM to this pid
                proc.join(timeout=5)
        self.procs = []


def _recv(conn: Connection, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError(f"no answer from the {what} within {timeout:g} s")
    return conn.recv()


def run_phase(
    broker: Broker, opts: argparse.Namespace, *, phase: str, run: int, count: int, rate: float
) -> Phase:
    children = Children()
    try:
        consumer_proc, consumer = children.start(
            consumer_process, ConsumerJob(**{**asdict(broker.consumer), "count": count})
        )
        _recv(consumer, 60, "consumer")
        prefix = f"{phase[0]}{run}{os.urandom(3).hex()}"
        per = [
            count // opts.publishers + (i < count % opts.publishers) for i in range(opts.publishers)
        ]
        pubs = []
        for i in range(opts.publishers):
            accounts = tuple(
                broker.accounts[(i * opts.clients + k) % len(broker.accounts)]
                for k in range(opts.clients)
            )
            job = PublisherJob(
                index=i,
                accounts=accounts,
                count=per[i],
                rate=rate / opts.publishers if rate else 0.0,
                readings=opts.readings,
                event_every=opts.event_every,
                window=opts.window,
                prefix=prefix,
            )
            pubs.append(children.start(publisher_process, job))
        size = sum(_recv(conn, 120, "publisher")[1] for _, conn in pubs)
        watched = {
            "broker": broker.pids,
            "publishers": [p.pid for p, _ in pubs if p.pid is not None],
            "consumer": [consumer_proc.pid] if consumer_proc.pid is not None else [],
        }
        before = {who: sum(cpu_s(pid) for pid in pids) for who, pids in watched.items()}
        began = time.monotonic()
        for _, conn in pubs:
            conn.send("go")
        sent: dict[str, float] = {}
        acked_total, last_ack = 0, 0.0
        for _, conn in pubs:
            _, ids, times, acked, at = _recv(conn, 600, "publisher")
            sent.update(zip(ids, times, strict=True))
            acked_total += acked
            last_ack = max(last_ack, at)
        _, seen, duplicates = _recv(consumer, 600, "consumer")
        wall = time.monotonic() - began
        used = {who: sum(cpu_s(pid) for pid in pids) - before[who] for who, pids in watched.items()}
        result = Phase(broker.name, phase, run, count, received=len(seen), duplicates=duplicates)
        result.payload_bytes = size / count
        result.wall_s = wall
        result.cpu_s = used
        first = min(sent.values())
        if seen:
            result.msgs_per_s = len(seen) / (max(seen.values()) - first)
        if acked_total:
            result.acked_per_s = acked_total / (last_ack - first)
        result.latency_ms = summary_ms(seen[i] - sent[i] for i in seen if i in sent)
        if len(seen) < count:
            print(f"  ! {broker.name} {phase}: {count - len(seen)} of {count} never consumed")
        return result
    finally:
        children.stop()


# ---- the servers -------------------------------------------------------------------------------


def gateway_names(n: int) -> list[str]:
    return [f"gw-cap{i:02d}" for i in range(n)]


def start_cluster(gateways: Sequence[str]) -> tuple[RabbitCluster, Broker]:
    # as the harness starts it: RabbitMQ 3.10's own defaults, which include `+sbwt none` (the
    # Erlang schedulers sleep rather than spin when out of work, so CPU time is work done)
    cluster = RabbitCluster()
    password = cluster.add_user("cloud")
    secrets = {gw: cluster.add_user(gw) for gw in gateways}
    cluster.start()
    # each gateway on a node of its own in turn: the publishers' load spread over the nodes
    accounts = [
        Account(gw, secrets[gw], cluster.nodes[i % len(cluster.nodes)].mqtt_port)
        for i, gw in enumerate(gateways)
    ]
    first = cluster.nodes[0]
    consumer = ConsumerJob("amqp", first.amqp_port, "cloud", password, 0)
    pids = [n.proc.pid for n in cluster.nodes if n.proc is not None]
    return cluster, Broker("RabbitMQ ×3", accounts, consumer, pids)


def start_mosquitto(gateways: Sequence[str]) -> tuple[Mosquitto, Broker]:
    broker = Mosquitto()
    password = broker.add_user("cloud")
    secrets = {gw: broker.add_user(gw) for gw in gateways}
    broker.start()
    assert broker.proc is not None
    accounts = [Account(gw, secrets[gw], broker.port) for gw in gateways]
    consumer = ConsumerJob("mqtt", broker.port, "cloud", password, 0)
    return broker, Broker("Mosquitto", accounts, consumer, [broker.proc.pid])
