"""What every transport of the cloud hands over and offers, whichever broker shape is in use:
the single box's MQTT session (`mqtt.py`) or the cluster's AMQP consumer (`amqp.py`).

Ingest (`cloud/ingest/consumer.py`) sees only this: batches of `Received` to `run`'s `consume`,
`ack(item)` once an item is stored, `publish_soon` for the cloud's acknowledgements,
`send_command` for commands to a gateway, `hold` for the shards this process consumes, the
`link` (up or down since when) and the broker's `drops`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cloud.transport.broker_drops import DropWatch
from cloud.transport.broker_link import BrokerLink
from contract.models import Command
from contract.topics import Channel

#: What the cloud consumes: every gateway's status, events, telemetry and replies.
CHANNELS = (Channel.STATUS, Channel.EVENT, Channel.TELEMETRY, Channel.REPLY)
#: At most this many messages handed over (and stored in one group commit) at once, unless
#: the settings say otherwise (`SC_CLOUD_INGEST_MAX_BATCH`, whose default this is).
MAX_BATCH = 2000


@dataclass(slots=True)
class Received:
    """A message off the broker, acknowledged to it at most once, only on the session it came
    on (`_session`; `_message` is the client library's own handle for acknowledging it)."""

    topic: str
    payload: bytes
    _message: Any
    _session: Any  # the transport's token of the session (or shard) it came on
    acked: bool = False

    @property
    def gateway(self) -> str:
        """The gateway the topic names (`-` if none): what fair shares count by."""
        parts = self.topic.split("/", 3)
        return parts[2] if len(parts) > 2 else "-"


#: Given a batch, handles it; returns when the next batch may be taken.
Consume = Callable[[list[Received]], Awaitable[None]]
#: How long to wait for a first message before handing over an empty batch (None: until one
#: comes).
WaitS = Callable[[], float | None]


class Transport(Protocol):
    link: BrokerLink
    drops: DropWatch

    async def run(self, consume: Consume, *, wait_s: WaitS = ...) -> None: ...

    def ack(self, item: Received) -> None: ...

    def publish_soon(self, topic: str, payload: bytes) -> bool: ...

    async def send_command(self, gateway: str, name: str, command: Command) -> bool: ...

    async def hold(self, shards: frozenset[int]) -> None:
        """Consume these ingest shards' queues (cloud/ingest/shards.py) and no others."""

    async def bind(self, gateway: str) -> None:
        """A gateway registered while running: route its messages to its shard."""
