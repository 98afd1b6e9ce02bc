"""The demo's simulator panel (issue 15, point 10), on the real demo (`python -m sim`, quiet:
`--no-scenario`) in Chromium: a supervisor presses a call button, trips a smoke alarm and raises
methane, and each alarm comes to the board through the simulated device below its driver, the
gateway, MQTT and the rules; a cut link shows the gateway offline, and what happened meanwhile
arrives once it is restored; the scenario replays; the panel speaks English too, fits a phone
(folded at first) and is not there for an operator."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_screens import PHONE, assert_no_sideways_scroll
from tests.e2e.test_translated import VISIBLE_STRINGS, untranslated
from tests.servers import REPO

PASSWORD = "demo-pass-1"


@dataclass
class Demo:
    url: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "--port", "0", "--workdir", str(tmp_path),
         "--password", PASSWORD, "--no-scenario"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while not any("Ctrl-C" in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        url = re.search(r"duty room: (http://127\.0\.0\.1:\d+)", "".join(lines))
        assert url, "".join(lines)
        yield Demo(url.group(1), proc, lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()


async def sign_in(page: Page, demo: Demo, user: str) -> None:
    await page.goto(f"{demo.url}/login")
    await page.get_by_label("用户名").fill(user)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await expect(page.locator("#conn")).to_have_text("实时连接正常")


async def test_the_panel_drives_the_demo_through_the_real_path(page: Page, demo: Demo) -> None:
    await sign_in(page, demo, "leader")
    panel = page.locator("#sim")
    await expect(panel.locator("summary")).to_have_text("演示模拟器")
    gw1 = panel.locator("fieldset[data-gateway='gw-ld01']")
    gw2 = panel.locator("fieldset[data-gateway='gw-ld02']")
    board = page.locator("#board tbody tr")
    await expect(board).to_have_count(0)  # quiet: nothing happens by itself

    await (
        gw1.locator("li[data-device='gw-ld01/call-0101']")
        .get_by_role("button", name="按下呼叫按钮")
        .click()
    )
    call = board.filter(has_text="一键呼叫求助")
    await expect(call).to_contain_text("王秀英")
    await expect(panel.locator("#sim-said")).to_have_text(
        "已执行：红星小区1栋 1单元101 call-0101 按下一键呼叫按钮"
    )
    await gw2.get_by_role("button", name="烟感报警").click()
    await expect(board.filter(has_text="烟雾报警").filter(has_text="smoke-0301")).to_be_visible()
    methane = gw2.locator("li[data-device='gw-ld02/gas-0101']")
    await methane.get_by_label("甲烷 %LEL").fill("150")
    await methane.get_by_role("button", name="设定甲烷浓度").click()
    await expect(panel.locator("#sim-said")).to_have_text("甲烷浓度须为 0–100 之间的数（%LEL）")
    await expect(methane.get_by_label("甲烷 %LEL")).to_have_value("150")  # kept as typed
    await methane.get_by_label("甲烷 %LEL").fill("30")
    await methane.get_by_role("button", name="设定甲烷浓度").click()
    await expect(board.filter(has_text="甲烷浓度超标")).to_contain_text(re.compile(r"%LEL"))
    # every string in Chinese, but for the demo's account names (leader) as they are
    user = await page.locator("#user").text_content()
    strings = [s for s in await page.evaluate(VISIBLE_STRINGS) if s != user]
    assert not {s: untranslated(s) for s in strings if untranslated(s)}
    if os.environ.get("SC_SCREENSHOTS"):
        await screenshot(page, REPO / "docs" / "screenshots" / "desktop" / "board-sim.png")

    # the network of gw-ld01 goes: the broker gives its last will, the board shows it offline;
    # a smoke alarm meanwhile waits in the gateway's outbox and arrives once the link is back
    await gw1.get_by_role("button", name="断开网络").click()
    offline = board.filter(has_text="网关离线").filter(has_text="gw-ld01")
    await expect(offline).to_be_visible()
    await expect(gw1.locator(".sim-link")).to_have_text("网络已断开")
    await gw1.get_by_role("button", name="烟感报警").click()
    await expect(panel.locator("#sim-said")).to_contain_text("smoke-0102")
    await gw1.get_by_role("button", name="恢复网络").click()
    # (the demo's gateways retry their broker at most 2 s apart: back well within the wait)
    await expect(board.filter(has_text="烟雾报警").filter(has_text="smoke-0102")).to_be_visible()
    await expect(offline).to_have_count(0)  # back online: closed by itself (never accepted)
    await expect(gw1.locator(".sim-link")).to_have_text("网络正常")

    await panel.get_by_role("button", name="重放演示情景").click()
    deadline = time.monotonic() + 10
    while not demo.said("情景 / scenario: 1栋101 王秀英 按下一键呼叫按钮"):
        assert time.monotonic() < deadline, "".join(demo.lines)
        await page.wait_for_timeout(100)

    await page.get_by_role("button", name="English").click()
    await expect(panel.locator("summary")).to_have_text("Demo simulator")
    await expect(gw1.get_by_role("button", name="Cut the link")).to_be_visible()
    await page.get_by_role("button", name="中文").click()

    # on a phone: folded at first, and never wider than the screen
    await page.set_viewport_size(PHONE)
    await page.reload()
    await expect(panel.locator("summary")).to_have_text("演示模拟器")
    assert await panel.evaluate("(el) => el.open") is False
    await assert_no_sideways_scroll(page, "the board with the simulator folded")
    await panel.locator("summary").click()
    await expect(gw2.get_by_role("button", name="断开网络")).to_be_in_viewport()
    await assert_no_sideways_scroll(page, "the board with the simulator open")
    if os.environ.get("SC_SCREENSHOTS"):
        await screenshot(page, REPO / "docs" / "screenshots" / "phone" / "board-sim.png")

    # an operator's board has no simulator
    await page.get_by_role("button", name="退出").click()
    await expect(page).to_have_url(f"{demo.url}/login")  # the page's own way there, first
    await sign_in(page, demo, "duty")
    await expect(page.locator("body")).to_have_attribute("data-sim", "off")  # asked, refused
    await expect(panel).to_have_count(0)
