"""Ingest holds while the database cannot be reached: a unit that met `DatabaseUnavailable` is
tried again, as it was, until the database answers.

What is decided stays decided (the rules are not asked twice about the same message), nothing
is acknowledged meanwhile — neither to the broker nor to the gateways — so they keep what they
have, and ingest goes on from where it stopped when the database is back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cloud.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Waits between tries (doubling from the first to the last).
HOLD_MIN_S = 0.25
HOLD_MAX_S = 5.0


class DatabaseHold:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        #: times ingest held for the database
        self.holds = 0
        #: units waiting for the database now
        self.waiting = 0
        #: set when a hold ended: a commit whose answer was lost may have stored alarms that
        #: nobody announced (the consumer then announces what was never pushed)
        self.resumed = False

    async def until_stored(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` until it does not meet `DatabaseUnavailable`; its result."""
        wait, since = HOLD_MIN_S, None
        while True:
            try:
                result = await attempt()
            except DatabaseUnavailable as exc:
                if since is None:
                    since = self.clock()
                    self.holds += 1
                    self.waiting += 1
                    log.error("database unavailable, ingest holds until it is back: %s", exc)
                try:
                    await asyncio.sleep(wait)
                except BaseException:
                    self.waiting -= 1
                    raise
                wait = min(wait * 2, HOLD_MAX_S)
                continue
            if since is not None:
                self.waiting -= 1
                self.resumed = True
                log.warning("database back after %.1f s; ingest goes on", self.clock() - since)
            return result
