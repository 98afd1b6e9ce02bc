"""A walk test on the duty room's board (issue 15, point 4): the board says which gateway is
under test, by whom, until when and how long is left; a real call during the test still
appears on the board (a life-safety device is never muted), while another device's fault is
recorded as a test and does not."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.cloud.conftest import Publisher, RunningCloud, eventually, signed_in
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish

# about the page, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])


async def test_the_board_shows_a_running_walk_test_and_a_real_call_during_it(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    installer = await signed_in(cloud.url, "inst")
    try:
        started = await installer.post("/api/walktests", json={"gateway": "gw-ld01", "minutes": 20})
        assert started.status_code == 201
        window = started.json()
        # an operator may read what runs now (not start one)
        [running] = (await operator.get("/api/windows/now")).json()
        assert running["id"] == window["id"]

        await board_live(page, cloud.url)
        banner = page.locator(f"#windows li[data-window='{window['id']}']")
        await expect(banner).to_contain_text(f"巡检测试 #{window['id']}")
        await expect(banner).to_contain_text("网关 gw-ld01（全部设备）")
        await expect(banner).to_contain_text("发起人 inst")
        await expect(banner).to_contain_text(re.compile(r"至 \d\d:\d\d:\d\d（剩余 1[89]:\d\d）"))
        await expect(banner).to_contain_text("呼叫、烟感、燃气报警照常推送")

        # the gas detector's fault is a test; the old man's real call is not
        await publish(gw1, "event", event(device="gas-0101", kind="gas", type="fault"))
        await eventually(lambda: cloud.cloud.announcer.counts["test_alarms"] == 1)
        await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
        rows = page.locator("#board tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("一键呼叫求助")
        await expect(page.locator("body")).to_have_attribute("data-alerting", "true")

        # ended: the banner goes (at the next look, here a reload)
        ended = await installer.post(f"/api/walktests/{window['id']}/end")
        assert ended.status_code == 200
        assert (await operator.get("/api/windows/now")).json() == []
        await page.reload()
        await expect(page.locator("#conn")).to_have_text("实时连接正常")
        await expect(page.locator("#windows")).to_be_hidden()
    finally:
        await installer.aclose()
