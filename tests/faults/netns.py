"""The cluster shape on a network of its own, for cutting one node off: each RabbitMQ node in a
network namespace of its own, joined by a veth pair to a bridge in a hub namespace where the
cloud, the agents and `rabbitmqctl` run.

    hub namespace: bridge 10.77.0.1/24 ── h1 ══ eth0 10.77.0.11  (node 1's namespace)
                                       ── h2 ══ eth0 10.77.0.12  (node 2's namespace)
                                       ── h3 ══ eth0 10.77.0.13  (node 3's namespace)

A cut takes the hub's end of a node's veth down (`ip link set h1 down`): the node keeps
running with its address, but nothing reaches it and nothing it sends arrives, as when a
switch port or a cable fails. Each node has the standard ports and an epmd of its own in its
namespace, and is named by its address (`rabbit@10.77.0.11`, Erlang long names).

Every namespace is made by this module, named after this process and a random tag, and deleted
at the end (`HubNetwork.delete`, also after a failure); the machine's own namespace, its links
and its routes are never touched. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from tests.faults.cluster import ClusterBroker
from tests.faults.gate import UplinkGate
from tests.faults.site import GATEWAYS
from tests.servers import RabbitCluster, RabbitNode

SUBNET = "10.77.0"
HUB_ADDRESS = f"{SUBNET}.1"
#: Erlang's failure detection between nodes (RabbitMQ's `net_ticktime`; default 60 s): a peer
#: silent for 0.75-1.25x this is taken as down. Shorter here so that a cut of a few seconds is
#: seen; docs/cluster.md says what to choose in production.
NET_TICKTIME_S = 10
EPMD_PORT = 4369  # each namespace has its own ports: the standard ones

_CLONE_NEWNET = 0x40000000

#: Run on each node by a `rabbitmqctl` (the one hidden node it sees): the CLI's host name
#: (this machine's, e.g. `vm.localdomain`) is the hub's address. Some commands (list_queues)
#: have every node answer the CLI's own Erlang node directly; without this the others cannot
#: find it in their namespaces and the command times out.
_ANSWER_THE_CLI = (
    '[_, Host] = string:split(atom_to_list(hd(nodes(hidden))), "@"),'
    f" ok = inet_db:add_host({{{HUB_ADDRESS.replace('.', ',')}}}, [Host]),"
    " ok = inet_db:set_lookup([file, native])."
)


class NoNamespaces(RuntimeError):
    """This machine (or user) cannot make network namespaces."""


def _ip(*args: str) -> None:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise NoNamespaces("no `ip` command (Debian package iproute2)") from exc
    if done.returncode != 0:
        raise NoNamespaces(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def namespaces_unavailable() -> str | None:
    """Why this process cannot make a network namespace with a veth pair (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = HubNetwork(size=1)
    try:
        probe.create()
    except (NoNamespaces, OSError) as exc:
        return str(exc)
    finally:
        probe.delete()
    return None


@dataclass
class HubNetwork:
    """The namespaces, the bridge and the veth pairs of a cluster of `size` nodes."""

    size: int = 3
    tag: str = field(default_factory=lambda: f"sc{os.getpid()}-{os.urandom(3).hex()}")
    made: list[str] = field(default_factory=list)  # the namespaces that exist, to delete

    @property
    def hub(self) -> str:
        return f"{self.tag}-hub"

    def node_netns(self, index: int) -> str:
        return f"{self.tag}-n{index}"

    @staticmethod
    def node_address(index: int) -> str:
        return f"{SUBNET}.{10 + index}"

    def create(self) -> None:
        self._netns(self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for index in range(1, self.size + 1):
            ns = self.node_netns(index)
            self._netns(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # made in the hub, its peer moved into the node's namespace at once
            _ip("-n", self.hub, "link", "add", f"h{index}", "type", "veth", "peer", "name", "eth0")
            _ip("-n", self.hub, "link", "set", "eth0", "netns", ns)
            _ip("-n", self.hub, "link", "set", f"h{index}", "master", "br0")
            _ip("-n", self.hub, "link", "set", f"h{index}", "up")
            _ip("-n", ns, "addr", "add", f"{self.node_address(index)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def _netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.made.append(name)

    def cut(self, index: int) -> float:
        """Node `index`'s link down; when (time.time())."""
        _ip("-n", self.hub, "link", "set", f"h{index}", "down")
        return time.time()

    def restore(self, index: int) -> float:
        """Node `index`'s link up again; when (time.time())."""
        _ip("-n", self.hub, "link", "set", f"h{index}", "up")
        return time.time()

    def delete(self) -> None:
        """Every namespace made (their links go with them). Processes must be stopped first."""
        while self.made:
            name = self.made.pop()
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)

    def run_in(self, netns: str) -> list[str]:
        return ["ip", "netns", "exec", netns]

    def connect_in_hub(self, address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
        """A TCP connection made from the hub namespace (by a thread that enters it: a
        socket stays in the namespace it was made in), usable from this process."""
        made: list[socket.socket] = []
        failed: list[OSError] = []

        def connect() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                with open(f"/run/netns/{self.hub}", "rb") as ns:
                    if libc.setns(ns.fileno(), _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns into the hub namespace")
                made.append(socket.create_connection(address, timeout=timeout))
            except OSError as exc:
                failed.append(exc)

        thread = threading.Thread(target=connect, name="connect-in-hub")
        thread.start()
        thread.join()
        if failed:
            raise failed[0]
        return made[0]


class HubGate(UplinkGate):
    """A TCP relay on this process's loopback to a node's MQTT port in the hub namespace: for
    the harness's own probe (the cloud and the agents run in the hub)."""

    def __init__(self, net: HubNetwork, upstream: tuple[str, int]):
        self.net = net
        self.upstream = upstream
        super().__init__(upstream[1])

    def connect_upstream(self) -> socket.socket:
        return self.net.connect_in_hub(self.upstream)


@dataclass
class NetnsRabbitCluster(RabbitCluster):
    """A `RabbitCluster` whose nodes each run in a network namespace of their own (`net`),
    with epmds of their own (one in each namespace, the hub's for `rabbitmqctl`), Erlang's
    failure detection at `NET_TICKTIME_S`, and the shipped `pause_minority`."""

    net: HubNetwork = field(default_factory=HubNetwork)
    epmds: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: keep the data and log folders at the end (the namespaces go all the same)
    keep: bool = False
    erl_args: str = f"-kernel net_ticktime {NET_TICKTIME_S} -start_epmd false"

    def start(self) -> None:
        try:
            super().start()
            for node in self.nodes:
                self.ctl(node, "eval", _ANSWER_THE_CLI)
        except BaseException:
            self.cleanup()  # no namespace is left behind
            raise

    def _make_nodes(self) -> list[RabbitNode]:
        self.net.size = self.size
        self.net.create()
        self.epmd_port = EPMD_PORT
        self._start_epmd(self.net.hub, HUB_ADDRESS)
        nodes = []
        for i in range(1, self.size + 1):
            node = RabbitNode(
                index=i,
                amqp_port=5672,
                mqtt_port=1883,
                dist_port=25672,
                management_port=15672,
                folder=self.workdir / f"rabbit{i}",
                host=self.net.node_address(i),
                netns=self.net.node_netns(i),
            )
            self._start_epmd(self.net.node_netns(i), node.host)
            nodes.append(node)
        return nodes

    def _prepare(self, node: RabbitNode) -> None:
        super()._prepare(node)
        # what a node does around a partition (pause, restart) is logged at info
        conf = node.folder / "rabbitmq.conf"
        text = conf.read_text().replace("log.file.level = warning", "log.file.level = info")
        conf.write_text(text)

    def _start_epmd(self, netns: str, address: str) -> None:
        """epmd in `netns` (nodes register on loopback, peers ask at `address`), by our pid;
        returns once it answers."""
        run_in = self.net.run_in(netns)
        self.epmds.append(
            subprocess.Popen(
                [*run_in, "epmd", "-address", f"127.0.0.1,{address}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.monotonic() + 10
        while subprocess.run([*run_in, "epmd", "-names"], capture_output=True).returncode:
            if self.epmds[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"epmd did not start in {netns}")
            time.sleep(0.05)

    def clients_run_in(self) -> list[str]:
        return self.net.run_in(self.net.hub)

    def await_booted(self, node: RabbitNode, timeout: float) -> None:
        """Until `node`'s `rabbit` application has booted (again: a paused node restarts it
        once it sees its peers)."""
        self.ctl(node, "await_startup", "--timeout", str(int(timeout)), timeout=timeout + 15)

    def running_nodes(self, seen_from: RabbitNode) -> list[RabbitNode]:
        """The nodes `seen_from` counts as running members of its cluster (their `rabbit`
        application up)."""
        status = json.loads(self.ctl(seen_from, "cluster_status", "--formatter", "json"))
        return [n for n in self.nodes if n.name in status.get("running_nodes", [])]

    def paused_at(self, node: RabbitNode, since: float) -> float | None:
        """When (time.time()) `node` logged, after `since`, that it found itself in a minority
        and paused (`pause_minority`); None if it did not."""
        for log in sorted((node.folder / "log").glob("rabbit@*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if "minority" in line and "status detected" in line:
                    at = _log_time(line)
                    if at is not None and at >= since:
                        return at
        return None

    def stop(self) -> None:
        super().stop()
        for epmd in self.epmds:
            if epmd.poll() is None:
                epmd.terminate()
                epmd.wait(timeout=10)
        self.epmds.clear()

    def cleanup(self) -> None:
        try:
            if self.keep:
                self.stop()
            else:
                super().cleanup()
        finally:
            self.net.delete()


def _log_time(line: str) -> float | None:
    """The time of a RabbitMQ log line (`2026-12-02 16:25:10.768551+00:00 [warning] …`)."""
    try:
        return datetime.fromisoformat(line[:32]).timestamp()
    except ValueError:
        return None


class NetnsClusterBroker(ClusterBroker):
    """A `ClusterBroker` on a `NetnsRabbitCluster` of its own: the cloud and the agents run in
    the hub namespace; the harness's probe reaches node 1 through a `HubGate`."""

    cluster: NetnsRabbitCluster

    def __init__(self, *, keep: bool = False) -> None:
        cluster = NetnsRabbitCluster(keep=keep)
        for user in ("cloud", *GATEWAYS):
            cluster.add_user(user)
        cluster.start()  # on failure it stops and deletes its namespaces itself
        super().__init__(cluster)
        self.owned = True
        first = cluster.nodes[0]
        self.gate = HubGate(cluster.net, (first.host, first.mqtt_port))
        self.gate.restore()

    @property
    def port(self) -> int:
        return self.gate.port

    def stop(self) -> None:
        self.gate.close()
        try:
            if self.cluster.net.made:  # every link up again: the queue can be deleted
                for node in self.cluster.nodes:
                    self.cluster.net.restore(node.index)
        finally:
            super().stop()  # its nodes, epmds and namespaces go whatever happened
