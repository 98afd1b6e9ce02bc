"""Every page on a phone (390×844) and on a desktop (1280×800), in a real browser: nothing
wider than the screen (no sideways scrolling), the board's rows as cards on the phone with 受理
on screen, a header that wraps as whole words, the case dialog inside the screen.

With SC_SCREENSHOTS=1 the pictures of each page at both sizes go to docs/screenshots/phone/
and docs/screenshots/desktop/ (the screen as seen, not the whole page: small files).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, ViewportSize, expect

from tests.cloud.conftest import Publisher, RunningCloud
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import VIEWPORT, board_live, publish, screenshot, sign_in

REPO = Path(__file__).resolve().parents[2]
PHONE: ViewportSize = {"width": 390, "height": 844}
SIZES = {"phone": PHONE, "desktop": VIEWPORT}

# about the browser, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])

#: The page's width as the browser lays it out, against the window's.
WIDTHS = "[document.documentElement.scrollWidth, window.innerWidth]"
#: What sticks out on the right (for the failure message).
STICKING_OUT = """() => [...document.querySelectorAll('body *')]
  .filter((el) => el.getBoundingClientRect().right > innerWidth + 0.5)
  .slice(0, 8).map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}`)"""


async def assert_no_sideways_scroll(page: Page, what: str) -> None:
    scroll, window = await page.evaluate(WIDTHS)
    assert scroll <= window, f"{what}: {scroll} px wide on a {window} px screen: " + ", ".join(
        await page.evaluate(STICKING_OUT)
    )


async def assert_on_one_line(page: Page, selector: str) -> None:
    """Each matching element's text is one line (a word broken per character is many)."""
    for box in await page.locator(selector).all():
        if not await box.is_visible():
            continue
        lines = await box.evaluate(
            "(el) => { const r = document.createRange(); r.selectNodeContents(el);"
            " return new Set([...r.getClientRects()].map((c) => Math.round(c.top))).size; }"
        )
        assert lines == 1, f"{selector} {await box.text_content()!r} runs over {lines} lines"


def shots_dir(size: str, tmp_path: Path) -> Path:
    base = REPO / "docs" / "screenshots" if os.environ.get("SC_SCREENSHOTS") else tmp_path
    out = base / size
    out.mkdir(parents=True, exist_ok=True)
    return out


async def raise_alarms(gw1: Publisher, operator: httpx.AsyncClient) -> None:
    """A waiting call (level I) and a smoke fault (level III) on the board."""
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="fault"))
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))


@pytest.mark.parametrize("size", ["phone", "desktop"])
async def test_duty_pages_fit_the_screen(
    size: str,
    cloud: RunningCloud,
    gw1: Publisher,
    operator: httpx.AsyncClient,
    page: Page,
    tmp_path: Path,
) -> None:
    shots = shots_dir(size, tmp_path)
    await page.set_viewport_size(SIZES[size])
    await page.goto(f"{cloud.url}/login")
    await assert_no_sideways_scroll(page, "login")
    await screenshot(page, shots / "login.png")

    await board_live(page, cloud.url)
    await raise_alarms(gw1, operator)
    rows = page.locator("#board tbody tr")
    await expect(rows).to_have_count(2)
    call = page.locator("#board tbody tr[data-level='1']")
    await expect(call).to_contain_text("一键呼叫求助")
    await assert_no_sideways_scroll(page, "board")
    await assert_on_one_line(page, "header h1")
    await assert_on_one_line(page, "#nav a")
    await assert_on_one_line(page, "#conn")
    # 受理 is on screen and takes a tap, without scrolling sideways
    accept = call.get_by_role("button", name="受理")
    await expect(accept).to_be_in_viewport(ratio=1)
    if size == "phone":
        # a card per alarm: no column headings, what and where each on a line of their own
        await expect(page.locator("#board thead")).to_be_hidden()
        title = await call.locator(".title").bounding_box()
        where = await call.locator("td:nth-child(3)").bounding_box()
        assert title and where and where["y"] >= title["y"] + title["height"] - 1
        assert where["width"] > PHONE["width"] * 0.7  # the card's width, not a column's
    await screenshot(page, shots / "board.png")

    # the case opens inside the screen
    await call.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("#case-accept")).to_be_visible()
    box = await dialog.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= SIZES[size]["width"]
    await assert_no_sideways_scroll(page, "case")
    await expect(dialog.locator("#case-accept")).to_be_in_viewport(ratio=1)
    await screenshot(page, shots / "case.png")
    await dialog.locator("#case-accept").click()
    await expect(dialog.locator("form#dispatch")).to_be_visible()
    await assert_no_sideways_scroll(page, "case (accepted)")
    await page.locator("#case-close").click()

    for name in ("ledger", "report", "devices", "trends"):
        await page.goto(f"{cloud.url}/{name}")
        await expect(page.locator("#nav a[aria-current=page]")).to_be_visible()
        await page.wait_for_load_state("networkidle")
        await assert_no_sideways_scroll(page, name)
        await assert_on_one_line(page, "#nav a")
        await screenshot(page, shots / f"{name}.png")


@pytest.mark.parametrize("size", ["phone", "desktop"])
async def test_installer_and_admin_pages_fit_the_screen(
    size: str, cloud: RunningCloud, page: Page, tmp_path: Path
) -> None:
    shots = shots_dir(size, tmp_path)
    await page.set_viewport_size(SIZES[size])
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/install")
    await expect(page.locator("#gw-select")).to_have_value("gw-ld01")
    await page.get_by_role("button", name="生成认领码").click()
    await expect(page.locator("#code")).to_have_text(re.compile(r"^\S{4}-\S{4}$"))
    await expect(page.locator("#code-cmd")).to_be_visible()
    await assert_no_sideways_scroll(page, "install")
    await assert_on_one_line(page, "header h1")
    await screenshot(page, shots / "install.png")

    await page.request.post(f"{cloud.url}/api/logout")
    await sign_in(page, cloud.url, "adm")
    for name in ("site", "users"):
        await page.goto(f"{cloud.url}/{name}")
        await expect(page.locator("#nav a[aria-current=page]")).to_be_visible()
        await page.wait_for_load_state("networkidle")
        await assert_no_sideways_scroll(page, name)
        await assert_on_one_line(page, "#nav a")
        await screenshot(page, shots / f"{name}.png")
