"""When the uplink sends again what the cloud has not acknowledged, and its back-off jitter."""

from __future__ import annotations

import random
import time

from gateway.uplink_settings import UplinkOptions


class Resend:
    """When events the cloud has not acknowledged are sent again (sender thread only).

    The clock starts when an event is sent while none was waiting, and again at every
    acknowledgement that lets something go; past `ack_timeout_s` they are sent again, and the
    wait doubles (up to `ack_timeout_max_s`) until the cloud acknowledges something."""

    def __init__(self, options: UplinkOptions) -> None:
        self.options = options
        self.timeout = options.ack_timeout_s
        self.waiting_since: float | None = None
        self._replays: dict[str, float] = {}

    def reset(self) -> None:
        """A new connection: everything unacknowledged goes out again from the start."""
        self.timeout = self.options.ack_timeout_s
        self.waiting_since = None

    def sent(self) -> None:
        if self.waiting_since is None:
            self.waiting_since = time.monotonic()

    def progress(self) -> None:
        self.timeout = self.options.ack_timeout_s
        self.waiting_since = time.monotonic()

    def due(self) -> bool:
        since = self.waiting_since
        return since is not None and time.monotonic() - since > self.timeout

    def backoff(self) -> None:
        self.timeout = min(self.timeout * 2, self.options.ack_timeout_max_s)
        self.waiting_since = time.monotonic()

    def replay_allowed(self, boot: str) -> bool:
        """At most one replay a second per boot (the cloud may ask once per batch)."""
        now = time.monotonic()
        if now - self._replays.get(boot, -1e9) < 1.0:
            return False
        self._replays[boot] = now
        return True


def jitter(delay: float) -> float:
    return delay * random.uniform(0.8, 1.2)
