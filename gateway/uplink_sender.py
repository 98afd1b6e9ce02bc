"""The uplink's sender thread: it drains the outbox in order over the live connection.

It publishes outbox rows oldest first, QoS 1, at most `window` awaiting the broker's PUBACK.
The PUBACK frees the window; it deletes only what needs no more (telemetry, replies).
**Events stay in the outbox until the cloud acknowledges them** on `cmd/ack` (`Ack`: every
event of a boot up to a `seq` is committed to the cloud's system of record), because a broker
acknowledges what it holds only in memory and a broker crash loses it. What paho reports
(connected, dropped, a PUBACK, the cloud's Ack) reaches it as items on its queue; all
bookkeeping happens on this thread (paho calls `on_publish` holding its own lock).

Events the cloud has not acknowledged are sent again, oldest first: after every reconnect,
after `ack_timeout_s` without the cloud's acknowledgement (doubling up to `ack_timeout_max_s`
while nothing moves), and at once when the cloud asks for a replay (it saw a gap in `seq`).
The cloud's idempotency by event `id` makes this harmless. Rows that waited for an uplink
(stored during an outage, or left by an earlier run) go through the replay hook when sent
(the agent marks such events `replayed: true`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from contract.models import Ack
from gateway.broker_nodes import Node
from gateway.outbox import Entry, Outbox
from gateway.resend import Resend
from gateway.uplink_settings import UplinkOptions, UplinkStats

log = logging.getLogger(__name__)

#: (topic, payload) → payload to send for a row that waited in the outbox for an uplink.
ReplayHook = Callable[[str, bytes], bytes]


@dataclass
class _Conn:
    """The sender's view of one live connection."""

    gen: int
    client: mqtt.Client
    since: float  # UNIX time the connection was established
    replay_upto: int = 0  # rows up to this one waited for an uplink (or were sent before)
    inflight: dict[int, Entry] = field(default_factory=dict)  # paho mid → outbox entry
    inflight_rows: set[int] = field(default_factory=set)
    cursor: int = 0  # rows up to this one were published on this connection
    broken: bool = False


class Sender:
    """Fed through `items` by the uplink: ("up", gen, client, since), ("down", gen),
    ("ack", gen, mid), ("cloud_ack", Ack), ("wake",), ("stop",). `on_up` is called when a
    connection is up (the outage is over); `node` names the broker node, for the log."""

    def __init__(
        self,
        outbox: Outbox,
        options: UplinkOptions,
        stats: UplinkStats,
        items: queue.SimpleQueue[tuple[Any, ...]],
        *,
        stopping: threading.Event,
        on_up: Callable[[], None],
        on_replay: ReplayHook | None,
        node: Callable[[], Node],
    ) -> None:
        self.outbox = outbox
        self.options = options
        self.stats = stats
        self._queue = items
        self._stopping = stopping
        self._on_up = on_up
        self._on_replay = on_replay
        self._node = node
        # Rows already there (from before a restart) are replays; so is anything stored
        # during an outage (a failed connect or a dropped connection): see `_send_round`.
        self._replay_upto = outbox.last_row()
        #: set by the session thread when a connect fails or a connection drops
        self.outage = False

    def run(self) -> None:
        """The sender thread. It must never die (a full disk, a bug): an error is logged and
        the loop goes on, so the backlog is sent once the cause is gone."""
        state = _SenderState(resend=Resend(self.options))
        while True:
            try:
                if self._send_round(state):
                    return
            except Exception:
                log.exception("uplink sender round failed; going on")
                self._stopping.wait(1.0)
                if state.drain_until is not None:
                    return

    def _send_round(self, state: _SenderState) -> bool:
        """Handle what paho and the agent queued, then send what the window allows; True
        when the sender is to end (stopped, and drained or out of time)."""
        resend = state.resend
        done: list[int] = []  # rows the broker's PUBACK completes, deleted together
        for item in self._take(timeout=0.5):
            kind = item[0]
            if kind == "up":
                state.conn = _Conn(gen=item[1], client=item[2], since=item[3])
                resend.reset()
                if self.outage:
                    self.outage = False
                    self._replay_upto = max(self._replay_upto, self.outbox.last_row())
                state.conn.replay_upto = self._replay_upto
                log.info(
                    "uplink connected broker=%s:%d backlog=%d",
                    *self._node(),
                    self.outbox.count(),
                )
                self._on_up()
            elif kind == "down":
                if state.conn is not None and state.conn.gen == item[1]:
                    state.conn = None
            elif kind == "ack":
                if state.conn is not None and state.conn.gen == item[1]:
                    row = self._broker_acked(state.conn, item[2])
                    if row is not None:
                        done.append(row)
            elif kind == "cloud_ack":
                self._apply_cloud_ack(state.conn, item[1], resend)
            elif kind == "stop" and state.drain_until is None:
                state.drain_until = time.monotonic() + self.options.drain_s
        if done:
            self.outbox.ack_rows(done)
        conn = state.conn
        if state.drain_until is not None:
            waiting = conn is not None and (conn.inflight or self._unacked_sent(conn))
            return not waiting or time.monotonic() > state.drain_until
        if conn is not None and not conn.broken:
            if resend.due() and self._unacked_sent(conn):
                self._rewind(conn, self.outbox.first_unacked(), "no acknowledgement")
                resend.backoff()
            self._fill(conn, resend)
        return False

    def _broker_acked(self, conn: _Conn, mid: int) -> int | None:
        """The broker's PUBACK frees the window; the row it completes (one that needs no
        more than that: telemetry, a reply), to delete, or None."""
        entry = conn.inflight.pop(mid, None)
        if entry is None:
            return None
        conn.inflight_rows.discard(entry.row)
        self.stats.acked += 1
        return None if entry.awaits_cloud else entry.row

    def _apply_cloud_ack(self, conn: _Conn | None, ack: Ack, resend: Resend) -> None:
        self.stats.cloud_acks += 1
        deleted = self.outbox.ack_stream(ack.boot, ack.upto)
        self.stats.cloud_acked += deleted
        if deleted:
            resend.progress()
        replay = ack.replay and conn is not None and not conn.broken
        if replay and conn is not None and resend.replay_allowed(ack.boot):
            self._rewind(conn, self.outbox.first_unacked(ack.boot, ack.upto), "the cloud asked")

    def _unacked_sent(self, conn: _Conn) -> bool:
        """Whether events sent on this connection still wait for the cloud."""
        first = self.outbox.first_unacked()
        return first is not None and first <= conn.cursor

    def _rewind(self, conn: _Conn, row: int | None, why: str) -> None:
        """Send again, oldest first, from `row` on (what is in flight is not doubled)."""
        if row is None or row > conn.cursor:
            return  # not sent yet on this connection: it goes out in its turn
        log.info(
            "uplink resending unacknowledged events from row=%d to row=%d why=%s",
            row,
            conn.cursor,
            why,
        )
        self.stats.resends += 1
        conn.cursor = row - 1

    def _take(self, timeout: float) -> list[tuple[Any, ...]]:
        try:
            items = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _fill(self, conn: _Conn, resend: Resend) -> None:
        window = self.options.window
        while len(conn.inflight) < window:
            rows = self.outbox.pending(limit=window, after=conn.cursor)
            if not rows:
                return
            for entry in rows:
                if len(conn.inflight) >= window:
                    return
                if entry.row in conn.inflight_rows:
                    conn.cursor = entry.row  # still in flight from before a rewind
                    continue
                if not self._publish(conn, entry):
                    return
                if entry.awaits_cloud:
                    resend.sent()

    def _publish(self, conn: _Conn, entry: Entry) -> bool:
        payload = entry.payload
        if self._on_replay is not None and entry.row <= conn.replay_upto:
            try:
                payload = self._on_replay(entry.topic, payload)
            except Exception:
                log.exception("uplink replay hook failed row=%d", entry.row)
        try:
            info = conn.client.publish(entry.topic, payload, qos=entry.qos)
        except ValueError as exc:
            # paho refuses it outright (bad topic, oversize): it can never be sent.
            log.error(
                "uplink dropped unsendable row=%d topic=%s error=%r", entry.row, entry.topic, exc
            )
            self.outbox.ack_rows([entry.row])
            conn.cursor = entry.row
            return True
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            conn.broken = True  # the connection is going; the row is sent on the next one
            return False
        conn.inflight[info.mid] = entry
        conn.inflight_rows.add(entry.row)
        conn.cursor = entry.row
        self.stats.published += 1
        return True


@dataclass
class _SenderState:
    resend: Resend
    conn: _Conn | None = None
    drain_until: float | None = None
