"""The MQTT session to the cloud (paho-mqtt, MQTT 3.1.1): connect, birth and last will,
commands in, and a sender that drains the outbox in order.

How it keeps the outbox promise:
- One paho client per connection. The session thread connects (username/password,
  TCP_NODELAY, last will = retained `offline` Status), runs paho's network loop until the
  connection drops, then reconnects: the next of the broker's nodes, or after a back-off
  (gateway/broker_nodes.py).
- On connect: the retained `online` Status (birth), then a subscription to `cmd/+`.
- The sender thread (gateway/uplink_sender.py) publishes outbox rows oldest first and keeps
  events until the cloud acknowledges them on `cmd/ack`, sending again what it has not.
  paho's callbacks only put items on the sender's queue; all bookkeeping happens on the
  sender thread.
- A clustered broker (`BrokerParams.nodes`): the events the cloud has not acknowledged go
  out again on the new node (as after any reconnect); the cloud's acknowledgements reach the
  gateway on whichever node it is.
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
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from contract import topics
from contract.models import Ack, GatewayState, Status, decode, encode, utc_now
from contract.topics import Channel
from gateway.broker_nodes import NodeTurns
from gateway.outbox import Outbox
from gateway.resend import jitter
from gateway.uplink_sender import ReplayHook, Sender
from gateway.uplink_settings import BrokerParams, UplinkOptions, UplinkStats, tls_context

log = logging.getLogger(__name__)

#: (command name, payload, retained) → None; called on paho's thread, must not block long.
CommandHandler = Callable[[str, bytes, bool], None]
#: (seconds offline) → None; called on the sender thread when an outage ends.
RestoredHook = Callable[[float], None]

#: outbox meta key: UNIX time the current outage began (absent while connected)
DOWN_SINCE = "uplink_down_since"
#: the command the cloud acknowledges events with (`sc/v1/{gw}/cmd/ack`, an `Ack`)
ACK_COMMAND = "ack"


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
        self._node = broker.addresses()[0]  # the node connected to (or tried) last
        self._sender = Sender(
            outbox,
            self.options,
            self.stats,
            self._queue,
            stopping=self._stopping,
            on_up=self._came_back,
            on_replay=on_replay,
            node=lambda: self._node,
        )
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
                target=self._sender.run, name=f"uplink-send-{self.gateway_id}", daemon=True
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
        nodes = NodeTurns(self.broker.addresses(), self.options)
        while not self._stopping.is_set():
            self._gen += 1
            up, down = threading.Event(), threading.Event()
            client = self._make_client(self._gen, up, down)
            host, port = self._node = nodes.next()
            where = f"{host}:{port}"
            try:
                client.connect(host, port, self.broker.keepalive)
            except (OSError, ValueError) as exc:
                self._sender.outage = True
                self._went_down()
                self.stats.connect_failures += 1
                delay = nodes.failed()
                if delay is None:
                    log.info("uplink connect failed broker=%s error=%r next=node", where, exc)
                    continue  # another node may be there: at once
                log.info("uplink connect failed broker=%s error=%r retry_s=%.2f", where, exc, delay)
                self._stopping.wait(jitter(delay))
                continue
            _set_nodelay(client)
            client.loop_start()
            while not down.wait(0.1):
                if self._end_session.is_set():
                    self._close(client)
                    break
            client.loop_stop()
            if not self._end_session.is_set():
                self._sender.outage = True
                self._went_down()
            if up.is_set():
                self.stats.disconnects += 1
                wait: float | None = nodes.lost()
                if not self._end_session.is_set():
                    log.warning("uplink disconnected broker=%s", where)
            else:
                self.stats.connect_failures += 1
                wait = nodes.failed()
            if self._stopping.is_set():
                break
            if wait is None:
                continue  # refused by this node (e.g. it lost its cluster): the next one
            self._stopping.wait(jitter(wait))
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

    # -- to the sender ---------------------------------------------------------------------------

    def _cloud_ack(self, payload: bytes) -> None:
        """The cloud's acknowledgement (paho's thread): handed to the sender."""
        try:
            ack = decode(Ack, payload)
        except ValueError as exc:
            log.warning("uplink ignored a malformed cloud ack error=%r", str(exc)[:300])
            return
        self._queue.put(("cloud_ack", ack))


def _set_nodelay(client: mqtt.Client) -> None:
    sock = client.socket()
    try:
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
