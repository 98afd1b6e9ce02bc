"""Shared by the gateway tests: a `cloud` MQTT client that records, and agent builders."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from contract import topics
from contract.models import Ack, Event, encode, utc_now
from tests.servers import Mosquitto

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = REPO / "firmware_configs" / "sites" / "demo.yaml"


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class CloudClient:
    """Logs in as `cloud`, subscribes (again after every reconnect), keeps every message.

    Like the cloud (docs/protocol.md, "Delivery"), it acknowledges version-2 events on the
    gateway's `cmd/ack` with the highest `seq` up to which it has every event of the boot,
    unless `acks` is off (a cloud that never answers)."""

    def __init__(
        self,
        broker: Mosquitto,
        *filters: str,
        client_id: str | None = None,
        acks: bool = True,
    ):
        self.filters = filters
        self.acks = acks
        self.messages: list[Message] = []
        self._seen: dict[tuple[str, str], set[int]] = {}
        self._upto: dict[tuple[str, str], int] = {}
        self.subscribed = threading.Event()
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-cloud-{os.urandom(4).hex()}",
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set("cloud", broker.users["cloud"])
        # paho annotates the delays int, but any number of seconds works (it only doubles,
        # compares and sleeps them)
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.subscribed.clear()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "cloud client did not subscribe"

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        for topic in self.filters:
            client.subscribe(topic, qos=1)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()
        if self.acks and msg.topic.endswith("/event"):
            self._ack(client, bytes(msg.payload))

    def _ack(self, client: mqtt.Client, payload: bytes) -> None:
        event = Event.model_validate_json(payload)
        if event.v < 2:
            return
        key = (event.gateway, event.boot)
        seen = self._seen.setdefault(key, set())
        seen.add(event.seq)
        upto = self._upto.get(key, 0)
        while upto + 1 in seen:
            upto += 1
        self._upto[key] = upto
        ack = Ack(boot=event.boot, upto=upto, replay=any(s > upto for s in seen), ts=utc_now())
        client.publish(topics.command(event.gateway, "ack"), encode(ack), qos=1)

    def on(self, suffix: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def sent_events(self) -> list[Event]:
        """Every event as it arrived, resent ones included."""
        return [Event.model_validate_json(m.payload) for m in self.on("/event")]

    def events(self) -> list[Event]:
        """Each event once (by id, as the cloud stores them), in the order first seen."""
        unique: dict[str, Event] = {}
        for event in self.sent_events():
            unique.setdefault(event.id, event)
        return list(unique.values())

    def wait(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = check()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n".join(f"{m.topic} {m.payload[:200]!r}" for m in self.messages)
                    raise AssertionError(f"timed out after {timeout}s; messages:\n{seen}")
                self._cond.wait(min(left, 0.05))

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(0.02)


def outbox_rows(path: Path, topic_suffix: str = "/event") -> list[tuple[int, bytes]]:
    """Rows in an agent's outbox file, read from outside (the agent may be writing)."""
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=5)
    try:
        rows = db.execute("SELECT row, topic, payload FROM outbox ORDER BY row").fetchall()
    except sqlite3.OperationalError:  # table not created yet
        return []
    finally:
        db.close()
    return [(row, bytes(payload)) for row, topic, payload in rows if topic.endswith(topic_suffix)]


class AgentProcess:
    """`python -m gateway run …` as a child process, stderr kept in a file."""

    def __init__(self, log: Path, *args: str):
        self.log = log
        self._err = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
        )

    def alive(self) -> bool:
        """True while running; fails the test with its log if it has exited."""
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log_text()}")
        return True

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._err.close()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def clear_retained_status(broker: Mosquitto, *gateways: str) -> None:
    """Remove the retained status a test's agent left on a shared broker (a zero-length
    retained message), so later tests that subscribe to it see only their own."""
    if broker.proc is None or broker.proc.poll() is not None:
        return
    for gateway in gateways:
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-u",
                "cloud",
                "-P",
                broker.users["cloud"],
                "-q",
                "1",
                "-r",
                "-n",
                "-t",
                f"sc/v1/{gateway}/status",
            ],
            check=True,
            timeout=10,
            capture_output=True,
        )
