"""The fuzzer's two gateway accounts on the broker: a publisher that keeps a window of
publishes unanswered (the junk), and the other gateway raising valid smoke alarms."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.fuzz.junk import VALID_GATEWAY, now


class Client:
    """A gateway's MQTT account (paho, QoS 1), keeping at most `window` publishes unanswered."""

    def __init__(self, port: int, user: str, password: str, window: int = 500):
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv311
        )
        self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(100)
        self.connected = threading.Event()
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError(f"{user} could not connect")
        self.window = window
        self._open: deque[mqtt.MQTTMessageInfo] = deque()

    def publish(self, topic: str, payload: bytes) -> None:
        self._open.append(self.client.publish(topic, payload, qos=1))
        while len(self._open) > self.window:
            self._open.popleft().wait_for_publish(60)

    def flush(self) -> None:
        while self._open:
            self._open.popleft().wait_for_publish(60)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class ValidAlarm:
    id: str
    device: str
    published_at: float
    during_flood: bool


class ValidSender:
    """gw-f02 raises a valid smoke alarm every `every_s` (its smoke alarms in turn)."""

    def __init__(self, port: int, password: str, every_s: float, flood: threading.Event):
        self.client = Client(port, VALID_GATEWAY, password, window=10)
        self.every_s = every_s
        self.flood = flood
        self.boot = uuid.uuid4().hex[:16]
        self.sent: list[ValidAlarm] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def send_one(self) -> ValidAlarm:
        n = len(self.sent) + 1
        device = f"smoke-{(n - 1) % 8 + 1:02d}"
        alarm_id = str(uuid.uuid4())
        body = {
            "v": 1,
            "id": alarm_id,
            "gateway": VALID_GATEWAY,
            "device": device,
            "boot": self.boot,
            "seq": n,
            "ts": now(),
            "kind": "smoke",
            "type": "alarm",
        }
        alarm = ValidAlarm(alarm_id, device, time.time(), self.flood.is_set())
        self.sent.append(alarm)
        self.client.publish(f"sc/v1/{VALID_GATEWAY}/event", json.dumps(body).encode())
        return alarm

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.send_one()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.flush()
        self.client.close()
