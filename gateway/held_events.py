"""Events the outbox could not take yet (a full disk), kept in memory in seq order until it
takes them: seq order is outbox order, so nothing newer is written before them."""

from __future__ import annotations

import logging
import sqlite3
from collections import deque

from gateway.outbox import Outbox, OutboxFull

log = logging.getLogger(__name__)


class HeldEvents:
    """Not locked: the agent uses it under its lock."""

    def __init__(self) -> None:
        self._events: deque[tuple[str, bytes, tuple[str, int]]] = deque()

    def __len__(self) -> int:
        return len(self._events)

    def append(self, topic: str, payload: bytes, stream: tuple[str, int]) -> None:
        self._events.append((topic, payload, stream))

    def write(self, outbox: Outbox) -> int | None:
        """Write them, oldest first; the row of the newest, or None while the disk refuses
        them (they stay, in order)."""
        row = None
        while self._events:
            topic, payload, stream = self._events[0]
            try:
                row = outbox.put(topic, payload, 1, stream=stream)
            except (OutboxFull, sqlite3.OperationalError) as exc:
                held = len(self._events)
                if held == 1 or held % 100 == 0:
                    log.error(
                        "outbox refused an event; %d kept in memory until it takes them error=%r",
                        held,
                        str(exc),
                    )
                return None
            self._events.popleft()
        return row
