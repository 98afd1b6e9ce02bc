"""The cloud's MQTT session: the one module that imports the MQTT client (aiomqtt) and holds
its workarounds.

- A persistent session (`clean_session=False`): what arrives while the cloud is away waits
  at the broker. Each message is acknowledged to the broker only when the caller says so
  (`ack`: paho's manual acknowledgement, which aiomqtt does not wrap), i.e. once it is stored.
- Batches: `run(consume)` hands over what is waiting already (never waiting for more once
  something is there, at most `max_batch`) — aiomqtt's queue drained without awaiting, which
  is what `len(client.messages)` counts. The caller says how long to wait for a first
  message (`wait_s`: it may have work of its own, such as a backlog to go through).
- Reconnects: a broker that is not there (at start-up too) or goes away is tried again and
  again with capped, jittered back-off; the `BrokerLink` says meanwhile since when it is
  missing and why. `$SYS` counters go to the `DropWatch`, never to the caller.
- Reading: paho reads a packet a few bytes at a time (4 `recv` calls for an event) and aiomqtt
  reads one packet per readiness of the socket (one turn of the event loop per message). The
  socket is read ahead in large chunks (`_ReadAhead`), whose `pending()` makes aiomqtt go on
  reading what is buffered — its own path for TLS sockets: a backlog of ~250 events costs one
  `recv` and one turn of the loop.
- Out: `publish` awaits the broker's acknowledgement (commands to a gateway: the caller wants
  to know); `publish_soon` does not (the cloud's `Ack`s: a lost one is made good by the
  gateway sending again).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from cloud.transport.base import CHANNELS, MAX_BATCH, Consume, Received, WaitS
from cloud.transport.broker_drops import SYS_TOPICS, DropWatch
from cloud.transport.broker_link import Backoff, BrokerLink
from contract import topics
from contract.models import Command, encode

log = logging.getLogger(__name__)

__all__ = ["CHANNELS", "BrokerAddress", "Consume", "MqttTransport", "Received", "WaitS"]


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    client_id: str
    tls_ca_file: Path | None = None  # MQTT over TLS (1.2+) trusting this CA


class MqttTransport:
    def __init__(
        self,
        address: BrokerAddress,
        *,
        link: BrokerLink,
        drops: DropWatch,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.address = address
        self.link = link
        self.drops = drops
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.max_batch = max_batch
        self._client: aiomqtt.Client | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self.link.address = f"{address.host}:{address.port}"

    # ---- in ----------------------------------------------------------------------------------

    async def run(self, consume: Consume, *, wait_s: WaitS = lambda: None) -> None:
        """Hand batches to `consume` until cancelled, across reconnects."""
        backoff = Backoff(self.retry_min_s, self.retry_max_s)
        while True:
            self.link.attempting()
            try:
                await self._session(consume, wait_s)
                error = "the broker ended the session"
            except aiomqtt.MqttError as exc:
                error = str(exc) or type(exc).__name__
            self._client = None
            if self.link.held_for() >= self.retry_max_s:
                backoff.reset()
            delay = backoff.next()
            self.link.down(error, delay)
            await asyncio.sleep(delay)

    async def _session(self, consume: Consume, wait_s: WaitS) -> None:
        a = self.address
        tls = None
        if a.tls_ca_file is not None:
            tls = ssl.create_default_context(cafile=str(a.tls_ca_file))
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
        client = aiomqtt.Client(
            a.host,
            a.port,
            username=a.username,
            password=a.password,
            identifier=a.client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            # a persistent session: what arrives while we are away waits for us
            clean_session=False,
            keepalive=15,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            tls_context=tls,
        )
        client.pending_calls_threshold = 1000
        _read_ahead(client._client)
        # Acknowledge only after handling (paho's manual ack; aiomqtt does not wrap it).
        client._client.manual_ack_set(True)
        async with client:
            self._client = client
            for channel in CHANNELS:
                await client.subscribe(topics.subscription(channel), qos=1)
            self.drops.subscribed()
            await client.subscribe([(topic, 0) for topic in SYS_TOPICS])
            self.link.up()
            waiting = _NextMessage(client)
            queue = client._queue  # what len(client.messages) counts; no await to drain it
            try:
                while True:
                    arrived = await waiting.first(wait_s())
                    while len(arrived) < self.max_batch and not queue.empty():
                        arrived.append(queue.get_nowait())
                    batch: list[Received] = []
                    for message in arrived:
                        topic = str(message.topic)
                        payload = _payload_bytes(message.payload)
                        if topic.startswith("$SYS/"):
                            self.drops.heard(topic, payload, retained=message.retain)
                        else:
                            batch.append(Received(topic, payload, message, client))
                    await consume(batch)
            finally:
                waiting.close()

    async def hold(self, shards: frozenset[int]) -> None:
        """One session takes every gateway's messages: the single box has one shard."""

    async def bind(self, gateway: str) -> None:
        """Every gateway's topics are in the one subscription."""

    def ack(self, item: Received) -> None:
        """The broker may forget this message (QoS 1: a PUBACK; once). Not on a later session
        than the one it came on (the broker delivers it again there)."""
        client = self._client
        if item.acked or client is None or item._session is not client:
            return
        if item._message.qos > 0:
            client._client.ack(item._message.mid, item._message.qos)
        item.acked = True

    # ---- out ---------------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes) -> bool:
        """QoS 1, awaiting the broker's acknowledgement; False if it is not reachable now."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("publish to %s failed: %s", topic, exc)
            return False
        return True

    async def send_command(self, gateway: str, name: str, command: Command) -> bool:
        """A command to a gateway on its `cmd/{name}` (QoS 1); False if the broker is not
        reachable now."""
        return await self.publish(topics.command(gateway, name), encode(command))

    def publish_soon(self, topic: str, payload: bytes) -> bool:
        """QoS 1 without waiting for it; False if there is no session now."""
        if self._client is None:
            return False
        task = asyncio.create_task(self._quietly(topic, payload))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
        return True

    async def _quietly(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            return
        try:
            await client.publish(topic, payload, qos=1)
        except aiomqtt.MqttError as exc:
            log.info("publish to %s not sent: %s", topic, exc)


class _NextMessage:
    """The next message off aiomqtt's queue, waited for at most a while, never lost.

    aiomqtt's own iterator loses a message when a wait on it is cancelled just after its
    inner `queue.get()` took one (`asyncio.wait_for(anext(client.messages), t)` timing out
    at the wrong moment: seen as a valid alarm never stored, about once in a few thousand
    waits). Here the one waiting `queue.get()` is a task of its own that no timeout cancels:
    it is done exactly when it has taken a message, a wait that ends empty-handed leaves it
    waiting, and the next call returns its message first (it is the oldest).
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        self._queue = client._queue
        self._disconnected = client._disconnected
        self._next: asyncio.Task[aiomqtt.Message] | None = None

    async def first(self, wait: float | None) -> list[aiomqtt.Message]:
        """[the next message], waiting for it at most `wait` seconds (None: until it comes;
        0: only if one is here already) — or [] if none came. The caller may then drain the
        queue without awaiting: nothing older than what is in it is held here."""
        if self._next is None:
            if not self._queue.empty():
                return [self._queue.get_nowait()]
            if wait is not None and wait <= 0:
                return []
            self._next = asyncio.ensure_future(self._queue.get())
        if not self._next.done() and (wait is None or wait > 0):
            await asyncio.wait(
                (self._next, self._disconnected),
                timeout=wait,
                return_when=asyncio.FIRST_COMPLETED,
            )
        if not self._next.done():
            if self._disconnected.done():
                raise aiomqtt.MqttError("Disconnected during message iteration") from (
                    self._disconnected.exception()
                )
            return []
        task, self._next = self._next, None
        return [task.result()]

    def close(self) -> None:
        """The session is over: a message taken but not handled is not acknowledged, so the
        broker delivers it again."""
        if self._next is not None:
            self._next.cancel()
            self._next = None


class _ReadAhead:
    """The broker's socket read `CHUNK` bytes at a time, handed out as paho asks for them.

    `pending()` counts what is buffered (and what a TLS socket buffers below), so aiomqtt's
    reader goes on calling `loop_read()` until it is all handled; the event loop sees the
    socket readable again only for bytes not read yet. Anything else is the socket's own.
    """

    CHUNK = 65536

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._at = 0

    def recv(self, size: int) -> bytes:
        if self._at >= len(self._buffer):
            data = self._sock.recv(max(size, self.CHUNK))  # BlockingIOError: nothing to read
            if len(data) <= size:
                return data
            self._buffer, self._at = data, 0
        end = self._at + size
        piece = self._buffer[self._at : end]
        self._at = min(end, len(self._buffer))
        return piece

    def pending(self) -> int:
        below = getattr(self._sock, "pending", None)
        return len(self._buffer) - self._at + (below() if below is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _read_ahead(paho: Any) -> None:
    """Every socket this paho client opens (each reconnect makes one) is read ahead."""
    create = paho._create_socket

    def create_reading_ahead() -> _ReadAhead:
        return _ReadAhead(create())

    paho._create_socket = create_reading_ahead


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
