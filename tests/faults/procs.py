"""The real processes of a fault scenario, each started and killed by its own process id:
Mosquitto from the shipped configuration, the cloud (`python -m cloud`) and gateway agents
(`python -m gateway run --simulate`).

Every start of a process is an *incarnation* with its own log file (`cloud-2.log`,
`gw-f01-3.log`), so what a process said before a kill -9 is kept apart from what the next one
says.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.faults.records import Records, SqliteRecords
from tests.servers import REPO

SHIPPED_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
SHIPPED_ACL = REPO / "deploy" / "mosquitto" / "acl"


class ProcessFailed(RuntimeError):
    """A process of the scenario did not start, or died on its own."""


def _kill(proc: subprocess.Popen[bytes] | subprocess.Popen[str], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProcessFailed(f"{what} exited {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise ProcessFailed(f"{what} not listening on {port} after {timeout}s")


def shipped_config(workdir: Path, port: int) -> str:
    """deploy/mosquitto/mosquitto.conf with only its paths and its port changed."""
    text = SHIPPED_CONF.read_text(encoding="utf-8")
    for shipped, ours in (
        ("password_file /etc/mosquitto/sc/passwd", f"password_file {workdir / 'passwd'}"),
        ("acl_file /etc/mosquitto/sc/acl", f"acl_file {workdir / 'acl'}"),
        ("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1"),
        ("persistence_location /var/lib/mosquitto/", f"persistence_location {workdir / 'data'}/"),
        ("/var/log/mosquitto/mosquitto.log", str(workdir / "mosquitto.log")),
    ):
        if shipped not in text:
            raise ValueError(f"{SHIPPED_CONF} no longer has {shipped!r}: update {__name__}")
        text = text.replace(shipped, ours)
    return text


def autosave_interval_s(config: str) -> float | None:
    """The configuration's `autosave_interval` (None if persistence is off)."""
    if not re.search(r"^persistence true$", config, re.M):
        return None
    found = re.search(r"^autosave_interval (\d+)$", config, re.M)
    return float(found.group(1)) if found else 1800.0  # Mosquitto's default


class _Killable:
    """A process of ours, stopped by its own pid: kill -9 (for a broker, nothing saved since
    its last autosave), or a clean stop."""

    proc: subprocess.Popen[Any] | None

    def kill9(self) -> float:
        """kill -9; returns when (time.time()). Down until started again."""
        assert self.proc is not None
        _kill(self.proc, signal.SIGKILL)
        self.proc = None
        return time.time()

    def stop(self) -> None:
        if self.proc is not None:
            _kill(self.proc, signal.SIGTERM)


class ShippedBroker(_Killable):
    """Mosquitto run from the shipped configuration (persistence on, its autosave interval, the
    shipped ACL, one account per gateway and the cloud's), on a loopback port. Its persistence
    folder survives kill -9 and restarts, as /var/lib/mosquitto does on a real box."""

    def __init__(self, workdir: Path, accounts: Mapping[str, str], port: int):
        self.workdir = workdir
        self.accounts = dict(accounts)
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.time() of the newest start (listening)
        self._log_mark = 0  # the log's size at the newest start
        self.config = shipped_config(workdir, port)
        self.autosave_s = autosave_interval_s(self.config)
        self._prepare()

    def _prepare(self) -> None:
        # Started as root, Mosquitto drops to user `mosquitto`: it must read and write here.
        self.workdir.chmod(0o755)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        passwd = self.workdir / "passwd"
        passwd.write_text("")
        for name, password in self.accounts.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(passwd), name, password],
                check=True,
                capture_output=True,
            )
        (self.workdir / "acl").write_text(SHIPPED_ACL.read_text(encoding="utf-8"))
        log = self.workdir / "mosquitto.log"
        log.touch()
        for path in (passwd, self.workdir / "acl"):
            path.chmod(0o644)
        log.chmod(0o666)
        if os.geteuid() == 0:
            import pwd

            try:
                user = pwd.getpwnam("mosquitto")
            except KeyError:
                pass
            else:
                os.chown(data, user.pw_uid, user.pw_gid)
        (self.workdir / "mosquitto.conf").write_text(self.config)

    def start(self) -> float:
        """Start it and wait until it listens; returns that moment (time.time())."""
        self._log_mark = (self.workdir / "mosquitto.log").stat().st_size
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.workdir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_listening(self.port, self.proc, "mosquitto", 15)
        self.started_at = time.time()
        return self.started_at

    def connects(self, user: str) -> int:
        """How often `user` has connected since the newest start (the shipped configuration
        logs connections)."""
        with (self.workdir / "mosquitto.log").open("rb") as log:
            log.seek(self._log_mark)
            return log.read().decode(errors="replace").count(f" as {user} (")


class _Lines:
    """A child's stdout, read on a thread so the pipe never fills."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._proc = proc
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                return None
            if found := re.search(pattern, line):
                return found
        return None


CLOUD_USER = ("op", "operator", "faults-op-pass-1")  # name, role, password of the duty user


class CloudProcess(_Killable):
    """`python -m cloud` with its settings in SC_CLOUD_* (cloud/settings.py); its telemetry store
    is a file in the work folder, and so is its database unless `records` names another (a
    PostgreSQL server's), all kept across restarts."""

    def __init__(
        self,
        workdir: Path,
        *,
        broker_port: int,
        password: str,
        site_file: Path,
        records: Records | None = None,
        extra_env: Mapping[str, str] | None = None,
        run_in: Sequence[str] = (),
    ):
        self.workdir = workdir
        #: a command prefix that runs it elsewhere (a network namespace: `ip netns exec NS`)
        self.run_in = list(run_in)
        #: its database, read from outside
        self.records: Records = records or SqliteRecords(workdir / "cloud.db")
        name, role, user_password = CLOUD_USER
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SC_CLOUD_")}
        self.env.update(
            {
                "SC_CLOUD_MQTT_HOST": "127.0.0.1",
                "SC_CLOUD_MQTT_PORT": str(broker_port),
                "SC_CLOUD_MQTT_USERNAME": "cloud",
                "SC_CLOUD_MQTT_PASSWORD": password,
                "SC_CLOUD_DATABASE": self.records.setting,
                "SC_CLOUD_TELEMETRY_URL": f"sqlite:///{workdir / 'telemetry.db'}",
                "SC_CLOUD_SITE_FILE": str(site_file),
                "SC_CLOUD_WEB_HOST": "127.0.0.1",
                "SC_CLOUD_WEB_PORT": "0",
                "SC_CLOUD_SESSION_SECRET": os.urandom(16).hex(),
                "SC_CLOUD_BOOTSTRAP_USERS": json.dumps({name: [role, user_password]}),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.logs: list[Path] = []

    @property
    def database(self) -> Path:
        """Its SQLite file (when it runs on SQLite)."""
        assert isinstance(self.records, SqliteRecords), "this cloud runs on PostgreSQL"
        return self.records.path

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> float:
        """kill -9 of its process group (the cloud and anything it started); returns when
        (time.time()). Down until started again."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        return time.time()

    def start(self, timeout: float = 90.0) -> float:
        """Start it and wait until it serves and consumes; returns that moment (time.time())."""
        log = self.workdir / f"cloud-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [*self.run_in, sys.executable, "-m", "cloud"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,  # its own process group: `kill9` takes all of it
            )
        found = _Lines(self.proc).wait_for(r"duty room: (http\S+)", timeout)
        if found is None:
            _kill(self.proc, signal.SIGTERM)
            tail = log.read_text(errors="replace")[-3000:]
            raise ProcessFailed(f"the cloud did not start within {timeout}s:\n{tail}")
        self.url = found.group(1)
        return time.time()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())


class AgentProcess(_Killable):
    """`python -m gateway run --simulate` for one gateway; its outbox (and pushed-config folder)
    live in its own folder and are kept across restarts (kill -9 included)."""

    def __init__(
        self,
        workdir: Path,
        gateway: str,
        *,
        site_file: Path,
        configs_dir: Path,
        broker_port: int,
        password: str,
        extra_args: Sequence[str] = (),
        run_in: Sequence[str] = (),
    ):
        self.gateway = gateway
        #: a command prefix that runs it elsewhere (a network namespace: `ip netns exec NS`)
        self.run_in = list(run_in)
        self.folder = workdir / gateway
        self.folder.mkdir(exist_ok=True)
        self.outbox = self.folder / "outbox.sqlite3"
        self.site_file = site_file
        self.configs_dir = configs_dir
        self.broker_port = broker_port
        self.password = password
        self.extra_args = list(extra_args)
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self, script: Path | None) -> float:
        """A new boot (same outbox), running `script` on its simulated devices."""
        n = len(self.logs) + 1
        log = self.workdir / f"{self.gateway}-{n}.log"
        self.logs.append(log)
        args = [
            *self.run_in,
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--site",
            str(self.site_file),
            "--gateway",
            self.gateway,
            "--configs-dir",
            str(self.configs_dir),
            "--broker-port",
            str(self.broker_port),
            "--password",
            self.password,
            "--outbox",
            str(self.outbox),
            "--simulate",
            "--log-level",
            "INFO",
            *(["--script", str(script)] if script is not None else []),
            *self.extra_args,
        ]
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                args, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
        return time.time()

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.logs[-1].read_text(errors="replace")[-3000:]
            raise ProcessFailed(f"agent {self.gateway} exited {self.proc.returncode}:\n{tail}")
