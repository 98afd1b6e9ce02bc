"""The parts of `python -m bench.workers`: a 3-node RabbitMQ cluster, a PostgreSQL, the site's
gateways (paho clients, each on a node in turn) and the cloud's workers (`python -m cloud`
processes on that PostgreSQL, each with a web port of its own), every one stopped by its pid."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bench.load import Gateway
from bench.procs import Child, python_tool
from bench.sitegen import write_site
from bench.stack import BENCH_PASSWORD, BENCH_USER, write_bench_rules
from cloud.transport.sharding import shard_of
from contract import topics
from contract.topics import Channel
from tests.servers import PostgreSQL, RabbitCluster

#: the shards' owner logs this at INFO on every change (cloud/ingest/shards.py)
_HOLDING = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*ingest shards: holding \[([\d, ]*)\] of (\d+)"
)


def balanced_numbers(gateways: int, shards: int) -> list[int]:
    """Gateway numbers (`gw-b0001`, …) such that every shard gets gateways ÷ shards of them:
    the first numbers whose crc32 falls in each shard."""
    if gateways % shards:
        raise ValueError(f"--gateways ({gateways}) must be a multiple of --shards ({shards})")
    per, taken = gateways // shards, {k: 0 for k in range(shards)}
    numbers: list[int] = []
    n = 0
    while len(numbers) < gateways:
        n += 1
        shard = shard_of(f"gw-b{n:04d}", shards)
        if taken[shard] < per:
            taken[shard] += 1
            numbers.append(n)
    return numbers


def _log_time(stamp: str) -> float:
    """The cloud's `asctime` (local time, as this process's) as time.time()."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class Worker:
    """One `python -m cloud` process, signed in to its own web app."""

    name: str
    child: Child
    url: str
    http: httpx.Client

    @property
    def pid(self) -> int:
        return self.child.pid

    def holdings(self) -> list[tuple[float, frozenset[int]]]:
        """Every `ingest shards: holding …` line of its log: (when, the shards)."""
        out = []
        for line in self.child.log.read_text(errors="replace").splitlines():
            match = _HOLDING.match(line)
            if match:
                held = frozenset(int(s) for s in match.group(2).split(",") if s.strip())
                out.append((_log_time(match.group(1)), held))
        return out

    def held(self) -> frozenset[int]:
        lines = self.holdings()
        return lines[-1][1] if lines else frozenset()

    def counts(self) -> dict[str, int]:
        resp = self.http.get("/api/stats")
        resp.raise_for_status()
        return dict(resp.json()["ingest"])

    def alive(self) -> bool:
        return self.child.proc is not None and self.child.proc.poll() is None

    def kill9(self) -> float:
        """kill -9 of this process by its pid; when (time.time())."""
        assert self.child.proc is not None
        at = time.time()
        self.child.proc.kill()
        self.child.proc.wait(timeout=10)
        return at

    def stop(self) -> None:
        self.http.close()
        self.child.stop()


def _cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            out[pid] = float(t.user + t.system)
    return out


@dataclass
class CpuSnapshot:
    """CPU seconds so far of each process of each group (workers, broker, postgres, bench),
    and of the whole machine (every core's busy time: what other programs took shows)."""

    at: float
    groups: dict[str, dict[int, float]]
    machine: float

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        """CPU seconds each group used between the two (a process new since counts whole),
        and `machine`: the busy seconds of all cores."""
        used = {
            name: sum(cpu - before.groups.get(name, {}).get(pid, 0.0) for pid, cpu in now.items())
            for name, now in self.groups.items()
        }
        used["machine"] = self.machine - before.machine
        return used


@dataclass
class WorkerStack:
    opts: argparse.Namespace
    exits: contextlib.ExitStack
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sc-workers-")))
    cluster: RabbitCluster = field(default_factory=RabbitCluster)
    postgres: PostgreSQL = field(default_factory=PostgreSQL)
    gateways: list[Gateway] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    database_url: str = ""
    _started: int = 0

    def start_servers(self, say: Any) -> None:
        o = self.opts
        self.postgres.durable = not o.no_fsync
        if not o.keep:
            self.exits.callback(shutil.rmtree, self.workdir, ignore_errors=True)
        numbers = balanced_numbers(o.gateways, o.shards)
        specs = write_site(self.workdir / "site.yaml", o.gateways, 4, numbers)
        per_shard = {
            k: [s.id for s in specs if shard_of(s.id, o.shards) == k] for k in range(o.shards)
        }
        say(f"gateways per shard (crc32 % {o.shards}): " + json.dumps(per_shard))
        self.cluster.add_user("cloud")
        for spec in specs:
            self.cluster.add_user(spec.id)
        fsync = "off" if o.no_fsync else "on"
        say(f"starting a 3-node RabbitMQ cluster (~30 s) and PostgreSQL (fsync {fsync})")
        self.exits.callback(self.cluster.cleanup)
        self.cluster.start()
        self.exits.callback(self.postgres.cleanup)
        self.postgres.start()
        self.database_url = self.postgres.create_database("sc")
        nodes = self.cluster.nodes
        for i, spec in enumerate(specs):  # each gateway on a node in turn
            gw = Gateway(spec, self.cluster.users[spec.id], nodes[i % len(nodes)].mqtt_port)
            gw.start()
            self.exits.callback(gw.stop)
            assert gw.client is not None  # as a gateway does on the cluster: commands at QoS 0
            gw.client.subscribe(topics.subscription(Channel.CMD, gw.id), qos=0)
            self.gateways.append(gw)
        say(f"{len(self.gateways)} gateways connected, spread over {len(nodes)} nodes")

    # ---- the workers -------------------------------------------------------------------------

    def _env(self, index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SC_CLOUD_")}
        nodes = self.cluster.nodes
        order = nodes[index % len(nodes) :] + nodes[: index % len(nodes)]
        env.update(
            {
                "SC_CLOUD_BROKER": "rabbitmq",
                "SC_CLOUD_AMQP_NODES": json.dumps([f"127.0.0.1:{n.amqp_port}" for n in order]),
                "SC_CLOUD_AMQP_PASSWORD": self.cluster.users["cloud"],
                "SC_CLOUD_AMQP_HEARTBEAT_S": str(self.opts.heartbeat),
                "SC_CLOUD_INGEST_SHARDS": str(self.opts.shards),
                "SC_CLOUD_MQTT_CLIENT_ID": f"bench-worker-{index}",
                "SC_CLOUD_DATABASE": self.database_url,
                "SC_CLOUD_TELEMETRY_URL": f"sqlite:///{self.workdir / f'telemetry-{index}.db'}",
                "SC_CLOUD_SITE_FILE": str(self.workdir / "site.yaml"),
                "SC_CLOUD_RULES_FILE": str(write_bench_rules(self.workdir)),
                "SC_CLOUD_WEB_HOST": "127.0.0.1",
                "SC_CLOUD_WEB_PORT": "0",
                "SC_CLOUD_SESSION_SECRET": "bench-workers-" + "0" * 32,
                "SC_CLOUD_BOOTSTRAP_USERS": json.dumps({BENCH_USER: ["operator", BENCH_PASSWORD]}),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start_worker(self) -> Worker:
        self._started += 1
        name = f"worker-{self._started}"
        child = Child(
            name,
            python_tool("cloud"),
            self.workdir / f"{name}.log",
            env=self._env(self._started),
        )
        match = child.start(ready=r"duty room: (http://\S+)", timeout=120)
        self.exits.callback(child.stop)
        assert child.reader is not None
        child.reader.wait_for(r"^ingest connected", 60)
        http = httpx.Client(base_url=match.group(1), timeout=30)
        http.post(
            "/api/login", json={"username": BENCH_USER, "password": BENCH_PASSWORD}
        ).raise_for_status()
        worker = Worker(name, child, match.group(1), http)
        self.exits.callback(http.close)
        self.workers.append(worker)
        return worker

    def wait_balanced(self, timeout: float = 90.0) -> float:
        """Until the live workers hold the shards between them, each shards ÷ workers; how
        long it took."""
        began = time.monotonic()
        n = self.opts.shards
        while True:
            held = [w.held() for w in self.workers]
            union = frozenset().union(*held)
            if union == frozenset(range(n)) and all(len(h) == n // len(held) for h in held):
                return time.monotonic() - began
            for w in self.workers:
                if not w.alive():
                    raise RuntimeError(f"{w.name} exited: {w.child.log.read_text()[-3000:]}")
            if time.monotonic() - began > timeout:
                raise RuntimeError(f"the shards were not shared out in {timeout:g} s: {held}")
            time.sleep(0.1)

    def gateways_of(self, shards: frozenset[int]) -> set[str]:
        return {gw.id for gw in self.gateways if shard_of(gw.id, self.opts.shards) in shards}

    # ---- what is measured --------------------------------------------------------------------

    def cpu(self) -> CpuSnapshot:
        pg = self.postgres.proc
        pg_pids = []
        if pg is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pg.pid)
                pg_pids = [root.pid, *(c.pid for c in root.children(recursive=True))]
        groups = {
            "workers": [w.pid for w in self.workers if w.alive()],
            "broker": [n.proc.pid for n in self.cluster.nodes if n.proc is not None],
            "postgres": pg_pids,
            "bench": [os.getpid()],  # the gateways' clients (and this process's polling)
        }
        total = psutil.cpu_times()
        busy = sum(total) - total.idle - getattr(total, "iowait", 0.0)
        return CpuSnapshot(time.time(), {k: _cpu_of(v) for k, v in groups.items()}, busy)

    def stored(self, prefix: str) -> list[tuple[str, str, int, float]]:
        """(id, gateway, seq, received_at) of the events stored whose id starts so."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT id, gateway, seq, received_at FROM events WHERE id LIKE %s",
                (prefix + "%",),
            ).fetchall()
        return [(r[0], r[1], int(r[2]), float(r[3])) for r in rows]

    def count_stored(self, prefix: str) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM events WHERE id LIKE %s", (prefix + "%",)
            ).fetchone()
        return int(row[0]) if row else 0
