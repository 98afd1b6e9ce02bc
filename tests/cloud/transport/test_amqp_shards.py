"""Ingest shards on a real 3-node RabbitMQ cluster and a real PostgreSQL: two workers share the
shard queues (each gateway's messages reach one worker, in order), a worker that joins gets its
half, and what a worker had not acknowledged when it gave a shard up reaches the next holder
— before anything newer of that gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import aio_pika
import pytest

from cloud.db.session_locks import SessionLocks
from cloud.db.url import DatabaseUrl
from cloud.ingest.shards import ShardOwner
from cloud.transport.amqp import AmqpTransport, ClusterAddress, Node, shard_queue
from cloud.transport.base import Received
from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import BrokerLink
from cloud.transport.sharding import shard_of
from tests.cloud.transport.test_amqp_cluster import until
from tests.servers import RabbitCluster

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.xdist_group("rabbitmq"),
    pytest.mark.parametrize("db_backend", ["postgresql"]),
]

SHARDS = 4
GATEWAYS = [f"gw-s{i:02d}" for i in range(8)]


@pytest.fixture
def queue_name(rabbit_cluster: RabbitCluster) -> Iterator[str]:
    name = f"sc.test-{uuid.uuid4().hex[:8]}"
    yield name
    asyncio.run(_delete(rabbit_cluster, [shard_queue(name, SHARDS, k) for k in range(SHARDS)]))


async def _connect(cluster: RabbitCluster) -> aio_pika.abc.AbstractConnection:
    node = cluster.any_running()
    return await aio_pika.connect(
        host="127.0.0.1", port=node.amqp_port, login="cloud", password=cluster.users["cloud"]
    )


async def _delete(cluster: RabbitCluster, names: list[str]) -> None:
    async with await _connect(cluster) as connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


class Worker:
    """A transport and the shards' owner, as `python -m cloud` runs them; it records what it
    received and acknowledges it, except while `holding_acks`."""

    def __init__(self, cluster: RabbitCluster, queue: str, database_url: str) -> None:
        self.transport = AmqpTransport(
            ClusterAddress(
                nodes=tuple(Node("127.0.0.1", n.amqp_port) for n in cluster.nodes),
                username="cloud",
                password=cluster.users["cloud"],
                client_id="test-worker",
                queue=queue,
                shards=SHARDS,
                heartbeat_s=2,
            ),
            link=BrokerLink(),
            drops=DropWatch(),
            retry_min_s=0.1,
            retry_max_s=0.5,
            gateways=lambda: GATEWAYS,
        )
        self.owner = ShardOwner(
            SHARDS,
            SessionLocks(DatabaseUrl.parse(database_url).target),
            self.transport.hold,
            every_s=0.1,
        )
        self.got: list[tuple[str, int]] = []
        self.unacked: list[Received] = []
        self.holding_acks = False
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.transport.hold(frozenset())
        self.tasks = [
            asyncio.create_task(self.transport.run(self.consume)),
            asyncio.create_task(self.owner.run()),
        ]
        await until(lambda: self.transport.link.connected.is_set(), 30)

    async def consume(self, batch: list[Received]) -> None:
        for item in batch:
            self.got.append((item.gateway, int(item.payload)))
            if self.holding_acks:
                self.unacked.append(item)
            else:
                self.transport.ack(item)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def gateways(self) -> set[str]:
        return {gw for gw in GATEWAYS if shard_of(gw, SHARDS) in self.owner.held}


async def publish(cluster: RabbitCluster, gateway: str, seqs: range) -> None:
    """As RabbitMQ's MQTT plugin does with a gateway's events."""
    async with await _connect(cluster) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("amq.topic", ensure=False)
        for seq in seqs:
            await exchange.publish(
                aio_pika.Message(str(seq).encode()), routing_key=f"sc.v1.{gateway}.event"
            )


def seqs_of(got: list[tuple[str, int]], gateway: str) -> list[int]:
    return [seq for gw, seq in got if gw == gateway]


async def test_two_workers_share_the_gateways_and_a_joining_one_gets_its_half(
    rabbit_cluster: RabbitCluster, queue_name: str, database_url: str
) -> None:
    a, b = Worker(rabbit_cluster, queue_name, database_url), None
    await a.start()
    try:
        await until(lambda: a.owner.held == frozenset(range(SHARDS)))
        b = Worker(rabbit_cluster, queue_name, database_url)
        await b.start()
        await until(lambda: len(a.owner.held) == len(b.owner.held) == SHARDS // 2)
        await until(lambda: not a.transport._open.keys() & b.transport._open.keys())
        for gateway in GATEWAYS:
            await publish(rabbit_cluster, gateway, range(1, 51))
        everything = len(GATEWAYS) * 50
        await until(lambda: len(a.got) + len(b.got) == everything)
        for worker in (a, b):  # each gateway's messages at one worker, in order
            for gateway in GATEWAYS:
                mine = seqs_of(worker.got, gateway)
                assert mine == (list(range(1, 51)) if gateway in worker.gateways() else [])
        assert a.gateways() and b.gateways()
    finally:
        await a.stop()
        if b is not None:
            await b.stop()


async def test_what_a_worker_had_not_acknowledged_reaches_the_next_holder_first(
    rabbit_cluster: RabbitCluster, queue_name: str, database_url: str
) -> None:
    a, b = Worker(rabbit_cluster, queue_name, database_url), None
    await a.start()
    try:
        await until(lambda: a.owner.held == frozenset(range(SHARDS)))
        a.holding_acks = True  # a takes everything and acknowledges nothing
        for gateway in GATEWAYS:
            await publish(rabbit_cluster, gateway, range(1, 21))
        await until(lambda: len(a.got) == len(GATEWAYS) * 20)
        b = Worker(rabbit_cluster, queue_name, database_url)
        await b.start()  # a gives half of its shards up: b gets what a had not acknowledged
        await until(lambda: len(b.owner.held) == SHARDS // 2)
        moved = b.gateways()
        await until(lambda: all(seqs_of(b.got, gw) == list(range(1, 21)) for gw in moved))
        for gateway in moved:  # and then what is new, after it
            await publish(rabbit_cluster, gateway, range(21, 31))
        await until(lambda: all(seqs_of(b.got, gw) == list(range(1, 31)) for gw in moved))
        for gateway in set(GATEWAYS) - moved:  # a's own: never at b
            assert seqs_of(b.got, gateway) == []
    finally:
        await a.stop()
        if b is not None:
            await b.stop()
