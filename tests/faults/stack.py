"""One scenario's system: the shipped Mosquitto, the cloud (on SQLite, or with `postgres=True`
on a PostgreSQL server of its own, or on the `database` a scenario makes: a Patroni cluster;
with `workers=N`, N cloud processes on that one) and two gateway agents (or the `gateways` a
scenario names) streaming life-safety events, all real processes on loopback, in a work folder
of their own.

    with Stack(Options(rate=50), duration_s=20) as stack:
        stack.start()                     # broker, cloud, agents; the stream begins
        stack.sleep_until(stack.at(5))    # 5 s into the stream
        began = stack.broker.kill9(); ended = stack.broker.start()
        stack.settle()                    # until the outboxes are empty and the cloud is quiet
        counts = stack.measure([Fault("broker kill -9", began, ended)])
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from contract import topics
from contract.models import Event, EventType, Kind, encode, utc_now
from tests.faults.cloud_log import CloudLog, read_cloud_log
from tests.faults.cluster import ClusterBroker
from tests.faults.database import CloudPostgres
from tests.faults.gate import UplinkGate
from tests.faults.ledger import Counts, Fault, life_safety_waiting, measure
from tests.faults.procs import AgentProcess, CloudProcess, ProcessFailed, ShippedBroker
from tests.faults.records import PostgresRecords
from tests.faults.site import GATEWAYS, LEAD_S, write_configs, write_script, write_site
from tests.servers import free_port


@dataclass
class Options:
    """What every scenario shares; the harness's knobs for the product's own options."""

    rate: float = 50.0  # life-safety events a second, per agent
    duration_s: float = 30.0  # the stream (a scenario may need longer)
    #: extra arguments for every `python -m gateway run` (e.g. a new protocol's flags)
    agent_args: tuple[str, ...] = ()
    #: extra SC_CLOUD_* settings for every `python -m cloud`
    cloud_env: Mapping[str, str] = field(default_factory=dict)
    #: how long to wait, after the stream, for the outboxes to empty and the cloud to settle
    settle_s: float = 120.0
    #: the cloud's count of stored events must stay put this long to count as settled
    quiet_s: float = 2.0
    #: give up settling when neither the outboxes nor the cloud moved for this long (it is
    #: longer than the agents' longest reconnect back-off, 30 s)
    stuck_s: float = 45.0
    keep: bool = False  # keep the work folder (logs, databases, outboxes)
    say: Callable[[str], None] = print


class CloudDatabase(Protocol):
    """A PostgreSQL of the scenario's own for the cloud: `CloudPostgres`, or the Patroni
    cluster of tests/faults/failover.py."""

    @property
    def records(self) -> PostgresRecords: ...

    def start(self) -> float:
        """Start it, ready for the cloud's first start; returns that moment (time.time())."""
        ...

    def stop(self) -> None: ...


@dataclass
class Settled:
    converged: bool
    waited_s: float
    waiting: int  # life-safety events still in the outboxes at the end


class Stack:
    def __init__(
        self,
        opts: Options,
        *,
        duration_s: float,
        compress: float = 1.0,
        gated: Sequence[str] = (),
        agent_args: Sequence[str] = (),
        outbox_disk_mb: Mapping[str, float] | None = None,
        cluster: ClusterBroker | None = None,
        postgres: bool = False,
        gateways: Sequence[str] = GATEWAYS,
        rates: Mapping[str, float] | None = None,
        workers: int = 1,
        database: Callable[[Path], CloudDatabase] | None = None,
    ):
        """`rates`: life-safety events/s of a gateway (default `opts.rate`); `workers`: cloud
        processes (`clouds`), more than one only on a shared PostgreSQL."""
        if workers > 1 and not postgres:
            raise ValueError("several cloud workers need a shared PostgreSQL (postgres=True)")
        self.opts = opts
        self.duration_s = duration_s
        self.gateways = tuple(gateways)
        self.rates = {gw: (rates or {}).get(gw, opts.rate) for gw in self.gateways}
        self.workdir = Path(tempfile.mkdtemp(prefix="sc-faults-"))
        self.workdir.chmod(0o755)
        cloud_env = dict(opts.cloud_env)
        self._broker: ShippedBroker | None = None
        #: the cluster shape's broker (None: the shipped Mosquitto, `broker`)
        self.cluster = cluster
        if cluster is None:
            self.passwords = {
                name: f"pw-{name}-{os.urandom(6).hex()}" for name in ("cloud", *self.gateways)
            }
            port = free_port()
            (self.workdir / "broker").mkdir()
            self._broker = ShippedBroker(self.workdir / "broker", self.passwords, port)
        else:  # the cluster shape (tests/faults/cluster.py)
            self.passwords = {name: cluster.password(name) for name in ("cloud", *self.gateways)}
            port = cluster.port
            cloud_env = {**cluster.cloud_env(), **cloud_env}
        self.site = write_site(self.workdir / "site.yaml", self.gateways)
        self.configs = write_configs(self.workdir / "configs", compress=compress)
        #: the cloud's PostgreSQL server (None: the cloud's SQLite file)
        self._postgres = CloudPostgres(self.workdir / "postgres") if postgres else None
        #: the cloud's PostgreSQL of either kind (`database(folder)` or `postgres`)
        self._database: CloudDatabase | None = (
            database(self.workdir / "postgres") if database is not None else self._postgres
        )
        #: the cloud's processes: one (folder `cloud`), or workers (`worker-1` …), each with
        #: its own connection name on the broker
        self.clouds: list[CloudProcess] = []
        for n in range(1, workers + 1):
            folder = self.workdir / ("cloud" if workers == 1 else f"worker-{n}")
            folder.mkdir()
            own = {} if workers == 1 else {"SC_CLOUD_MQTT_CLIENT_ID": f"sc-cloud-worker-{n}"}
            self.clouds.append(
                CloudProcess(
                    folder,
                    broker_port=port,
                    password=self.passwords["cloud"],
                    site_file=self.site,
                    records=self._database.records if self._database is not None else None,
                    extra_env={**own, **cloud_env},
                    run_in=cluster.clients_run_in() if cluster is not None else (),
                )
            )
        self.cloud = self.clouds[0]
        self.gates = {gw: UplinkGate(port) for gw in gated}
        (self.workdir / "agents").mkdir()
        self.agents = {
            gw: AgentProcess(
                self.workdir / "agents",
                gw,
                site_file=self.site,
                configs_dir=self.configs,
                broker_port=self.gates[gw].port if gw in self.gates else port,
                password=self.passwords[gw],
                extra_args=[
                    *agent_args,
                    *opts.agent_args,
                    *(cluster.agent_args(gw) if cluster is not None else []),
                ],
                run_in=cluster.clients_run_in() if cluster is not None else (),
            )
            for gw in self.gateways
        }
        self._mounts: list[Path] = []
        try:
            for gw, size_mb in (outbox_disk_mb or {}).items():
                self._mount_tmpfs(self.agents[gw].folder, size_mb)
        except BaseException:
            self.close()
            raise
        self.t0 = 0.0  # when the stream began (time.time())
        self.stream_ends = 0.0

    @property
    def broker(self) -> ShippedBroker:
        """The shipped Mosquitto (not in the cluster shape: `cluster`)."""
        assert self._broker is not None, "this stack runs on the cluster (stack.cluster)"
        return self._broker

    @property
    def postgres(self) -> CloudPostgres:
        """The cloud's PostgreSQL (only with `postgres=True`)."""
        assert self._postgres is not None, "this stack's cloud runs on SQLite"
        return self._postgres

    @property
    def database(self) -> CloudDatabase:
        """The cloud's PostgreSQL of either kind (`postgres=True` or `database`)."""
        assert self._database is not None, "this stack's cloud runs on SQLite"
        return self._database

    def _any_broker(self) -> ShippedBroker | ClusterBroker:
        broker = self.cluster or self._broker
        assert broker is not None
        return broker

    # -- lifetime -------------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def start(
        self, *, agents: bool = True, before_stream: Callable[[], None] | None = None
    ) -> None:
        """Broker, cloud (its workers one after the other), `before_stream` (e.g. a wait until
        the workers share the work), then the agents with their scripts: the stream begins.
        (Without `agents`, the gateways' accounts are free for other clients.)"""
        if self._database is not None:
            self._database.start()
        self._any_broker().start()
        for cloud in self.clouds:
            cloud.start()
        self._await_consuming()
        if before_stream is not None:
            before_stream()
        for gate in self.gates.values():
            gate.restore()
        self.t0 = time.time()
        self.stream_ends = self.t0 + LEAD_S + self.duration_s
        if not agents:
            return
        for gw in self.agents:
            self.start_agent(gw)
        rates = ", ".join(f"{gw} {rate:g}" for gw, rate in self.rates.items())
        self.opts.say(
            f"    stream: {len(self.agents)} agents ({rates} life-safety events/s) for"
            f" {self.duration_s:g} s; work folder {self.workdir}"
        )

    def _await_consuming(self, within_s: float = 30.0) -> None:
        """Until the cloud stores what a gateway publishes (its broker session exists): a
        heartbeat from the first gateway's account, before its agent uses the account."""
        gateway = self.gateways[0]
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gateway)
        client.username_pw_set(gateway, self.passwords[gateway])
        client.connect("127.0.0.1", self._any_broker().port)
        client.loop_start()
        try:
            deadline = time.monotonic() + within_s
            while time.monotonic() < deadline:
                probe = Event(
                    id=str(uuid.uuid4()),
                    gateway=gateway,
                    device=gateway,
                    boot="probe",
                    seq=1,
                    ts=utc_now(),
                    kind=Kind.GATEWAY,
                    type=EventType.HEARTBEAT,
                )
                client.publish(topics.event(gateway), encode(probe), qos=1).wait_for_publish(5)
                for _ in range(20):
                    if self.cloud.records.has_event(probe.id):
                        return
                    time.sleep(0.05)
            raise ProcessFailed(f"the cloud stored no event within {within_s:g} s")
        finally:
            client.disconnect()
            client.loop_stop()

    def start_agent(self, gateway: str) -> float:
        """Start (again) an agent, its script covering what is left of the stream."""
        agent = self.agents[gateway]
        left = self.stream_ends - LEAD_S - time.time()
        script = None
        if left > 0.5:
            script = write_script(
                self.workdir / "agents" / f"{gateway}-{len(agent.logs) + 1}.script.yaml",
                self.rates[gateway],
                left,
            )
        return agent.start(script)

    def stop(self) -> None:
        """Stop every process (SIGTERM), keeping their files for `measure`; the cloud's
        PostgreSQL runs until `close` (`measure` reads it)."""
        # the agents and the cloud at once (each waits for its own exit), then the broker
        processes: list[AgentProcess | CloudProcess] = [*self.agents.values(), *self.clouds]
        stopping = [threading.Thread(target=p.stop) for p in processes]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        self._any_broker().stop()
        for gate in self.gates.values():
            gate.close()

    def close(self) -> None:
        self.stop()
        if self._database is not None:
            self._database.stop()
        for mount in self._mounts:
            subprocess.run(["umount", str(mount)], check=False, capture_output=True)
        self._mounts.clear()
        if not self.opts.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- time -----------------------------------------------------------------------------------

    def at(self, seconds: float) -> float:
        """The moment `seconds` into the stream (time.time())."""
        return self.t0 + LEAD_S + seconds

    def elapsed(self) -> float:
        return time.time() - self.t0 - LEAD_S

    def sleep_until(self, moment: float) -> None:
        """Wait for `moment` (time.time()), checking that nothing died on its own."""
        while (left := moment - time.time()) > 0:
            time.sleep(min(left, 0.2))
            self.check_alive()

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.05)
        self.opts.say(f"    (no {what} within {timeout:g} s)")
        return False

    def check_alive(self) -> None:
        """The processes the scenario has not stopped itself must still run."""
        for agent in self.agents.values():
            agent.check_alive()
        for cloud in self.clouds:
            if cloud.proc is not None and cloud.proc.poll() is not None:
                tail = cloud.log_text()[-3000:]
                raise ProcessFailed(
                    f"the cloud ({cloud.workdir.name}) exited {cloud.proc.returncode}:\n{tail}"
                )

    # -- the end --------------------------------------------------------------------------------

    def settle(self) -> Settled:
        """After the stream: wait until no agent's outbox holds a life-safety event and the
        cloud's count of stored ones stays put for `quiet_s`, or `settle_s` passes."""
        self.sleep_until(self.stream_ends + 0.5)
        started = time.monotonic()
        deadline = started + self.opts.settle_s
        outboxes = [a.outbox for a in self.agents.values()]
        last: tuple[int, int] = (-1, -1)
        moved = quiet_since = time.monotonic()
        waiting = life_safety_waiting(outboxes)
        while (now := time.monotonic()) < deadline and now - moved < self.opts.stuck_s:
            waiting = life_safety_waiting(outboxes)
            stored = self.cloud.records.count(self.gateways)
            if (stored, waiting) != last:
                moved = now
            if stored != last[0] or waiting:
                quiet_since = now
            elif now - quiet_since >= self.opts.quiet_s:
                return Settled(True, now - started, 0)
            last = (stored, waiting)
            time.sleep(0.25)
        return Settled(False, time.monotonic() - started, waiting)

    def measure(self, faults: Sequence[Fault]) -> Counts:
        """The counts, from the files the processes left (call `stop` first: a running agent
        keeps making heartbeats, and its log and the cloud's database are read apart)."""
        return measure(
            gateways=self.gateways,
            agent_logs={gw: a.logs for gw, a in self.agents.items()},
            outboxes=[a.outbox for a in self.agents.values()],
            records=self.cloud.records,
            faults=faults,
        )

    def cloud_log(self) -> CloudLog:
        """What the cloud's logs (every incarnation of every worker) say
        (tests/faults/cloud_log.py)."""
        return read_cloud_log("\n".join(cloud.log_text() for cloud in self.clouds))

    def cloud_tracebacks(self) -> int:
        """Tracebacks that count against the cloud (not a DatabaseUnavailable it caught), in
        every worker's logs."""
        return sum(read_cloud_log(cloud.log_text()).tracebacks for cloud in self.clouds)

    # -- a small disk for an outbox -------------------------------------------------------------

    def _mount_tmpfs(self, folder: Path, size_mb: float) -> None:
        size_kb = max(64, int(size_mb * 1024))
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise CannotMount(f"cannot mount a {size_kb} KiB tmpfs: {done.stderr.strip()}")
        self._mounts.append(folder)


class CannotMount(RuntimeError):
    """The machine does not let us mount a small filesystem (not root, or no tmpfs)."""
