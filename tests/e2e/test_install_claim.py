"""The installer's claim command works as shown (issue 15, point 5): it names the gateway and,
on a cloud reached over plain http (a lab), says --insecure-http; run as shown it claims the
gateway. The command has a copy button, the code survives a reload of the page, and each device
of a walk test says how to trigger it."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.cloud.conftest import RunningCloud
from tests.e2e.conftest import sign_in

REPO = Path(__file__).resolve().parents[2]
PREFIX = "sudo /opt/smart-community/.venv/bin/python -m gateway "

# about the page, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])


async def test_the_claim_command_works_as_shown_is_copied_and_survives_a_reload(
    cloud: RunningCloud, page: Page, browser_context: BrowserContext, tmp_path: Path
) -> None:
    await browser_context.grant_permissions(["clipboard-read", "clipboard-write"])
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/install")
    await expect(page.locator("#gw-select")).to_have_value("gw-ld01")
    await page.get_by_role("button", name="生成认领码").click()
    code = page.locator("#code")
    await expect(code).to_have_text(re.compile(r"^\S{4}-\S{4}$"))
    shown_code = await code.text_content()
    command = page.locator("#code-cmd")
    await expect(command).to_have_text(
        f"{PREFIX}claim --cloud {cloud.url} --gateway gw-ld01 --code {shown_code} --insecure-http"
    )
    text = await command.text_content()
    assert text

    # 复制命令: the command, exactly, on the clipboard
    await page.get_by_role("button", name="复制命令").click()
    await expect(page.locator("#copy-done")).to_have_text("已复制，粘贴到网关的终端运行")
    assert await page.evaluate("navigator.clipboard.readText()") == text

    # a reload keeps the code and its command
    await page.reload()
    await expect(code).to_have_text(shown_code or "")
    await expect(command).to_have_text(text)

    # typed on the box as shown (the box's own folders aside), it claims the gateway
    args = shlex.split(text.removeprefix(PREFIX))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway", *args, "--state-dir", str(tmp_path / "state"),
         "--secrets-dir", str(tmp_path / "etc")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "claimed gateway gw-ld01" in done.stdout
    await expect(page.locator("#code-expiry")).to_have_text("gw-ld01 · 认领码已使用，网关已认领")


async def test_each_device_of_a_walk_test_says_how_to_trigger_it(
    cloud: RunningCloud, page: Page
) -> None:
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/install")
    await expect(page.locator("#gw-select")).to_have_value("gw-ld01")
    await page.get_by_role("button", name="开始测试").click()
    await expect(page.locator("#walk-status")).to_contain_text("测试进行中")
    hints = {
        "call-0101": "按测试键（测试按压，不会呼叫值班室）",
        "smoke-0102": "按住烟感测试键约 3 秒",
        "gas-0101": "用测试气体靠近探头（报警会推送值班室，请先告知）",
        "air-0201": "对进气口呼一口气（二氧化碳读数上升），约 1 分钟内出现",
    }
    for device, hint in hints.items():
        await expect(page.locator(f"tr[data-device='{device}'] [data-hint]")).to_have_text(hint)
