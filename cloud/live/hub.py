"""The live push: every open duty-room page holds one subscription; each message (built and
serialised once, cloud/live/messages.py) is fanned out to all of them — and, where several
cloud processes share one PostgreSQL, handed to `relay` for the other processes' hubs
(cloud/peers.py), which `deliver` it to their own pages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cloud.live.messages import LiveMessage

log = logging.getLogger(__name__)


@dataclass(eq=False)  # identity semantics: kept in a set
class Subscription:
    queue: asyncio.Queue[LiveMessage] = field(default_factory=lambda: asyncio.Queue(maxsize=2000))
    overflowed: bool = False


class LiveHub:
    """Fan-out of alarm updates to connected pages.

    A page that cannot keep up is cut off rather than slowing ingest down: its stream ends,
    the browser reconnects and gets a fresh snapshot, so it misses nothing.
    """

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        #: set once the first page has subscribed (the demo's scenario waits for it)
        self.first_listener = asyncio.Event()
        #: where a published message goes besides this process's pages (the other processes);
        #: returns how many pages it reaches there, as far as is known
        self.relay: Callable[[LiveMessage], int] | None = None
        #: told whenever a page comes or goes
        self.on_listeners: Callable[[], None] | None = None

    def subscribe(self) -> Subscription:
        sub = Subscription()
        self._subs.add(sub)
        self.first_listener.set()
        self._listeners_changed()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.discard(sub)
            self._listeners_changed()

    def _listeners_changed(self) -> None:
        if self.on_listeners is not None:
            self.on_listeners()

    @property
    def listeners(self) -> int:
        return len(self._subs)

    def publish(self, message: LiveMessage) -> int:
        """Queue a message for every listener, here and in the other processes (`relay`);
        returns how many pages get it (those of the other processes as far as known)."""
        elsewhere = self.relay(message) if self.relay is not None else 0
        return self.deliver(message) + elsewhere

    def deliver(self, message: LiveMessage) -> int:
        """Queue a message for this process's pages only; returns how many got it."""
        delivered = 0
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(message)
                delivered += 1
            except asyncio.QueueFull:
                log.warning("live page too slow; cutting it off so it reconnects and catches up")
                sub.overflowed = True
                self._subs.discard(sub)
                self._listeners_changed()
        return delivered
