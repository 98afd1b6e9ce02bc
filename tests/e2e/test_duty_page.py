"""The duty page (值班排班) in Chromium: a supervisor puts a person on the roster for the shift
in force and sees them on duty now; an operator's handover waits for another account, which
takes it over from the page; every visible string is Chinese. With SC_SCREENSHOTS=1 the page
goes to docs/screenshots/desktop/duty.png."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from cloud.duty.shifts import shift_at
from tests.cloud.conftest import RunningCloud
from tests.e2e.conftest import VIEWPORT, screenshot, sign_in
from tests.e2e.test_screens import PHONE, assert_no_sideways_scroll, shots_dir
from tests.e2e.test_translated import assert_all_chinese


async def test_the_roster_and_a_handover_on_the_page(
    cloud: RunningCloud, operator: httpx.AsyncClient, page: Page, tmp_path: Path
) -> None:
    made = await operator.post("/api/handovers", json={"note": "7栋水浸已派物业"})
    assert made.status_code == 201, made.text
    current = shift_at(time.time())

    await sign_in(page, cloud.url, "sup")
    await page.goto(f"{cloud.url}/duty")
    await expect(page.locator("#nav a[aria-current=page]")).to_have_text("值班排班")
    await page.locator("#person-name").fill("周值班")
    await page.locator("#person-phone").fill("138 3333 0001")
    await page.locator("#person-form button[type=submit]").click()
    await expect(page.locator("#message")).to_have_text("已保存")
    await page.locator("#weekly-day").select_option(current.weekday)
    await page.locator("#weekly-shift").select_option(current.shift.code)
    await page.locator("#weekly-slot").select_option("duty_officer/jd-jinjiang")
    await page.locator("#weekly-person").select_option(label="周值班 138 3333 0001")
    await page.locator("#weekly-form button[type=submit]").click()
    await expect(page.locator("#now-list li").first).to_contain_text("值班员周值班")
    row = page.locator(
        f"#roster-table tbody tr[data-day='{current.day}'][data-shift='{current.shift.code}']"
    )
    await expect(row).to_contain_text("周值班")

    handover = page.locator("#handovers li").first
    await expect(handover).to_contain_text("7栋水浸已派物业")
    await expect(handover).to_contain_text("待接班")
    await assert_all_chinese(page, "duty")
    await handover.get_by_placeholder("接班说明").fill("已知悉")
    await handover.get_by_role("button", name="接班确认").click()
    await expect(handover).to_contain_text("sup 于")
    await expect(handover).to_contain_text("已知悉")
    [kept] = (await operator.get("/api/handovers")).json()
    assert (kept["acknowledged_by"], kept["ack_note"]) == ("sup", "已知悉")
    await screenshot(page, shots_dir("desktop", tmp_path) / "duty.png", full_page=True)

    await page.set_viewport_size(PHONE)  # the duty page on a phone: nothing wider than it
    await assert_no_sideways_scroll(page, "duty (phone)")
    await page.set_viewport_size(VIEWPORT)
    await page.locator("#lang").click()
    await expect(page.locator("h1")).to_have_text("Street duty room · Duty & roster")
    await expect(handover).to_contain_text("taken over by sup")
