"""The MQTT session to the cloud (paho-mqtt, MQTT 3.1.1): connect, birth and last will,
commands in, and a sender that drains the outbox in order.

How it keeps the outbox promise:
- One paho client per connection. The session thread connects (username/password,
  TCP_NODELAY, last will = retained `offline` Status), runs paho's network loop until the
  connection drops, then reconnects with exponential backoff (with jitter).
- On connect: the retained `online` Status (birth), then a subscription to `cmd/+`.
- The sender thread publishes outbox rows oldest first, QoS 1, at most `window` awaiting the
  broker's PUBACK. The PUBACK frees the window; it deletes only what needs no more
  (telemetry, replies). **Events stay in the outbox until the cloud acknowledges them** on
  `cmd/ack` (`Ack`: every event of a boot up to a `seq` is committed to the cloud's system
  of record), because a broker acknowledges what it holds only in memory and a broker crash
  loses it. paho's callbacks only put items on the sender's queue; all bookkeeping happens
  on the sender thread (paho calls `on_publish` holding its own lock).
- Events the cloud has not acknowledged are sent again, oldest first: after every reconnect,
  after `ack_timeout_s` without the cloud's acknowledgement (doubling up to
  `ack_timeout_max_s` while nothing moves), and at once when the cloud asks for a replay
  (it saw a gap in `seq`). The cloud's idempotency by event `id` makes this harmless.
- Rows that waited for an uplink (stored during an outage, or left by an earlier run) go
  through the replay hook when sent (the agent marks such events `replayed: true`).
- A clustered broker (`BrokerParams.nodes`): a connection that fails or drops moves on to the
  next node at once; only after every node has failed in a row does the back-off grow. The
  events the cloud has not acknowledged go out again on the new node (as after any
  reconnect); the cloud's acknowledgements reach the gateway on whichever node it is.
- Outages: an outage begins with the first failed connect or a dropped connection, and is
  kept in the outbox's `meta` (so one that spans a restart is measured whole). When a
  connection is up again, `on_restored(offline_s)` is called once, after the backlog has been
  queued for sending. Within a process the length is measured on the monotonic clock; only
  the part before a restart depends on the wall clock (and is never counted negative).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from contract import topics
from contract.models import Ack, GatewayState, Status, decode, encode, utc_now
from contract.topics import Channel
from gateway.outbox import Entry, Outbox
from gateway.resend import Resend, jitter
from gateway.uplink_settings import BrokerParams, UplinkOptions, UplinkStats, tls_context

log = logging.getLogger(__name__)

#: (command name, payload, retained) → None; called on paho's thread, must not block long.
CommandHandler = Callable[[str, bytes, bool], None]
#: (topic, payload) → payload to send for a row that waited in the outbox for an uplink.
ReplayHook = Callable[[str, bytes], bytes]
#: (seconds offline) → None; called on the sender thread when an outage ends.
RestoredHook = Callable[[float], None]

#: outbox meta key: UNIX time the current outage began (absent while connected)
DOWN_SINCE = "uplink_down_since"
#: the command the cloud acknowledges events with (`sc/v1/{gw}/cmd/ack`, an `Ack`)
ACK_COMMAND = "ack"


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


class Uplink:
    def __init__(
        self,
        gateway_id: str,
        broker: BrokerParams,
        outbox: Outbox,
        *,
        boot: str,
        on_command: CommandHandler | None = None,
        on_replay: ReplayHook | None = None,
        on_restored: RestoredHook | None = None,
        options: UplinkOptions | None = None,
    ):
        self.gateway_id = gateway_id
        self.broker = broker
        self.outbox = outbox
        self.boot = boot
        self.options = options or UplinkOptions()
        self.stats = UplinkStats()
        self._on_command = on_command
        self._on_replay = on_replay
        self._on_restored = on_restored
        self._down_lock = threading.Lock()
        self._down_since: float | None = None  # monotonic
        persisted = outbox.get_meta(DOWN_SINCE)
        if persisted is not None:
            # An outage that began before this process: its earlier part by the wall clock.
            before = max(0.0, time.time() - float(persisted))
            self._down_since = time.monotonic() - before
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._end_session = threading.Event()
        self._lock = threading.Lock()
        self._gen = 0
        # Rows already there (from before a restart) are replays; so is anything stored
        # during an outage (a failed connect or a dropped connection): see `_sender`.
        self._replay_upto = outbox.last_row()
        self._outage = False
        self._node = broker.addresses()[0]  # the node connected to (or tried) last
        self._session_thread: threading.Thread | None = None
        self._sender_thread: threading.Thread | None = None
        if broker.username is not None and broker.username != gateway_id:
            # Mosquitto acknowledges a publish its ACL denies, and drops it: with the ACL we
            # ship (`sc/v1/%u/...`) every event would be deleted from the outbox unseen.
            log.warning(
                "broker user is not the gateway id; the shipped ACL will drop everything "
                "username=%s gateway=%s",
                broker.username,
                gateway_id,
            )

    # -- public ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def offline_s(self) -> float | None:
        """How long the current outage has lasted (None while connected)."""
        with self._down_lock:
            if self._down_since is None:
                return None
            return time.monotonic() - self._down_since

    def _went_down(self) -> None:
        with self._down_lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        self.outbox.set_meta(DOWN_SINCE, repr(time.time()))
        log.warning("uplink outage began broker=%s:%d", *self._node)

    def _came_back(self) -> None:
        with self._down_lock:
            since, self._down_since = self._down_since, None
        if since is None:
            return
        offline = max(0.0, time.monotonic() - since)
        self.outbox.set_meta(DOWN_SINCE, None)
        log.info("uplink outage ended offline_s=%.1f", offline)
        if self._on_restored is not None:
            try:
                self._on_restored(offline)
            except Exception:
                log.exception("uplink restored hook failed")

    def wait_connected(self, timeout: float) -> bool:
        """Until connected and subscribed to this gateway's commands (or the timeout)."""
        return self._connected.wait(timeout)

    def wake(self) -> None:
        """New rows in the outbox: the sender looks at once. Any thread."""
        self._queue.put(("wake",))

    def start(self) -> None:
        with self._lock:
            if self._session_thread is not None:
                return
            self._stopping.clear()
            self._end_session.clear()
            self._sender_thread = threading.Thread(
                target=self._sender, name=f"uplink-send-{self.gateway_id}", daemon=True
            )
            self._session_thread = threading.Thread(
                target=self._session, name=f"uplink-{self.gateway_id}", daemon=True
            )
        self._sender_thread.start()
        self._session_thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Wait briefly for outstanding acks, publish `offline`, disconnect. Idempotent."""
        with self._lock:
            sender, session = self._sender_thread, self._session_thread
            self._sender_thread = self._session_thread = None
        if session is None:
            return
        self._stopping.set()
        self._queue.put(("stop",))
        if sender is not None:
            sender.join(timeout)
        self._end_session.set()
        session.join(timeout)

    # -- the session (connect / reconnect) -----------------------------------------------------

    def _status(self, state: GatewayState) -> bytes:
        return encode(Status(gateway=self.gateway_id, state=state, boot=self.boot, ts=utc_now()))

    def _make_client(self, gen: int, up: threading.Event, down: threading.Event) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.broker.client_id or self.gateway_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
            reconnect_on_failure=False,
        )
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.ca_file is not None:
            client.tls_set_context(tls_context(self.broker.ca_file))
        client.will_set(
            topics.status(self.gateway_id),
            self._status(GatewayState.OFFLINE),
            qos=1,
            retain=True,
        )
        client.max_inflight_messages_set(self.options.window + 20)

        def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            try:
                if reason.is_failure:
                    log.warning("uplink refused by broker reason=%r", str(reason))
                    down.set()
                    return
                client.publish(
                    topics.status(self.gateway_id),
                    self._status(GatewayState.ONLINE),
                    qos=1,
                    retain=True,
                )
                client.subscribe(
                    topics.subscription(Channel.CMD, self.gateway_id), qos=self.broker.command_qos
                )
                up.set()
                self.stats.connects += 1
                self._queue.put(("up", gen, client, time.time()))
            except Exception:
                log.exception("uplink on_connect failed")

        def on_subscribe(_c: Any, _u: Any, _mid: Any, _codes: Any, _p: Any) -> None:
            # Connected *and* listening for commands (a command sent before the broker had
            # our subscription would be lost: commands are not queued for a gateway).
            self._connected.set()

        def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            self._connected.clear()
            self._queue.put(("down", gen))
            down.set()

        def on_publish(_c: Any, _u: Any, mid: int, _r: Any, _p: Any) -> None:
            self._queue.put(("ack", gen, mid))

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                name = msg.topic.rsplit("/", 1)[-1]
                if name == ACK_COMMAND:
                    self._cloud_ack(bytes(msg.payload))
                    return
                self.stats.commands += 1
                if self._on_command is not None:
                    self._on_command(name, bytes(msg.payload), bool(msg.retain))
            except Exception:
                log.exception("uplink command handler failed topic=%s", msg.topic)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        return client

    def _session(self) -> None:
        delay = self.options.backoff_min_s
        nodes = self.broker.addresses()
        turn = 0  # the node to try next
        failed_in_a_row = 0  # nodes that failed since the last good connection
        while not self._stopping.is_set():
            self._gen += 1
            up, down = threading.Event(), threading.Event()
            client = self._make_client(self._gen, up, down)
            host, port = self._node = nodes[turn % len(nodes)]
            turn += 1
            where = f"{host}:{port}"
            try:
                client.connect(host, port, self.broker.keepalive)
            except (OSError, ValueError) as exc:
                self._outage = True
                self._went_down()
                self.stats.connect_failures += 1
                failed_in_a_row += 1
                if failed_in_a_row < len(nodes):
                    log.info("uplink connect failed broker=%s error=%r next=node", where, exc)
                    continue  # another node may be there: at once
                failed_in_a_row = 0
                log.info("uplink connect failed broker=%s error=%r retry_s=%.2f", where, exc, delay)
                self._stopping.wait(jitter(delay))
                delay = min(delay * 2, self.options.backoff_max_s)
                continue
            _set_nodelay(client)
            client.loop_start()
            while not down.wait(0.1):
                if self._end_session.is_set():
                    self._close(client)
                    break
            client.loop_stop()
            if not self._end_session.is_set():
                self._outage = True
                self._went_down()
            if up.is_set():
                self.stats.disconnects += 1
                failed_in_a_row = 0
                delay = self.options.backoff_min_s
                if not self._end_session.is_set():
                    log.warning("uplink disconnected broker=%s", where)
            else:
                self.stats.connect_failures += 1
                failed_in_a_row += 1
            if self._stopping.is_set():
                break
            if not up.is_set() and failed_in_a_row < len(nodes):
                continue  # refused by this node (e.g. it lost its cluster): the next one
            failed_in_a_row = 0
            self._stopping.wait(jitter(delay))
            if not up.is_set():
                delay = min(delay * 2, self.options.backoff_max_s)
        self._connected.clear()

    def _close(self, client: mqtt.Client) -> None:
        """Clean shutdown: say `offline` ourselves (a clean disconnect suppresses the will)."""
        try:
            info = client.publish(
                topics.status(self.gateway_id),
                self._status(GatewayState.OFFLINE),
                qos=1,
                retain=True,
            )
            info.wait_for_publish(1.0)
        except (RuntimeError, ValueError) as exc:
            log.info("uplink could not publish offline status error=%r", exc)
        client.disconnect()

    # -- the sender ----------------------------------------------------------------------------

    def _cloud_ack(self, payload: bytes) -> None:
        """The cloud's acknowledgement (paho's thread): handed to the sender."""
        try:
            ack = decode(Ack, payload)
        except ValueError as exc:
            log.warning("uplink ignored a malformed cloud ack error=%r", str(exc)[:300])
            return
        self._queue.put(("cloud_ack", ack))

    def _sender(self) -> None:
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
                if self._outage:
                    self._outage = False
                    self._replay_upto = max(self._replay_upto, self.outbox.last_row())
                state.conn.replay_upto = self._replay_upto
                log.info(
                    "uplink connected broker=%s:%d backlog=%d",
                    *self._node,
                    self.outbox.count(),
                )
                self._came_back()
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


def _set_nodelay(client: mqtt.Client) -> None:
    sock = client.socket()
    try:
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
