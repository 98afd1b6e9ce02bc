"""The grid worker's phone page in Chromium at 390×844: a dispatched call appears as a card;
the worker accepts it, has a map link to the building, sends feedback with a photo from the
camera input and resolves it — with the thumb: every button on screen, full-width rows, no
sideways scrolling, every visible string Chinese. With SC_SCREENSHOTS=1 the card goes to
docs/screenshots/phone/grid.png."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path
from urllib.parse import quote

import httpx
from playwright.async_api import Page, expect

from cloud.access.users import Role
from cloud.duty.roster import DutyRole
from cloud.duty.shifts import shift_at
from tests.cloud.conftest import RunningCloud
from tests.cloud.duty.test_grid_cases import PASSWORD, draft
from tests.e2e.conftest import screenshot
from tests.e2e.test_screens import PHONE, assert_no_sideways_scroll, shots_dir
from tests.e2e.test_translated import assert_all_chinese


def png() -> bytes:
    """A 1×1 PNG, as a camera app would hand over (smaller)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def test_the_grid_workers_phone_page(
    cloud: RunningCloud, operator: httpx.AsyncClient, page: Page, tmp_path: Path
) -> None:
    parts = cloud.cloud
    await parts.users.ensure("li-wg", Role.GRID_WORKER, PASSWORD)
    person = await parts.duty.roster.add_person("李网格", "138 0000 0001", "sup", "li-wg")
    current = shift_at(time.time())
    await parts.duty.roster.set_weekly(
        current.weekday, current.shift.code, DutyRole.GRID_WORKER, "wg-01", person.id, "sup"
    )
    [call] = await parts.book.apply([draft("call_for_help", 1, "一键呼叫求助")], time.time())
    url = f"/api/alarms/{call.alarm.id}"
    (await operator.post(f"{url}/accept")).raise_for_status()
    sent = await operator.post(f"{url}/dispatch", json={"to": "网格员 李网格", "note": "上门查看"})
    sent.raise_for_status()

    await page.set_viewport_size(PHONE)
    await page.goto(f"{cloud.url}/login")
    await page.get_by_label("用户名").fill("li-wg")
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await expect(page).to_have_url(f"{cloud.url}/grid")  # a grid worker starts on their cases
    card = page.locator(f"#cases li[data-id='{call.alarm.id}']")
    await expect(card).to_contain_text("一键呼叫求助")
    await expect(card).to_contain_text("红星小区1栋 1单元101")
    await expect(card).to_contain_text("住户：王秀英")
    await assert_no_sideways_scroll(page, "grid")
    await assert_all_chinese(page, "grid")

    accept = card.get_by_role("button", name="接单")
    await expect(accept).to_be_in_viewport(ratio=1)
    box = await accept.bounding_box()
    assert box and box["height"] >= 44 and box["width"] >= PHONE["width"] * 0.4  # a thumb's target
    await accept.click()
    await expect(card.locator(".status")).to_contain_text("已接单")
    nav = card.get_by_role("link", name="导航")
    assert await nav.get_attribute("href") == (
        f"https://uri.amap.com/search?keyword={quote('红星路12号1栋', safe='')}&callnative=1"
    )

    await card.get_by_role("button", name="反馈").click()
    await card.get_by_placeholder("现场情况").fill("老人在家，按钮误触，已确认平安")
    await card.get_by_label("现场照片").set_input_files(
        {"name": "scene.png", "mimeType": "image/png", "buffer": png()}
    )
    await card.get_by_role("button", name="提交反馈").click()
    await expect(card).to_contain_text("已附照片 1 张")
    await assert_no_sideways_scroll(page, "grid (after feedback)")
    await assert_all_chinese(page, "grid (after feedback)")
    await screenshot(page, shots_dir("phone", tmp_path) / "grid.png")

    resolve = card.get_by_role("button", name="办结")
    box = await resolve.bounding_box()
    assert box and box["width"] >= PHONE["width"] * 0.8  # the whole row
    await resolve.click()
    await card.get_by_role("button", name="确认办结").click()
    await expect(card).to_have_count(0)  # the list was fetched again after the resolve
    await expect(page.locator("#empty")).to_be_visible()  # (its text is there while hidden)
    await expect(page.locator("#empty")).to_have_text("暂无派给你的工单。")
    alarm = await parts.alarms.get(call.alarm.id)
    assert (alarm.state, alarm.resolved_by) == ("resolved", "li-wg")
    history = await parts.alarms.history(call.alarm.id)
    assert [h.action for h in history if h.actor == "li-wg"] == [
        "field_accepted",
        "feedback",
        "resolved",
    ]
