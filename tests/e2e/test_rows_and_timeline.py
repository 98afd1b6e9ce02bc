"""What a row and a case say (issue 15, point 8): a call shows no "reading" (its event's battery
level is not one), a methane reading shows with its unit and one decimal, a detector that
cleared says so on its row before anyone accepts it, the case's timeline is in the order things
happened, without milliseconds, and says whom it was dispatched to, the feedback and the
outcome's note; a call's case has no empty readings panel."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.cloud.conftest import Publisher, RunningCloud
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish
from tests.e2e.test_board import telemetry

# about the page, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])


async def test_rows_show_readings_with_units_and_a_cleared_device(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(
        gw1,
        "event",
        event(device="call-0101", kind="call", type="press", values={"battery_pct": 87}),
    )
    call = page.locator("#board tbody tr", has_text="一键呼叫求助")
    await expect(call).to_be_visible()
    await expect(call).not_to_contain_text("读数")
    await expect(call).not_to_contain_text("87")

    await publish(gw1, "telemetry", telemetry("gw-ld01", "gas-0101", "gas", ch4_pct_lel=27.456))
    methane = page.locator("#board tbody tr", has_text="甲烷浓度超标")
    await expect(methane).to_contain_text("读数 27.5 %LEL")

    # the smoke detector alarms, then clears by itself: its row says so while it waits
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="alarm"))
    smoke = page.locator("#board tbody tr", has_text="烟雾报警")
    await expect(smoke).to_contain_text("待受理")
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="clear"))
    await expect(smoke.locator(".cleared")).to_have_text(re.compile(r"^设备已恢复 \d\d:\d\d:\d\d$"))
    await expect(smoke).to_contain_text("待受理")  # a life-safety alarm still needs a person


async def test_the_case_timeline_is_in_order_and_says_who_and_what(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    row = page.locator("#board tbody tr").first
    alarm_id = int(await row.get_attribute("data-id") or 0)
    url = f"/api/alarms/{alarm_id}"
    await row.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await expect(dialog.locator("li[data-step='shown_at']")).not_to_contain_text("—")
    await expect(dialog.locator("#readings")).to_have_count(0)  # a call has no readings panel

    await dialog.locator("#case-accept").click()
    await dialog.locator("#dispatch input[name=to]").fill("网格员 李网格")
    await dialog.locator("#dispatch button").click()
    await expect(dialog.locator("li[data-step='dispatched_at']")).to_contain_text(
        "派给 网格员 李网格"
    )
    await dialog.locator("#feedback input[name=note]").fill("老人摔倒，已送医")
    await dialog.locator("#feedback button").click()
    await expect(dialog.locator("li[data-step='feedback_at']")).to_contain_text("老人摔倒，已送医")
    form = dialog.locator("form#resolve")
    await form.locator("select[name=outcome]").select_option(label="已处置")
    await form.locator("input[name=note]").fill("家属已到场")
    await form.get_by_role("button", name="办结").click()
    resolved = dialog.locator("li[data-step='resolved_at']")
    await expect(resolved).to_contain_text("已处置 · op：家属已到场")

    # every step that happened, in the order it happened, to the second
    steps = await dialog.locator("ol.timeline li").all_inner_texts()
    times = [re.search(r"：(\S+ \S+)", s) for s in steps]
    shown = [m.group(1) for m in times if m]
    assert all(re.fullmatch(r"\d{4}/\d{1,2}/\d{1,2} \d{1,2}:\d\d:\d\d", t) for t in shown), shown
    parsed = [datetime.strptime(t, "%Y/%m/%d %H:%M:%S") for t in shown]
    assert parsed == sorted(parsed)
    assert steps[-1].startswith("督办核实：—")  # what is still to come, after
    case = (await operator.get(url)).json()["alarm"]
    assert case["resolved_at"] and datetime.fromisoformat(case["resolved_at"]) <= datetime.now(UTC)
