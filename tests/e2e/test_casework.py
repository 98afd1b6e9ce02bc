"""Casework on the board: dispatch (派单) and feedback (情况反馈) from the case dialog, each
landing on the timeline with who and when."""

from __future__ import annotations

import asyncio
import re

import httpx
from playwright.async_api import Page, Route, expect

from tests.cloud.conftest import Publisher, RunningCloud
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish


async def test_dispatch_and_feedback_reach_the_timeline(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    row = page.locator("#board tbody tr").first
    await row.get_by_role("button", name="受理").click()
    await expect(row).to_have_attribute("data-state", "accepted")

    await row.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await dialog.locator("#dispatch input[name=to]").fill("李网格")
    await dialog.locator("#dispatch input[name=note]").fill("请立即上门查看")
    await dialog.locator("#dispatch button").click()
    await expect(dialog.locator('[data-step="dispatched_at"]')).not_to_have_text(re.compile("—"))
    await dialog.locator("#feedback input[name=note]").fill("已上门，老人血压偏高，已联系家属")
    await dialog.locator("#feedback button").click()
    await expect(dialog.locator('[data-step="feedback_at"]')).not_to_have_text(re.compile("—"))
    await expect(dialog).to_contain_text("李网格")

    alarm_id = int(await row.get_attribute("data-id") or 0)
    case = (await operator.get(f"/api/alarms/{alarm_id}")).json()
    assert case["alarm"]["dispatched_to"] == "李网格"
    assert case["alarm"]["dispatched_by"] == case["alarm"]["feedback_by"] == "op"
    actions = [h["action"] for h in case["history"]]
    assert "dispatched" in actions and "feedback" in actions


async def test_a_case_closed_while_a_live_update_is_read_stays_closed(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, page: Page
) -> None:
    """Someone else's dispatch makes the open case refresh; the operator closes the dialog while
    that refresh is still being read: it must not open again over the board."""
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    row = page.locator("#board tbody tr").first
    await row.get_by_role("button", name="受理").click()
    await expect(row).to_have_attribute("data-state", "accepted")
    alarm_id = int(await row.get_attribute("data-id") or 0)
    await row.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await expect(dialog).to_be_visible()

    held: asyncio.Queue[Route] = asyncio.Queue()
    await page.route(f"**/api/alarms/{alarm_id}", held.put_nowait)
    dispatched = await operator.post(
        f"/api/alarms/{alarm_id}/dispatch", json={"to": "李网格", "note": "另一位值班员派单"}
    )
    assert dispatched.status_code == 200, dispatched.text
    refresh = await asyncio.wait_for(held.get(), 10)  # the live update's read of the case
    await dialog.get_by_role("button", name="关闭").click()
    await expect(dialog).to_be_hidden()
    await refresh.continue_()
    await page.unroute(f"**/api/alarms/{alarm_id}")
    # the board stays usable: the row's own buttons take clicks
    await row.get_by_role("button", name="时间线").click()
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("李网格")
