"""10,000 junk messages from one gateway's account (valid credentials, its own topics: past
the shipped broker's ACL) to the real cloud, while another gateway raises a valid smoke alarm
every 0.5 s (bench/fuzz/; the big run: `python -m bench.fuzz --count 100000`).

Speed is measured, not asserted — with one exception, stated relatively: a valid alarm must
not queue behind the junk (see `test_valid_alarms_do_not_wait_behind_the_junk`). The figures
are printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio

import pytest

from bench.fuzz.flood import run_fuzz
from bench.fuzz.report import FuzzReport

pytestmark = pytest.mark.timeout(300)

COUNT = 10_000


@pytest.fixture(scope="module")
def flood() -> FuzzReport:
    report = asyncio.run(run_fuzz(COUNT, seed=7, settle_s=240.0))
    print(report.text())
    return report


def test_the_cloud_survives_the_flood_and_handles_all_of_it(flood: FuzzReport) -> None:
    assert not flood.cloud_died, flood.text()
    assert flood.processed_s is not None, flood.text()
    assert flood.reaching > COUNT * 0.8  # the flood went past the ACL (its own topics)


def test_no_internal_error_and_no_traceback(flood: FuzzReport) -> None:
    assert flood.internal_errors == 0, flood.text()
    assert flood.tracebacks == 0, flood.text()


def test_every_junk_message_that_reaches_the_cloud_is_rejected_with_a_reason(
    flood: FuzzReport,
) -> None:
    assert flood.junk_stored == {"events": 0, "telemetry_batches": 0}, flood.text()
    # each is refused with a reason, or (over the flooding gateway's rate) counted unchecked
    assert sum(flood.rejected.values()) + flood.dropped == flood.reaching, flood.text()


def test_no_alarm_from_invalid_input(flood: FuzzReport) -> None:
    assert flood.junk_alarms == [], flood.text()


def test_every_valid_alarm_of_the_other_gateway_is_stored_and_shown(flood: FuzzReport) -> None:
    assert flood.valid_sent > 3
    assert flood.valid_stored == flood.valid_sent, flood.text()
    assert flood.valid_missing == 0, flood.text()


def test_valid_alarms_do_not_wait_behind_the_junk(flood: FuzzReport) -> None:
    """Relative, so not a speed test: with the cloud `lag` seconds behind the flood when the
    last junk was published, an alarm that queued behind the junk waits about `lag`. Allowed:
    a quarter of the lag, or 2 s when the cloud keeps up (20x the cloud's own 100 ms budget,
    for a loaded 2-core machine)."""
    assert flood.max_delay_s is not None and flood.lag_s is not None, flood.text()
    bound = max(2.0, flood.lag_s / 4)
    assert flood.max_delay_s <= bound, (
        f"a valid alarm waited {flood.max_delay_s:.1f} s (bound {bound:.1f} s; the cloud was "
        f"{flood.lag_s:.1f} s behind the flood)\n{flood.text()}"
    )
