"""MQTT sessions (paho) for probing the broker: who may connect, publish and subscribe."""

from __future__ import annotations

import asyncio
import queue
import ssl
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt


def trusting(ca: Path | None) -> ssl.SSLContext:
    """A client TLS context trusting `ca` (None: the system's CAs only)."""
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Session:
    """One MQTT connection. `reason` is the CONNACK's reason code, or None when the broker
    closed the connection without one; `gone` is set when the connection ends."""

    def __init__(
        self,
        port: int,
        user: str | None,
        password: str | None,
        *,
        tls: ssl.SSLContext | None = None,
        client_id: str | None = None,
    ) -> None:
        self._connack: queue.Queue[Any] = queue.Queue()
        self.gone = threading.Event()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"probe-{user}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if user is not None:
            client.username_pw_set(user, password)
        if tls is not None:
            client.tls_set_context(tls)
        client.on_connect = lambda _c, _u, _f, rc, _p: self._connack.put(rc)
        client.on_disconnect = self._on_disconnect
        client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, bytes(msg.payload)))
        client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put(codes)
        self.client = client
        client.connect("127.0.0.1", port, keepalive=30)  # TLS handshake errors raise here
        client.loop_start()
        self.reason: Any = None
        try:
            self.reason = self._connack.get(timeout=10)
        except queue.Empty:
            if not self.gone.is_set():
                raise

    def _on_disconnect(self, *_args: Any) -> None:
        self.gone.set()
        self._connack.put(None)

    @property
    def accepted(self) -> bool:
        return self.reason is not None and not self.reason.is_failure and not self.gone.is_set()

    def subscribe(self, topic: str) -> list[Any]:
        """The SUBACK's reason codes."""
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=10)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)

    def next_message(self, timeout: float = 10.0) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def open_session(port: int, user: str | None, password: str | None, **kw: Any) -> Session:
    """Connect off the event loop (the cloud under test runs on it)."""
    return await asyncio.to_thread(Session, port, user, password, **kw)


async def can_connect(port: int, user: str | None, password: str | None, **kw: Any) -> bool:
    session = await open_session(port, user, password, **kw)
    try:
        return session.accepted
    finally:
        await asyncio.to_thread(session.close)
