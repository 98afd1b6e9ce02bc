"""The broker's drop counter: Mosquitto drops QoS 1 messages silently when a consumer's queue
is full, and says so only in `$SYS/broker/publish/messages/dropped`. Ingest watches it.

How Mosquitto 2.0.11 publishes it (measured; docs/architecture.md): once per $SYS pass (every
`sys_interval` seconds, strictly more: `sys_interval 1` gives a pass every 2 s) it publishes
the $SYS values that CHANGED since its previous pass, `$SYS/broker/uptime` first (it changes
every pass). Each is retained with a 60-second expiry. So a subscriber that arrives more than
60 s after the counter last moved hears nothing of it — not even "0" — until it moves again.

The watch therefore also follows the uptime. Once a whole pass has gone by since the cloud
subscribed (the second uptime after subscribing closes the first pass) with no new count, the
counter has not moved since the cloud began watching: `dropped` is 0 even though the broker's
earlier total (`total`) may be unknown. The inference is made only for a broker whose uptime
reads like Mosquitto's ("N seconds"); any other stays unknown (None) unless it publishes the
counter itself.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

DROPPED = "$SYS/broker/publish/messages/dropped"
UPTIME = "$SYS/broker/uptime"
#: What ingest subscribes to (QoS 0, like Mosquitto's $SYS); the cloud's ACL lets it read them.
SYS_TOPICS = (DROPPED, UPTIME)

_MOSQUITTO_UPTIME = re.compile(r"^\d+ seconds$")


class DropWatch:
    """What ingest knows of the broker's dropped messages."""

    def __init__(self) -> None:
        #: Messages the broker dropped while the cloud watched (since this process started,
        #: across reconnections; drops while it was disconnected count when a later value
        #: shows them). None until known. Must stay 0.
        self.dropped: int | None = None
        #: The broker's own total as last published in this session; None when it has not
        #: published it since the cloud subscribed (see the module's note).
        self.total: int | None = None
        self._last: int | None = None  # the last value heard, across sessions
        self._passes = 0  # $SYS passes begun since this session subscribed

    def subscribed(self) -> None:
        """A new session has subscribed (a new broker run, perhaps: its count restarts)."""
        self.total = None
        self._passes = 0

    def heard(self, topic: str, payload: bytes, *, retained: bool) -> None:
        """A $SYS message (a retained one is the broker's past, sent on subscribing)."""
        text = payload.decode(errors="replace").strip()
        if topic == UPTIME:
            if not retained and _MOSQUITTO_UPTIME.match(text):
                self._passes += 1
                if self._passes >= 2 and self.dropped is None:
                    self.dropped = 0  # a whole pass without a change since we subscribed
            return
        if topic != DROPPED:
            return
        try:
            value = int(text)
        except ValueError:
            log.warning("the broker's drop counter is not a number: %r", text[:40])
            return
        if self._last is None:
            # the first value: a retained one is where the watch starts; a fresh one says the
            # count moved since we subscribed, by how much is unknown, so all of it counts
            new = 0 if retained else value
        elif value >= self._last:
            new = value - self._last
        else:
            new = value  # the broker restarted: its count began again
        self._last = value
        self.total = value
        self.dropped = (self.dropped or 0) + new
        if new:
            log.error(
                "the broker dropped %d messages (its total %d): a consumer is too slow or its "
                "queue too small (max_queued_messages)",
                new,
                value,
            )
