"""Real servers for the tests: Mosquitto, InfluxDB and PostgreSQL from Debian, on free loopback
ports.

Each is started in the foreground as a child process and stopped by its own process id.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

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
            stderr=open(log, "wb"),  # noqa: SIM115
        )
        self._wait_ready(log)

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
