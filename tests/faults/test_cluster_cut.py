"""The cluster shape under a network cut of one node, small: two real agents stream 50
life-safety events/s each through a real 3-node RabbitMQ cluster — each node in a network
namespace of its own (tests/faults/netns.py) — to the real cloud consuming over AMQP, while
the node gw-f01 is connected to is cut off the network for longer than Erlang's failure
detection, its process running, then joined again. The cut node must pause itself
(`pause_minority`) and rejoin; nothing may be lost, doubled or reordered, and the system must
settle. (The loopback cluster of the session cannot be used: a cut needs a network.)

The full size (long and short cuts of gw-f01's node and of the queue's leader):
`.venv/bin/python -m tests.faults -s cluster-node-cut`; docs/cluster.md.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.faults.__main__ import describe
from tests.faults.cluster_cut import cluster_node_cut
from tests.faults.netns import HubNetwork, namespaces_unavailable
from tests.faults.scenarios import Size
from tests.faults.stack import Options
from tests.faults.test_faults import assert_nothing_lost_doubled_or_reordered

# the RabbitMQ tests share one pytest worker (two clusters at once would crowd 2 cores)
pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("rabbitmq")]


@pytest.fixture(scope="module")
def can_make_namespaces() -> None:
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(f"a network cut needs network namespaces and veth pairs: {reason}")


def our_namespaces(net: HubNetwork) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(net.tag)]


@pytest.fixture
def net(can_make_namespaces: None) -> Iterator[HubNetwork]:
    net = HubNetwork(size=1)
    try:
        net.create()
        yield net
    finally:
        net.delete()
    assert our_namespaces(net) == []


def test_a_cut_node_is_unreachable_until_its_link_is_back(net: HubNetwork) -> None:
    # a listener in the node's namespace, reached from the hub's
    server = subprocess.Popen(
        [
            *net.run_in(net.node_netns(1)),
            sys.executable,
            "-c",
            "import socket, sys\n"
            "s = socket.create_server((sys.argv[1], 4000))\n"
            "print('listening', flush=True)\n"
            "while True:\n"
            "    c, _ = s.accept(); c.sendall(b'hi'); c.close()\n",
            net.node_address(1),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == b"listening\n"
        address = (net.node_address(1), 4000)
        with net.connect_in_hub(address) as conn:
            assert conn.recv(2) == b"hi"
        net.cut(1)
        started = time.monotonic()
        with pytest.raises(OSError):  # silence, not a refusal: the node still runs
            net.connect_in_hub(address, timeout=2).close()
        assert time.monotonic() - started >= 1.9
        assert server.poll() is None
        net.restore(1)
        with net.connect_in_hub(address) as conn:
            assert conn.recv(2) == b"hi"
    finally:
        server.kill()
        server.wait(timeout=10)


def test_a_network_cut_of_the_node_a_gateway_is_on(can_make_namespaces: None) -> None:
    opts = Options(rate=50.0, duration_s=0.0, settle_s=40.0, quiet_s=1.0, stuck_s=8.0)
    result = cluster_node_cut(opts, Size.SMALL, random.Random(1))
    print(describe(result))
    [fault] = result.faults
    assert "gw-f01's node" in fault.what
    # cut past Erlang's failure detection: the node found itself in a minority and paused
    [cut_s] = result.extra["cut_s"]
    [paused_after] = result.extra["paused_after_s"]
    assert paused_after is not None and paused_after < cut_s, describe(result)
    # and rejoined once its link was back: its application booted again, the others count it
    # (restarted first if RabbitMQ 3.10.8's defect kept it from booting: rabbitmq-server#6034,
    # as an operator's watchdog would; `restarted_to_rejoin` says so in the output)
    [rejoined_after] = result.extra["rejoined_after_s"]
    assert rejoined_after is not None, describe(result)
    assert_nothing_lost_doubled_or_reordered(result)
    [recovery] = result.counts.recoveries
    assert recovery.recover_s is not None, describe(result)
