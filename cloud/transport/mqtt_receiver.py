"""The cloud's MQTT receiver process: the MQTT session (`mqtt.py`) in a process of its own, so
that paho's packet handling and the acknowledgements to the broker run on another core than
ingest's checks and storing (`mqtt_process.py` starts it and is its only peer).

    python -m cloud.transport.mqtt_receiver FD      # FD: the cloud's end of a socketpair

What it sends the cloud (frames.py): `batch` (a session's messages, numbered), `link`
(the session's attempts, up, down), `drops` (the broker's $SYS counters), `published` (the
broker's answer to a publish the cloud waits for). What it takes from the cloud: `start` (the
broker's address, first), `next` (the batch before is handled: hand over the next), `ack`
(these numbers are stored: acknowledge them to the broker), `publish`.

It ends when the cloud's end closes (the cloud stopped, or was killed): at once, and without
acknowledging anything more, so what the cloud had not stored is delivered again to the
session's next process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from cloud.transport import frames
from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import BrokerLink
from cloud.transport.mqtt import BrokerAddress, MqttTransport, Received

log = logging.getLogger(__name__)

Send = Callable[..., None]


class ForwardedLink(BrokerLink):
    """The session's link state, told to the cloud (whose own `BrokerLink` logs and shows it);
    kept here only as far as the reconnect loop reads it (`held_for`)."""

    def __init__(self, send: Send) -> None:
        super().__init__()
        self._send = send

    def attempting(self) -> None:
        self._send("link", "attempting")

    def up(self) -> None:
        self._up_mono = time.monotonic()
        self.connected.set()
        self._send("link", "up")

    def down(self, error: str, retry_in: float) -> None:
        self._up_mono = None
        self.connected.clear()
        self._send("link", "down", error, retry_in)


class ForwardedDrops(DropWatch):
    """The broker's $SYS counters, told to the cloud's `DropWatch`."""

    def __init__(self, send: Send) -> None:
        super().__init__()
        self._send = send

    def subscribed(self) -> None:
        self._send("drops", "subscribed")

    def heard(self, topic: str, payload: bytes, *, retained: bool) -> None:
        self._send("drops", "heard", topic, payload, retained)


class Receiver:
    """One MQTT session's messages to the cloud, one batch at a time; its acks to the broker."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        #: the cloud has handled the last batch handed over
        self._next = asyncio.Event()
        self._next.set()
        #: handed over, not acknowledged yet: number → message
        self._unacked: dict[int, Received] = {}
        self._numbered = 0
        self._session: Any = None
        self._publishing: set[asyncio.Task[None]] = set()
        self.transport: MqttTransport | None = None

    def send(self, *frame: Any) -> None:
        self._writer.write(frames.pack(*frame))

    async def consume(self, batch: list[Received]) -> None:
        if not batch:
            return
        if batch[0]._session is not self._session:  # a new session: the old one's acks are void
            self._session = batch[0]._session
            self._unacked.clear()
        first = self._numbered
        for n, item in enumerate(batch, first):
            self._unacked[n] = item
        self._numbered = first + len(batch)
        self._next.clear()
        self.send("batch", first, [(item.topic, item.payload) for item in batch])
        await self._writer.drain()
        await self._next.wait()

    def heard(self, frame: tuple[Any, ...]) -> None:
        """A frame from the cloud (after `start`)."""
        transport = self.transport
        assert transport is not None
        kind = frame[0]
        if kind == "next":
            self._next.set()
        elif kind == "ack":
            for n in frame[1]:
                item = self._unacked.pop(n, None)
                if item is not None:
                    transport.ack(item)
        elif kind == "publish":
            _, request, topic, payload = frame
            if request is None:
                transport.publish_soon(topic, payload)
            else:
                task = asyncio.create_task(self._publish(request, topic, payload))
                self._publishing.add(task)
                task.add_done_callback(self._publishing.discard)
        else:
            log.error("unknown frame from the cloud: %r", kind)

    async def _publish(self, request: int, topic: str, payload: bytes) -> None:
        assert self.transport is not None
        self.send("published", request, await self.transport.publish(topic, payload))


async def serve(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    receiver = Receiver(writer)
    _, address, options = await frames.read(reader)
    transport = MqttTransport(
        BrokerAddress(**address),
        link=ForwardedLink(receiver.send),
        drops=ForwardedDrops(receiver.send),
        **options,
    )
    receiver.transport = transport
    session = asyncio.create_task(transport.run(receiver.consume))
    try:
        while True:
            receiver.heard(await frames.read(reader))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the cloud has gone: so does its session, acknowledging nothing more
    finally:
        session.cancel()
        await asyncio.wait({session}, timeout=2.0)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    # Ctrl-C in a terminal reaches the whole process group: the cloud decides when this ends
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    asyncio.run(serve(sock))


if __name__ == "__main__":
    main()
