"""The fault scenario `cluster-node-cut`: the cluster shape (3 RabbitMQ nodes, the cloud over
AMQP, two agents streaming life-safety events) on a network of its own (tests/faults/netns.py),
where one node at a time is cut off the network for a while — its process keeps running — and
then joined again.

A cut longer than Erlang's failure detection (`NET_TICKTIME_S`) is a partition: the two
others see the node down and carry on as a majority; the cut node finds itself in a minority
and pauses (`cluster_partition_handling = pause_minority`: it closes its clients' connections
and serves nothing) until it sees its peers again, then rejoins. A shorter cut is a blip that
no node notices: connections stall and resume (TCP retransmits). Cuts aim in turn at the node
gw-f01 is connected to and at the quorum queue's leader; the full size alternates long cuts
and short ones.
"""

from __future__ import annotations

import random
import subprocess
import time
from functools import partial

from tests.faults.ledger import Fault
from tests.faults.netns import NET_TICKTIME_S, NetnsClusterBroker, NetnsRabbitCluster
from tests.faults.scenarios import Result, Size, _finish, _say
from tests.faults.site import GATEWAYS
from tests.faults.stack import Options, Stack
from tests.servers import RabbitNode

#: What a cut aims at: the node gw-f01 is connected to, the quorum queue's leader.
CUT_TARGETS = ("gateway-node", "queue-leader")
#: A long cut lasts past Erlang's failure detection (at most 1.25x net_ticktime): a partition.
LONG_CUT_S = (1.4 * NET_TICKTIME_S, 2.0 * NET_TICKTIME_S)
#: A short one ends before any node could notice it (at least 0.75x net_ticktime).
SHORT_CUT_S = (0.2 * NET_TICKTIME_S, 0.5 * NET_TICKTIME_S)
#: How long a node may take to rejoin once its link is up (seen: 3-11 s, two CLI calls included).
REJOIN_WITHIN_S = 40.0
#: After that, the node is restarted, as an operator's watchdog would: RabbitMQ 3.10.8 on Erlang
#: 25 can hang in `global` while it restarts after a pause (rabbitmq-server#6034, fixed by
#: #6046 in later 3.10/3.11 releases; seen in 3 of 20 long cuts here). How long it may take then.
RESTARTED_WITHIN_S = 120.0


def plan(size: Size, rng: random.Random, cuts: int) -> list[tuple[str, float]]:
    """(target, cut length) of each cut. Small: one long cut of gw-f01's node. Full: `cuts`
    (default 4), the targets in turn, two long cuts then two short ones (and so on)."""
    if size is Size.SMALL:
        return [(CUT_TARGETS[0], LONG_CUT_S[0])] * (cuts or 1)
    cuts = max(cuts or 4, 2)
    return [
        (CUT_TARGETS[i % 2], rng.uniform(*(LONG_CUT_S if (i // 2) % 2 == 0 else SHORT_CUT_S)))
        for i in range(cuts)
    ]


def cluster_node_cut(opts: Options, size: Size, rng: random.Random, cuts: int = 0) -> Result:
    cuts_planned = plan(size, rng, cuts)
    # each cut's slot: some streaming, the cut, then the rejoin and the gateways' recovery
    after_s = 8.0 if size is Size.SMALL else 25.0
    slots = [cut_s + after_s for _, cut_s in cuts_planned]
    duration = max(opts.duration_s, round(sum(slots) + 2))
    broker = NetnsClusterBroker(keep=opts.keep)
    if opts.keep:
        opts.say(f"    the cluster's folders (data, logs): {broker.cluster.workdir}")
    try:
        stack = Stack(opts, duration_s=duration, cluster=broker)
    except BaseException:
        broker.stop()  # its nodes, epmds and namespaces
        raise
    with stack:
        stack.start()
        return _cut_in_turn(stack, broker, rng, cuts_planned, slots)


def _cut_in_turn(
    stack: Stack,
    broker: NetnsClusterBroker,
    rng: random.Random,
    cuts: list[tuple[str, float]],
    slots: list[float],
) -> Result:
    cluster = broker.cluster
    faults: list[Fault] = []
    leaders: list[bool] = []
    cut_s: list[float] = []
    paused_after: list[float | None] = []  # s from the cut until the node paused itself
    #: s from the link's return until the node has rejoined (None: it did not)
    rejoined_after: list[float | None] = []
    restarted: list[bool] = []  # the node had to be restarted to rejoin
    slot_at = 0.0
    for (target, length), slot in zip(cuts, slots, strict=True):
        stack.sleep_until(max(stack.at(slot_at + rng.uniform(1.5, 3.0)), time.time()))
        leader = broker.leader()
        if target == "gateway-node":
            node = _node_of_agent(stack, broker, GATEWAYS[0])
            what = f"node {node.index} cut {length:.0f} s ({GATEWAYS[0]}'s node"
            what += ", the queue's leader)" if node is leader else ")"
        else:
            node = leader
            what = f"node {node.index} cut {length:.0f} s (the queue's leader)"
        began = cluster.net.cut(node.index)
        _say(stack, what)
        stack.sleep_until(began + length)
        restored = cluster.net.restore(node.index)
        rejoined = _rejoined(stack, cluster, node, REJOIN_WITHIN_S)
        restarted.append(rejoined is None)
        if rejoined is None:  # stuck booting (the broker's defect above): restart it
            _say(stack, f"node {node.index} stuck after its pause: restarted (kill -9, start)")
            cluster.kill9(node)
            try:
                cluster.start_node(node, wait=True)
                rejoined = _rejoined(stack, cluster, node, RESTARTED_WITHIN_S)
            except RuntimeError as exc:
                stack.opts.say(f"    node {node.index} did not start again: {str(exc)[:300]}")
        rejoined_after.append(None if rejoined is None else round(rejoined - restored, 1))
        paused = cluster.paused_at(node, began)
        paused_after.append(None if paused is None else round(paused - began, 1))
        state = "not paused" if paused is None else f"paused {paused_after[-1]:.1f} s after the cut"
        back = (
            f"running again {rejoined_after[-1]:.1f} s later"
            if rejoined_after[-1] is not None
            else "NOT running again, even restarted: no more cuts (no majority)"
        )
        _say(stack, f"node {node.index} link up after {restored - began:.1f} s ({state}); {back}")
        leaders.append(node is leader)
        cut_s.append(round(restored - began, 1))
        # recovery is measured from the cut: the majority must carry on without the node
        faults.append(Fault(what, began, began))
        if rejoined_after[-1] is None:
            break
        slot_at += slot
    moved = {gw: broker.node_of_agent(agent.logs[-1]).index for gw, agent in stack.agents.items()}
    return _finish(
        stack,
        "cluster-node-cut",
        faults,
        targets=[target for target, _ in cuts[: len(faults)]],  # the cuts made
        cut_s=cut_s,
        leader_cut=leaders,
        paused_after_s=paused_after,
        rejoined_after_s=rejoined_after,
        restarted_to_rejoin=restarted,
        net_ticktime_s=NET_TICKTIME_S,
        nodes_of_gateways_at_end=moved,
    )


def _rejoined(
    stack: Stack, cluster: NetnsRabbitCluster, node: RabbitNode, within_s: float
) -> float | None:
    """When (time.time()) `node` had rejoined after its link came back: its own `rabbit`
    application booted again (after a pause it restarts) and a peer counts it running (a
    peer's count alone comes early: it counts a node whose application still boots). None if
    not within `within_s`."""
    deadline = time.monotonic() + within_s
    try:
        cluster.await_booted(node, within_s)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        stack.opts.say(f"    node {node.index} did not boot again: {str(exc)[:300]}")
        return None
    peer = next(n for n in cluster.nodes if n is not node)
    counted = partial(_counted_running, cluster, node, peer)
    if not stack.wait_for(counted, max(1.0, deadline - time.monotonic()), "rejoining"):
        return None
    return time.time()


def _counted_running(cluster: NetnsRabbitCluster, node: RabbitNode, peer: RabbitNode) -> bool:
    return node in cluster.running_nodes(peer)


def _node_of_agent(stack: Stack, broker: NetnsClusterBroker, gateway: str) -> RabbitNode:
    """The node `gateway`'s agent is connected to (waiting for its first connection: an
    agent takes a few seconds to start on the loaded machine)."""
    log = stack.agents[gateway].logs[-1]
    found: list[RabbitNode] = []

    def connected() -> bool:
        try:
            found.append(broker.node_of_agent(log))
        except LookupError:
            return False
        return True

    if not stack.wait_for(connected, 30.0, f"{gateway} connecting"):
        raise RuntimeError(f"{gateway}'s agent did not connect within 30 s")
    return found[-1]
