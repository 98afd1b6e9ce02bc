"""Sharded ingest under a worker's kill -9, small: four real agents (gw-f01 and gw-f02 at 50
life-safety events/s, gw-f04 and gw-f05 at 10, one on each of 4 shards) stream through the
session's 3-node RabbitMQ cluster to two real cloud workers (`python -m cloud` twice,
`SC_CLOUD_INGEST_SHARDS=4`) on a PostgreSQL of the scenario's own. The worker holding gw-f01's
shard is killed with kill -9 and, some seconds later, started again. The other worker must take
its shards over before it is back, nothing may be lost, doubled or reordered, the shards must be
spread over both workers again, and neither worker may log a traceback.

The full size (several kills, aimed in turn at gw-f01's worker and the other):
`.venv/bin/python -m tests.faults -s worker-kill`; docs/cluster.md.
"""

from __future__ import annotations

import json
import random

import pytest

from cloud.settings import CloudSettings
from tests.faults.__main__ import describe
from tests.faults.scenarios import Size, worker_kill
from tests.faults.stack import Options
from tests.faults.test_faults import assert_nothing_lost_doubled_or_reordered
from tests.servers import RabbitCluster

SHARDED = "ingest_shards" in CloudSettings.model_fields

# the session's one RabbitMQ cluster: every test that uses it runs on the same pytest worker
pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.xdist_group("rabbitmq"),
    pytest.mark.skipif(
        not SHARDED,
        reason="the cloud has no sharded ingest yet (SC_CLOUD_INGEST_SHARDS is not a setting of"
        " cloud.settings.CloudSettings; issue 12)",
    ),
]


def test_kill_9_of_the_worker_holding_gw_f01s_shard(rabbit_cluster: RabbitCluster) -> None:
    opts = Options(rate=50.0, duration_s=0.0, settle_s=40.0, quiet_s=1.0, stuck_s=8.0)
    result = worker_kill(opts, Size.SMALL, random.Random(1), cluster=rabbit_cluster)
    print(describe(result))
    extra = result.extra
    facts = json.dumps(extra)
    assert extra["targets"] == ["gw-f01's worker"]
    # it held two of the four shards: gw-f01's and one more, each with a gateway streaming
    [hit] = extra["gateways_hit"]
    assert "gw-f01" in hit and len(hit) == 2, facts
    assert_nothing_lost_doubled_or_reordered(result)
    # the other worker took its shards over while it was down: its log says so, and events of
    # the killed worker's gateways were stored before the restart
    [down] = extra["down_s"]
    [logged] = extra["takeover_logged_s"]
    assert logged is not None and logged < down, facts
    [takeover] = extra["takeover_s"]
    assert takeover is not None and takeover < down, facts
    # after the restart the two workers share the shards again
    [spread] = extra["spread_after_restart_s"]
    assert spread is not None, facts
    # and the cluster is whole again for whatever test comes next
    assert all(node.alive() for node in rabbit_cluster.nodes)
