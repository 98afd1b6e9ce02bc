"""The cloud's link to its MQTT broker: up, or down since when and why, and when it retries.

Ingest (`cloud/ingest/pipeline.py`) owns the session and reports every attempt here. The web
app keeps serving whatever the link does: `GET /api/stats` shows the state, `/health` whether
the broker is connected, and every open duty-room page is told at once (a `broker` message on
the live stream) that alarms may be waiting at the broker, and again when they flow.

An outage is logged twice at warning level — when it starts and when it ends, with its length
— never once per retry (those are debug lines).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Backoff:
    """The waits between connection attempts: doubling from `first` up to `cap`, each drawn at
    random from the upper half of its step (jitter), so clouds or workers that lost the same
    broker do not all knock again at the same instant. `reset()` starts from `first` again."""

    def __init__(
        self,
        first: float,
        cap: float,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"back-off needs 0 < first <= cap, not first={first} cap={cap}")
        self.first = first
        self.cap = cap
        self._draw = draw
        self._step = first

    def next(self) -> float:
        step = self._step
        self._step = min(self.cap, step * 2)
        return self._draw(step / 2, step)

    def reset(self) -> None:
        self._step = self.first


class BrokerLink:
    """Whether ingest has its broker; if not, since when, why, and when it tries again.

    `on_change(connected, down_since)` is called when the link goes down and when it comes
    back — not on every retry (the cloud turns it into the live `broker` message)."""

    def __init__(
        self,
        address: str = "",
        *,
        on_change: Callable[[bool, float | None], object] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.on_change = on_change
        self._clock = clock
        self._monotonic = monotonic
        #: Set while a session is up and subscribed; cleared when it is lost.
        self.connected = asyncio.Event()
        #: Wall-clock time the broker was first missed in this outage (None while connected,
        #: and before the first attempt has ended).
        self.down_since: float | None = None
        self.last_error: str | None = None
        #: Attempts that failed (or sessions lost) in this outage.
        self.failures = 0
        self.retry_at: float | None = None
        self._down_mono = 0.0
        self._attempt_at = clock()
        self._up_mono: float | None = None

    # ---- what ingest reports ---------------------------------------------------------------

    def attempting(self) -> None:
        """A connection attempt begins: if it fails, the outage dates from now."""
        self._attempt_at = self._clock()

    def up(self) -> None:
        """The session is up and subscribed: messages flow (what waited comes first)."""
        if self.down_since is not None:
            log.warning(
                "broker %s reachable again after an outage of %.1f s (%d failed attempts); "
                "ingest resumes with what waited at the broker",
                self.address,
                self._monotonic() - self._down_mono,
                self.failures,
            )
        else:
            log.info("ingest connected to the broker %s", self.address)
        self.down_since = None
        self.last_error = None
        self.failures = 0
        self.retry_at = None
        self._up_mono = self._monotonic()
        self.connected.set()
        self._tell()

    def down(self, error: str, retry_in: float) -> None:
        """An attempt failed or the session was lost; the next attempt is `retry_in` s away."""
        was_up = self.connected.is_set()
        self.connected.clear()
        self._up_mono = None
        self.failures += 1
        self.last_error = error
        self.retry_at = self._clock() + retry_in
        if self.down_since is not None:
            log.debug(
                "broker %s still unreachable (%d failed attempts): %s; next attempt in %.1f s",
                self.address,
                self.failures,
                error,
                retry_in,
            )
            return
        self.down_since = self._clock() if was_up else self._attempt_at
        self._down_mono = self._monotonic() - (self._clock() - self.down_since)
        log.warning(
            "broker %s unreachable: %s; the web app keeps serving, ingest retries with "
            "back-off (next attempt in %.1f s) and logs again when the broker is back",
            self.address,
            error,
            retry_in,
        )
        self._tell()

    def held_for(self) -> float:
        """How long the current session has been up (0 when there is none)."""
        return 0.0 if self._up_mono is None else self._monotonic() - self._up_mono

    # ---- what the web app reads ------------------------------------------------------------

    def _tell(self) -> None:
        if self.on_change is not None:
            self.on_change(self.connected.is_set(), self.down_since)
