"""Real-browser fixtures: Debian's Chromium driven by Playwright, against a running cloud.

Playwright's own browser download is never used: the tests launch /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, ViewportSize, async_playwright, expect

from sim.link import CuttableLink
from tests.cloud.conftest import (  # noqa: F401  (fixtures re-exported for the e2e tests)
    PASSWORDS,
    Publisher,
    RunningCloud,
    cloud,
    gw1,
    operator,
)
from tests.servers import Mosquitto


@pytest.fixture
def db_backend() -> str:
    """The browser tests are about the pages, not the database the cloud keeps its records
    in: they run on SQLite, the embedded default, once (tests/db_backends.py; the same
    behaviour on PostgreSQL is tested under tests/cloud)."""
    return "sqlite"


CHROMIUM = os.environ.get("SC_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}

expect.set_options(timeout=8_000)


@pytest.fixture
async def browser_context(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile per test, as a duty-room PC in Beijing time would have it."""
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian package `chromium`)")
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
async def page(browser_context: BrowserContext) -> Page:
    return browser_context.pages[0] if browser_context.pages else await browser_context.new_page()


@pytest.fixture
def gw2(mosquitto: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(mosquitto, "gw-ld02")
    yield pub
    pub.close()


async def publish(gateway: Publisher, channel: str, body: dict[str, Any]) -> None:
    """Publish as the gateway through the real broker, off the event loop (the cloud and the
    browser driver share it)."""
    await asyncio.to_thread(gateway.publish, f"sc/v1/{body['gateway']}/{channel}", body)


async def screenshot(page: Page, path: Path, *, full_page: bool = False) -> None:
    """A picture for docs/screenshots/, the same on every run: animations stopped, no caret."""
    await page.screenshot(path=path, full_page=full_page, animations="disabled", caret="hide")


async def sign_in(page: Page, base_url: str, user: str) -> None:
    """Sign in through the form, as a person would (labels in Chinese by default)."""
    await page.goto(f"{base_url}/login")
    await page.get_by_label("用户名").fill(user)
    await page.get_by_label("密码").fill(PASSWORDS[user])
    await page.get_by_role("button", name="登录").click()
    # each role lands on the first page it may use: the board, or the installation page
    await expect(page).to_have_url(re.compile(r"/(install)?$"))


async def board_live(page: Page, base_url: str, user: str = "op") -> None:
    """Signed in and the live stream connected (its first snapshot drawn)."""
    await sign_in(page, base_url, user)
    await expect(page.locator("#conn")).to_have_text("实时连接正常")


@pytest.fixture
async def link(cloud: RunningCloud) -> AsyncIterator[CuttableLink]:
    relay = CuttableLink(int(cloud.url.rsplit(":", 1)[1]))
    await relay.restore()
    yield relay
    await relay.cut()
