"""The cluster shape under a node's kill -9, small: two real agents stream 50 life-safety
events/s each through a real 3-node RabbitMQ cluster (the session's) to the real cloud
consuming over AMQP, while the node gw-f01 is connected to — the cloud's first node too, and
most often the quorum queue's leader — is killed and, a few seconds later, started again.
Nothing may be lost, doubled or reordered, and the system must settle.

The full size (several kills at random moments, of a gateway's node and of the queue's
leader): `.venv/bin/python -m tests.faults -s cluster-node-kill`; docs/cluster.md.
"""

from __future__ import annotations

import random

import pytest

from tests.faults.__main__ import describe
from tests.faults.scenarios import Size, cluster_node_kill
from tests.faults.stack import Options
from tests.faults.test_faults import assert_nothing_lost_doubled_or_reordered
from tests.servers import RabbitCluster

# the session's one RabbitMQ cluster: every test that uses it runs on the same pytest worker
pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("rabbitmq")]


def test_kill_9_of_the_node_a_gateway_is_on(rabbit_cluster: RabbitCluster) -> None:
    opts = Options(rate=50.0, duration_s=0.0, settle_s=40.0, quiet_s=1.0, stuck_s=8.0)
    result = cluster_node_kill(opts, Size.SMALL, random.Random(1), cluster=rabbit_cluster)
    print(describe(result))
    [fault] = result.faults
    assert "gw-f01's node" in fault.what
    killed = int(fault.what.split()[1])
    # the gateway went on through another node
    assert result.extra["nodes_of_gateways_at_end"]["gw-f01"] != killed
    assert_nothing_lost_doubled_or_reordered(result)
    # it recovered without the killed node: before that node was running again
    [recovery] = result.counts.recoveries
    assert recovery.recover_s is not None
    assert recovery.recover_s < result.extra["back_after_s"][0], describe(result)
    # and the cluster is whole again for whatever test comes next
    assert all(node.alive() for node in rabbit_cluster.nodes)
