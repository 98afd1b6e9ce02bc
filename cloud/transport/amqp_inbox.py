"""What the broker delivered to the cloud's AMQP session (cloud/transport/amqp.py), in order,
shard by shard, and whether the session was lost."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aio_pika.abc


class SessionLost(Exception):
    """The connection or a channel of the session closed."""


@dataclass(eq=False)
class Shard:
    """One shard consumed on a channel of its own; its messages are acknowledged only while
    it is (`live`): a channel closed gives what it had not acknowledged back to the queue."""

    number: int
    channel: aio_pika.abc.AbstractChannel
    live: bool = True


#: the message, the shard it came on, whether it matched no binding
Delivery = tuple[aio_pika.abc.AbstractIncomingMessage, Shard, bool]


class Inbox:
    """What the broker delivered, in order, and whether the session was lost. A wait for the
    first message never loses one (nothing is taken off the queue by a wait that times out)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._arrived = asyncio.Event()

    async def put(
        self, message: aio_pika.abc.AbstractIncomingMessage, *, shard: Shard, unrouted: bool = False
    ) -> None:
        self._queue.put_nowait((message, shard, unrouted))
        self._arrived.set()

    def lost(self, _sender: object = None, exc: BaseException | None = None) -> None:
        if not self._lost.done():
            self._lost.set_exception(SessionLost(str(exc) if exc else "closed"))
            self._lost.exception()  # retrieved: no "never retrieved" warning if none waits

    def empty(self) -> bool:
        return self._queue.empty()

    def get_nowait(self) -> Delivery:
        return self._queue.get_nowait()

    async def first(self, wait: float | None) -> list[Delivery]:
        """[the next delivery], waiting at most `wait` s (None: until one comes), or []."""
        if self._lost.done():
            self._lost.result()  # raises SessionLost
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
