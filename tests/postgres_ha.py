"""PostgreSQL high availability for the tests: one etcd and PostgreSQL 15 nodes under Patroni
(Debian packages `etcd-server`, `patroni`, `postgresql`), on free loopback ports, each in a
folder of its own and stopped by its own process id (docs/deploy.md, "PostgreSQL high
availability"; the production templates are in deploy/patroni/).

    with PatroniCluster(workdir, nodes=2) as ha:
        ha.start()                  # etcd, the first node (primary), the rest (standbys)
        url = ha.url("sc")          # postgresql://…@h1:p1,h2:p2/sc?target_session_attrs=read-write
        primary = ha.primary()
        ha.kill9(primary)           # its Patroni and its postgres processes: the node dies
        ha.wait_primary(besides=primary)
        ha.start_node(primary)      # it comes back and rejoins as a standby (pg_rewind)

Patroni runs as the `postgres` user (as the PostgreSQL it manages must), with the shipped
configuration (deploy/patroni/patroni.yml.example; `node_config` says what a test node changes):
- `synchronous_mode: true`: a commit returns only once the synchronous standby has it, and
  Patroni promotes only that standby: a failover loses no acknowledged commit. Not
  `synchronous_mode_strict`: when no standby is left the primary goes on alone (the cluster
  stays writable with one node down) rather than refusing every write.
- `TTL_S`, `LOOP_WAIT_S`, `RETRY_TIMEOUT_S` are short test values (10/2/4 s: a dead primary
  is replaced in ~10 s); the template's 30/10/10 s (Patroni's defaults) are what production
  should use (they ride out a slow network or etcd without a needless failover).
- `use_pg_rewind` (with `wal_log_hints`): a killed primary that wrote a little more than its
  standby had is rewound to the new primary's history instead of being copied anew.
- permanent logical slots (`logical_slots`, with `wal_level=logical`: test only): Patroni
  makes them on the primary and copies them to the standbys, so a slot made before a failover
  is still there after it (the fault suite reads the storing order through one:
  tests/faults/records.py).
- durable as a real server: `fsync`, `full_page_writes`, `synchronous_commit` on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
import yaml

from tests.proc_tree import kill_tree
from tests.servers import REPO, _postgres_bin, quiet_ports

#: Patroni's leader key lives this long without a renewal (test value; production: 30).
TTL_S = 10
#: Patroni's loop (test value; production: 10).
LOOP_WAIT_S = 2
#: How long Patroni retries etcd and PostgreSQL before it gives up a loop (test value; 10).
RETRY_TIMEOUT_S = 4
#: The cluster's name (Patroni's `scope`, the etcd key prefix).
SCOPE = "sc-test"
#: The shipped Patroni configuration, which the test nodes run (`node_config`).
TEMPLATE = REPO / "deploy" / "patroni" / "patroni.yml.example"


def missing_programs() -> list[str]:
    """What is not installed of what a Patroni cluster needs (Debian package names)."""
    missing = []
    if shutil.which("etcd") is None:
        missing.append("etcd-server")
    if shutil.which("patroni") is None:
        missing.append("patroni")
    return missing


def _clean_env() -> dict[str, str]:
    """Our environment without the virtualenv's Python settings (Patroni is Debian's Python)
    and without libpq settings that would point Patroni's own sessions elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PG", "PATRONI_"))
    }


def _http_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    """(status, body as JSON or None) of a GET; (0, None) if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return 0, None


def node_config(node: PatroniNode, *, etcd: str, logical_slots: dict[str, str]) -> dict[str, Any]:
    """The shipped template (deploy/patroni/patroni.yml.example) for one test node: its
    replication, failover and durability settings as they are; changed are the addresses and
    folders (loopback, free ports, the node's folder), trust on loopback instead of passwords,
    no watchdog (no /dev/watchdog here), the short test timers, and `wal_level=logical` with
    the permanent `logical_slots` (the fault suite reads the storing order through one)."""
    config: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    config["name"] = node.name
    config["scope"] = SCOPE
    api = f"127.0.0.1:{node.api_port}"
    config["restapi"].update({"listen": api, "connect_address": api})
    config["etcd3"] = {"hosts": [etcd]}
    dcs = config["bootstrap"]["dcs"]
    dcs.update({"ttl": TTL_S, "loop_wait": LOOP_WAIT_S, "retry_timeout": RETRY_TIMEOUT_S})
    dcs["postgresql"]["parameters"]["wal_level"] = "logical"
    dcs["slots"] = {
        name: {"type": "logical", "database": db, "plugin": "test_decoding"}
        for name, db in logical_slots.items()
    }
    pg = config["postgresql"]
    address = f"127.0.0.1:{node.pg_port}"
    pg.update(
        {
            "listen": address,
            "connect_address": address,
            "data_dir": str(node.data_dir),
            "bin_dir": str(_postgres_bin()),
            "pgpass": str(node.workdir / "pgpass"),
            "pg_hba": [
                f"host replication {pg['authentication']['replication']['username']}"
                " 127.0.0.1/32 trust",
                "host all all 127.0.0.1/32 trust",
                "local all all trust",
            ],
        }
    )
    pg["parameters"]["unix_socket_directories"] = str(node.workdir)
    config["watchdog"] = {"mode": "off"}
    return config


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class Etcd:
    """One etcd member (production runs three: docs/deploy.md), its data in `workdir`."""

    workdir: Path
    client_port: int
    peer_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://{self.endpoint}"
        self.proc = subprocess.Popen(
            [
                *("etcd", "--name", "etcd0", "--data-dir", str(self.workdir / "data")),
                *("--listen-client-urls", client, "--advertise-client-urls", client),
                *("--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer),
                *("--initial-cluster", f"etcd0={peer}", "--initial-cluster-state", "new"),
                *("--initial-cluster-token", f"sc-test-{os.getpid()}-{self.client_port}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "etcd.log", "ab"),  # noqa: SIM115
            start_new_session=True,
            env=_clean_env(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited {self.proc.returncode}: {self._tail()}")
            status, body = _http_json(f"{client}/health")
            if status == 200 and isinstance(body, dict) and body.get("health") == "true":
                return
            time.sleep(0.05)
        raise RuntimeError(f"etcd not ready on {self.client_port} after {timeout:g} s")

    def _tail(self) -> str:
        return (self.workdir / "etcd.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


@dataclass
class PatroniNode:
    """One PostgreSQL node under its Patroni: `pg_port` for clients, `api_port` for Patroni's
    REST API, its data folder and logs in `workdir` (owned by `postgres` when we are root)."""

    name: str
    workdir: Path
    pg_port: int
    api_port: int
    proc: subprocess.Popen[bytes] | None = None
    #: the starts of this node so far
    starts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def config_file(self) -> Path:
        return self.workdir / "patroni.yml"

    @property
    def log_file(self) -> Path:
        return self.workdir / "patroni.log"

    def api(self, path: str) -> tuple[int, Any]:
        return _http_json(f"http://127.0.0.1:{self.api_port}/{path.lstrip('/')}")

    def url(self, database: str = "postgres") -> str:
        """This node alone (a standby: read-only)."""
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{database}"

    def start(self) -> None:
        """Start its Patroni, which starts (or first makes) its PostgreSQL."""
        self.starts += 1
        as_root = os.geteuid() == 0
        self.proc = subprocess.Popen(
            ["patroni", str(self.config_file)],
            user="postgres" if as_root else None,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_file, "ab"),  # noqa: SIM115
            start_new_session=True,  # its group: its pg_basebackup, pg_rewind too
            env=_clean_env(),
            cwd=self.workdir,
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def postmaster_pid(self) -> int | None:
        """The pid in its postmaster.pid if that process is alive, else None."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def kill9(self) -> None:
        """kill -9 of its Patroni (and what Patroni runs: its process group), then of its
        PostgreSQL: the postmaster and every process it started, at once (each backend is a
        process group of its own, so a kill of the postmaster's group would leave them to
        notice its death and end by themselves, answering their clients). Returns once none
        of them is left."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        pid = self.postmaster_pid()
        if pid is not None:
            kill_tree(pid)

    def stop(self) -> None:
        """Patroni's own shutdown (SIGTERM: it stops PostgreSQL with a fast shutdown)."""
        if self.proc is not None:
            _stop(self.proc, timeout=60)
        pid = self.postmaster_pid()  # a PostgreSQL its Patroni could not stop
        if pid is not None:
            kill_tree(pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class PatroniCluster:
    """One etcd and `nodes` Patroni-managed PostgreSQL nodes in `workdir`.

    `logical_slots`: permanent logical replication slots (name → database), made by Patroni
    on the primary once their database exists and kept on the standbys."""

    workdir: Path
    nodes: int = 2
    logical_slots: dict[str, str] = field(default_factory=dict)
    members: list[PatroniNode] = field(default_factory=list, init=False)
    etcd: Etcd = field(init=False)

    def __post_init__(self) -> None:
        ports = quiet_ports(2 + 2 * self.nodes)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self.etcd = Etcd(self.workdir / "etcd", ports[0], ports[1])
        for i in range(self.nodes):
            self.members.append(
                PatroniNode(
                    f"pg{i}",
                    self.workdir / f"pg{i}",
                    pg_port=ports[2 + 2 * i],
                    api_port=ports[3 + 2 * i],
                )
            )

    def __enter__(self) -> PatroniCluster:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the cloud's view ---------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """Every node in one libpq URL: a session opens on whichever is the primary."""
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.members)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    # -- lifetime ------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """etcd, then the first node (it makes the cluster and is its primary), then the
        others, each a standby made from the primary; returns once every standby streams and
        one is the synchronous standby."""
        self.etcd.start()
        for node in self.members:
            self._write_config(node)
        first, *others = self.members
        first.start()
        self.wait_primary(timeout=timeout)
        for node in others:
            node.start()
        self.wait_replicating(timeout=timeout)

    def _write_config(self, node: PatroniNode) -> None:
        node.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(node.workdir, "postgres", "postgres")
        config = node_config(node, etcd=self.etcd.endpoint, logical_slots=self.logical_slots)
        node.config_file.write_text(json.dumps(config, indent=2))  # JSON is YAML
        if os.geteuid() == 0:
            shutil.chown(node.config_file, "postgres", "postgres")

    def start_node(self, node: PatroniNode) -> None:
        """Start a stopped or killed node again: its Patroni rejoins it to the cluster (a
        former primary as a standby, rewound if it had gone ahead)."""
        node.start()

    def kill9(self, node: PatroniNode) -> None:
        node.kill9()

    def stop(self) -> None:
        """Every node (standbys first: the primary does not wait on a departing standby),
        then etcd."""
        primary = self._primary_now()
        for node in sorted(self.members, key=lambda n: n is primary):
            node.stop()
        self.etcd.stop()

    # -- state ---------------------------------------------------------------------------------

    def cluster_state(self) -> list[dict[str, Any]]:
        """The members as Patroni's REST API `/cluster` of any live node lists them."""
        for node in self.members:
            if not node.running():
                continue
            status, body = node.api("cluster")
            if status == 200 and isinstance(body, dict):
                return list(body.get("members", []))
        return []

    def _primary_now(self) -> PatroniNode | None:
        for node in self.members:
            if node.running() and node.api("primary")[0] == 200:
                return node
        return None

    def primary(self) -> PatroniNode:
        node = self._primary_now()
        if node is None:
            raise RuntimeError("no primary now")
        return node

    def wait_primary(
        self, *, besides: PatroniNode | None = None, timeout: float = 120.0
    ) -> tuple[PatroniNode, float]:
        """Until a node other than `besides` is the primary and takes writes; (that node, the
        moment: time.time())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(besides)
            for node in self.members:
                if node is besides or not node.running():
                    continue
                if node.api("primary")[0] == 200 and self._takes_writes(node):
                    return node, time.time()
            time.sleep(0.1)
        raise RuntimeError(f"no primary after {timeout:g} s:\n{self._tails()}")

    @staticmethod
    def _takes_writes(node: PatroniNode) -> bool:
        try:
            with psycopg.connect(
                node.url() + "?target_session_attrs=read-write", connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False

    def wait_replicating(self, timeout: float = 120.0) -> float:
        """Until every running node is in the cluster, each standby streaming from the primary
        and one of them its synchronous standby — both as the primary's PostgreSQL sees its
        standbys (`pg_stat_replication`: Patroni's roles can lag a standby's restart) and as
        Patroni has recorded it in etcd (its `/sync` key, the role `sync_standby`: Patroni
        promotes no other standby, and records one a loop after PostgreSQL made it
        synchronous); returns that moment (time.time())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(None)
            running = {n.name for n in self.members if n.running()}
            members = {m.get("name"): m for m in self.cluster_state()}
            leaders = [m for m in members.values() if m.get("role") == "leader"]
            if running <= members.keys() and len(leaders) == 1:
                leader = next(n for n in self.members if n.name == leaders[0].get("name"))
                standbys = running - {leader.name}
                streaming = _streaming(leader)
                recorded = {
                    str(m.get("name")) for m in members.values() if m.get("role") == "sync_standby"
                }
                if standbys <= streaming.keys() and (
                    not standbys or any(streaming[n] == "sync" and n in recorded for n in standbys)
                ):
                    return time.time()
            time.sleep(0.2)
        raise RuntimeError(
            f"the standbys did not catch up within {timeout:g} s: {self.cluster_state()}\n"
            + self._tails()
        )

    def wait_slots(self, timeout: float = 120.0) -> None:
        """Until every running node has every permanent logical slot (the standbys get theirs
        copied by Patroni, which restarts their PostgreSQL to load it)."""
        deadline = time.monotonic() + timeout
        wanted = set(self.logical_slots)
        while time.monotonic() < deadline:
            self._check_alive(None)
            if all(wanted <= _slots(n) for n in self.members if n.running()):
                return
            time.sleep(0.2)
        have = {n.name: sorted(_slots(n)) for n in self.members}
        raise RuntimeError(f"slots not on every node within {timeout:g} s: {have}\n{self._tails()}")

    def _check_alive(self, besides: PatroniNode | None) -> None:
        for node in self.members:
            if node is besides or node.proc is None:
                continue
            if node.proc.poll() is not None and node.starts and node.proc.returncode != -9:
                raise RuntimeError(
                    f"patroni {node.name} exited {node.proc.returncode}:\n{node.log_tail()}"
                )

    def _tails(self) -> str:
        return "\n".join(f"--- {n.name}:\n{n.log_tail(1500)}" for n in self.members)


def _streaming(primary: PatroniNode) -> dict[str, str]:
    """The standbys that stream from `primary` now: name → their `sync_state`."""
    try:
        with psycopg.connect(primary.url(), connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT application_name, sync_state FROM pg_stat_replication"
                " WHERE state = 'streaming'"
            ).fetchall()
    except psycopg.OperationalError:
        return {}
    return {str(r[0]): str(r[1]) for r in rows}


def _slots(node: PatroniNode) -> set[str]:
    try:
        with psycopg.connect(node.url(), connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'"
            ).fetchall()
    except psycopg.OperationalError:
        return set()
    return {r[0] for r in rows}
