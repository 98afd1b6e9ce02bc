"""The broker's drop counter reaches `/api/stats` reliably (a silent drop is a life-safety
issue), also when the broker has dropped nothing for long.

The race these tests pin down: Mosquitto 2.0.11 publishes `$SYS/broker/publish/messages/
dropped` only when the count changes, retained for 60 s. A cloud that subscribes later than
that (any cloud started a minute after its broker, and a test run a minute into the session)
never heard a number and reported "unknown" forever. `retain_available false` makes a broker
that keeps no $SYS value for a newcomer at all: the same situation, at once instead of after
60 s, so the test needs no minute of waiting.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from cloud.transport.broker_drops import DROPPED, UPTIME, DropWatch
from tests.cloud.conftest import Publisher, cloud_settings, eventually, running_cloud, signed_in
from tests.cloud.web.test_duty_api import _json_if
from tests.servers import Mosquitto


def own_broker(extra_conf: str) -> Mosquitto:
    broker = Mosquitto(extra_conf=extra_conf)
    for user in ("cloud", "gw-ld01"):
        broker.add_user(user)
    broker.start()
    return broker


@pytest.fixture
def forgetful_broker() -> Iterator[Mosquitto]:
    """Keeps no retained message, so no $SYS value waits for a subscriber that comes late."""
    broker = own_broker("retain_available false\n")
    yield broker
    broker.cleanup()


@pytest.fixture
def small_queue_broker() -> Iterator[Mosquitto]:
    """Mosquitto's queue kept small (5 messages per client), as its defaults are small."""
    broker = own_broker("max_queued_messages 5\n")
    yield broker
    broker.cleanup()


@contextlib.asynccontextmanager
async def operator_on(
    tmp_path: Path, broker: Mosquitto, database: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_cloud(cloud_settings(tmp_path, broker, database=database)) as running:
        client = await signed_in(running.url, "op")
        try:
            yield client
        finally:
            await client.aclose()


async def test_a_broker_that_dropped_nothing_reads_zero_though_it_never_repeats_its_count(
    tmp_path: Path, forgetful_broker: Mosquitto, database_url: str
) -> None:
    async with operator_on(tmp_path, forgetful_broker, database_url) as operator:
        stats = await eventually(
            lambda: _json_if(operator.get("/api/stats"), lambda s: s["broker_dropped"] is not None)
        )
        assert stats["broker_dropped"] == 0
        # the broker's own total was never published to the cloud: it says so
        assert stats["broker_dropped_total"] is None


async def test_messages_the_broker_drops_are_counted_and_logged(
    tmp_path: Path,
    small_queue_broker: Mosquitto,
    caplog: pytest.LogCaptureFixture,
    database_url: str,
) -> None:
    broker = small_queue_broker
    async with operator_on(tmp_path, broker, database_url) as operator:
        await eventually(
            lambda: _json_if(operator.get("/api/stats"), lambda s: s["broker_dropped"] == 0)
        )
        # a consumer whose persistent session is offline: the broker queues 5 messages for it
        # and drops the rest (the cloud, connected, gets them all)
        lagging = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="lagging-reader", clean_session=False
        )
        lagging.username_pw_set("cloud", broker.users["cloud"])
        subscribed = threading.Event()
        lagging.on_subscribe = lambda *_: subscribed.set()
        lagging.connect("127.0.0.1", broker.port)
        lagging.loop_start()
        lagging.subscribe("sc/v1/gw-ld01/reply", qos=1)
        assert subscribed.wait(5)
        lagging.disconnect()
        lagging.loop_stop()
        gateway = Publisher(broker, "gw-ld01")
        try:
            for n in range(20):
                gateway.publish("sc/v1/gw-ld01/reply", {"n": n})
        finally:
            gateway.close()
        stats = await eventually(
            lambda: _json_if(operator.get("/api/stats"), lambda s: s["broker_dropped"])
        )
        assert stats["broker_dropped"] == 15 and stats["broker_dropped_total"] == 15
    assert any("the broker dropped 15 messages" in r.getMessage() for r in caplog.records)


# ---- the watch's reading of $SYS, message by message (what Mosquitto 2.0.11 sends) -------


def sys(watch: DropWatch, topic: str, payload: str, retained: bool = False) -> None:
    watch.heard(topic, payload.encode(), retained=retained)


def test_one_pass_is_not_enough_the_second_uptime_closes_the_first() -> None:
    watch = DropWatch()
    watch.subscribed()
    sys(watch, UPTIME, "120 seconds", retained=True)  # the broker's past: says nothing new
    sys(watch, UPTIME, "122 seconds")
    assert watch.dropped is None  # the first pass may still bring a new count
    sys(watch, UPTIME, "124 seconds")
    assert watch.dropped == 0 and watch.total is None


def test_a_count_that_moved_after_subscribing_counts_from_the_last_known_value() -> None:
    watch = DropWatch()
    watch.subscribed()
    sys(watch, DROPPED, "7", retained=True)  # dropped within the last minute, before us
    assert watch.dropped == 0 and watch.total == 7
    sys(watch, UPTIME, "10 seconds")
    sys(watch, DROPPED, "9")
    assert watch.dropped == 2 and watch.total == 9
    watch.subscribed()  # the broker restarted: its count starts again
    sys(watch, DROPPED, "1", retained=True)
    assert watch.dropped == 3 and watch.total == 1


def test_a_move_from_an_unknown_count_counts_all_of_it_and_other_brokers_are_not_guessed() -> None:
    watch = DropWatch()
    watch.subscribed()
    sys(watch, DROPPED, "4")  # moved since we subscribed; from what, nobody told us
    assert watch.dropped == 4  # errs on the side of the alarm
    other = DropWatch()  # a broker whose uptime is not Mosquitto's ("N seconds")
    other.subscribed()
    for n in range(5):
        sys(other, UPTIME, str(n))
    assert other.dropped is None


def test_a_counter_that_is_not_a_number_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = DropWatch()
    sys(watch, DROPPED, "lots")
    assert watch.dropped is None and "not a number" in caplog.text
