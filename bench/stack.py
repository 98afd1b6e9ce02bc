"""The parts of one `python -m bench` run, started on loopback and stopped at its end: the
broker (and InfluxDB), the simulated gateways, the cloud as a subprocess with a signed-in reader
on its live stream, the subscribers that count what the broker delivers, and the watch that
splits each process's CPU and memory by phase."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import psutil
import yaml

from bench.duty import AlarmStream, ingest_counts, sign_in
from bench.load import Gateway, connect, paho_client, start_gateways
from bench.procs import Child, PhaseUse, ProcWatch, python_tool
from bench.report import say
from bench.sitegen import write_site
from cloud.settings import DEFAULT_RULES
from tests.servers import InfluxDB, Mosquitto

T = TypeVar("T")
BENCH_USER, BENCH_PASSWORD = "bench", "bench-pass-1"
DROPPED = "$SYS/broker/publish/messages/dropped"


class LoopThread:
    """An asyncio loop on its own thread, for the live stream and the HTTP API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class SysWatch:
    """Follows the broker's `$SYS/broker/publish/messages/dropped` (as user `cloud`)."""

    def __init__(self, port: int, password: str) -> None:
        self.dropped: int | None = None
        self.client = paho_client("bench-sys", "cloud", password)
        self.client.on_message = self._on_message
        connect(self.client, port)
        self.client.subscribe(DROPPED, qos=0)

    def _on_message(self, c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(ValueError):
            self.dropped = int(message.payload)

    def read(self) -> int | None:
        """The counter after the broker's next $SYS update (sys_interval is 1 s)."""
        time.sleep(1.3)
        return self.dropped

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_bench_rules(workdir: Path) -> Path:
    """The default rules, plus a street supervisor for the generated street: the cloud refuses
    a site whose street has no one to escalate to."""
    data = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    data["contacts"] = {"street_supervisors": {"jd-bench": {"name": "值班长", "phone": "138"}}}
    path = workdir / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class Stack:
    """The servers, gateways and cloud of one run; each is stopped by `exits` when it closes."""

    def __init__(self, opts: argparse.Namespace, exits: contextlib.ExitStack) -> None:
        self.opts = opts
        self.exits = exits
        self.workdir = Path(tempfile.mkdtemp(prefix="sc-bench-"))
        if not opts.keep:
            exits.callback(shutil.rmtree, self.workdir, ignore_errors=True)
        self.watch = ProcWatch()
        self.watch.start()
        exits.callback(self.watch.close)
        self.watch.add("bench", os.getpid())
        self.usage: dict[str, dict[str, PhaseUse]] = {}
        self.broker = Mosquitto()
        self.passwords: dict[str, str] = {}
        self.cloud_password = ""
        self.gateways: list[Gateway] = []
        self.cloud: Child | None = None
        self.loop: LoopThread | None = None
        self.sys: SysWatch | None = None

    def start_servers(self) -> None:
        o = self.opts
        say(f"work folder {self.workdir}")
        specs = write_site(self.workdir / "site.yaml", o.gateways, o.devices_per_gateway)
        # fill the password file in one go (add_user rewrites it for every call)
        names = ["cloud"] + [s.id for s in specs]
        for name in names[:-1]:
            self.broker.users[name] = f"pw-{name}-{os.urandom(4).hex()}"
        self.broker.add_user(names[-1])
        self.passwords = dict(self.broker.users)
        self.cloud_password = self.passwords["cloud"]
        self.broker.start()
        self.exits.callback(self.broker.cleanup)
        assert self.broker.proc is not None
        self.watch.add("mosquitto", self.broker.proc.pid)
        say(f"mosquitto on 127.0.0.1:{self.broker.port} ({len(names)} users, ACL)")
        if o.store == "influx":
            influx = InfluxDB(self.workdir / "influx")
            influx.start()
            self.exits.callback(influx.stop)
            assert influx.proc is not None
            self.watch.add("influxd", influx.proc.pid)
            query = urllib.parse.urlencode({"q": "CREATE DATABASE sc"}).encode()
            with urllib.request.urlopen(f"{influx.url}/query", data=query, timeout=10):
                pass
            self.telemetry_url = f"influx://127.0.0.1:{influx.port}/sc"
            say(f"influxd on 127.0.0.1:{influx.port}")
        else:
            self.telemetry_url = f"sqlite:///{self.workdir / 'telemetry.db'}"
        self.sys = SysWatch(self.broker.port, self.cloud_password)
        self.exits.callback(self.sys.close)
        self.gateways = start_gateways(specs, self.passwords, self.broker.port)
        for gw in self.gateways:
            self.exits.callback(gw.stop)
        say(f"{len(self.gateways)} simulated gateways connected")

    def sink(self, name: str, topic: str, count: int, ids: bool) -> Child:
        args = [
            "--port",
            str(self.broker.port),
            "--user",
            "cloud",
            "--password",
            self.cloud_password,
            "--topic",
            topic,
            "--count",
            str(count),
            "--client-id",
            f"bench-{name}",
        ]
        child = Child(
            name,
            python_tool("bench.rawsub", *args, *(["--ids"] if ids else [])),
            self.workdir / f"{name}.log",
            stdin=True,
        )
        child.start()
        self.exits.callback(child.stop)
        self.watch.add("subscriber", child.pid)
        return child

    def phase(self, name: str) -> str:
        self.watch.begin()
        return name

    def phase_end(self, name: str, begun: str) -> None:
        self.usage[name] = self.watch.end()

    def start_cloud(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SC_CLOUD_")}
        env["SC_CLOUD_RULES_FILE"] = str(write_bench_rules(self.workdir))
        env.update(
            {
                "SC_CLOUD_MQTT_HOST": "127.0.0.1",
                "SC_CLOUD_MQTT_PORT": str(self.broker.port),
                "SC_CLOUD_MQTT_USERNAME": "cloud",
                "SC_CLOUD_MQTT_PASSWORD": self.cloud_password,
                "SC_CLOUD_MQTT_CLIENT_ID": "bench-cloud",
                "SC_CLOUD_DATABASE": str(self.workdir / "cloud.db"),
                "SC_CLOUD_TELEMETRY_URL": self.telemetry_url,
                "SC_CLOUD_SITE_FILE": str(self.workdir / "site.yaml"),
                "SC_CLOUD_WEB_HOST": "127.0.0.1",
                "SC_CLOUD_WEB_PORT": "0",
                "SC_CLOUD_SESSION_SECRET": os.urandom(16).hex(),
                "SC_CLOUD_BOOTSTRAP_USERS": json.dumps({BENCH_USER: ["operator", BENCH_PASSWORD]}),
                "PYTHONUNBUFFERED": "1",
            }
        )
        cmd = [sys.executable, "-m", "cloud"]
        if self.opts.profile_cloud:
            # SIGINT lets `python -m cloud` return normally, so cProfile writes its file
            cmd[1:1] = ["-m", "cProfile", "-o", str(self.opts.profile_cloud.resolve())]
        self.cloud = Child(
            "cloud",
            cmd,
            self.workdir / "cloud.log",
            env=env,
            stop_signal=signal.SIGINT if self.opts.profile_cloud else signal.SIGTERM,
        )
        say("\nstarting the cloud: python -m cloud (subprocess)")
        match = self.cloud.start(ready=r"duty room: (http://\S+)", timeout=90)
        self.exits.callback(self.cloud.stop)
        assert self.cloud.reader is not None
        self.cloud.reader.wait_for(r"^ingest connected", 60)  # what we publish reaches it
        self.cloud_url = match.group(1)
        self.watch.add("cloud", self.cloud.pid)
        say(f"cloud pid {self.cloud.pid}, duty room {self.cloud_url}, store {self.telemetry_url}")
        self.loop = LoopThread()
        self.exits.callback(self.loop.close)
        self.http = self.loop.run(sign_in(self.cloud_url, BENCH_USER, BENCH_PASSWORD))
        self.stream = AlarmStream(self.http)
        self.loop.loop.call_soon_threadsafe(self.stream.start)
        self.exits.callback(lambda: self.loop and self.loop.run(self.stream.stop(), 10))
        deadline = time.monotonic() + 30
        while self.stream.snapshots == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no live stream snapshot: {self.stream.errors}")
            time.sleep(0.05)

    def counts(self) -> dict[str, int]:
        assert self.loop is not None
        return self.loop.run(ingest_counts(self.http))


def machine() -> dict[str, Any]:
    def first_line(cmd: list[str]) -> str | None:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else None

    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mosquitto": first_line(["mosquitto", "-h"]),
        "influxd": first_line(["influxd", "version"]),
        "node": first_line(["node", "--version"]),
        "load_avg_at_start": os.getloadavg(),
    }
