"""The cloud on PostgreSQL under Patroni, small: two real agents stream 50 life-safety events/s
each while the primary node dies (kill -9 of its Patroni and its postgres processes) at a
commit of the cloud that waits for the synchronous standby; Patroni promotes the standby, the
killed node is started again and rejoins as the standby. Nothing may be lost, doubled or
reordered. The full size: `python -m tests.faults -s database-failover`; docs/deploy.md,
"PostgreSQL high availability", and docs/reliability.md tell what it measured.
"""

from __future__ import annotations

import json

import pytest

from tests.faults.test_faults import assert_nothing_lost_doubled_or_reordered, run
from tests.postgres_ha import missing_programs

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        bool(missing_programs()),
        reason="needs Debian's patroni and etcd-server (scripts/test.sh installs them);"
        f" missing: {', '.join(missing_programs())}",
    ),
]


def test_database_failover_at_a_commit_waiting_for_the_standby() -> None:
    result = run("database-failover")
    facts = json.dumps(result.extra)
    assert result.extra["killed"] == ["pg0"], facts  # the first primary
    # killed while a commit of the cloud was written on the primary, not yet on the standby
    assert result.extra["commit_waiting_at_kill"] == [True], facts
    # the standby took over and the cloud stored there (the killed node then rejoined: the
    # scenario waits until it is the synchronous standby again)
    assert result.extra["storing_again_after_s"][0] is not None, facts
    # ingest met the loss and held (an error line, not a traceback), then went on
    assert result.extra["cloud_holds"] >= 1, facts
    assert len(result.extra["cloud_back_after_s"]) == result.extra["cloud_holds"], facts
    assert_nothing_lost_doubled_or_reordered(result)
