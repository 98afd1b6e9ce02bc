"""What the publishers send and what the consumers take: the publisher and consumer
processes of `python -m bench.cluster_capacity`, and the CPU of a process by its pid."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt

from bench.load import connect, paho_client
from cloud.transport.amqp import TOPIC_EXCHANGE, ClusterAddress, routing_key
from cloud.transport.base import CHANNELS
from contract import topics
from contract.models import (
    Event,
    EventType,
    Kind,
    Reading,
    Telemetry,
    Values,
    encode,
    utc_now,
)

HOST = "127.0.0.1"
#: The cloud's queue and prefetch (cloud/transport/amqp.py's defaults).
_CLOUD = ClusterAddress(nodes=(), username="", password="", client_id="")
QUEUE, PREFETCH = _CLOUD.queue, _CLOUD.prefetch
_TICK = os.sysconf("SC_CLK_TCK")
_ID = b'"id":"'


# ---- CPU of a process by its pid ---------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (/proc/PID/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


# ---- what the publishers send ------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    gateway: str
    password: str
    port: int


@dataclass(frozen=True)
class PublisherJob:
    index: int
    accounts: tuple[Account, ...]
    count: int
    rate: float  # messages/s of this process; 0 = as fast as the window allows
    readings: int
    event_every: int
    window: int
    prefix: str


def build_messages(job: PublisherJob) -> list[tuple[int, str, str, bytes]]:
    """(client index, message id, topic, payload) in sending order, round robin over the
    process's gateways: telemetry batches below every threshold and, every `event_every`
    messages, a life-safety event (a smoke alarm or a call)."""
    rng = random.Random(job.index)
    boot = f"cap{job.index:02d}{job.prefix}"
    out = []
    # each gateway numbers its events and its telemetry batches apart, as the agent does
    event_seqs = [0] * len(job.accounts)
    batch_seqs = [0] * len(job.accounts)
    for i in range(job.count):
        c = i % len(job.accounts)
        gateway = job.accounts[c].gateway
        message_id = f"{job.prefix}-{job.index:02d}-{i:08d}"
        now = utc_now()
        if job.event_every and i % job.event_every == job.event_every - 1:
            kind = rng.choice((Kind.SMOKE, Kind.CALL))
            event_seqs[c] += 1
            event = Event(
                v=2,
                id=message_id,
                gateway=gateway,
                device=f"{kind.value}-{rng.randrange(24):02d}",
                boot=boot,
                seq=event_seqs[c],
                ts=now,
                kind=kind,
                type=EventType.ALARM if kind is Kind.SMOKE else EventType.PRESS,
            )
            out.append((c, message_id, topics.event(gateway), encode(event)))
            continue
        readings = []
        for r in range(job.readings):
            if r % 3 == 2:
                values = Values(
                    pm25_ugm3=round(rng.uniform(5, 35), 1),
                    pm10_ugm3=round(rng.uniform(10, 60), 1),
                    co2_ppm=round(rng.uniform(420, 800)),
                )
                device, kind = f"air-{r:02d}", Kind.AIR
            else:
                values = Values(ch4_pct_lel=round(rng.uniform(0, 5), 2))
                device, kind = f"gas-{r:02d}", Kind.GAS
            readings.append(
                Reading(
                    device=device,
                    ts=now - timedelta(seconds=job.readings - r),
                    kind=kind,
                    values=values,
                )
            )
        batch_seqs[c] += 1
        batch = Telemetry(
            id=message_id, gateway=gateway, boot=boot, seq=batch_seqs[c], readings=readings
        )
        out.append((c, message_id, topics.telemetry(gateway), encode(batch)))
    return out


def publisher_process(job: PublisherJob, conn: Connection) -> None:
    """One publisher process: connect its clients, build its messages, say `ready`; on `go`
    send them, then report (ids, send times, when the last was acknowledged); exit on `exit`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    slots = [threading.Semaphore(job.window) for _ in job.accounts]
    acked = [0]
    lock = threading.Lock()
    clients: list[mqtt.Client] = []
    for c, account in enumerate(job.accounts):
        client = paho_client(account.gateway, account.gateway, account.password)
        client.max_inflight_messages_set(job.window)

        def on_publish(
            cl: mqtt.Client, u: Any, mid: int, reason: Any, props: Any, slot: int = c
        ) -> None:
            slots[slot].release()
            with lock:
                acked[0] += 1

        client.on_publish = on_publish
        connect(client, account.port)
        clients.append(client)
    messages = build_messages(job)
    size = sum(len(m[3]) for m in messages)
    conn.send(("ready", size))
    if conn.recv() != "go":
        return
    sent_at: list[float] = []
    interval = 1.0 / job.rate if job.rate > 0 else 0.0
    start = time.perf_counter()
    for i, (c, _, topic, payload) in enumerate(messages):
        if interval:
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        slots[c].acquire()
        sent_at.append(time.time())
        clients[c].publish(topic, payload, qos=1)
    deadline = time.monotonic() + 300
    while acked[0] < len(messages) and time.monotonic() < deadline:
        time.sleep(0.002)
    last_ack = time.time()
    conn.send(("done", [m[1] for m in messages], sent_at, acked[0], last_ack))
    conn.recv()  # the parent has read our CPU time
    for client in clients:
        client.disconnect()
        client.loop_stop()


# ---- the consumers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerJob:
    kind: str  # "amqp" or "mqtt"
    port: int
    user: str
    password: str
    count: int
    idle_s: float = 60.0


def _message_id(payload: bytes | bytearray) -> str:
    start = payload.index(_ID) + len(_ID)
    return payload[start : payload.index(b'"', start)].decode()


class _Arrivals:
    def __init__(self, count: int) -> None:
        self.count = count
        self.seen: dict[str, float] = {}
        self.duplicates = 0
        self.done = threading.Event()

    def note(self, payload: bytes | bytearray) -> None:
        now = time.time()
        message_id = _message_id(payload)
        if message_id in self.seen:
            self.duplicates += 1
            return
        self.seen[message_id] = now
        if len(self.seen) >= self.count:
            self.done.set()


def consumer_process(job: ConsumerJob, conn: Connection) -> None:
    """One consumer process: subscribe, say `ready`, take `count` distinct messages (or give up
    after `idle_s` without one), report them, exit on `exit`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    arrivals = _Arrivals(job.count)
    if job.kind == "amqp":
        asyncio.run(_consume_amqp(job, arrivals, conn))
    else:
        _consume_mqtt(job, arrivals, conn)
    conn.send(("done", arrivals.seen, arrivals.duplicates))
    conn.recv()


async def _consume_amqp(job: ConsumerJob, arrivals: _Arrivals, conn: Connection) -> None:
    import aio_pika
    import aio_pika.abc

    connection = await aio_pika.connect(
        host=HOST, port=job.port, login=job.user, password=job.password, heartbeat=5
    )
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=PREFETCH)
        # as the cloud declares and binds it (cloud/transport/amqp.py, AmqpTransport._session)
        queue = await channel.declare_queue(
            QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for ch_name in CHANNELS:
            await queue.bind(TOPIC_EXCHANGE, routing_key=routing_key(topics.subscription(ch_name)))
        await queue.purge()

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            arrivals.note(message.body)
            await message.ack()  # one basic.ack per message, as the cloud acknowledges

        await queue.consume(take, no_ack=False)
        conn.send(("ready", 0))
        await _until_done(arrivals, job.idle_s)


async def _until_done(arrivals: _Arrivals, idle_s: float) -> None:
    seen = -1
    while not arrivals.done.is_set():
        for _ in range(int(idle_s * 20)):
            if arrivals.done.is_set():
                return
            await asyncio.sleep(0.05)
        if len(arrivals.seen) == seen:
            return  # nothing for a whole idle period
        seen = len(arrivals.seen)


def _consume_mqtt(job: ConsumerJob, arrivals: _Arrivals, conn: Connection) -> None:
    subscribed = threading.Event()
    client = paho_client("cap-consumer", job.user, job.password)
    client.on_message = lambda c, u, message: arrivals.note(message.payload)
    client.on_subscribe = lambda c, u, mid, codes, props: subscribed.set()
    connect(client, job.port)
    client.subscribe([(topics.subscription(ch), 1) for ch in CHANNELS])
    if not subscribed.wait(10):
        raise RuntimeError("no SUBACK from Mosquitto")
    conn.send(("ready", 0))
    seen = -1
    while not arrivals.done.wait(job.idle_s):
        if len(arrivals.seen) == seen:
            break
        seen = len(arrivals.seen)
    client.disconnect()
    client.loop_stop()
