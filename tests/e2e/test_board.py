"""The duty-room board in a real browser (Debian's Chromium), fed through the real broker.

Each test does what an operator does and checks what an operator would notice: the row
appearing without a reload, the level badge and colour, the audible-alert state, one click to
accept and to resolve, the most urgent alarm on top, catching up after a network blip,
English on request, and a clear refusal for a role that may not see alarms.
"""

from __future__ import annotations

import os
import re
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Locator, Page, expect

from sim.link import CuttableLink
from tests.cloud.conftest import Publisher, RunningCloud, eventually
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish, screenshot, sign_in

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"

LEVEL_I = "Ⅰ级 特别重大"
LEVEL_III = "Ⅲ级 较大"


def rows(page: Page) -> Locator:
    return page.locator("#board tbody tr")


async def sound_icon(page: Page) -> str:
    """The icon drawn before the sound banner's text (a CSS background image)."""
    return await page.evaluate(
        "getComputedStyle(document.querySelector('#sound'), '::before').backgroundImage"
    )


async def open_alarms(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    resp = await client.get("/api/alarms")
    resp.raise_for_status()
    return resp.json()


def telemetry(gateway: str, device: str, kind: str, **values: float) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": f"t-{device}-{datetime.now(UTC).timestamp()}",
        "gateway": gateway,
        "boot": "boot1",
        "seq": 1,
        "readings": [{"device": device, "ts": now, "kind": kind, "values": values}],
    }


async def test_operator_takes_a_call_from_sign_in_to_resolved(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    # the board sends a stranger to the sign-in form, in Chinese by default
    await page.goto(f"{cloud.url}/")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.get_by_role("button", name="登录")).to_be_visible()
    await expect(page.get_by_text("用户名")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

    await board_live(page, cloud.url)
    await expect(page.get_by_text("当前没有未办结的告警")).to_be_visible()
    await expect(page.locator("#user")).to_have_text("op (值班员)")
    await expect(page.locator("body")).to_have_attribute("data-alerting", "false")
    sound = page.locator("#sound")
    await expect(sound).to_have_text("浏览器禁止自动播放声音：点击此处开启告警声音")
    await expect(sound).to_have_class(re.compile(r"\boff\b"))
    assert "svg" in await sound_icon(page)  # a drawn muted speaker: no emoji font needed
    muted_icon = await sound_icon(page)
    await page.evaluate("window.sameDocument = true")  # gone if the page reloads

    # a resident presses the call button: the row appears by itself
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    row = rows(page)
    await expect(row).to_have_count(1)
    await expect(row.locator(".badge")).to_have_text(LEVEL_I)
    await expect(row).to_contain_text("一键呼叫求助")
    await expect(row).to_contain_text("红星小区1栋 1单元101")
    await expect(row).to_contain_text("待受理")
    await expect(page.get_by_text("当前没有未办结的告警")).to_be_hidden()
    assert await page.evaluate("window.sameDocument") is True
    # a level-I alarm nobody has accepted yet: the page is alerting (sound, pulsing row)
    await expect(page.locator("body")).to_have_attribute("data-alerting", "true")
    await expect(row.locator(".badge")).to_have_css("background-color", "rgb(211, 47, 47)")

    # the operator allows sound with one click
    await sound.click()
    await expect(sound).to_have_text("告警声音已开启")
    await expect(sound).to_have_class(re.compile(r"\bon\b"))
    assert "svg" in await sound_icon(page) and await sound_icon(page) != muted_icon
    assert await page.evaluate("audio !== null && audio.state !== 'closed'")

    # one click to accept: the alert stops, the row stays as accepted
    await row.get_by_role("button", name="受理").click()
    await expect(row).to_contain_text("已受理")
    await expect(row.get_by_role("button", name="受理")).to_have_count(0)
    await expect(page.locator("body")).to_have_attribute("data-alerting", "false")

    # choose the outcome and resolve: the case leaves the board
    alarm_id = int(await row.get_attribute("data-id") or 0)
    await row.locator("select[data-outcome]").select_option(label="已处置")
    await row.get_by_role("button", name="办结").click()
    await expect(rows(page)).to_have_count(0)
    await expect(page.get_by_text("当前没有未办结的告警")).to_be_visible()

    # the timeline was kept, and "shown" came from the page itself
    resp = await operator.get(f"/api/alarms/{alarm_id}")
    resp.raise_for_status()
    alarm = resp.json()["alarm"]
    assert alarm["state"] == "resolved" and alarm["outcome"] == "handled"
    assert alarm["accepted_by"] == "op" and alarm["resolved_by"] == "op"
    assert alarm["shown_at"] and alarm["accepted_at"] and alarm["resolved_at"]
    shown, accepted, resolved = (
        datetime.fromisoformat(alarm[k]) for k in ("shown_at", "accepted_at", "resolved_at")
    )
    assert datetime.fromisoformat(alarm["received_at"]) <= shown <= accepted <= resolved


async def test_most_urgent_alarm_is_on_top_and_choices_survive_updates(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="fault"))
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first.locator(".badge")).to_have_text(LEVEL_III)
    await expect(rows(page).first).to_contain_text("设备故障")
    await expect(page.locator("body")).to_have_attribute("data-alerting", "false")
    # the operator takes the fault and marks it a false alarm ...
    fault_row = page.locator("#board tbody tr[data-level='3']")
    await fault_row.get_by_role("button", name="受理").click()
    await expect(fault_row).to_contain_text("已受理")
    await fault_row.locator("select[data-outcome]").select_option("false_alarm")

    # ... when a smoke alarm arrives later: it goes on top
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="alarm"))
    await expect(rows(page)).to_have_count(2)
    await expect(rows(page).nth(0).locator(".badge")).to_have_text(LEVEL_I)
    await expect(rows(page).nth(0)).to_contain_text("烟雾报警")
    await expect(rows(page).nth(0)).to_contain_text("红星小区1栋 1单元102")
    await expect(rows(page).nth(1).locator(".badge")).to_have_text(LEVEL_III)
    await expect(page.locator("body")).to_have_attribute("data-alerting", "true")
    # the redraw kept the choice made on the fault row
    await expect(fault_row.locator("select[data-outcome]")).to_have_value("false_alarm")
    fault_id = int(await fault_row.get_attribute("data-id") or 0)
    # a false alarm is closed with its cause: the case opens at that short form
    await fault_row.get_by_role("button", name="办结").click()
    resolve = page.locator("#case form#resolve")
    await expect(resolve.locator("select[name=outcome]")).to_have_value("false_alarm")
    await resolve.locator("select[name=cause]").select_option(label="设备故障")
    await resolve.get_by_role("button", name="办结").click()
    await expect(rows(page)).to_have_count(1)
    resp = await operator.get(f"/api/alarms/{fault_id}")
    assert resp.json()["alarm"]["outcome"] == "false_alarm"
    assert resp.json()["alarm"]["cause"] == "device_fault"


async def test_alarm_raised_during_a_network_cut_appears_on_reconnect(
    link: CuttableLink, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    await board_live(page, link.url)
    await expect(page.get_by_text("当前没有未办结的告警")).to_be_visible()

    # the duty-room PC loses its network: the open stream breaks, the page says so
    await link.cut()
    await expect(page.locator("#conn")).to_have_text("连接中断，正在重连…")
    await expect(page.locator("#conn")).to_have_class(re.compile(r"\bdown\b"))

    # a call comes in meanwhile: the cloud has it, the page cannot know yet
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await eventually(lambda: open_alarms(operator))
    await expect(rows(page)).to_have_count(0)
    await expect(page.locator("#conn")).to_have_text("连接中断，正在重连…")

    # the network is back: the stream reconnects by itself and its snapshot brings the call
    await link.restore()
    await expect(page.locator("#conn")).to_have_text("实时连接正常")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("一键呼叫求助")
    await expect(page.locator("body")).to_have_attribute("data-alerting", "true")

    # and live updates flow again after the catch-up
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="alarm"))
    await expect(rows(page)).to_have_count(2)


async def test_lapsed_session_goes_back_to_sign_in(link: CuttableLink, page: Page) -> None:
    await board_live(page, link.url)
    # the session ends elsewhere (signed out in another tab) and the stream then drops
    assert (await page.request.post(f"{link.url}/api/logout")).status == 204
    await link.cut()
    await expect(page.locator("#conn")).to_have_text("连接中断，正在重连…")
    await link.restore()
    # the reconnect is refused: the page asks for a sign-in instead of retrying for ever
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.get_by_role("button", name="登录")).to_be_visible()


async def test_english_on_request_and_remembered(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first.get_by_role("button", name="受理")).to_be_visible()

    await page.get_by_role("button", name="English").click()
    await expect(page.locator("h1")).to_have_text("Street duty room · Alarm board")
    await expect(rows(page).first.locator(".badge")).to_have_text("Level I")
    await expect(rows(page).first).to_contain_text("Emergency call")
    await expect(rows(page).first.get_by_role("button", name="Accept")).to_be_visible()
    await expect(page.locator("#conn")).to_have_text("Live")
    # sound off while a level-I alarm waits: the switch is a banner saying so
    await expect(page.locator("#sound")).to_have_text(
        "A level-I alarm is waiting and the alarm sound is off: click here to turn it on"
    )
    await expect(page.locator("html")).to_have_attribute("lang", "en")

    # a reload (or tomorrow's shift) keeps English
    await page.reload()
    await expect(page.locator("h1")).to_have_text("Street duty room · Alarm board")
    await expect(page).to_have_title("Street duty room · Alarm board")
    await expect(rows(page).first.locator(".badge")).to_have_text("Level I")
    await expect(rows(page).first.get_by_role("button", name="Accept")).to_be_visible()
    await expect(page.locator("#user")).to_have_text("op (operator)")
    await rows(page).first.get_by_role("button", name="Accept").click()
    await expect(rows(page).first).to_contain_text("Accepted")

    # and back to Chinese with one click
    await page.get_by_role("button", name="中文").click()
    await expect(rows(page).first.locator(".badge")).to_have_text(LEVEL_I)
    await expect(rows(page).first).to_contain_text("已受理")


async def test_installer_is_told_the_board_is_not_for_them(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    # a wrong password is refused with a message
    await page.goto(f"{cloud.url}/login")
    await page.get_by_label("用户名").fill("inst")
    await page.get_by_label("密码").fill("not-the-password")
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("alert")).to_have_text("用户名或密码错误")
    await expect(page).to_have_url(re.compile(r"/login$"))

    # there is an open alarm, but an installer may not see it
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await eventually(lambda: open_alarms(operator))
    await sign_in(page, cloud.url, "inst")
    await expect(page).to_have_url(re.compile(r"/install$"))  # where an installer starts
    await page.goto(f"{cloud.url}/")  # and the board's address typed in by hand
    await expect(page.get_by_text("当前账号无权查看告警")).to_be_visible()
    await expect(page.locator("#user")).to_have_text("inst (安装人员)")
    await expect(page.locator("#board")).to_be_hidden()
    await expect(page.get_by_text("当前没有未办结的告警")).to_be_hidden()
    await expect(page.get_by_text("一键呼叫求助")).to_have_count(0)
    await expect(page.locator("#sound")).to_be_hidden()
    await expect(page.locator("body")).not_to_have_attribute("data-alerting", "true")
    # the API says the same to this session
    assert (await page.request.get(f"{cloud.url}/api/alarms")).status == 403
    assert (await page.request.get(f"{cloud.url}/api/alarms/stream")).status == 403

    await page.get_by_role("button", name="English").click()
    await expect(page.get_by_text("Your role cannot view alarms")).to_be_visible()
    await expect(page.get_by_text("No open alarms")).to_be_hidden()


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


async def test_screenshots(
    cloud: RunningCloud,
    gw1: Publisher,
    gw2: Publisher,
    operator: httpx.AsyncClient,
    page: Page,
    tmp_path: Path,
) -> None:
    """The pictures in docs/screenshots/. Taken on every run (so this path keeps working);
    written to docs/ only with SC_SCREENSHOTS=1:

        SC_SCREENSHOTS=1 .venv/bin/pytest tests/e2e -k screenshots
    """
    out = SCREENSHOTS if os.environ.get("SC_SCREENSHOTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)

    await page.goto(f"{cloud.url}/login")
    await page.get_by_label("用户名").fill("op")
    await expect(page.get_by_role("button", name="登录")).to_be_visible()
    await screenshot(page, out / "login.png")
    await board_live(page, cloud.url)

    # one alarm of every level, from both buildings
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="fault"))
    await publish(gw1, "telemetry", telemetry("gw-ld01", "gas-0101", "gas", ch4_pct_lel=14.5))
    await publish(gw1, "event", event(device="air-0201", kind="air", type="battery_low", seq=2))
    await publish(
        gw2, "event", event(gateway="gw-ld02", device="call-0101", kind="call", type="press")
    )
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press", seq=3))
    await expect(rows(page)).to_have_count(5)
    levels = [await r.get_attribute("data-level") for r in await rows(page).all()]
    assert levels == ["1", "1", "2", "3", "4"]
    colours = {
        "1": "rgb(211, 47, 47)",
        "2": "rgb(245, 124, 0)",
        "3": "rgb(251, 192, 45)",
        "4": "rgb(25, 118, 210)",
    }
    for level, colour in colours.items():
        badge = page.locator(f"#board tbody tr[data-level='{level}'] .badge").first
        await expect(badge).to_have_css("background-color", colour)

    # the operator has taken the first call; sound is on
    first = rows(page).first
    await first.get_by_role("button", name="受理").click()
    await expect(page.locator("#board tbody tr[data-state='accepted']")).to_have_count(1)
    await page.locator("#sound").click()
    await expect(page.locator("#sound")).to_have_class(re.compile(r"\bon\b"))
    await screenshot(page, out / "board-zh.png")

    accepted = page.locator("#board tbody tr[data-state='accepted']")
    await accepted.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await expect(dialog).to_be_visible()
    for step in ("device_ts", "received_at", "stored_at", "pushed_at", "shown_at", "accepted_at"):
        await expect(dialog.locator(f"li[data-step='{step}']")).not_to_contain_text("—")
    await expect(dialog.locator("li[data-step='resolved_at']")).to_contain_text("—")
    await screenshot(page, out / "case-timeline.png")
    await dialog.get_by_role("button", name="关闭").click()
    await expect(dialog).to_be_hidden()

    await page.get_by_role("button", name="English").click()
    await expect(rows(page).first.locator(".badge")).to_have_text("Level I")
    await screenshot(page, out / "board-en.png")

    for name in ("login.png", "board-zh.png", "case-timeline.png", "board-en.png"):
        assert png_size(out / name) == (1280, 800)
