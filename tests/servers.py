"""Real servers for the tests: Mosquitto, InfluxDB, PostgreSQL and a RabbitMQ cluster from Debian,
on free loopback ports.

Each is started in the foreground as a child process and stopped by its own process id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.access.rabbit_accounts import gateway_permissions, gateway_topic_permissions
from tests.proc_tree import kill_tree

REPO = Path(__file__).resolve().parent.parent
ACL = REPO / "deploy" / "mosquitto" / "acl"


def free_ports(count: int, *, besides: tuple[int, ...] = ()) -> list[int]:
    """`count` free loopback ports, all different (held open together while chosen) and none
    of `besides`."""
    socks: list[socket.socket] = []
    try:
        ports: list[int] = []
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
            port = int(sock.getsockname()[1])
            if port not in besides:
                ports.append(port)
        return ports
    finally:
        for sock in socks:
            sock.close()


def quiet_ports(count: int) -> list[int]:
    """`count` different loopback ports, free now, chosen below the kernel's ephemeral range.

    For a server that binds its ports many seconds after they were chosen (a RabbitMQ node
    opens its MQTT listener ~10–20 s into its start): a port from the ephemeral range, as
    `free_ports` gives, can meanwhile become the local end of any process's outgoing
    connection (seen: a node's boot failed with `eaddrinuse`). Below that range only explicit
    binds compete."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.SystemRandom()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(10000, max(low, 10001))
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _broker_gid() -> int:
    """The group Mosquitto runs as after dropping root (ours when not root)."""
    try:
        import grp

        return grp.getgrnam("mosquitto").gr_gid if os.geteuid() == 0 else os.getegid()
    except KeyError:
        return os.getegid()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS listener: the CA clients trust, the server's certificate and key."""

    ca: Path
    cert: Path
    key: Path


@dataclass
class Mosquitto:
    """A Mosquitto broker with password and ACL files, like the one we ship.

    With `tls`, a second listener (`tls_port`) speaks MQTT over TLS 1.2+ with those files.
    Mosquitto writes its pid to `pid_file`, which the cloud signals to reload it. With
    `persistent`, sessions and queued messages are saved to `data_dir` every second (and on a
    clean stop), as the shipped config does every 30 s. `extra_conf` is appended to the config
    (a later line wins over the harness's).
    """

    # Mosquitto drops to user `mosquitto` when started as root, so its files live in a
    # world-readable folder of their own rather than under pytest's private tmp folder.
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sc-mosquitto-")))
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    tls: TlsFiles | None = None
    tls_port: int = 0
    persistent: bool = False
    extra_conf: str = ""

    @property
    def passwd_file(self) -> Path:
        return self.workdir / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.workdir / "acl"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "mosquitto.pid"

    def add_user(self, name: str, password: str | None = None) -> str:
        """Add (or change) an account; returns its password. Takes effect on reload()."""
        password = password or f"pw-{name}-{os.urandom(4).hex()}"
        self.users[name] = password
        self._write_passwords()
        return password

    def remove_user(self, name: str) -> None:
        """Take an account away (its password is kept for `add_user(name, password)`). Takes
        effect on reload()."""
        del self.users[name]
        self._write_passwords()

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def _persistence(self) -> str:
        if not self.persistent:
            return "persistence false\n"
        self.data_dir.mkdir(exist_ok=True)
        self.data_dir.chmod(0o777)  # written by user `mosquitto` when started as root
        return f"persistence true\npersistence_location {self.data_dir}/\nautosave_interval 1\n"

    def _write_passwords(self) -> None:
        path = self.workdir / "passwd"
        path.write_text("")
        for name, password in self.users.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(path), name, password],
                check=True,
                capture_output=True,
            )
        path.chmod(0o644)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        if not self.users:
            self.add_user("cloud")
        shutil.copy(ACL, self.workdir / "acl")
        (self.workdir / "acl").chmod(0o644)
        self.port = self.port or free_port()
        log = self.workdir / "mosquitto.log"
        log.touch()
        log.chmod(0o666)
        # written by Mosquitto after it dropped to user `mosquitto` (when started as root)
        self.pid_file.touch()
        self.pid_file.chmod(0o666)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"""pid_file {self.pid_file}
per_listener_settings false
allow_anonymous false
password_file {self.workdir / "passwd"}
acl_file {self.workdir / "acl"}
listener {self.port} 127.0.0.1
set_tcp_nodelay true
max_inflight_messages 1000
max_queued_messages 1000000
max_queued_bytes 0
sys_interval 1
log_dest file {log}
log_type error
log_type warning
log_type notice
"""
            + self._persistence()
            + self._tls_listener()
            + self.extra_conf
        )
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_ready()

    def _tls_listener(self) -> str:
        if self.tls is None:
            return ""
        self.tls_port = self.tls_port or free_ports(1, besides=(self.port,))[0]
        for name, source in (("ca.pem", self.tls.ca), ("cert.pem", self.tls.cert)):
            shutil.copy(source, self.workdir / name)
            (self.workdir / name).chmod(0o644)
        # the key readable by the broker's user only (root here; it drops to `mosquitto`)
        shutil.copy(self.tls.key, self.workdir / "key.pem")
        os.chown(self.workdir / "key.pem", -1, _broker_gid())
        (self.workdir / "key.pem").chmod(0o640)
        return f"""
listener {self.tls_port} 127.0.0.1
cafile {self.workdir / "ca.pem"}
certfile {self.workdir / "cert.pem"}
keyfile {self.workdir / "key.pem"}
tls_version tlsv1.2
"""

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto not listening on {self.port} after {timeout}s")

    def reload(self) -> None:
        """Re-read password and ACL files (SIGHUP) without dropping clients."""
        assert self.proc is not None
        self.proc.send_signal(1)
        time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def kill(self) -> None:
        """kill -9 by its pid, as a crash or a power cut would end it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return (self.workdir / "mosquitto.log").read_text(errors="replace")


@dataclass
class InfluxDB:
    """An InfluxDB 1.x server (Debian package `influxdb`) with everything in a temp folder."""

    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port, rpc = free_ports(2)
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{self.workdir / "meta"}"
[data]
  dir = "{self.workdir / "data"}"
  wal-dir = "{self.workdir / "wal"}"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[logging]
  level = "warn"
"""
        )
        self.proc = subprocess.Popen(
            ["influxd", "run", "-config", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "influxd.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"influxd exited {self.proc.returncode}: "
                    + (self.workdir / "influxd.log").read_text(errors="replace")[-2000:]
                )
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as resp:
                    if resp.status == 204:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("influxd did not answer /ping within 30 s")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


def _postgres_bin() -> Path:
    """The newest Debian PostgreSQL's programs (`initdb`, `postgres`), else those on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: p.parent)
    if found:
        return max(found, key=lambda p: int(p.parent.parent.name)).parent
    on_path = shutil.which("postgres")
    if on_path is None:
        raise RuntimeError("PostgreSQL is not installed (Debian package `postgresql`)")
    return Path(on_path).parent


@dataclass
class PostgreSQL:
    """A PostgreSQL server (Debian package `postgresql`) with its data folder in a temp folder,
    trusting loopback connections as user `postgres`.

    `initdb` refuses root, so as root the server runs as the `postgres` user the package makes
    (its folder then belongs to that user). `fsync=off` unless `durable`: a test's data need not
    survive a power cut, and commits then cost no disk flush. The C locale makes text sort by
    code point, as SQLite's does.
    """

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sc-postgres-")))
    port: int = 0
    durable: bool = False
    #: more server settings (`-c name=value`), e.g. {"wal_level": "logical"}
    settings: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def start(self) -> None:
        bindir = _postgres_bin()
        as_root = os.geteuid() == 0
        user = "postgres" if as_root else None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        if as_root:
            shutil.chown(self.workdir, "postgres", "postgres")
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    *(bindir / "initdb", "-D", self.data_dir, "-U", "postgres", "-A", "trust"),
                    *("--no-sync", "-E", "UTF8", "--locale=C"),
                ],
                user=user,
                check=True,
                capture_output=True,
            )
        self.port = self.port or free_port()
        options = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.workdir),
            "fsync": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "max_connections": "200",
            **self.settings,
        }
        log = self.workdir / "postgres.log"
        self.proc = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(self.data_dir),
                *(arg for name, value in options.items() for arg in ("-c", f"{name}={value}")),
            ],
            user=user,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),  # noqa: SIM115
            start_new_session=True,  # its own process group: `kill9` takes the backends too
        )
        self._wait_ready(log)

    def kill9(self) -> None:
        """kill -9 of the server and every backend process (the process tree), as a crash
        would; `start()` again runs its crash recovery on the same data folder and port."""
        assert self.proc is not None
        kill_tree(self.proc.pid)  # the backends lead process groups of their own
        self.proc.wait(timeout=10)

    def _wait_ready(self, log: Path, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited {self.proc.returncode}: {tail}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.02)
        raise RuntimeError(f"postgres not ready on {self.port} after {timeout}s")

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """A fast shutdown (SIGINT: clients are disconnected, the data is written out)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
#: The policies we ship (amq.topic's alternate exchange), imported on start.
RABBITMQ_DEFINITIONS = REPO / "deploy" / "rabbitmq" / "definitions.json"
#: The plugins every node runs: MQTT for the gateways, the management API through which the
#: cloud keeps the gateway accounts.
RABBITMQ_PLUGINS = ("rabbitmq_mqtt", "rabbitmq_management")
#: The cloud's account: everything on the virtual host.
CLOUD_PERMISSIONS = (".*", ".*", ".*")


def users_definitions(users: dict[str, str]) -> dict[str, Any]:
    """RabbitMQ definitions (as `rabbitmqctl import_definitions` reads them) of these accounts
    (name → password): "cloud" may do everything, any other is a gateway."""
    out: dict[str, list[dict[str, str]]] = {"users": [], "permissions": [], "topic_permissions": []}
    for name, password in users.items():
        salt = os.urandom(4)
        digest = hashlib.sha256(salt + password.encode()).digest()
        out["users"].append(
            {
                "name": name,
                "password_hash": base64.b64encode(salt + digest).decode(),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                # the cloud keeps the gateway accounts through the management API; a
                # gateway made here is one the cloud does not own (no `sc-gateway` tag)
                "tags": "administrator" if name == "cloud" else "",
            }
        )
        configure, write, read = CLOUD_PERMISSIONS if name == "cloud" else gateway_permissions(name)
        out["permissions"].append(
            {"user": name, "vhost": "/", "configure": configure, "write": write, "read": read}
        )
        if name != "cloud":
            topic_write, topic_read = gateway_topic_permissions(name)
            out["topic_permissions"].append(
                {
                    "user": name,
                    "vhost": "/",
                    "exchange": "amq.topic",
                    "write": topic_write,
                    "read": topic_read,
                }
            )
    return dict(out)


@dataclass
class RabbitNode:
    """One node of a `RabbitCluster`: its name, ports, folder and process."""

    index: int
    amqp_port: int
    mqtt_port: int
    dist_port: int
    management_port: int
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    #: the address it listens on (every listener and the Erlang distribution)
    host: str = "127.0.0.1"
    #: the network namespace it runs in (None: this process's); such a node is named by its
    #: address (`rabbit@10.77.0.11`, Erlang long names) and has the standard ports
    netns: str | None = None

    @property
    def name(self) -> str:
        return f"rabbit@{self.host}" if self.netns else f"rabbit{self.index}@localhost"

    def run_in(self) -> list[str]:
        """The command prefix that runs a program in the node's network namespace."""
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    @property
    def pid_file(self) -> Path:
        return self.folder / "rabbit.pid"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"


@dataclass
class RabbitCluster:
    """A RabbitMQ cluster (Debian package `rabbitmq-server`) of `size` nodes on loopback, each
    with its own data folder and free ports for AMQP, MQTT and Erlang distribution, a private
    epmd on a free port (so clusters of other programs on this machine never meet ours), and
    one cookie. Nodes run as this user (root here) started in the foreground and stopped by
    their own process ids, never by name; epmd too.

    `users` are made on start: "cloud" may do everything; any other name is a gateway with
    `gateway_permissions` and per-gateway topic permissions (RabbitMQ's topic authorisation
    on amq.topic). Start-up takes ~25 s on 2 cores (three nodes at once, then joined).
    """

    size: int = 3
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sc-rabbit-")))
    users: dict[str, str] = field(default_factory=dict)
    nodes: list[RabbitNode] = field(default_factory=list)
    epmd_port: int = 0
    epmd: subprocess.Popen[bytes] | None = None
    #: more arguments for every node's Erlang VM (e.g. `-kernel net_ticktime 10`)
    erl_args: str = ""

    def add_user(self, name: str, password: str | None = None) -> str:
        """An account made on start() (or at once, if the cluster runs); its password."""
        password = password or f"pw-{name}-{os.urandom(4).hex()}"
        self.users[name] = password
        if self.nodes and any(n.alive() for n in self.nodes):
            self._make_user(name, password)
        return password

    # ---- lifetime ----------------------------------------------------------------------------

    def start(self) -> None:
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise RuntimeError("RabbitMQ is not installed (Debian package `rabbitmq-server`)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Erlang wants the cookie private to its user; `rabbitmqctl` reads it from $HOME too
        cookie = self.workdir / ".erlang.cookie"
        cookie.write_text(os.urandom(16).hex())
        cookie.chmod(0o400)
        self.nodes = self._make_nodes()
        for node in self.nodes:
            self._prepare(node)
        try:
            for node in self.nodes:
                self.start_node(node, wait=False)
            for node in self.nodes:
                self.wait_node(node)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                self.ctl(node, "stop_app")
                self.ctl(node, "join_cluster", first.name)
                self.ctl(node, "start_app")
            shipped = json.loads(RABBITMQ_DEFINITIONS.read_text(encoding="utf-8"))
            self.import_definitions({**shipped, **users_definitions(self.users)})
        except BaseException:
            self.stop()
            raise

    def _make_nodes(self) -> list[RabbitNode]:
        """The nodes on loopback, each with quiet ports of its own, and the private epmd."""
        ports = quiet_ports(1 + 4 * self.size)
        self.epmd_port = ports[0]
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self._env(),
        )
        return [
            RabbitNode(
                index=i + 1,
                amqp_port=ports[1 + 4 * i],
                mqtt_port=ports[2 + 4 * i],
                dist_port=ports[3 + 4 * i],
                management_port=ports[4 + 4 * i],
                folder=self.workdir / f"rabbit{i + 1}",
            )
            for i in range(self.size)
        ]

    def _env(self, node: RabbitNode | None = None) -> dict[str, str]:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(self.workdir),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "LC_ALL": "C.UTF-8",
        }
        if any(n.netns for n in self.nodes):  # named by address: Erlang long names
            env["RABBITMQ_USE_LONGNAME"] = "true"
        if node is not None:
            interface = "{" + node.host.replace(".", ",") + "}"
            env.update(
                {
                    "RABBITMQ_NODENAME": node.name,
                    "RABBITMQ_NODE_IP_ADDRESS": node.host,
                    "RABBITMQ_NODE_PORT": str(node.amqp_port),
                    "RABBITMQ_DIST_PORT": str(node.dist_port),
                    "RABBITMQ_CONFIG_FILE": str(node.folder / "rabbitmq.conf"),
                    "RABBITMQ_MNESIA_BASE": str(node.folder / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(node.folder / "log"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.folder / "enabled_plugins"),
                    "RABBITMQ_PID_FILE": str(node.pid_file),
                    "RABBITMQ_CONF_ENV_FILE": str(node.folder / "rabbitmq-env.conf"),
                    # `exec erl`: the process we start is the node itself (its pid is ours)
                    "RUNNING_UNDER_SYSTEMD": "1",
                    # distribution (clustering) on the node's address only, like the other
                    # listeners
                    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": " ".join(
                        (f"-kernel inet_dist_use_interface {interface}", self.erl_args)
                    ).strip(),
                }
            )
        return env

    def _prepare(self, node: RabbitNode) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        (node.folder / "rabbitmq-env.conf").write_text("")
        (node.folder / "enabled_plugins").write_text(f"[{','.join(RABBITMQ_PLUGINS)}].\n")
        (node.folder / "rabbitmq.conf").write_text(
            f"""listeners.tcp.default = {node.host}:{node.amqp_port}
mqtt.listeners.tcp.default = {node.host}:{node.mqtt_port}
mqtt.allow_anonymous = false
mqtt.vhost = /
mqtt.exchange = amq.topic
management.tcp.ip = {node.host}
management.tcp.port = {node.management_port}
loopback_users = none
cluster_partition_handling = pause_minority
log.file.level = warning
log.console = false
"""
        )

    def start_node(self, node: RabbitNode, *, wait: bool = True) -> float:
        """Start (again) one node, in its own data folder; with `wait`, until it runs
        (rejoining its cluster). Returns when it was started (time.time())."""
        node.pid_file.unlink(missing_ok=True)
        node.proc = subprocess.Popen(
            [*node.run_in(), str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self._env(node),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(node.folder / "stderr.log", "ab"),  # noqa: SIM115
            cwd=node.folder,
        )
        started = time.time()
        if wait:
            self.wait_node(node)
        return started

    def wait_node(self, node: RabbitNode, timeout: float = 120.0) -> None:
        """Until the node's application runs (`rabbitmqctl wait` on its pid file)."""
        deadline = time.monotonic() + timeout
        while not node.pid_file.exists():
            if not node.alive():
                raise RuntimeError(f"{node.name} exited: {self._tail(node)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} wrote no pid file in {timeout:g} s")
            time.sleep(0.05)
        self.ctl(node, "wait", "--timeout", str(int(timeout)), str(node.pid_file))

    def ctl(self, node: RabbitNode, *args: str, timeout: float = 130.0) -> str:
        """`rabbitmqctl -n NODE ARGS…` (the real one: /usr/sbin's wrapper switches user)."""
        done = subprocess.run(
            [*self.clients_run_in(), str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node.name, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {node.name} failed: {done.stderr.strip()}"
            )
        return done.stdout

    def clients_run_in(self) -> list[str]:
        """The command prefix that runs a client (`rabbitmqctl`, the cloud, an agent) where it
        reaches every node."""
        return []

    def any_running(self) -> RabbitNode:
        for node in self.nodes:
            if node.alive():
                return node
        raise RuntimeError("no node of the cluster is running")

    def _make_user(self, name: str, password: str) -> None:
        self.import_definitions(users_definitions({name: password}))

    def import_definitions(self, definitions: dict[str, Any]) -> None:
        """Users, permissions, policies… in one `rabbitmqctl import_definitions` (each call of
        the CLI costs an Erlang start-up, ~1 s)."""
        path = self.workdir / f"definitions-{os.urandom(4).hex()}.json"
        path.write_text(json.dumps(definitions))
        try:
            self.ctl(self.any_running(), "import_definitions", str(path))
        finally:
            path.unlink(missing_ok=True)

    def _tail(self, node: RabbitNode) -> str:
        text = (node.folder / "stderr.log").read_text(errors="replace")
        for log in sorted((node.folder / "log").glob("*.log")):
            text += log.read_text(errors="replace")
        return text[-2000:]

    # ---- faults ------------------------------------------------------------------------------

    def kill9(self, node: RabbitNode) -> float:
        """kill -9 of one node by its pid, as a crash or a power cut would end it; when
        (time.time())."""
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(timeout=10)
        return time.time()

    def node_of(self, port: int, host: str | None = None) -> RabbitNode:
        """The node listening on this AMQP or MQTT port (at this address)."""
        for node in self.nodes:
            if port in (node.amqp_port, node.mqtt_port) and host in (None, node.host):
                return node
        raise KeyError(port)

    def queue_leader(self, queue: str, vhost: str = "/") -> RabbitNode:
        """The node that leads a quorum queue now."""
        out = self.ctl(
            self.any_running(),
            "list_queues",
            "-p",
            vhost,
            "name",
            "leader",
            "--no-table-headers",
            "--quiet",
        )
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                for node in self.nodes:
                    if node.name == parts[1]:
                        return node
        raise KeyError(f"no quorum queue {queue!r} with a leader: {out!r}")

    def heal(self) -> None:
        """Start again every node that is not running (after a test that killed one), and wait
        until each runs."""
        for node in self.nodes:
            if not node.alive():
                self.start_node(node)

    # ---- the end -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Every node (SIGTERM: a clean stop), then epmd — each by its own pid."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(timeout=10)
        if self.epmd is not None:
            _stop(self.epmd)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
