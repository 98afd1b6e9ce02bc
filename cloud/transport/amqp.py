"""The cloud's link to a RabbitMQ cluster (the cluster shape, `SC_CLOUD_BROKER=rabbitmq`): the one
module that imports the AMQP client (aio-pika). Same interface as the single box's MQTT session
(`cloud/transport/base.py`).

Gateways speak MQTT to any node; RabbitMQ's MQTT plugin publishes what they send to the
`amq.topic` exchange with the topic as routing key, `/` turned into `.`
(`sc/v1/gw-01/event` → `sc.v1.gw-01.event`). The cloud:

- consumes from one durable **quorum queue** (`sc.ingest`, replicated on every node, a leader
  elected again when its node dies) bound to `amq.topic` for every gateway's status, event,
  telemetry and reply topics. The queue is what keeps a message while no consumer is there;
  the MQTT plugin acknowledges a gateway's QoS 1 publish only once the queue has it
  (a majority of its replicas).
- acknowledges (`ack`) each message only when ingest says so — after its commit — on the
  channel it came on: a message taken on a session that ended is delivered again, and the
  event ids make the second time a no-op.
- declares the **alternate exchange** `sc.unrouted` (fanout) and its quorum queue, and consumes
  that queue too. The policy that makes it `amq.topic`'s alternate exchange is the operator's
  (`deploy/rabbitmq/definitions.json`): without it a message that matches no binding is
  acknowledged to its gateway and dropped. Unrouted commands (a gateway that is not connected:
  commands are not queued for gateways) are counted and let go; anything else unrouted —
  a gateway's message that came before the cloud's bindings, or a topic outside the contract
  — goes through ingest like any other message (stored, or refused with its reason and kept).
- uses short AMQP heartbeats (`heartbeat_s`, RabbitMQ's default is 60 s), so a node that
  died without closing its sockets is noticed in seconds, not a minute.
- knows every node: a session that ends or a node that does not answer moves on to the next
  node at once; only after a whole round of nodes failed does it wait (capped, jittered
  back-off), so one dead node costs a reconnect, not an outage.
- publishes commands and the cloud's acknowledgements to `amq.topic` with publisher confirms
  (`x-mqtt-publish-qos: 1`): the MQTT plugin delivers them to the gateway's subscription on
  whichever node it is connected to.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aio_pika
import aio_pika.abc
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from cloud.transport.base import CHANNELS, Consume, Received, WaitS
from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import Backoff, BrokerLink
from contract import topics
from contract.models import Command, encode

log = logging.getLogger(__name__)


class _NoTraceback(logging.Filter):
    """aiormq logs a lost connection (a node killed: "reader exited abnormally") at warning
    level with a traceback; the transport reports the outage itself (`BrokerLink`). Such a
    record is kept as one line, the exception's text without its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.levelno < logging.ERROR:
            record.msg = f"{record.getMessage()}: {record.exc_info[1]!r}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("aiormq.connection").addFilter(_NoTraceback())

#: The exchange RabbitMQ's MQTT plugin publishes to (its default `mqtt.exchange`).
TOPIC_EXCHANGE = "amq.topic"
#: The alternate exchange of `amq.topic` (set by policy) and the queue behind it.
UNROUTED = "sc.unrouted"
#: Unrouted messages kept at most (the oldest go first): a flood of junk cannot fill a disk.
UNROUTED_MAX = 100_000


@dataclass(frozen=True)
class Node:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ClusterAddress:
    nodes: tuple[Node, ...]
    username: str
    password: str
    client_id: str  # shown as the connection's name on the broker
    queue: str = "sc.ingest"
    heartbeat_s: int = 5
    connect_timeout_s: float = 5.0
    prefetch: int = 1000  # messages delivered and not yet acknowledged, at most


def routing_key(topic: str) -> str:
    """An MQTT topic or filter as RabbitMQ's MQTT plugin routes it (`/`→`.`, `+`→`*`)."""
    return ".".join("*" if part == "+" else part for part in topic.split("/"))


def topic_of(key: str) -> str:
    """The MQTT topic of a routing key (the contract's topics have no `.` of their own)."""
    return key.replace(".", "/")


class _SessionLost(Exception):
    """The connection or a channel of the session closed."""


class AmqpTransport:
    def __init__(
        self,
        address: ClusterAddress,
        *,
        link: BrokerLink,
        drops: DropWatch,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        max_batch: int = 500,
    ) -> None:
        if not address.nodes:
            raise ValueError("a cluster needs at least one node")
        self.address = address
        self.link = link
        self.drops = drops
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.max_batch = max_batch
        #: unrouted_commands: commands no gateway session took (it was not connected);
        #: unrouted: other messages that matched no binding (handed to ingest all the same)
        self.counts: Counter[str] = Counter()
        self._node = 0  # index of the node tried next
        self._session_id: object | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._publishing: set[asyncio.Task[Any]] = set()
        self.link.address = str(address.nodes[0])

    @property
    def node(self) -> Node:
        """The node in use (or tried next)."""
        return self.address.nodes[self._node]

    # ---- in ----------------------------------------------------------------------------------

    async def run(self, consume: Consume, *, wait_s: WaitS = lambda: None) -> None:
        """Hand batches to `consume` until cancelled, across reconnects and nodes."""
        backoff = Backoff(self.retry_min_s, self.retry_max_s)
        failed_in_a_row = 0
        nodes = len(self.address.nodes)
        while True:
            self.link.address = str(self.node)
            self.link.attempting()
            try:
                await self._session(consume, wait_s)
                error = "the session ended"
            except (_SessionLost, *CONNECTION_EXCEPTIONS, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            was_up = self.link.connected.is_set()
            self._session_id = None
            self._exchange = None
            self._node = (self._node + 1) % nodes
            failed_in_a_row = 0 if was_up else failed_in_a_row + 1
            if failed_in_a_row < nodes:
                delay = 0.0  # another node may be there: try it at once
                backoff.reset()
            else:
                delay = backoff.next()
            self.link.down(f"{error} (next: node {self.node})", delay)
            await asyncio.sleep(delay)

    async def _session(self, consume: Consume, wait_s: WaitS) -> None:
        a = self.address
        connection = await aio_pika.connect(
            host=self.node.host,
            port=self.node.port,
            login=a.username,
            password=a.password,
            timeout=a.connect_timeout_s,
            client_properties={"connection_name": a.client_id},
            heartbeat=a.heartbeat_s,
        )
        inbox = _Inbox()
        connection.close_callbacks.add(inbox.lost)
        async with connection:
            out = await connection.channel(publisher_confirms=True)
            channel = await connection.channel(publisher_confirms=False)
            for ch in (out, channel):
                ch.close_callbacks.add(inbox.lost)
            await channel.set_qos(prefetch_count=a.prefetch)
            queue = await channel.declare_queue(
                a.queue, durable=True, arguments={"x-queue-type": "quorum"}
            )
            for ch_name in CHANNELS:
                key = routing_key(topics.subscription(ch_name))
                await queue.bind(TOPIC_EXCHANGE, routing_key=key)
            unrouted_exchange = await channel.declare_exchange(
                UNROUTED, aio_pika.ExchangeType.FANOUT, durable=True
            )
            unrouted = await channel.declare_queue(
                UNROUTED,
                durable=True,
                arguments={"x-queue-type": "quorum", "x-max-length": UNROUTED_MAX},
            )
            await unrouted.bind(unrouted_exchange)
            await queue.consume(inbox.put, no_ack=False)
            await unrouted.consume(inbox.put_unrouted, no_ack=False)
            self._exchange = await out.get_exchange(TOPIC_EXCHANGE, ensure=False)
            session = self._session_id = object()
            self.drops.dropped = self.drops.dropped or 0  # an alternate exchange: none dropped
            self.link.up()
            try:
                await self._deliver(inbox, consume, wait_s, session)
            finally:
                # what was stored is acknowledged before the connection closes (a stop too)
                if self._publishing:
                    await asyncio.wait(set(self._publishing), timeout=2.0)

    async def _deliver(
        self, inbox: _Inbox, consume: Consume, wait_s: WaitS, session: object
    ) -> None:
        """Batches off the session's deliveries, until it is lost."""
        while True:
            arrived = await inbox.first(wait_s())
            while len(arrived) < self.max_batch and not inbox.empty():
                arrived.append(inbox.get_nowait())
            batch: list[Received] = []
            for message, was_unrouted in arrived:
                topic = topic_of(message.routing_key or "")
                if was_unrouted and _is_command(topic):
                    self.counts["unrouted_commands"] += 1
                    self._ack_now(message)
                    continue
                if was_unrouted:
                    self.counts["unrouted"] += 1
                    log.warning("a message matched no binding topic=%s", topic[:200])
                batch.append(Received(topic, message.body, message, session))
            await consume(batch)

    def ack(self, item: Received) -> None:
        """The broker may forget this message (basic.ack; once). Not on a later session than
        the one it came on (the broker delivers it again there)."""
        if item.acked or item._session is not self._session_id or self._session_id is None:
            return
        self._ack_now(item._message)
        item.acked = True

    def _ack_now(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self._spawn(message.ack())

    # ---- out ---------------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes) -> bool:
        """To `amq.topic` as an MQTT QoS 1 message, awaiting the broker's confirm; False if no
        node is reachable now."""
        exchange = self._exchange
        if exchange is None:
            return False
        message = aio_pika.Message(
            payload,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"x-mqtt-publish-qos": 1, "x-mqtt-dup": False},
        )
        try:
            await exchange.publish(message, routing_key=routing_key(topic))
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            log.warning("publish to %s failed: %s", topic, exc)
            return False
        return True

    async def send_command(self, gateway: str, name: str, command: Command) -> bool:
        """A command to a gateway on its `cmd/{name}`; False if no node is reachable now."""
        return await self.publish(topics.command(gateway, name), encode(command))

    def publish_soon(self, topic: str, payload: bytes) -> bool:
        """QoS 1 without waiting for it; False if there is no session now."""
        if self._exchange is None:
            return False
        self._spawn(self.publish(topic, payload))
        return True

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        self._publishing.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # an acknowledgement on a channel that closed: the broker delivers it again
            log.info("not sent to the broker: %r", exc)


def _is_command(topic: str) -> bool:
    parts = topic.split("/")
    return len(parts) == 5 and parts[3] == "cmd"


Delivery = tuple[aio_pika.abc.AbstractIncomingMessage, bool]  # the message, came unrouted


class _Inbox:
    """What the broker delivered, in order, and whether the session was lost. A wait for the
    first message never loses one (nothing is taken off the queue by a wait that times out)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._arrived = asyncio.Event()

    async def put(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self._queue.put_nowait((message, False))
        self._arrived.set()

    async def put_unrouted(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self._queue.put_nowait((message, True))
        self._arrived.set()

    def lost(self, _sender: object = None, exc: BaseException | None = None) -> None:
        if not self._lost.done():
            self._lost.set_exception(_SessionLost(str(exc) if exc else "closed"))
            self._lost.exception()  # retrieved: no "never retrieved" warning if none waits

    def empty(self) -> bool:
        return self._queue.empty()

    def get_nowait(self) -> Delivery:
        return self._queue.get_nowait()

    async def first(self, wait: float | None) -> list[Delivery]:
        """[the next delivery], waiting at most `wait` s (None: until one comes), or []."""
        if self._lost.done():
            self._lost.result()  # raises _SessionLost
        if self._queue.empty():
            if wait is not None and wait <= 0:
                return []
            self._arrived.clear()
            arrived = asyncio.ensure_future(self._arrived.wait())
            try:
                await asyncio.wait(
                    (arrived, self._lost), timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                arrived.cancel()
            if self._lost.done():
                self._lost.result()
            if self._queue.empty():
                return []
        return [self._queue.get_nowait()]
