"""The broker tier's cost per message in the cluster shape, beside one Mosquitto in the same run.

    .venv/bin/python -m bench.cluster_capacity [--quick] [--json FILE]

Starts a real 3-node RabbitMQ cluster (`tests.servers.RabbitCluster`, ~30 s) and one Mosquitto
(`tests.servers.Mosquitto`, the harness's copy of the shipped config). On the cluster, the
quorum queue `sc.ingest` is declared and bound exactly as the cloud does
(`cloud/transport/amqp.py`: `x-queue-type: quorum`, one binding on `amq.topic` per channel the
cloud consumes) and one aio-pika consumer (its own process, the cloud's prefetch) acknowledges
each message, as the cloud does after its commit. On Mosquitto the consumer is a paho QoS 1
subscription to the same topics. Both are driven by the same publishers: `--publishers`
processes, each with `--clients` paho clients (QoS 1, MQTT 3.1.1, TCP_NODELAY, one gateway
account each, spread over the cluster's nodes), publishing contract-shaped messages built with
`contract.models`: telemetry batches of `--readings` readings, and one life-safety event in
every `--event-every` messages.

Two phases per broker and run:

- **blast**: `--messages` messages as fast as the publishers go (each client keeps at most
  `--window` publishes unacknowledged, so a send time is when the message went to the socket,
  not when it joined paho's queue);
- **paced**: `--paced-rate` messages/s in all for `--paced-seconds` (latency at a load the
  broker carries).

For each: messages/s end to end (count ÷ (last consumed − first sent)), publish → consume
latency, and CPU seconds per 1,000 messages (user + system time from /proc/PID/stat) of the
broker (the three beam.smp processes summed, or mosquitto), the publishers (summed) and the
consumer. The whole is repeated `--runs` times, RabbitMQ and Mosquitto alternating; the
summary is the median of the runs. Before the runs, `--connections` idle MQTT sessions (a
gateway's CONNECT, then nothing) are opened to each broker: its memory and CPU per connection.
Every process is stopped by its own pid at the end, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.load import connect, paho_client
from bench.stats import fmt, summary_ms, table
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
from tests.servers import Mosquitto, RabbitCluster

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


def _publisher(job: PublisherJob, conn: Connection) -> None:
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


def _consumer(job: ConsumerJob, conn: Connection) -> None:
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


# ---- one phase ---------------------------------------------------------------------------------


@dataclass
class Phase:
    broker: str
    phase: str
    run: int
    messages: int
    received: int = 0
    duplicates: int = 0
    payload_bytes: float = 0.0
    msgs_per_s: float | None = None
    acked_per_s: float | None = None
    latency_ms: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)

    def per_1000(self, who: str) -> float | None:
        if who not in self.cpu_s or not self.received:
            return None
        return 1000.0 * self.cpu_s[who] / self.received


@dataclass
class Broker:
    name: str
    accounts: list[Account]
    consumer: ConsumerJob
    pids: list[int]


class Children:
    """The processes of a phase, each stopped by its own pid."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list[tuple[BaseProcess, Connection]] = []

    def start(self, target: Callable[..., None], job: object) -> tuple[BaseProcess, Connection]:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=target, args=(job, child), daemon=True)
        proc.start()
        child.close()
        self.procs.append((proc, parent))
        return proc, parent

    def stop(self) -> None:
        for _, conn in self.procs:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send("exit")
        for proc, _ in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()  # SIGTERM to this pid
                proc.join(timeout=5)
        self.procs = []


def _recv(conn: Connection, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError(f"no answer from the {what} within {timeout:g} s")
    return conn.recv()


def run_phase(
    broker: Broker, opts: argparse.Namespace, *, phase: str, run: int, count: int, rate: float
) -> Phase:
    children = Children()
    try:
        consumer_proc, consumer = children.start(
            _consumer, ConsumerJob(**{**asdict(broker.consumer), "count": count})
        )
        _recv(consumer, 60, "consumer")
        prefix = f"{phase[0]}{run}{os.urandom(3).hex()}"
        per = [
            count // opts.publishers + (i < count % opts.publishers) for i in range(opts.publishers)
        ]
        pubs = []
        for i in range(opts.publishers):
            accounts = tuple(
                broker.accounts[(i * opts.clients + k) % len(broker.accounts)]
                for k in range(opts.clients)
            )
            job = PublisherJob(
                index=i,
                accounts=accounts,
                count=per[i],
                rate=rate / opts.publishers if rate else 0.0,
                readings=opts.readings,
                event_every=opts.event_every,
                window=opts.window,
                prefix=prefix,
            )
            pubs.append(children.start(_publisher, job))
        size = sum(_recv(conn, 120, "publisher")[1] for _, conn in pubs)
        watched = {
            "broker": broker.pids,
            "publishers": [p.pid for p, _ in pubs if p.pid is not None],
            "consumer": [consumer_proc.pid] if consumer_proc.pid is not None else [],
        }
        before = {who: sum(cpu_s(pid) for pid in pids) for who, pids in watched.items()}
        began = time.monotonic()
        for _, conn in pubs:
            conn.send("go")
        sent: dict[str, float] = {}
        acked_total, last_ack = 0, 0.0
        for _, conn in pubs:
            _, ids, times, acked, at = _recv(conn, 600, "publisher")
            sent.update(zip(ids, times, strict=True))
            acked_total += acked
            last_ack = max(last_ack, at)
        _, seen, duplicates = _recv(consumer, 600, "consumer")
        wall = time.monotonic() - began
        used = {who: sum(cpu_s(pid) for pid in pids) - before[who] for who, pids in watched.items()}
        result = Phase(broker.name, phase, run, count, received=len(seen), duplicates=duplicates)
        result.payload_bytes = size / count
        result.wall_s = wall
        result.cpu_s = used
        first = min(sent.values())
        if seen:
            result.msgs_per_s = len(seen) / (max(seen.values()) - first)
        if acked_total:
            result.acked_per_s = acked_total / (last_ack - first)
        result.latency_ms = summary_ms(seen[i] - sent[i] for i in seen if i in sent)
        if len(seen) < count:
            print(f"  ! {broker.name} {phase}: {count - len(seen)} of {count} never consumed")
        return result
    finally:
        children.stop()


# ---- the servers -------------------------------------------------------------------------------


def _gateways(n: int) -> list[str]:
    return [f"gw-cap{i:02d}" for i in range(n)]


def start_cluster(gateways: Sequence[str]) -> tuple[RabbitCluster, Broker]:
    # as the harness starts it: RabbitMQ 3.10's own defaults, which include `+sbwt none` (the
    # Erlang schedulers sleep rather than spin when out of work, so CPU time is work done)
    cluster = RabbitCluster()
    password = cluster.add_user("cloud")
    secrets = {gw: cluster.add_user(gw) for gw in gateways}
    cluster.start()
    # each gateway on a node of its own in turn: the publishers' load spread over the nodes
    accounts = [
        Account(gw, secrets[gw], cluster.nodes[i % len(cluster.nodes)].mqtt_port)
        for i, gw in enumerate(gateways)
    ]
    first = cluster.nodes[0]
    consumer = ConsumerJob("amqp", first.amqp_port, "cloud", password, 0)
    pids = [n.proc.pid for n in cluster.nodes if n.proc is not None]
    return cluster, Broker("RabbitMQ ×3", accounts, consumer, pids)


def start_mosquitto(gateways: Sequence[str]) -> tuple[Mosquitto, Broker]:
    broker = Mosquitto()
    password = broker.add_user("cloud")
    secrets = {gw: broker.add_user(gw) for gw in gateways}
    broker.start()
    assert broker.proc is not None
    accounts = [Account(gw, secrets[gw], broker.port) for gw in gateways]
    consumer = ConsumerJob("mqtt", broker.port, "cloud", password, 0)
    return broker, Broker("Mosquitto", accounts, consumer, [broker.proc.pid])


# ---- idle gateway connections ------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    """Resident memory of one process (VmRSS of /proc/PID/status), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _mqtt_string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def mqtt_connect_packet(client_id: str, user: str, password: str, keepalive: int) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session, user name and password), as a gateway sends it."""
    body = (
        _mqtt_string("MQTT")
        + bytes([4, 0xC2])
        + keepalive.to_bytes(2, "big")
        + _mqtt_string(client_id)
        + _mqtt_string(user)
        + _mqtt_string(password)
    )
    length, size = b"", len(body)
    while True:
        byte, size = size % 128, size // 128
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            return b"\x10" + length + body


async def open_idle(
    accounts: Sequence[Account], count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """`count` MQTT sessions that connect (CONNACK accepted) and then say nothing, as gateways
    between two batches; round robin over the accounts (and so over the cluster's nodes)."""
    limit = asyncio.Semaphore(100)

    async def one(i: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        account = accounts[i % len(accounts)]
        async with limit:
            reader, writer = await asyncio.open_connection(HOST, account.port)
            writer.write(
                mqtt_connect_packet(
                    f"{account.gateway}-idle{i}", account.gateway, account.password, keepalive=60
                )
            )
            await writer.drain()
            connack = await asyncio.wait_for(reader.readexactly(4), 30)
            if connack[0] != 0x20 or connack[3] != 0:
                raise RuntimeError(f"broker refused an idle connection: {connack.hex()}")
            return reader, writer

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@dataclass
class Idle:
    broker: str
    idle_cpu_s_per_s: float  # with no client at all
    connections: int
    kb_per_connection: float
    cpu_ms_per_s_per_1000: float


def measure_idle_connections(broker: Broker, count: int, settle_s: float, window_s: float) -> Idle:
    """The broker's CPU with no client over `window_s`; then the memory and CPU it spends on
    `count` idle sessions: RSS before and `settle_s` after they connected, then CPU over
    `window_s` (less the CPU with no client)."""

    async def run() -> Idle:
        before = sum(rss_kb(p) for p in broker.pids)
        cpu_before = sum(cpu_s(p) for p in broker.pids)
        await asyncio.sleep(window_s)
        idle = (sum(cpu_s(p) for p in broker.pids) - cpu_before) / window_s
        sessions = await open_idle(broker.accounts, count)
        try:
            await asyncio.sleep(settle_s)
            after = sum(rss_kb(p) for p in broker.pids)
            cpu_before = sum(cpu_s(p) for p in broker.pids)
            await asyncio.sleep(window_s)
            cpu = (sum(cpu_s(p) for p in broker.pids) - cpu_before) / window_s - idle
        finally:
            for _, writer in sessions:
                writer.close()
        return Idle(broker.name, idle, count, (after - before) / count, 1e6 * cpu / count)

    return asyncio.run(run())


# ---- the report --------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(phases: Sequence[Phase]) -> list[dict[str, Any]]:
    out = []
    for broker in dict.fromkeys(p.broker for p in phases):
        for name in dict.fromkeys(p.phase for p in phases):
            runs = [p for p in phases if p.broker == broker and p.phase == name]
            if not runs:
                continue
            out.append(
                {
                    "broker": broker,
                    "phase": name,
                    "runs": len(runs),
                    "msgs_per_s": _median([p.msgs_per_s for p in runs]),
                    "acked_per_s": _median([p.acked_per_s for p in runs]),
                    "p50_ms": _median([p.latency_ms.get("p50") for p in runs]),
                    "p99_ms": _median([p.latency_ms.get("p99") for p in runs]),
                    "broker_cpu_ms": _median([p.per_1000("broker") for p in runs]),
                    "publishers_cpu_ms": _median([p.per_1000("publishers") for p in runs]),
                    "consumer_cpu_ms": _median([p.per_1000("consumer") for p in runs]),
                    "broker_core_pct": _median(
                        [100 * p.cpu_s["broker"] / p.wall_s for p in runs if p.wall_s]
                    ),
                    "lost": sum(p.messages - p.received for p in runs),
                    "duplicates": sum(p.duplicates for p in runs),
                }
            )
    return out


def report(
    phases: Sequence[Phase], summary: Sequence[dict[str, Any]], idle: dict[str, float]
) -> str:
    per_run = table(
        "Each run",
        [
            "broker",
            "phase",
            "run",
            "msgs",
            "msg/s",
            "acked msg/s",
            "p50 ms",
            "p99 ms",
            "broker CPU ms/msg",
            "publishers",
            "consumer",
            "bytes/msg",
        ],
        [
            [
                p.broker,
                p.phase,
                p.run,
                p.received,
                p.msgs_per_s,
                p.acked_per_s,
                p.latency_ms.get("p50"),
                p.latency_ms.get("p99"),
                p.per_1000("broker"),
                p.per_1000("publishers"),
                p.per_1000("consumer"),
                p.payload_bytes,
            ]
            for p in phases
        ],
    )
    medians = table(
        "Medians of the runs (msg/s: consumed end to end; acked: the publishers' PUBACKs; "
        "CPU seconds per 1,000 messages = ms per message)",
        [
            "broker",
            "phase",
            "runs",
            "msg/s",
            "acked msg/s",
            "p50 ms",
            "p99 ms",
            "broker ms/msg",
            "broker % of a core",
            "publishers ms/msg",
            "consumer ms/msg",
            "lost",
            "doubled",
        ],
        [
            [
                s["broker"],
                s["phase"],
                s["runs"],
                s["msgs_per_s"],
                s["acked_per_s"],
                s["p50_ms"],
                s["p99_ms"],
                s["broker_cpu_ms"],
                s["broker_core_pct"],
                s["publishers_cpu_ms"],
                s["consumer_cpu_ms"],
                s["lost"],
                s["duplicates"],
            ]
            for s in summary
        ],
    )
    lines = [per_run, medians, ""]
    blasts = {s["broker"]: s for s in summary if s["phase"] == "blast"}
    mosq = blasts.pop("Mosquitto", None)
    rabbit = next(iter(blasts.values()), None)
    if rabbit and mosq and rabbit["broker_cpu_ms"] and mosq["broker_cpu_ms"]:
        rates = (rabbit["msgs_per_s"] or 0) / (mosq["msgs_per_s"] or 1)
        lines.append(
            f"broker CPU per message, RabbitMQ ×3 ÷ Mosquitto (blast): "
            f"{rabbit['broker_cpu_ms'] / mosq['broker_cpu_ms']:.1f}×; "
            f"msg/s RabbitMQ ÷ Mosquitto: {rates:.2f}"
        )
    for name, rate in idle.items():
        lines.append(f"{name} idle: {rate * 1000:.0f} ms of CPU per second (all its processes)")
    return "\n".join(lines)


# ---- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster_capacity",
        description="CPU per message of a 3-node RabbitMQ cluster (MQTT in, quorum queue, AMQP "
        "out) beside one Mosquitto, same load (docs/benchmarks.md).",
    )
    parser.add_argument("--messages", type=int, default=40_000, help="messages per blast (40000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per broker (3)")
    parser.add_argument("--publishers", type=int, default=4, help="publisher processes (4)")
    parser.add_argument("--clients", type=int, default=3, help="MQTT clients per publisher (3)")
    parser.add_argument(
        "--window", type=int, default=100, help="unacknowledged publishes per client (100)"
    )
    parser.add_argument("--readings", type=int, default=5, help="readings per telemetry batch (5)")
    parser.add_argument(
        "--event-every", type=int, default=10, help="one event in every N messages (10; 0: none)"
    )
    parser.add_argument(
        "--paced-rate", type=float, default=1000.0, help="msg/s in the paced phase (1000)"
    )
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="paced phase length (10)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="~2 min (35–45 s of it the cluster's start): 6000 messages, 1 run, 3 s paced, "
        "600 idle connections",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=3000,
        help="idle gateway connections opened to each broker before the runs (3000)",
    )
    parser.add_argument("--json", type=Path, help="write every phase and the medians as JSON")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.messages, opts.runs, opts.paced_seconds, opts.connections = 6000, 1, 3.0, 600
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    gateways = _gateways(opts.publishers * opts.clients)
    cluster: RabbitCluster | None = None
    mosquitto: Mosquitto | None = None
    phases: list[Phase] = []
    idle: dict[str, float] = {}
    connections: list[Idle] = []
    try:
        say("starting a 3-node RabbitMQ cluster (~30 s) and one Mosquitto")
        cluster, rabbit = start_cluster(gateways)
        mosquitto, mosq = start_mosquitto(gateways)
        say(f"ready; load average {os.getloadavg()[0]:.1f}")
        # first, while the brokers are fresh (no freed buffers of a blast to reuse)
        window = 3.0 if opts.quick else 10.0
        for broker in (rabbit, mosq):
            say(f"{broker.name}: idle, then {opts.connections:,} idle gateway connections")
            connections.append(
                measure_idle_connections(broker, opts.connections, window / 2, window)
            )
            idle[broker.name] = connections[-1].idle_cpu_s_per_s
            say(
                f"  {connections[-1].kb_per_connection:.0f} KiB each, "
                f"{connections[-1].cpu_ms_per_s_per_1000:.1f} ms CPU/s per 1,000"
            )
        paced_count = round(opts.paced_rate * opts.paced_seconds)
        for run in range(1, opts.runs + 1):
            for broker in (rabbit, mosq) if run % 2 else (mosq, rabbit):
                for phase, count, rate in (
                    ("blast", opts.messages, 0.0),
                    ("paced", paced_count, opts.paced_rate),
                ):
                    say(f"run {run}/{opts.runs}: {broker.name}, {phase}, {count:,} messages")
                    p = run_phase(broker, opts, phase=phase, run=run, count=count, rate=rate)
                    phases.append(p)
                    say(
                        f"  {fmt(p.msgs_per_s)} msg/s, p50 {fmt(p.latency_ms.get('p50'))} ms, "
                        f"p99 {fmt(p.latency_ms.get('p99'))} ms, broker "
                        f"{fmt(p.per_1000('broker'))} CPU ms per message"
                    )
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        say("stopping the brokers (each by its pid)")
        if mosquitto is not None:
            mosquitto.cleanup()
        if cluster is not None:
            cluster.cleanup()
    summary = summarise(phases)
    print(report(phases, summary, idle))
    for c in connections:
        print(
            f"{c.broker}: {c.connections:,} idle MQTT connections, "
            f"{c.kb_per_connection:.0f} KiB of broker memory each, "
            f"{c.cpu_ms_per_s_per_1000:.1f} ms of broker CPU a second per 1,000"
        )
    if opts.json:
        opts.json.write_text(
            json.dumps(
                {
                    "options": {
                        k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()
                    },
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "load_average": os.getloadavg(),
                    },
                    "idle_cpu_s_per_s": idle,
                    "idle_connections": [asdict(c) for c in connections],
                    "phases": [asdict(p) for p in phases],
                    "medians": summary,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
