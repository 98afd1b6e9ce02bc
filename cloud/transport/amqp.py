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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import aio_pika
import aio_pika.abc
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from cloud.transport.amqp_inbox import Inbox, SessionLost, Shard
from cloud.transport.base import CHANNELS, MAX_BATCH, Consume, Received, WaitS
from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import Backoff, BrokerLink
from cloud.transport.sharding import shard_of
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
_QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
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
    #: queues the gateways' messages are spread over, by a hash of the gateway id
    #: (cloud/ingest/shards.py); 1: the one queue `queue`
    shards: int = 1
    heartbeat_s: int = 5
    connect_timeout_s: float = 5.0
    prefetch: int = 1000  # messages delivered and not yet acknowledged, at most


def routing_key(topic: str) -> str:
    """An MQTT topic or filter as RabbitMQ's MQTT plugin routes it (`/`→`.`, `+`→`*`)."""
    return ".".join("*" if part == "+" else part for part in topic.split("/"))


def gateway_key(gateway: str) -> str:
    """The binding of one gateway's status, event, telemetry and reply topics."""
    return f"sc.v1.{gateway}.*"


def topic_of(key: str) -> str:
    """The MQTT topic of a routing key (the contract's topics have no `.` of their own)."""
    return key.replace(".", "/")


def shard_queue(queue: str, shards: int, shard: int) -> str:
    """The queue of one shard: `sc.ingest` when there is one, else `sc.ingest.0` …"""
    return queue if shards == 1 else f"{queue}.{shard}"


class AmqpTransport:
    def __init__(
        self,
        address: ClusterAddress,
        *,
        link: BrokerLink,
        drops: DropWatch,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        max_batch: int = MAX_BATCH,
        gateways: Callable[[], Iterable[str]] = tuple,
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
        #: the registered gateways: bound to their shard's queue (when there are several)
        self.gateways = gateways
        self._node = 0  # index of the node tried next
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._inbox: Inbox | None = None
        #: the shards to consume (all, until `hold` says otherwise)
        self._wanted = frozenset(range(address.shards))
        self._open: dict[int, Shard] = {}
        self._following = asyncio.Lock()
        #: gateways bound on this session (a site edit or a shard taken again binds only
        #: the others; binding twice is harmless, only slow: one round trip a gateway)
        self._bound: set[str] = set()
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
            except (SessionLost, *CONNECTION_EXCEPTIONS, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            was_up = self.link.connected.is_set()
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
        inbox = Inbox()
        connection.close_callbacks.add(inbox.lost)
        async with connection:
            out = await connection.channel(publisher_confirms=True)
            out.close_callbacks.add(inbox.lost)
            if a.shards == 1:  # the one queue takes every gateway's messages
                queue = await out.declare_queue(a.queue, durable=True, arguments=_QUORUM)
                for ch_name in CHANNELS:
                    key = routing_key(topics.subscription(ch_name))
                    await queue.bind(TOPIC_EXCHANGE, routing_key=key)
            unrouted_exchange = await out.declare_exchange(
                UNROUTED, aio_pika.ExchangeType.FANOUT, durable=True
            )
            unrouted = await out.declare_queue(
                UNROUTED, durable=True, arguments={**_QUORUM, "x-max-length": UNROUTED_MAX}
            )
            await unrouted.bind(unrouted_exchange)
            self._exchange = await out.get_exchange(TOPIC_EXCHANGE, ensure=False)
            self._connection, self._inbox = connection, inbox
            self._bound = set()
            self.drops.dropped = self.drops.dropped or 0  # an alternate exchange: none dropped
            try:
                await self._follow()
                self.link.up()
                await self._deliver(inbox, consume, wait_s)
            finally:
                self._connection = self._inbox = None
                for shard in self._open.values():
                    shard.live = False
                self._open = {}
                # what was stored is acknowledged before the connection closes (a stop too)
                if self._publishing:
                    await asyncio.wait(set(self._publishing), timeout=2.0)

    # ---- shards ----------------------------------------------------------------------------

    async def hold(self, shards: frozenset[int]) -> None:
        """Consume these shards' queues from now on (and no others). A shard given up stops
        at once: its channel closes, and what it delivered that is not yet acknowledged goes
        back to its queue, for the next holder. Without a session, the next one follows."""
        self._wanted = shards
        try:
            await self._follow()
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:  # the session's loop reconnects
            log.warning("shards %s not followed yet: %r", sorted(shards), exc)

    async def _follow(self) -> None:
        async with self._following:
            connection, inbox = self._connection, self._inbox
            if connection is None or inbox is None:
                return
            for number in sorted(set(self._open) - self._wanted):
                shard = self._open.pop(number)
                shard.live = False
                await shard.channel.close()
            for number in sorted(self._wanted - set(self._open)):
                self._open[number] = await self._consume(connection, inbox, number)

    async def _consume(
        self, connection: aio_pika.abc.AbstractConnection, inbox: Inbox, number: int
    ) -> Shard:
        a = self.address
        channel = await connection.channel(publisher_confirms=False)
        shard = Shard(number, channel)

        def closed(_sender: object = None, exc: BaseException | None = None) -> None:
            if shard.live:  # not closed by us: the session is in trouble, start again
                inbox.lost(_sender, exc)

        channel.close_callbacks.add(closed)
        await channel.set_qos(prefetch_count=a.prefetch)
        name = shard_queue(a.queue, a.shards, number)
        if a.shards == 1:
            queue = await channel.get_queue(name, ensure=False)
        else:
            # one consumer at a time, also while two workers disagree for a moment
            queue = await channel.declare_queue(
                name, durable=True, arguments={**_QUORUM, "x-single-active-consumer": True}
            )
            # before consuming, so none of them goes unrouted meanwhile; once a session
            for gateway in self.gateways():
                if shard_of(gateway, a.shards) == number and gateway not in self._bound:
                    await queue.bind(TOPIC_EXCHANGE, routing_key=gateway_key(gateway))
                    self._bound.add(gateway)
        await queue.consume(partial(inbox.put, shard=shard), no_ack=False)
        if number == 0:  # what matched no binding: the holder of shard 0 takes it
            unrouted = await channel.get_queue(UNROUTED, ensure=False)
            await unrouted.consume(partial(inbox.put, shard=shard, unrouted=True), no_ack=False)
        return shard

    async def bind(self, gateway: str) -> None:
        """A gateway registered while running: its messages to its shard's queue (with one
        queue, every gateway's already go there). Without a session, the holder of its shard
        binds it when it takes the shard (until then its messages are unrouted: taken by the
        holder of shard 0, never lost)."""
        a = self.address
        if a.shards == 1 or self._connection is None or gateway in self._bound:
            return
        channel = await self._connection.channel()
        try:
            name = shard_queue(a.queue, a.shards, shard_of(gateway, a.shards))
            queue = await channel.get_queue(name, ensure=False)
            await queue.bind(TOPIC_EXCHANGE, routing_key=gateway_key(gateway))
            self._bound.add(gateway)
        finally:
            await channel.close()

    async def _deliver(self, inbox: Inbox, consume: Consume, wait_s: WaitS) -> None:
        """Batches off the session's deliveries, until it is lost."""
        while True:
            arrived = await inbox.first(wait_s())
            while len(arrived) < self.max_batch and not inbox.empty():
                arrived.append(inbox.get_nowait())
            batch: list[Received] = []
            for message, shard, was_unrouted in arrived:
                if not shard.live:
                    continue  # given up: the queue delivers it again to the next holder
                topic = topic_of(message.routing_key or "")
                if was_unrouted and _is_command(topic):
                    self.counts["unrouted_commands"] += 1
                    self._ack_now(message)
                    continue
                if was_unrouted:
                    self.counts["unrouted"] += 1
                    log.warning("a message matched no binding topic=%s", topic[:200])
                batch.append(Received(topic, message.body, message, shard))
            await consume(batch)

    def ack(self, item: Received) -> None:
        """The broker may forget this message (basic.ack; once). Not on a later session than
        the one it came on (the broker delivers it again there)."""
        shard: Shard = item._session
        if item.acked or not shard.live:
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
