"""A drill on screen (应急演练): its incident on the operator's board is marked 演练 on its row
and its case, behind a real alarm that came later; the supervisor's drill report shows the
steps the operator took; every visible string is Chinese (English on request)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.cloud.conftest import Publisher, RunningCloud, eventually, signed_in
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish, sign_in
from tests.e2e.test_translated import assert_all_chinese

# about the pages, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])


async def test_a_drills_incident_is_marked_on_the_board_and_reported_to_the_supervisor(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    supervisor = await signed_in(cloud.url, "sup")
    try:
        now = datetime.now(UTC)
        plan = {
            "gateway": "gw-ld01",
            "devices": ["smoke-0102"],
            "starts_at": (now - timedelta(seconds=5)).isoformat(),
            "ends_at": (now + timedelta(minutes=30)).isoformat(),
        }
        drill = (await supervisor.post("/api/drills", json=plan)).json()
        await publish(gw1, "event", event(device="smoke-0102", seq=1, drill=drill["id"]))
        await eventually(lambda: _board(operator, 1))
        press = event(device="call-0101", kind="call", type="press", seq=2)
        await publish(gw1, "event", press)
        await eventually(lambda: _board(operator, 2))
    finally:
        await supervisor.aclose()

    await board_live(page, cloud.url, "op")
    rows = page.locator("#board tbody tr")
    await expect(rows).to_have_count(2)
    # the real call first though it came later; the drill's row says 演练
    await expect(rows.nth(0)).not_to_contain_text("演练")
    drill_row = page.locator("#board tbody tr.drill")
    await expect(drill_row).to_have_count(1)
    await expect(drill_row.locator(".badge.drill")).to_have_text("演练")
    await expect(rows.nth(1)).to_have_class("level-1 state-active drill")
    await assert_all_chinese(page, "board with a drill")
    await drill_row.get_by_role("button", name="时间线").click()
    note = page.locator("#case .drill-note")
    await expect(note).to_contain_text(f"应急演练 #{drill['id']}")
    await expect(note).to_contain_text("不通知住户、家属和119")
    await assert_all_chinese(page, "a drill's case")
    await page.locator("#case-accept").click()
    await expect(page.locator("#case form#dispatch")).to_be_visible()
    await page.locator("#case-close").click()

    await page.request.post(f"{cloud.url}/api/logout")
    await sign_in(page, cloud.url, "sup")
    await page.goto(f"{cloud.url}/drills")
    await expect(page.locator("#nav a[aria-current=page]")).to_have_text("应急演练")
    accepted = page.locator("#steps tbody tr[data-step=accepted]")
    await expect(accepted).to_contain_text("受理")
    await expect(accepted.locator("td").nth(1)).to_have_text("1")
    await expect(page.locator("#operators tbody tr")).to_contain_text("op")
    await expect(page.locator("#steps thead")).to_contain_text("这是第一次演练")
    await assert_all_chinese(page, "drill report")
    await page.locator("#lang").click()
    await expect(accepted).to_contain_text("Accepted")
    await expect(page.locator("#summary")).to_contain_text(f"Emergency drill #{drill['id']}")


async def _board(client: httpx.AsyncClient, n: int) -> list[dict[str, object]] | None:
    board: list[dict[str, object]] = (await client.get("/api/alarms")).json()
    return board if len(board) >= n else None
