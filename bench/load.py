"""Simulated gateways: one paho-mqtt client each, logged in as its gateway user, publishing
contract-valid events and telemetry batches (built with the contract's own models)."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.sitegen import BenchDevice, BenchGateway
from contract import topics
from contract.models import (
    Event,
    EventType,
    GatewayState,
    Kind,
    Reading,
    Status,
    Telemetry,
    Values,
    encode,
    utc_now,
)

HOST = "127.0.0.1"


def nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """paho leaves Nagle's algorithm on; every client of the benchmark turns it off."""
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def paho_client(client_id: str, user: str, password: str) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set(user, password)
    client.on_socket_open = nodelay
    return client


def connect(client: mqtt.Client, port: int, timeout: float = 10.0) -> None:
    """Connect and start the network thread; raises if the broker refuses."""
    ready = threading.Event()
    outcome: list[Any] = []

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.append(reason)
        ready.set()

    client.on_connect = on_connect
    client.connect(HOST, port, keepalive=30)
    client.loop_start()
    if not ready.wait(timeout):
        raise RuntimeError(f"no CONNACK from the broker within {timeout}s")
    if outcome[0].is_failure:
        raise RuntimeError(f"broker refused the connection: {outcome[0]}")


_EVENT_TYPES = {"call": EventType.PRESS, "smoke": EventType.ALARM, "gas": EventType.ALARM}


@dataclass
class Gateway:
    """One simulated gateway: its MQTT session, boot id and event sequence."""

    spec: BenchGateway
    password: str
    port: int
    boot: str = field(default_factory=lambda: "bench" + os.urandom(4).hex())
    client: mqtt.Client | None = None
    acked: int = 0
    published: int = 0
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    #: events as our gateway numbers them (message version 2): 1, 2, 3, … per boot
    _event_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def id(self) -> str:
        return self.spec.id

    def start(self) -> None:
        client = paho_client(f"bench-{self.id}", self.id, self.password)
        offline = Status(gateway=self.id, state=GatewayState.OFFLINE, boot=self.boot, ts=utc_now())
        client.will_set(topics.status(self.id), encode(offline), qos=1, retain=True)
        client.on_publish = self._on_publish
        self.client = client
        connect(client, self.port)
        online = Status(gateway=self.id, state=GatewayState.ONLINE, boot=self.boot, ts=utc_now())
        self.send(topics.status(self.id), encode(online), retain=True)

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _on_publish(self, c: mqtt.Client, u: Any, mid: int, reason: Any, props: Any) -> None:
        self.acked += 1  # only the client's own network thread writes this

    def next_seq(self) -> int:
        with self._lock:
            return next(self._seq)

    def next_event_seq(self) -> int:
        with self._lock:
            return next(self._event_seq)

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        assert self.client is not None
        with self._lock:
            self.published += 1
        self.client.publish(topic, payload, qos=1, retain=retain)

    # ---- messages ---------------------------------------------------------------------

    def event(self, device: BenchDevice, event_id: str, *, v2: bool = True) -> tuple[str, bytes]:
        """A life-safety event on one device (call press, smoke or gas alarm), ts = now. As
        our gateway sends it (`v2`: the cloud acknowledges it on cmd/ack and keeps each
        boot's events in seq order), or as version 1 (for the peers, which know nothing of
        that; such events take no number from the boot's sequence)."""
        kind = Kind(device.kind)
        values = Values(ch4_pct_lel=42.0) if kind is Kind.GAS else Values()
        message = Event(
            v=2 if v2 else 1,
            id=event_id,
            gateway=self.id,
            device=device.id,
            boot=self.boot,
            seq=self.next_event_seq() if v2 else 0,
            ts=utc_now(),
            kind=kind,
            type=_EVENT_TYPES[device.kind],
            values=values,
        )
        return topics.event(self.id), encode(message)

    def telemetry(self, batch_id: str, size: int, rng: random.Random) -> tuple[str, bytes, int]:
        """A batch of readings below every alarm threshold; returns the samples it holds."""
        sensors = self.spec.of_kind("gas", "air") or list(self.spec.devices)
        now = utc_now()
        readings, samples = [], 0
        for i in range(size):
            device = sensors[i % len(sensors)]
            if device.kind == "gas":
                values = Values(ch4_pct_lel=round(rng.uniform(0, 5), 2))
            elif device.kind == "air":
                values = Values(
                    pm25_ugm3=round(rng.uniform(5, 35), 1),
                    pm10_ugm3=round(rng.uniform(10, 60), 1),
                    co2_ppm=round(rng.uniform(420, 800)),
                )
            else:
                values = Values(battery_pct=round(rng.uniform(60, 100)))
            samples += len(values.present())
            readings.append(
                Reading(
                    device=device.id,
                    ts=now - timedelta(milliseconds=size - i),
                    kind=Kind(device.kind),
                    values=values,
                )
            )
        message = Telemetry(
            id=batch_id, gateway=self.id, boot=self.boot, seq=self.next_seq(), readings=readings
        )
        return topics.telemetry(self.id), encode(message), samples


def start_gateways(
    specs: Sequence[BenchGateway], passwords: dict[str, str], port: int
) -> list[Gateway]:
    gateways = [Gateway(spec, passwords[spec.id], port) for spec in specs]
    for gw in gateways:
        gw.start()
    return gateways


def alarm_devices(gateway: Gateway) -> list[BenchDevice]:
    return gateway.spec.of_kind("call", "smoke") or gateway.spec.of_kind("gas")


def run_id() -> str:
    return os.urandom(3).hex()


def paced_events(
    gateways: Sequence[Gateway],
    rate: float,
    seconds: float,
    prefix: str,
    progress: Callable[[int, int], None] | None = None,
    *,
    v2: bool = True,
    order: dict[str, list[str]] | None = None,
) -> dict[str, float]:
    """Publish events at a steady total rate, round robin over the gateways; returns
    event id → wall-clock send time (time.time() just before publish). `order` gets each
    device's event ids in the order sent ("gateway/device")."""
    total = max(1, round(rate * seconds))
    interval = 1.0 / rate
    rng = random.Random(7)
    sent: dict[str, float] = {}
    devices = {gw.id: alarm_devices(gw) for gw in gateways}
    start = time.perf_counter()
    next_report = start + 2.0
    for i in range(total):
        target = start + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        gw = gateways[i % len(gateways)]
        event_id = f"{prefix}-{i:07d}"
        device = rng.choice(devices[gw.id])
        topic, payload = gw.event(device, event_id, v2=v2)
        if order is not None:
            order.setdefault(f"{gw.id}/{device}", []).append(event_id)
        sent[event_id] = time.time()
        gw.send(topic, payload)
        if progress is not None and time.perf_counter() >= next_report:
            progress(i + 1, total)
            next_report += 2.0
    return sent


def build_events(
    gateways: Sequence[Gateway],
    count: int,
    prefix: str,
    *,
    v2: bool = True,
    order: dict[str, list[str]] | None = None,
) -> list[tuple[Gateway, str, bytes]]:
    rng = random.Random(11)
    devices = {gw.id: alarm_devices(gw) for gw in gateways}
    out = []
    for i in range(count):
        gw = gateways[i % len(gateways)]
        device = rng.choice(devices[gw.id])
        event_id = f"{prefix}-{i:07d}"
        topic, payload = gw.event(device, event_id, v2=v2)
        if order is not None:
            order.setdefault(f"{gw.id}/{device}", []).append(event_id)
        out.append((gw, topic, payload))
    return out


def build_batches(
    gateways: Sequence[Gateway], count: int, size: int, prefix: str
) -> tuple[list[tuple[Gateway, str, bytes]], int]:
    rng = random.Random(13)
    out, samples = [], 0
    for i in range(count):
        gw = gateways[i % len(gateways)]
        topic, payload, n = gw.telemetry(f"{prefix}-{i:07d}", size, rng)
        out.append((gw, topic, payload))
        samples += n
    return out, samples


def blast(messages: Sequence[tuple[Gateway, str, bytes]]) -> float:
    """Hand every message to its gateway's client as fast as possible (QoS 1; paho queues
    past its 20 in-flight messages and sends as acknowledgements come back).
    Returns the wall-clock start time."""
    started = time.time()
    for gw, topic, payload in messages:
        gw.send(topic, payload)
    return started


def wait_acked(gateways: Sequence[Gateway], timeout: float) -> float | None:
    """Wait until the broker acknowledged everything published; returns that time or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gw.acked >= gw.published for gw in gateways):
            return time.time()
        time.sleep(0.002)
    return None
