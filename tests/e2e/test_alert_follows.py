"""The alert follows the operator across pages (issue 15, point 3): the sound switch is
remembered from page to page, a waiting level-I alarm is seen and heard on the ledger (and the
other duty pages), not only on the board, and with the sound off while one waits the switch
turns into a red banner."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.cloud.conftest import Publisher, RunningCloud
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish, sign_in
from tests.e2e.test_board_alert import RECORD

# about the page, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])

SOUND_ON = "告警声音已开启"
SOUND_OFF = "浏览器禁止自动播放声音：点击此处开启告警声音"
SOUND_OFF_ALARM = "Ⅰ级告警待受理，告警声音却已关闭：点击此处开启"


async def beeps(page: Page) -> int:
    return int(await page.evaluate("window.__beeps.length"))


async def test_sound_and_live_alarms_follow_the_operator_to_the_ledger_and_back(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await page.add_init_script(RECORD)
    await board_live(page, cloud.url)
    sound = page.locator("#sound")
    await expect(sound).to_have_text(SOUND_OFF)
    await sound.click()
    await expect(sound).to_have_text(SOUND_ON)

    # to the ledger: the sound is still on, nothing waits
    await page.locator("#nav a[data-page=ledger]").click()
    await expect(page).to_have_url(re.compile(r"/ledger$"))
    await expect(sound).to_have_class(re.compile(r"\bon\b"))
    await expect(sound).to_have_text(re.compile(r"^告警声音已开启"))
    bar = page.locator("#alert-bar")
    await expect(bar).to_be_hidden()

    # a call comes in while the operator reads the ledger: seen, and heard at once
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await expect(bar).to_have_text("1 条Ⅰ级告警待受理 去告警看板受理")
    await expect(page.locator("body")).to_have_attribute("data-alerting", "true")
    assert await beeps(page) > 0
    # a click on the page lets the browser play it (the switch says so until then)
    await page.locator("h1").click()
    await expect(sound).to_have_text(SOUND_ON)
    assert await page.evaluate("audio.state") == "running"

    # the operator turns the sound off here: with a call waiting, that is a red banner
    await sound.click()
    await expect(sound).to_have_text(SOUND_OFF_ALARM)
    await expect(sound).to_have_css("background-color", "rgb(183, 28, 28)")
    # ... and it stays off on the board
    await bar.get_by_role("link", name="去告警看板受理").click()
    await expect(page.locator("#conn")).to_have_text("实时连接正常")
    await expect(sound).to_have_text(SOUND_OFF_ALARM)
    assert await beeps(page) == 0
    row = page.locator("#board tbody tr").first
    await row.get_by_role("button", name="受理").click()
    await expect(sound).to_have_text(SOUND_OFF)
    await expect(page.locator("body")).to_have_attribute("data-alerting", "false")

    # on again, remembered across a reload
    await sound.click()
    await page.reload()
    await expect(page.locator("#conn")).to_have_text("实时连接正常")
    await expect(sound).to_have_class(re.compile(r"\bon\b"))


async def test_the_other_duty_pages_carry_the_alert_and_an_installer_gets_none(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="alarm"))
    await sign_in(page, cloud.url, "op")
    for name in ("report", "devices", "trends"):
        await page.goto(f"{cloud.url}/{name}")
        await expect(page.locator("#alert-bar")).to_have_text("1 条Ⅰ级告警待受理 去告警看板受理")
        await expect(page.locator("#sound")).to_have_text(SOUND_OFF_ALARM)
    await page.locator("#lang").click()
    await expect(page.locator("#alert-bar")).to_have_text(
        "1 level-I alarm(s) waiting to be accepted Go to the board"
    )
    await page.locator("#lang").click()  # back to Chinese (remembered) for the sign-in below
    await page.request.post(f"{cloud.url}/api/logout")
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/devices")
    await expect(page.locator("#nav a[aria-current=page]")).to_be_visible()
    await expect(page.locator("#sound")).to_have_count(0)
    await expect(page.locator("#alert-bar")).to_have_count(0)
