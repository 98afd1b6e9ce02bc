"""What the uplink is told: the broker (or a cluster's nodes) and how to reach it, its timings,
and what it counts."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class BrokerParams:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive: int = 30
    client_id: str | None = None  # default: the gateway id
    ca_file: Path | None = None  # MQTT over TLS, trusting this CA (None: plain MQTT)
    #: every node of a clustered broker (host, port), tried in turn; empty: (host, port) only
    nodes: tuple[tuple[str, int], ...] = ()
    #: QoS of the subscription to commands. 0 for a RabbitMQ 3.10 cluster: its MQTT plugin keeps
    #: a QoS 1 subscription in a durable queue on the node that made it, and while that node
    #: is down a subscription from another node is refused (the connection closed), so the
    #: gateway could not fail over. (With a clean session, QoS 1 adds nothing across a
    #: reconnect anyway: a lost acknowledgement is made good by sending again.)
    command_qos: int = 1

    def addresses(self) -> tuple[tuple[str, int], ...]:
        """The nodes to try, in order (the single broker's address when there is no list)."""
        return self.nodes or ((self.host, self.port),)


@dataclass(frozen=True)
class UplinkOptions:
    window: int = 50  # outbox messages published and not yet acknowledged by the broker
    backoff_min_s: float = 0.25
    backoff_max_s: float = 30.0
    drain_s: float = 1.0  # on stop, how long to wait for outstanding acknowledgements
    #: events sent and not acknowledged by the cloud this long are sent again (then the wait
    #: doubles, up to `ack_timeout_max_s`, until the cloud acknowledges something)
    ack_timeout_s: float = 5.0
    ack_timeout_max_s: float = 120.0


@dataclass
class UplinkStats:
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    published: int = 0
    acked: int = 0  # broker PUBACKs
    cloud_acks: int = 0  # the cloud's acknowledgements (cmd/ack)
    cloud_acked: int = 0  # events they let us delete
    resends: int = 0  # times unacknowledged events were sent again (timeout or replay)
    commands: int = 0


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """TLS 1.2 or newer, the broker's certificate checked against `ca_file` and its name."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
