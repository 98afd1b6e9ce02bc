"""Who needs help, on the row (issue 15, point 8): a call's row names the resident with age and
flags (独居, 行动不便), on a desktop and on a phone; the phone number is not on the row, only in
the case, whose read of the profile is audited."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.cloud.conftest import Publisher, RunningCloud, signed_in
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish
from tests.e2e.test_screens import PHONE, assert_no_sideways_scroll

# about the page, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])


async def test_a_calls_row_names_the_resident_and_the_case_gives_the_phone(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    call = page.locator("#board tbody tr", has_text="一键呼叫求助")
    await expect(call).to_be_visible()
    row = page.locator(f"#board tbody tr[data-id='{await call.get_attribute('data-id')}']")
    glance = row.locator(".glance")
    await expect(glance).to_have_text("王秀英 82岁 独居 行动不便")
    await expect(row).not_to_contain_text("8600")  # the phone is not on the row
    # the smoke detector's home has nobody on file: nothing is made up
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="alarm"))
    smoke = page.locator("#board tbody tr", has_text="烟雾报警")
    await expect(smoke).to_be_visible()
    await expect(smoke.locator(".glance")).to_have_count(0)

    await page.set_viewport_size(PHONE)
    await expect(glance).to_be_in_viewport()
    await assert_no_sideways_scroll(page, "the board with a resident on a row")

    await row.get_by_role("button", name="时间线").click()
    phone = page.locator("#resident .phone a")
    await expect(phone).to_have_text("028 8600 0101")
    assert await phone.get_attribute("href") == "tel:02886000101"
    await expect(page.locator("#resident .flag")).to_have_text(["独居", "行动不便"])
    admin = await signed_in(cloud.url, "adm")
    try:
        reads = (await admin.get("/api/audit", params={"action": "resident_read"})).json()
        assert [r["actor"] for r in reads] == ["op"]  # the case's read, audited
        glances = (await admin.get("/api/audit", params={"action": "resident_glance_read"})).json()
        assert glances and all(r["actor"] == "op" for r in glances)
    finally:
        await admin.aclose()

    await page.locator("#case-close").click()
    await page.get_by_role("button", name="English").click()
    await expect(glance).to_have_text("王秀英 82 lives alone limited mobility")


async def test_a_resident_added_after_the_board_opened_shows_on_that_homes_alarm(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await board_live(page, cloud.url)
    body = page.locator("body")
    await expect(body).to_have_attribute("data-glance-reads", "1")  # read when it opened
    supervisor = await signed_in(cloud.url, "sup")
    try:
        added = await supervisor.put(
            "/api/site/homes/h-01-0102/residents",
            json={"residents": [{"name": "刘芳", "age": 90, "flags": ["oxygen"]}]},
        )
        assert added.status_code == 200, added.text
    finally:
        await supervisor.aclose()
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="alarm"))
    smoke = page.locator("#board tbody tr", has_text="烟雾报警")
    await expect(smoke.locator(".glance")).to_have_text("刘芳 90岁 家庭用氧")
    await expect(body).to_have_attribute("data-glance-reads", "2")  # read again, once
