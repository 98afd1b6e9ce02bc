"""The fault suite on the cluster shape: a 3-node RabbitMQ cluster instead of the one Mosquitto,
the cloud consuming over AMQP (`SC_CLOUD_BROKER=rabbitmq`, every node listed), each gateway
agent given every node's MQTT address (`--broker-nodes`), starting on a different node.

`ClusterBroker` is what a `Stack` uses as its broker: the cluster of the pytest session (it
stays up after the scenario, each killed node started again) or one of its own (the command
line's full run). Each stack consumes from a quorum queue of its own (or, with sharded ingest
workers, from its shards `QUEUE.0` … `QUEUE.{N-1}`), deleted at the end.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from tests.faults.site import GATEWAYS
from tests.servers import RabbitCluster, RabbitNode

#: the agent's log line when its uplink is up: which node (by its address) it is on
_CONNECTED = re.compile(r'event="uplink connected" broker=([^ ]+):(\d+) ')


class ClusterBroker:
    """A `RabbitCluster` as a fault scenario's broker."""

    def __init__(
        self, cluster: RabbitCluster | None = None, gateways: Sequence[str] = GATEWAYS
    ) -> None:
        self.owned = cluster is None
        self.cluster = cluster or RabbitCluster()
        self.gateways = tuple(gateways)
        # an account the cluster lacks is made (on a running cluster: at once)
        for user in ("cloud", *self.gateways):
            if user not in self.cluster.users:
                self.cluster.add_user(user)
        if self.owned:  # started now: the stack needs its ports and accounts
            self.cluster.start()
        self.queue = f"sc.faults-{os.urandom(4).hex()}"
        self._declared = False

    # ---- what a Stack needs of its broker --------------------------------------------------------

    @property
    def port(self) -> int:
        """An MQTT port (the harness's own probe publishes there)."""
        return self.cluster.nodes[0].mqtt_port

    def password(self, user: str) -> str:
        return self.cluster.users[user]

    def start(self) -> float:
        """(Running already; the cloud declares the stack's queue when it connects.)"""
        self._declared = True
        return time.time()

    def stop(self) -> None:
        """The stack's queue goes; a cluster of its own stops too (by pid); a shared one is
        left whole (a node the scenario killed and did not start again is started)."""
        if not self.owned:
            self.cluster.heal()
        try:
            # (a cluster of its own goes whole)
            if self._declared and not self.owned and any(n.alive() for n in self.cluster.nodes):
                for queue in self.queues():
                    self.cluster.ctl(self.cluster.any_running(), "delete_queue", queue)
                self._declared = False
        finally:  # a cluster of its own goes even when a queue could not be deleted
            if self.owned:
                self.cluster.cleanup()

    # ---- how the cloud and the agents reach it ---------------------------------------------------

    def cloud_env(self) -> dict[str, str]:
        return {
            "SC_CLOUD_BROKER": "rabbitmq",
            "SC_CLOUD_AMQP_NODES": json.dumps(
                [f"{n.host}:{n.amqp_port}" for n in self.cluster.nodes]
            ),
            "SC_CLOUD_AMQP_PASSWORD": self.password("cloud"),
            "SC_CLOUD_AMQP_QUEUE": self.queue,
        }

    def agent_args(self, gateway: str) -> list[str]:
        """Every node, the gateway's own first: gw-f01 starts on node 1 (where the cloud
        starts, and so, most often, the queue's leader: one kill there hits all three),
        gw-f02 on node 2 (a third gateway on node 3, a fourth on node 1 …)."""
        nodes = self.cluster.nodes
        first = self.gateways.index(gateway) % len(nodes)
        order = nodes[first:] + nodes[:first]
        return [
            *("--broker-nodes", ",".join(f"{n.host}:{n.mqtt_port}" for n in order)),
            *("--broker-command-qos", "0"),  # docs/cluster.md: a QoS 1 one is tied to a node
        ]

    def clients_run_in(self) -> list[str]:
        """The command prefix that runs the cloud and the agents where they reach the nodes."""
        return self.cluster.clients_run_in()

    # ---- where things are ----------------------------------------------------------------------

    def node_of_agent(self, log: Path) -> RabbitNode:
        """The node an agent is connected to now (its newest `uplink connected` line)."""
        found = _CONNECTED.findall(log.read_text(errors="replace")) if log.exists() else []
        if not found:
            raise LookupError(f"{log.name}: the agent never connected")
        host, port = found[-1]
        return self.cluster.node_of(int(port), host)

    def leader(self) -> RabbitNode:
        return self.cluster.queue_leader(self.queue)

    def queues(self) -> list[str]:
        """The stack's queues on the cluster: its queue, or its shards (`QUEUE.N`)."""
        out = self.cluster.ctl(
            self.cluster.any_running(), "list_queues", "name", "--no-table-headers", "--quiet"
        )
        names = [line.strip() for line in out.splitlines()]
        shard = re.compile(re.escape(self.queue) + r"\.\d+")
        return [n for n in names if n == self.queue or shard.fullmatch(n)]
