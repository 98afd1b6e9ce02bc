"""`python -m bench`: the alarm path and ingest of the cloud, measured against real servers
started here on loopback, next to the raw broker (and optionally a bare flow) in the same run.

Phases:
1. baseline  – raw Mosquitto throughput (one paho QoS 1 publisher → one paho subscriber) and
               round-trip latency at the alarm phase's rate;
   peer      – (--peer) a bare parse → threshold → republish flow, measured the same way;
2. alarms    – N simulated gateways publish call presses / smoke alarms at a steady rate while
               a signed-in reader holds the live stream (SSE): latency device event → stream;
3. ingest    – events, then telemetry batches, blasted as fast as the publishers can;
               the cloud's processing rate from its own counters; the broker's drop counter;
4. process   – CPU and peak RSS of the cloud (and the other processes) per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import psutil
import yaml

from bench import nodered
from bench.bareflow import OUT_TOPIC
from bench.duty import AlarmStream, ingest_counts, shown_at, sign_in
from bench.load import (
    Gateway,
    blast,
    build_batches,
    build_events,
    connect,
    paced_events,
    paho_client,
    run_id,
    start_gateways,
    wait_acked,
)
from bench.procs import Child, PhaseUse, ProcWatch, python_tool
from bench.sitegen import max_devices_per_gateway, write_site
from bench.stats import LATENCY_HEADERS, fmt, latency_row, ratio, summary_ms, table
from cloud.settings import DEFAULT_RULES
from tests.servers import InfluxDB, Mosquitto, free_port

T = TypeVar("T")
BENCH_USER, BENCH_PASSWORD = "bench", "bench-pass-1"
DROPPED = "$SYS/broker/publish/messages/dropped"
LATENCY_BUDGET_MS = 1000.0
CLOUD_SHARE_BUDGET_MS = 100.0


def say(text: str) -> None:
    print(text, flush=True)


def progress(label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        say(f"  .. {label}: {done:,}/{total:,}")

    return report


# ---- helpers that run beside the main thread -------------------------------------------


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


def wait_flow_ready(port: int, password: str, gateway: Gateway, timeout: float = 60.0) -> None:
    """Publish probe events until the peer's output shows up (its subscription is live)."""
    seen = threading.Event()
    client = paho_client("bench-probe", "cloud", password)
    client.on_message = lambda c, u, m: seen.set()
    connect(client, port)
    client.subscribe(OUT_TOPIC, qos=1)
    device = next(d for d in gateway.spec.devices if d.kind in ("call", "smoke", "gas"))
    deadline = time.monotonic() + timeout
    try:
        while not seen.is_set():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the peer flow gave no output within {timeout}s")
            topic, payload = gateway.event(device, f"probe-{run_id()}", v2=False)
            gateway.send(topic, payload)
            seen.wait(0.5)
        time.sleep(0.5)  # let late probe outputs pass before a measurement starts
    finally:
        client.disconnect()
        client.loop_stop()


# ---- the benchmark ----------------------------------------------------------------------


def write_bench_rules(workdir: Path) -> Path:
    """The default rules, plus a street supervisor for the generated street: the cloud refuses
    a site whose street has no one to escalate to."""
    data = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    data["contacts"] = {"street_supervisors": {"jd-bench": {"name": "值班长", "phone": "138"}}}
    path = workdir / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class Bench:
    def __init__(self, opts: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.opts = opts
        self.stack = stack
        self.workdir = Path(tempfile.mkdtemp(prefix="sc-bench-"))
        if not opts.keep:
            stack.callback(shutil.rmtree, self.workdir, ignore_errors=True)
        self.watch = ProcWatch()
        self.watch.start()
        stack.callback(self.watch.close)
        self.watch.add("bench", os.getpid())
        self.results: dict[str, Any] = {"config": self._config(), "machine": machine()}
        self.usage: dict[str, dict[str, PhaseUse]] = {}
        self.broker = Mosquitto()
        self.passwords: dict[str, str] = {}
        self.cloud_password = ""
        self.gateways: list[Gateway] = []
        self.cloud: Child | None = None
        self.loop: LoopThread | None = None
        self.sys: SysWatch | None = None

    def _config(self) -> dict[str, Any]:
        o = self.opts
        return {
            "gateways": o.gateways,
            "devices_per_gateway": o.devices_per_gateway,
            "seconds": o.seconds,
            "rate": o.rate,
            "store": o.store,
            "raw_count": o.raw_count,
            "events": o.events,
            "batches": o.batches,
            "batch_size": o.batch_size,
            "peer": o.peer,
            "quick": o.quick,
        }

    # ---- servers --------------------------------------------------------------------

    def start_servers(self) -> None:
        o = self.opts
        say(f"work folder {self.workdir}")
        specs = write_site(self.workdir / "site.yaml", o.gateways, o.devices_per_gateway)
        self.specs = specs
        # fill the password file in one go (add_user rewrites it for every call)
        names = ["cloud"] + [s.id for s in specs]
        for name in names[:-1]:
            self.broker.users[name] = f"pw-{name}-{os.urandom(4).hex()}"
        self.broker.add_user(names[-1])
        self.passwords = dict(self.broker.users)
        self.cloud_password = self.passwords["cloud"]
        self.broker.start()
        self.stack.callback(self.broker.cleanup)
        assert self.broker.proc is not None
        self.watch.add("mosquitto", self.broker.proc.pid)
        say(f"mosquitto on 127.0.0.1:{self.broker.port} ({len(names)} users, ACL)")
        if o.store == "influx":
            influx = InfluxDB(self.workdir / "influx")
            influx.start()
            self.stack.callback(influx.stop)
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
        self.stack.callback(self.sys.close)
        self.gateways = start_gateways(specs, self.passwords, self.broker.port)
        for gw in self.gateways:
            self.stack.callback(gw.stop)
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
        self.stack.callback(child.stop)
        self.watch.add("subscriber", child.pid)
        return child

    def phase(self, name: str) -> str:
        self.watch.begin()
        return name

    def phase_end(self, name: str, begun: str) -> None:
        self.usage[name] = self.watch.end()

    # ---- measurements shared by baseline and peers -----------------------------------

    def measure_latency(self, label: str, topic: str) -> dict[str, Any]:
        o = self.opts
        total = max(1, round(o.rate * o.seconds))
        sink = self.sink(f"{label}-latency-sink", topic, total, ids=True)
        say(f"  {label}: {total:,} events at {o.rate:g}/s over {len(self.gateways)} gateways")
        sent = paced_events(
            self.gateways,
            o.rate,
            o.seconds,
            f"{label}-{run_id()}",
            progress(f"{label} sent"),
            v2=False,  # the raw broker and the peers know nothing of the cloud's acks
        )
        result = sink.result(grace=15)
        self.watch.remove("subscriber")
        sink.finish()
        arrivals = dict(result["ids"])
        samples = [arrivals[i] - t for i, t in sent.items() if i in arrivals]
        missing = [i for i in sent if i not in arrivals]
        return {
            "sent": len(sent),
            "received": len(samples),
            "missing": len(missing),
            "missing_ids": missing[:20],
            "latency_ms": summary_ms(samples),
        }

    def measure_throughput(
        self, label: str, topic: str, publishers: Sequence[Gateway], count: int
    ) -> dict[str, Any]:
        sink = self.sink(f"{label}-throughput-sink", topic, count, ids=False)
        say(f"  {label}: blasting {count:,} QoS 1 events from {len(publishers)} publisher(s)")
        messages = build_events(publishers, count, f"{label}-{run_id()}", v2=False)
        started = blast(messages)
        acked = wait_acked(publishers, timeout=300)
        result = sink.result(grace=300)
        self.watch.remove("subscriber")
        sink.finish()
        rate = None
        if result["count"] and result["last"]:
            rate = result["count"] / (result["last"] - started)
        publish_rate = count / (acked - started) if acked else None
        limited = bool(rate and publish_rate and rate >= 0.9 * publish_rate)
        if limited and label.startswith("peer"):
            say(f"  note: {label} kept up with the publishers; its rate is a lower bound")
        return {
            "sent": count,
            "received": result["count"],
            "publish_s": (acked - started) if acked else None,
            "publish_rate": publish_rate,
            "seconds": (result["last"] - started) if result["last"] else None,
            "rate": rate,
            "publisher_limited": limited,
        }

    # ---- phase 1 ------------------------------------------------------------------------

    def baseline(self) -> None:
        say("\n== phase 1: baseline (raw Mosquitto, paho QoS 1 both sides, TCP_NODELAY)")
        begun = self.phase("baseline")
        drop0 = self.sys.read() if self.sys else None
        tput = self.measure_throughput(
            "raw", "sc/v1/+/event", self.gateways[:1], self.opts.raw_count
        )
        lat = self.measure_latency("raw", "sc/v1/+/event")
        drop1 = self.sys.read() if self.sys else None
        self.phase_end("baseline", begun)
        self.results["baseline"] = {
            "throughput": tput,
            "latency": lat,
            "dropped_before": drop0,
            "dropped_after": drop1,
        }
        say(
            table(
                "Baseline: raw broker throughput (one publisher → one subscriber)",
                ["messages", "received", "publisher msg/s", "end-to-end msg/s", "dropped"],
                [
                    [
                        tput["sent"],
                        tput["received"],
                        tput["publish_rate"],
                        tput["rate"],
                        _delta(drop0, drop1),
                    ]
                ],
            )
        )
        say(
            table(
                f"Baseline: raw round trip at {self.opts.rate:g}/s (publish → subscriber)",
                [*LATENCY_HEADERS, "missing"],
                [[*latency_row("raw broker", lat["latency_ms"]), lat["missing"]]],
            )
        )

    # ---- peer ---------------------------------------------------------------------------

    def peers(self) -> None:
        kinds = {"python": ["python"], "node-red": ["node-red"], "both": ["python", "node-red"]}
        self.results["peers"] = {}
        for kind in kinds[self.opts.peer] if self.opts.peer else []:
            self.peer(kind)

    def peer(self, kind: str) -> None:
        say(f"\n== peer: bare flow ({kind}): parse → threshold → republish, QoS 1, TCP_NODELAY")
        if kind == "python":
            child = Child(
                "bareflow",
                python_tool(
                    "bench.bareflow",
                    "--port",
                    str(self.broker.port),
                    "--user",
                    "cloud",
                    "--password",
                    self.cloud_password,
                ),
                self.workdir / "bareflow.log",
            )
            child.start()
        else:
            nodered.install(self.workdir / "npm.log")
            cmd = nodered.write_userdir(
                self.workdir / "node-red",
                broker_port=self.broker.port,
                ui_port=free_port(),
                user="cloud",
                password=self.cloud_password,
            )
            child = Child("node-red", cmd, self.workdir / "node-red.log")
            child.start(ready=r"Started flows|Server now running", timeout=60)
        self.stack.callback(child.stop)
        name = f"peer-{kind}"
        self.watch.add(name, child.pid)
        try:
            wait_flow_ready(self.broker.port, self.cloud_password, self.gateways[0])
            begun = self.phase(name)
            drop0 = self.sys.read() if self.sys else None
            lat = self.measure_latency(name, OUT_TOPIC)
            tput = self.measure_throughput(name, OUT_TOPIC, self.gateways, self.opts.events)
            drop1 = self.sys.read() if self.sys else None
            self.phase_end(name, begun)
        finally:
            child.stop()
            self.watch.remove(name)
        self.results["peers"][kind] = {
            "throughput": tput,
            "latency": lat,
            "dropped_before": drop0,
            "dropped_after": drop1,
        }
        say(
            table(
                f"Peer ({kind}): throughput, {len(self.gateways)} publishers → flow → subscriber",
                ["events", "alarms out", "publisher msg/s", "alarms/s", "dropped"],
                [
                    [
                        tput["sent"],
                        tput["received"],
                        tput["publish_rate"],
                        tput["rate"],
                        _delta(drop0, drop1),
                    ]
                ],
            )
        )
        say(
            table(
                f"Peer ({kind}): latency at {self.opts.rate:g}/s (publish → alarm out received)",
                [*LATENCY_HEADERS, "missing"],
                [[*latency_row(f"bare flow ({kind})", lat["latency_ms"]), lat["missing"]]],
            )
        )

    # ---- the cloud ----------------------------------------------------------------------

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
        self.stack.callback(self.cloud.stop)
        assert self.cloud.reader is not None
        self.cloud.reader.wait_for(r"^ingest connected", 60)  # what we publish reaches it
        self.cloud_url = match.group(1)
        self.watch.add("cloud", self.cloud.pid)
        say(f"cloud pid {self.cloud.pid}, duty room {self.cloud_url}, store {self.telemetry_url}")
        self.loop = LoopThread()
        self.stack.callback(self.loop.close)
        self.http = self.loop.run(sign_in(self.cloud_url, BENCH_USER, BENCH_PASSWORD))
        self.stream = AlarmStream(self.http)
        self.loop.loop.call_soon_threadsafe(self.stream.start)
        self.stack.callback(lambda: self.loop and self.loop.run(self.stream.stop(), 10))
        deadline = time.monotonic() + 30
        while self.stream.snapshots == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no live stream snapshot: {self.stream.errors}")
            time.sleep(0.05)

    def counts(self) -> dict[str, int]:
        assert self.loop is not None
        return self.loop.run(ingest_counts(self.http))

    # ---- phase 2 ------------------------------------------------------------------------

    def alarms(self) -> None:
        o = self.opts
        say(
            f"\n== phase 2: alarm latency, {len(self.gateways)} gateways, {o.rate:g} events/s "
            f"for {o.seconds:g}s, reader on GET /api/alarms/stream"
        )
        begun = self.phase("alarms")
        before = self.counts()
        messages, with_pushed = self.stream.messages, self.stream.with_pushed_at
        order: dict[str, list[str]] = {}
        sent = paced_events(
            self.gateways,
            o.rate,
            o.seconds,
            f"al-{run_id()}",
            progress("events sent"),
            order=order,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(i in self.stream.arrivals for i in (ids[-1] for ids in order.values())):
                break
            time.sleep(0.05)
        after = self.counts()
        self.phase_end("alarms", begun)
        own = dict(self.stream.arrivals)
        arrivals = shown_at(own, order)
        received_at, new_alarms = self._cloud_times(sent)
        e2e = [arrivals[i] - t for i, t in sent.items() if i in arrivals]
        share = [arrivals[i] - received_at[i] for i in sent if i in arrivals and i in received_at]
        transport = [received_at[i] - t for i, t in sent.items() if i in received_at]
        pushed = [p - r for r, s, p in new_alarms if p is not None]
        stored = [s - r for r, s, p in new_alarms]
        missing = [i for i in sent if i not in arrivals]
        d = _deltas(before, after)
        result: dict[str, Any] = {
            "sent": len(sent),
            "received": len(e2e),
            "missing": len(missing),
            "missing_ids": missing[:20],
            # shown only through a later state of their alarm (one message per alarm per batch)
            "coalesced": sum(1 for i in sent if i in arrivals and i not in own),
            "ingest_events": d.get("events", 0),
            "ingest_duplicates": d.get("duplicates", 0),
            "rejected": {k: v for k, v in d.items() if k.startswith("rejected.") and v},
            "stream_messages_with_pushed_at": self.stream.with_pushed_at - with_pushed,
            "stream_messages": self.stream.messages - messages,
            "new_alarms": len(new_alarms),
            "alarm_repeats": d.get("alarm_repeats", 0),
            "device_to_stream_ms": summary_ms(e2e),
            "cloud_received_to_stream_ms": summary_ms(share),
            "publish_to_cloud_received_ms": summary_ms(transport),
            "new_alarm_received_to_stored_ms": summary_ms(stored),
            "new_alarm_received_to_pushed_ms": summary_ms(pushed),
        }
        self.results["alarms"] = result
        say(
            table(
                f"Alarm latency at {o.rate:g} events/s ({len(self.gateways)} gateways)",
                LATENCY_HEADERS,
                [
                    latency_row("(a) publish → SSE received", result["device_to_stream_ms"]),
                    latency_row(
                        "(b) cloud received_at → SSE received",
                        result["cloud_received_to_stream_ms"],
                    ),
                    latency_row(
                        "    publish → cloud received_at", result["publish_to_cloud_received_ms"]
                    ),
                    latency_row(
                        "    new alarms: received_at → stored_at",
                        result["new_alarm_received_to_stored_ms"],
                    ),
                    latency_row(
                        "    new alarms: received_at → pushed_at",
                        result["new_alarm_received_to_pushed_ms"],
                    ),
                ],
            )
        )
        say(
            table(
                "Alarm delivery",
                [
                    "sent",
                    "on the stream",
                    "of which in a later state",
                    "missing",
                    "events stored",
                    "new alarms",
                    "repeats",
                ],
                [
                    [
                        result["sent"],
                        result["received"],
                        result["coalesced"],
                        result["missing"],
                        result["ingest_events"],
                        result["new_alarms"],
                        result["alarm_repeats"],
                    ]
                ],
            )
        )
        say(
            f"  live messages carrying pushed_at: {result['stream_messages_with_pushed_at']:,}"
            f" of {result['stream_messages']:,} (pushed_at above is read from the database)"
        )
        if missing:
            say(f"  MISSING on the stream: {', '.join(missing[:20])}")
        if result["rejected"]:
            say(f"  REJECTED by ingest: {result['rejected']}")

    def _cloud_times(
        self, sent: dict[str, float]
    ) -> tuple[dict[str, float], list[tuple[float, float, float | None]]]:
        """Per event the cloud's `received_at` (events table), and for alarms first raised by
        these events (received_at, stored_at, pushed_at), read from the cloud's database."""
        db = sqlite3.connect(f"file:{self.workdir / 'cloud.db'}?mode=ro", uri=True, timeout=30)
        try:
            received = {
                row[0]: row[1]
                for row in db.execute("SELECT id, received_at FROM events")
                if row[0] in sent
            }
            alarms = [
                (row[1], row[2], row[3])
                for row in db.execute(
                    "SELECT first_event_id, received_at, stored_at, pushed_at FROM alarms"
                )
                if row[0] in sent
            ]
        finally:
            db.close()
        return received, alarms

    # ---- phase 3 ------------------------------------------------------------------------

    def ingest(self) -> None:
        o = self.opts
        say("\n== phase 3: ingest throughput (QoS 1 blasts from every gateway)")
        drop0 = self.sys.read() if self.sys else None
        begun = self.phase("ingest-events")
        prefix = f"ev-{run_id()}"
        connects = self.stream.connects
        order: dict[str, list[str]] = {}
        events = self._blast(
            "events",
            build_events(self.gateways, o.events, prefix, order=order),
            done=lambda d: d.get("events", 0) + d.get("duplicates", 0),
        )
        self.phase_end("ingest-events", begun)
        lasts = [ids[-1] for ids in order.values()]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(i in self.stream.arrivals for i in lasts):
            time.sleep(0.05)
        events["stream_received"] = len(shown_at(dict(self.stream.arrivals), order))
        events["stream_reconnects"] = self.stream.connects - connects
        begun = self.phase("ingest-telemetry")
        batches, samples = build_batches(self.gateways, o.batches, o.batch_size, f"tm-{run_id()}")
        telemetry = self._blast(
            "telemetry batches",
            batches,
            done=lambda d: d.get("telemetry_batches", 0) + d.get("duplicates", 0),
            then=("samples_stored", samples),
        )
        self.phase_end("ingest-telemetry", begun)
        drop1 = self.sys.read() if self.sys else None
        telemetry["readings"] = o.batches * o.batch_size
        telemetry["samples"] = samples
        elapsed = telemetry["seconds"]
        telemetry["readings_per_s"] = telemetry["readings"] / elapsed if elapsed else None
        stored_s = telemetry.get("stored_seconds")
        telemetry["samples_per_s"] = samples / stored_s if stored_s else None
        self.results["ingest"] = {
            "events": events,
            "telemetry": telemetry,
            "dropped_before": drop0,
            "dropped_after": drop1,
            "broker_log_drop_lines": self.broker.log_text().count("are being dropped"),
        }
        raw = self.results["baseline"]["throughput"]["rate"]
        rows = [
            [
                "events (call/smoke)",
                events["sent"],
                events["processed"],
                events["publish_rate"],
                events["rate"],
                "–",
                fmt(ratio(events["rate"], raw), 3),
            ],
            [
                f"telemetry ({o.batch_size} readings/batch)",
                telemetry["sent"],
                telemetry["processed"],
                telemetry["publish_rate"],
                telemetry["rate"],
                telemetry["readings_per_s"],
                fmt(ratio(telemetry["rate"], raw), 3),
            ],
        ]
        say(
            table(
                "Ingest throughput (cloud counters, GET /api/stats)",
                [
                    "messages",
                    "sent",
                    "processed",
                    "publisher msg/s",
                    "cloud msg/s",
                    "readings/s",
                    "÷ raw broker",
                ],
                rows,
            )
        )
        say(
            table(
                "Telemetry store and broker",
                [
                    "samples",
                    "stored/s (to last flush)",
                    "blast alarms on the stream",
                    "stream reconnects",
                    "dropped",
                ],
                [
                    [
                        samples,
                        telemetry["samples_per_s"],
                        f"{events['stream_received']:,}/{events['sent']:,}",
                        events["stream_reconnects"],
                        _delta(drop0, drop1),
                    ]
                ],
            )
        )

    def _blast(
        self,
        label: str,
        messages: list[tuple[Gateway, str, bytes]],
        done: Callable[[dict[str, int]], int],
        then: tuple[str, int] | None = None,
        stall_s: float = 30.0,
    ) -> dict[str, Any]:
        total = len(messages)
        before = self.counts()
        say(f"  blasting {total:,} {label} ...")
        started = blast(messages)
        acked_at: float | None = None
        finished: float | None = None
        stored_at: float | None = None
        last_value, last_change, next_report = -1, time.monotonic(), time.monotonic() + 2
        while True:
            if acked_at is None and all(gw.acked >= gw.published for gw in self.gateways):
                acked_at = time.time()
            d = _deltas(before, self.counts())
            value = done(d)
            now = time.time()
            if finished is None and value >= total:
                finished = now
            if then is not None and stored_at is None and d.get(then[0], 0) >= then[1]:
                stored_at = now
            if finished is not None and acked_at is not None and (then is None or stored_at):
                break
            if value != last_value:
                last_value, last_change = value, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                say(f"  !! {label}: no progress for {stall_s:g}s at {value:,}/{total:,}")
                break
            if time.monotonic() >= next_report:
                say(
                    f"  .. {label} processed {value:,}/{total:,} ({value / (now - started):,.0f}/s)"
                )
                next_report += 2
            time.sleep(0.1)  # each poll costs the cloud a session check; keep them few
        d = _deltas(before, self.counts())
        seconds = (finished - started) if finished else None
        out: dict[str, Any] = {
            "sent": total,
            "processed": done(d),
            "publish_rate": total / (acked_at - started) if acked_at else None,
            "seconds": seconds,
            "rate": total / seconds if seconds else None,
            "counters": d,
        }
        if then is not None:
            out["stored_seconds"] = (stored_at - started) if stored_at else None
        if acked_at and finished and finished - acked_at < 0.05 * (finished - started):
            out["publisher_limited"] = True
        return out

    # ---- phase 4 and the summary --------------------------------------------------------

    def process_table(self) -> None:
        rows = []
        procs = sorted({name for use in self.usage.values() for name in use})
        for phase, use in self.usage.items():
            for name in procs:
                if name in use:
                    u = use[name]
                    rows.append([phase, name, u.wall_s, u.cpu_s, u.core_pct, u.peak_rss_mb])
        peak = {name: rss / 2**20 for name, rss in self.watch.peak_rss.items()}
        self.results["process"] = {
            "phases": {
                phase: {
                    name: {
                        "wall_s": u.wall_s,
                        "cpu_s": u.cpu_s,
                        "core_pct": u.core_pct,
                        "peak_rss_mb": u.peak_rss_mb,
                    }
                    for name, u in use.items()
                }
                for phase, use in self.usage.items()
            },
            "peak_rss_mb": peak,
        }
        say("\n== phase 4: processes (psutil; CPU = user + system seconds)")
        say(
            table(
                "CPU and memory per phase",
                ["phase", "process", "wall s", "CPU s", "% of one core", "peak RSS MB"],
                rows,
            )
        )
        say(f"\n  cloud peak RSS over the whole run: {fmt(peak.get('cloud'))} MB")

    def summary(self) -> int:
        r = self.results
        al = r["alarms"]
        ing = r["ingest"]
        base = r["baseline"]
        a = al["device_to_stream_ms"]
        b = al["cloud_received_to_stream_ms"]
        cloud_use = {p: u["cloud"] for p, u in r["process"]["phases"].items() if "cloud" in u}
        checks = {
            "p99 device event → live stream < 1 s": a["p99"] is not None
            and a["p99"] < LATENCY_BUDGET_MS,
            "p99 cloud share (received_at → stream) < 100 ms": b["p99"] is not None
            and b["p99"] < CLOUD_SHARE_BUDGET_MS,
            "no alarm missing on the live stream": al["missing"] == 0,
            "broker dropped nothing": _delta(ing["dropped_before"], ing["dropped_after"]) == 0
            and _delta(base["dropped_before"], base["dropped_after"]) == 0,
            "nothing rejected by ingest": not al["rejected"]
            and not any(
                v for k, v in ing["events"]["counters"].items() if k.startswith("rejected.")
            )
            and not any(
                v for k, v in ing["telemetry"]["counters"].items() if k.startswith("rejected.")
            ),
        }
        raw_rate = base["throughput"]["rate"]
        summary: dict[str, Any] = {
            "raw_broker_msgs_per_s": raw_rate,
            "raw_latency_ms": base["latency"]["latency_ms"],
            "alarm_latency_ms": a,
            "cloud_share_ms": b,
            "alarms_sent": al["sent"],
            "alarms_missing": al["missing"],
            "cloud_events_per_s": ing["events"]["rate"],
            "cloud_batches_per_s": ing["telemetry"]["rate"],
            "cloud_readings_per_s": ing["telemetry"]["readings_per_s"],
            "cloud_samples_stored_per_s": ing["telemetry"]["samples_per_s"],
            "cloud_events_vs_raw": ratio(ing["events"]["rate"], raw_rate),
            "cloud_cpu": cloud_use,
            "cloud_peak_rss_mb": r["process"]["peak_rss_mb"].get("cloud"),
            "checks": checks,
        }
        rows = [
            ["raw broker throughput (1 → 1, QoS 1)", f"{fmt(raw_rate)} msg/s"],
            [
                f"raw broker latency p50 / p99 at {self.opts.rate:g}/s",
                _p50_p99(base["latency"]["latency_ms"]),
            ],
        ]
        for kind, peer in r.get("peers", {}).items():
            p_rate = peer["throughput"]["rate"]
            summary[f"peer_{kind}_alarms_per_s"] = p_rate
            summary[f"peer_{kind}_latency_ms"] = peer["latency"]["latency_ms"]
            summary[f"cloud_events_vs_peer_{kind}"] = ratio(ing["events"]["rate"], p_rate)
            summary[f"cloud_p50_vs_peer_{kind}"] = ratio(
                a["p50"], peer["latency"]["latency_ms"]["p50"]
            )
            summary[f"cloud_p99_vs_peer_{kind}"] = ratio(
                a["p99"], peer["latency"]["latency_ms"]["p99"]
            )
            rows += [
                [f"bare flow ({kind}) throughput", f"{fmt(p_rate)} alarms/s"],
                [f"bare flow ({kind}) latency p50 / p99", _p50_p99(peer["latency"]["latency_ms"])],
            ]
        rows += [
            ["alarm latency (a) publish → SSE, p50 / p95 / p99 / max", _pcts(a)],
            ["cloud share (b) received_at → SSE, p50 / p95 / p99 / max", _pcts(b)],
            [
                "alarms sent / on the stream / missing",
                f"{al['sent']} / {al['received']} / {al['missing']}",
            ],
            ["cloud events/s (blast)", fmt(ing["events"]["rate"])],
            [
                "cloud telemetry batches/s, readings/s",
                f"{fmt(ing['telemetry']['rate'])}, {fmt(ing['telemetry']['readings_per_s'])}",
            ],
            ["cloud events/s ÷ raw broker msg/s", fmt(summary["cloud_events_vs_raw"], 4)],
        ]
        for kind in r.get("peers", {}):
            rows += [
                [
                    f"cloud events/s ÷ bare flow ({kind}) alarms/s",
                    fmt(summary[f"cloud_events_vs_peer_{kind}"], 4),
                ],
                [
                    f"cloud p50 / p99 latency ÷ bare flow ({kind})",
                    f"{fmt(summary[f'cloud_p50_vs_peer_{kind}'], 1)} / "
                    f"{fmt(summary[f'cloud_p99_vs_peer_{kind}'], 1)}",
                ],
            ]
        for phase, use in cloud_use.items():
            rows.append(
                [
                    f"cloud CPU in {phase}",
                    f"{use['cpu_s']:.1f} s = {use['core_pct']:.0f} % of a core",
                ]
            )
        rows.append(["cloud peak RSS", f"{fmt(summary['cloud_peak_rss_mb'])} MB"])
        for name, ok in checks.items():
            rows.append([name, "PASS" if ok else "FAIL"])
        r["summary"] = summary
        say(table("Summary", ["figure", "value"], rows))
        return 0 if all(checks.values()) else 3


def _delta(before: int | None, after: int | None) -> int | None:
    if before is None or after is None:
        return None
    return after - before


def _deltas(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


def _p50_p99(s: dict[str, Any]) -> str:
    return f"{fmt(s['p50'])} / {fmt(s['p99'])} ms"


def _pcts(s: dict[str, Any]) -> str:
    return f"{fmt(s['p50'])} / {fmt(s['p95'])} / {fmt(s['p99'])} / {fmt(s['max'])} ms"


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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the cloud's alarm path and ingest on loopback (see "
        "docs/benchmarks.md).",
    )
    parser.add_argument("--gateways", type=int, default=20, help="simulated gateways (20)")
    parser.add_argument(
        "--devices-per-gateway",
        type=int,
        default=4,
        help=f"devices per gateway, call/smoke/gas/air in turn (4; at most "
        f"{max_devices_per_gateway()})",
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="length of each latency run (30)"
    )
    parser.add_argument(
        "--rate", type=float, default=50.0, help="events/s in the latency runs (50)"
    )
    parser.add_argument("--store", choices=["sqlite", "influx"], default="sqlite")
    parser.add_argument(
        "--raw-count", type=int, default=50000, help="messages in the raw broker blast (50000)"
    )
    parser.add_argument(
        "--events", type=int, default=10000, help="events in the ingest/peer blasts (10000)"
    )
    parser.add_argument(
        "--batches", type=int, default=5000, help="telemetry batches in the ingest blast (5000)"
    )
    parser.add_argument("--batch-size", type=int, default=10, help="readings per batch (10)")
    parser.add_argument(
        "--peer",
        nargs="?",
        const="python",
        choices=["python", "node-red", "both"],
        help="also measure a bare parse → threshold → republish flow (python: aiomqtt; "
        "node-red: a stock Node-RED 4 flow, installed into bench/.node-red)",
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s run with small counts")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument(
        "--profile-cloud",
        type=Path,
        metavar="FILE",
        help="run the cloud under cProfile and write its stats to FILE (slows it down)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder (databases, logs, site file) and print its path",
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.seconds, opts.raw_count, opts.events, opts.batches = 5.0, 3000, 1000, 300
    if opts.gateways < 1 or opts.rate <= 0 or opts.seconds <= 0:
        parser.error("--gateways, --rate and --seconds must be positive")
    if opts.gateways > 9999:
        parser.error("--gateways: at most 9999")
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # also when started in the background, where SIGINT may arrive ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    code = 1
    with contextlib.ExitStack() as stack:
        bench = Bench(opts, stack)
        try:
            bench.start_servers()
            bench.baseline()
            bench.peers()
            bench.start_cloud()
            bench.alarms()
            bench.ingest()
            bench.process_table()
            code = bench.summary()
        except KeyboardInterrupt:
            say("\ninterrupted; stopping every process this run started")
            return 130
        finally:
            say(f"\nstopping (run took {time.monotonic() - started:.0f} s)")
            if opts.json and "summary" in bench.results:
                opts.json.parent.mkdir(parents=True, exist_ok=True)
                opts.json.write_text(json.dumps(bench.results, indent=2, default=str))
                say(f"results written to {opts.json}")
    return code
