"""Each fault scenario once, small: two real agents stream 50 life-safety events/s each through
the shipped Mosquitto to the real cloud while the scenario kills, cuts or fills something.
Nothing may be lost, doubled or reordered, and the system must settle (the outboxes empty).

The full sizes: `python -m tests.faults`; what they measured: docs/reliability.md.
"""

from __future__ import annotations

import json
import random

import pytest

from tests.faults.__main__ import describe
from tests.faults.scenarios import SCENARIOS, Result, Size
from tests.faults.stack import CannotMount, Options

pytestmark = pytest.mark.timeout(150)


def run(name: str, **params: object) -> Result:
    # small sizes; settling gives up after 8 s without progress (agents back off 2 s at most)
    opts = Options(rate=50.0, duration_s=0.0, settle_s=40.0, quiet_s=1.0, stuck_s=8.0)
    try:
        result = SCENARIOS[name].run(opts, Size.SMALL, random.Random(1), **params)
    except CannotMount as exc:
        pytest.skip(f"needs a real small filesystem for the outbox: {exc}")
    print(describe(result))
    return result


class Broken(AssertionError):
    """The promise does not hold. (A plain AssertionError is the harness's own check
    failing.)"""


def assert_nothing_lost_doubled_or_reordered(result: Result) -> None:
    c = result.counts
    facts = describe(result)
    assert c.sent > 0, f"the stream made no event\n{facts}"
    for broken, what in (
        (not result.settled.converged, f"did not settle: {result.settled.waiting} waiting"),
        (c.lost, f"{c.lost} of {c.sent} life-safety events lost"),
        (c.doubled, f"{c.doubled} doubled"),
        (c.out_of_order, f"{c.out_of_order} stored out of order"),
        (result.cloud_tracebacks, f"the cloud logged {result.cloud_tracebacks} tracebacks"),
    ):
        if broken:
            raise Broken(f"{what}\n{facts}")


def test_broker_kill_before_its_first_autosave_and_around_the_clouds_resubscription() -> None:
    result = run("broker-kill")
    early, before, _ = result.extra["uptime_at_kill_s"]
    assert 1 < early < result.extra["autosave_s"]  # inside the first autosave window
    assert before < 1  # right after the restart
    assert_nothing_lost_doubled_or_reordered(result)


def test_cloud_kill_three_times_during_the_stream() -> None:
    result = run("cloud-kill")
    assert len(result.faults) == 3
    assert_nothing_lost_doubled_or_reordered(result)


def test_gateway_kill_and_restart_with_the_same_outbox() -> None:
    result = run("gateway-kill")
    assert result.counts.detail["boots"] == 3  # the killed agent came back as a new boot
    assert_nothing_lost_doubled_or_reordered(result)


def test_cloud_down_while_the_broker_is_killed_and_restarted() -> None:
    result = run("cloud-down-broker-restart")
    assert_nothing_lost_doubled_or_reordered(result)


def test_gateway_offline_for_a_simulated_hour_then_draining() -> None:
    result = run("gateway-offline-day")
    # the outbox really held the outage's backlog
    assert result.extra["outbox_peak_events"] > 100, json.dumps(result.extra)
    assert_nothing_lost_doubled_or_reordered(result)


def test_disk_full_while_offline_then_back() -> None:
    result = run("disk-full")
    assert result.extra["became_full"], "the outbox's filesystem never filled"
    assert_nothing_lost_doubled_or_reordered(result)
    # a device change the gateway could not record is an alarm the duty room never gets
    if result.counts.unrecorded:
        raise Broken(
            f"{result.counts.unrecorded} device changes never recorded\n{describe(result)}"
        )


def test_database_kill_while_the_stream_runs() -> None:
    result = run("database-kill")
    [fault] = result.faults
    assert fault.ended - fault.began >= 3.0  # it was really down
    # killed while a commit of the cloud was on disk but not answered
    assert result.extra["commit_unanswered_at_kill"] == [True], json.dumps(result.extra)
    # ingest met the loss and held (an error line, not a traceback), then went on
    assert result.extra["cloud_holds"] >= 1, json.dumps(result.extra)
    assert len(result.extra["cloud_back_after_s"]) == result.extra["cloud_holds"]
    assert_nothing_lost_doubled_or_reordered(result)
