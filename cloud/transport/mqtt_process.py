"""The single box's transport with the MQTT session in a child process (`mqtt_receiver.py`):
the same `Transport` as `mqtt.py`, the same broker session (client id, persistent, manual
acknowledgements), but paho's packet handling and the PUBACKs run on another core than
ingest's checks and storing — the cloud's own process was busy all the time while it drained a
backlog, a third of it in the MQTT session (docs/benchmarks.md).

    cloud ──start/next/ack/publish──▶ receiver process ──MQTT──▶ broker
          ◀──batch/link/drops/published──

- A batch at a time: the child hands over what its session has (at most `max_batch`) and
  waits for `next`, which the cloud sends once `consume` has taken the batch — as `mqtt.py`'s
  own loop waits for `consume`.
- Acknowledgements go back by number, gathered into one frame per turn of the event loop.
  A number from an earlier child is never sent to a later one (`Received._session`): the
  broker delivers those messages again to the new session.
- The link and the drop counter are the child's session's, told here as they change.
- The child ends when the cloud's end of the socket closes, so a cloud killed with kill -9
  leaves no session behind to hold its messages; a child that ends (or is killed) is started
  again after a back-off, the link down meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import socket
import sys
import time
from typing import Any

from cloud.transport import frames
from cloud.transport.base import Consume, Received, WaitS
from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import Backoff, BrokerLink
from cloud.transport.mqtt import BrokerAddress
from contract import topics
from contract.models import Command, encode

log = logging.getLogger(__name__)

#: How long a child that was asked to end (its socket closed) may take before it is killed.
STOP_S = 3.0


class ChildProcess:
    """One receiver process and the cloud's end of its socket."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.process = process
        self.reader = reader
        self.writer = writer
        self.acks: list[int] = []
        #: the child's broker session now: a message is acknowledged only on the session it
        #: came on (a new one begins with each `link up`)
        self.session = object()
        #: (session, number of the first, [(topic, payload)]) in the order they came
        self.batches: collections.deque[tuple[object, int, list[tuple[str, bytes]]]] = (
            collections.deque()
        )
        self.arrived = asyncio.Event()
        self.replies: dict[int, asyncio.Future[bool]] = {}

    def send(self, *frame: Any) -> None:
        if not self.writer.is_closing():
            self.writer.write(frames.pack(*frame))

    def flush_acks(self) -> None:
        if self.acks:
            self.send("ack", self.acks)
            self.acks = []

    async def stop(self) -> int | None:
        """Closes the socket (the child ends on it), then waits for it, then kills it."""
        self.writer.close()
        try:
            return await asyncio.wait_for(self.process.wait(), STOP_S)
        except TimeoutError:
            log.warning("the MQTT receiver process did not end: killed")
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            return await self.process.wait()


class MqttProcessTransport:
    def __init__(
        self,
        address: BrokerAddress,
        *,
        link: BrokerLink,
        drops: DropWatch,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        max_batch: int = 500,
    ) -> None:
        self.address = address
        self.link = link
        self.drops = drops
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.max_batch = max_batch
        self._child: ChildProcess | None = None
        self._requests = 0
        self.link.address = f"{address.host}:{address.port}"

    @property
    def receiver_pid(self) -> int | None:
        """The receiver process's pid while it runs."""
        return self._child.process.pid if self._child is not None else None

    # ---- in ----------------------------------------------------------------------------------

    async def run(self, consume: Consume, *, wait_s: WaitS = lambda: None) -> None:
        """Hand batches to `consume` until cancelled, across the child's restarts (and its
        session's reconnects, which are its own)."""
        backoff = Backoff(self.retry_min_s, self.retry_max_s)
        while True:
            self.link.attempting()
            started = time.monotonic()
            try:
                error = await self._with_child(consume, wait_s)
            except OSError as exc:  # could not start it
                error = f"the MQTT receiver process could not start: {exc}"
            if time.monotonic() - started >= self.retry_max_s:
                backoff.reset()
            delay = backoff.next()
            self.link.down(error, delay)
            await asyncio.sleep(delay)

    async def _with_child(self, consume: Consume, wait_s: WaitS) -> str:
        """One child from start to end: why it ended."""
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cloud.transport.mqtt_receiver",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        child = ChildProcess(process, reader, writer)
        options = {
            "retry_min_s": self.retry_min_s,
            "retry_max_s": self.retry_max_s,
            "max_batch": self.max_batch,
        }
        child.send("start", dataclasses.asdict(self.address), options)
        self._child = child
        listening = asyncio.create_task(self._listen(child), name="mqtt-receiver-frames")
        try:
            await self._consume(child, consume, wait_s, listening)
        finally:
            self._child = None
            listening.cancel()
            for reply in child.replies.values():
                if not reply.done():
                    reply.set_result(False)
            code = await child.stop()
        return f"the MQTT receiver process ended (exit code {code})"

    async def _consume(
        self, child: ChildProcess, consume: Consume, wait_s: WaitS, listening: asyncio.Task[None]
    ) -> None:
        """The child's batches to `consume` in order, `next` after each; returns when the child
        has gone."""
        while True:
            if not child.batches:
                arrived = asyncio.ensure_future(child.arrived.wait())
                await asyncio.wait(
                    (arrived, listening), timeout=wait_s(), return_when=asyncio.FIRST_COMPLETED
                )
                arrived.cancel()
                if not child.batches:
                    if listening.done():
                        return
                    await consume([])
                    continue
            session, first, items = child.batches.popleft()
            if not child.batches:
                child.arrived.clear()
            numbered = enumerate(items, first)
            await consume([Received(t, payload, n, session) for n, (t, payload) in numbered])
            child.send("next")

    async def _listen(self, child: ChildProcess) -> None:
        """The child's frames until it closes its end."""
        link, drops = self.link, self.drops
        while True:
            try:
                frame = await frames.read(child.reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except Exception:  # a bug on one side: this child is ended and another started
                log.exception("an unreadable frame from the MQTT receiver process")
                return
            kind = frame[0]
            if kind == "batch":
                child.batches.append((child.session, frame[1], frame[2]))
                child.arrived.set()
            elif kind == "link":
                if frame[1] == "attempting":
                    link.attempting()
                elif frame[1] == "up":
                    child.session = object()
                    link.up()
                else:
                    link.down(frame[2], frame[3])
            elif kind == "drops":
                if frame[1] == "subscribed":
                    drops.subscribed()
                else:
                    drops.heard(frame[2], frame[3], retained=frame[4])
            elif kind == "published":
                reply = child.replies.pop(frame[1], None)
                if reply is not None and not reply.done():
                    reply.set_result(frame[2])
            else:
                log.error("unknown frame from the MQTT receiver process: %r", kind)

    async def hold(self, shards: frozenset[int]) -> None:
        """One session takes every gateway's messages: the single box has one shard."""

    async def bind(self, gateway: str) -> None:
        """Every gateway's topics are in the one subscription."""

    def ack(self, item: Received) -> None:
        """The broker may forget this message (a PUBACK, sent by the child). Not on a later
        session than the one it came on, nor to a later child (the broker delivers it again
        there)."""
        child = self._child
        if item.acked or child is None or item._session is not child.session:
            return
        child.acks.append(item._message)
        if len(child.acks) == 1:
            asyncio.get_running_loop().call_soon(child.flush_acks)
        item.acked = True

    # ---- out ---------------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes) -> bool:
        """QoS 1, awaiting the broker's acknowledgement; False if it is not reachable now."""
        child = self._child
        if child is None or not self.link.connected.is_set():
            return False
        self._requests += 1
        reply: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        child.replies[self._requests] = reply
        child.send("publish", self._requests, topic, payload)
        return await reply

    async def send_command(self, gateway: str, name: str, command: Command) -> bool:
        """A command to a gateway on its `cmd/{name}` (QoS 1); False if the broker is not
        reachable now."""
        return await self.publish(topics.command(gateway, name), encode(command))

    def publish_soon(self, topic: str, payload: bytes) -> bool:
        """QoS 1 without waiting for it; False if there is no session now."""
        child = self._child
        if child is None or not self.link.connected.is_set():
            return False
        child.send("publish", None, topic, payload)
        return True
