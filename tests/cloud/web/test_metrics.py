"""GET /metrics for Prometheus: off without a token, refused without the right one, and the
figures an operations team alerts on move with what the cloud does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    end_session,
    eventually,
    forget_gateway_status,
    running_cloud,
)
from tests.cloud.ingest.test_ingest import event
from tests.servers import Mosquitto

TOKEN = "scrape-token-for-tests"


@pytest.fixture
async def watched(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[RunningCloud]:
    """A cloud with its metrics on (SQLite: the figures are read the same way on both)."""
    forget_gateway_status(mosquitto)
    settings = cloud_settings(tmp_path, mosquitto, metrics_token=SecretStr(TOKEN))
    async with running_cloud(settings) as running:
        yield running
    await asyncio.to_thread(end_session, mosquitto, settings.mqtt_client_id)


async def scrape(url: str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return await client.get("/metrics", headers=headers)


async def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await scrape(url)
    resp.raise_for_status()
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


async def test_only_the_bearer_of_the_token_gets_the_figures(watched: RunningCloud) -> None:
    assert (await scrape(watched.url, None)).status_code == 401
    assert (await scrape(watched.url, "wrong-token")).status_code == 401
    assert (await scrape(watched.url)).status_code == 200


async def test_without_a_token_the_endpoint_is_off(cloud: RunningCloud) -> None:
    resp = await scrape(cloud.url)
    assert resp.status_code == 404
    assert "SC_CLOUD_METRICS_TOKEN" in resp.text


async def test_a_call_for_help_shows_in_the_figures(watched: RunningCloud, gw1: Publisher) -> None:
    before = await samples(watched.url)
    assert before[("sc_alarms_unaccepted", (("level", "1"),))] == 0
    assert before[("sc_broker_connected", ())] == 1
    # the single box: its one process consumes the one ingest shard
    assert (before[("sc_ingest_shards_held", ())], before[("sc_ingest_shards", ())]) == (1, 1)

    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    gw1.publish("sc/v1/gw-ld01/event", b"{not json")

    waiting = ("sc_alarms_unaccepted", (("level", "1"),))
    refused = ("sc_rejected_total", (("reason", "malformed_json"),))
    pushed = ("sc_notifications", (("channel", "push"), ("status", "failed")))
    stored = ("sc_ingest_total", (("what", "events"),))

    async def moved() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        # the database's figures can be read before the event loop has counted the commit
        # that made them, and the announcement comes after both: each in its own time
        now = await samples(watched.url)
        seen = now[waiting] == 1 and all(key in now for key in (refused, pushed, stored))
        return now if seen else None

    after = await eventually(moved)
    assert after[stored] == 1
    assert after[refused] == 1
    assert after[("sc_alarm_push_seconds_count", ())] == 1
    assert 0 <= after[("sc_alarm_push_seconds_sum", ())] < 1, "arrival to the pages within 1 s"
    assert after[("sc_alarm_push_seconds_bucket", (("le", "1.0"),))] == 1
    # no duty-room page was open: its push (step 0 of the plan) counts as failed
    assert after[pushed] == 1
