"""The device health and trends pages in a real browser (Debian's Chromium), fed through the
real broker: a faulty device and the silent devices of an offline gateway appear in their
buildings with the counts on top; the trends page draws a uPlot chart of published readings
whose legend names the device and the standard's limit line, says so when there is nothing
to draw, and switches to English. Also takes docs/screenshots/devices.png and trends.png."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.cloud.conftest import Publisher, RunningCloud, forget_gateway_status
from tests.cloud.ingest.test_ingest import event
from tests.cloud.rules.test_supervision import status
from tests.e2e.conftest import publish, screenshot, sign_in
from tests.e2e.test_board import SCREENSHOTS, png_size
from tests.servers import Mosquitto


def screenshots(tmp_path: Path) -> Path:
    """docs/screenshots with SC_SCREENSHOTS=1 (as tests/e2e/test_board.py), else a temp dir."""
    out = SCREENSHOTS if os.environ.get("SC_SCREENSHOTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out


def readings(
    gateway: str, device: str, kind: str, field: str, values: Sequence[float]
) -> dict[str, Any]:
    """One value a minute, the last one a minute ago."""
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    n = len(values)
    return {
        "id": f"t-{uuid.uuid4()}",
        "gateway": gateway,
        "boot": "boot1",
        "seq": 1,
        "readings": [
            {
                "device": device,
                "kind": kind,
                "ts": (now - timedelta(minutes=n - i)).isoformat(),
                "values": {field: value, "battery_pct": 76, "rssi_dbm": -58},
            }
            for i, value in enumerate(values)
        ],
    }


async def test_device_health_shows_faulty_and_silent_devices_in_their_buildings(
    cloud: RunningCloud, gw1: Publisher, mosquitto: Mosquitto, page: Page, tmp_path: Path
) -> None:
    gw2 = Publisher(mosquitto, "gw-ld02")
    try:
        await publish(gw1, "status", status("gw-ld01", "online"))
        await publish(gw2, "status", status("gw-ld02", "offline"))  # as its last will says
        await publish(gw1, "event", event(device="smoke-0102", type="fault"))
        await publish(gw1, "telemetry", readings("gw-ld01", "air-0201", "air", "pm25_ugm3", [20]))

        await sign_in(page, cloud.url, "op")
        await page.get_by_role("link", name="设备状态").click()
        await expect(page).to_have_url(re.compile(r"/devices$"))
        await expect(page.locator("#nav a[aria-current='page']")).to_have_text("设备状态")

        ld01 = page.locator("section[data-building='ld-01']")
        await expect(ld01.locator("h2")).to_contain_text("红星小区1栋")
        await expect(ld01.locator("h2")).to_contain_text("红星社区 · 第一网格")
        smoke = ld01.locator("tr[data-device='smoke-0102']")
        await expect(smoke).to_have_attribute("data-state", "faulty")
        await expect(smoke.locator(".chip.primary")).to_have_text("故障")
        await expect(smoke).to_contain_text("设备故障")  # its open alarm
        air = ld01.locator("tr[data-device='air-0201']")
        await expect(air).to_have_attribute("data-state", "online")
        await expect(air).to_contain_text("76 %")
        await expect(air).to_contain_text("-58 dBm")
        await expect(ld01.locator(".gateway[data-gateway='gw-ld01']")).to_contain_text(
            re.compile(r"在线 自 \d\d/\d\d \d\d:\d\d:\d\d")
        )

        ld02 = page.locator("section[data-building='ld-02']")
        gateway = ld02.locator(".gateway[data-gateway='gw-ld02']")
        await expect(gateway).to_have_attribute("data-state", "offline")
        await expect(gateway).to_contain_text("离线 自")
        for device in ("call-0101", "smoke-0301", "gas-0101", "air-0101"):
            row = ld02.locator(f"tr[data-device='{device}']")
            await expect(row).to_have_attribute("data-state", "silent")
            await expect(row.locator(".chip.primary")).to_have_text("失联")
        await expect(page.locator("[data-count='faulty'] b")).to_have_text("1")
        await expect(page.locator("[data-count='silent'] b")).to_have_text("4")
        await expect(page.locator("[data-count='gateways']")).to_contain_text("1 离线")
        out = screenshots(tmp_path)
        await screenshot(page, out / "devices.png")
        assert png_size(out / "devices.png") == (1280, 800)

        # back online: the page refreshes by itself; its devices, never heard from, are
        # not called "online"
        await publish(gw2, "status", status("gw-ld02", "online"))
        await expect(gateway).to_have_attribute("data-state", "online", timeout=15_000)
        never = ld02.locator("tr[data-device='call-0101']")
        await expect(never).to_have_attribute("data-state", "never_heard")
        await expect(never.locator(".chip.primary")).to_have_text("从未上报")
        await expect(never).to_contain_text("登记后从未收到它的消息")

        await page.get_by_role("button", name="English").click()
        await expect(smoke.locator(".chip.primary")).to_have_text("faulty")
        await expect(gateway).to_contain_text("online since")
    finally:
        gw2.close()
        forget_gateway_status(mosquitto)


async def test_trends_draws_published_readings_with_the_limit_line(
    cloud: RunningCloud, gw1: Publisher, page: Page, tmp_path: Path
) -> None:
    methane = [1.0, 1.5, 2.0, 3.5, 6.0, 9.0, 12.5, 11.0, 7.5, 4.0, 2.5, 1.5]
    await publish(gw1, "telemetry", readings("gw-ld01", "gas-0101", "gas", "ch4_pct_lel", methane))
    pm25 = [18, 22, 30, 41, 55, 63, 72, 68, 57, 49, 44, 38, 35, 31, 28, 33, 46, 52, 58, 49]
    await publish(gw1, "telemetry", readings("gw-ld01", "air-0201", "air", "pm25_ugm3", pm25))

    await sign_in(page, cloud.url, "op")
    await page.get_by_role("link", name="趋势").click()
    await expect(page).to_have_url(re.compile(r"/trends"))
    # the first building, the whole of it, methane, the last hour
    await expect(page.locator("#building")).to_have_value("ld-01")
    await expect(page.locator("[data-range='1h']")).to_have_attribute("aria-pressed", "true")
    await page.locator("#home").select_option(label="1单元101")
    chart = page.locator("#chart")
    await expect(chart.locator("canvas")).to_have_count(1)
    legend = chart.locator(".u-legend")
    await expect(legend).to_contain_text("1单元101 gas-0101")
    await expect(legend).to_contain_text("甲烷浓度超标 ≥10 %LEL Ⅱ级")
    await expect(legend).to_contain_text("甲烷浓度超标 ≥25 %LEL Ⅰ级")
    await expect(page.locator("#what")).to_have_text(
        "红星小区1栋 1单元101 · 甲烷 · 最近1小时（每分钟均值）"
    )

    # one device, the air monitor's PM2.5 over the day: the standard's line
    await page.locator("#home").select_option(label="1单元201")
    await page.locator("#device").select_option(label="air-0201（air_pms5003）")
    await page.locator("#field").select_option("pm25_ugm3")
    await page.get_by_role("button", name="1天").click()
    await expect(page.locator("[data-range='1d']")).to_have_attribute("aria-pressed", "true")
    await expect(legend).to_contain_text("air-0201")
    await expect(legend).to_contain_text("GB/T 18883-2022 24小时均值 >50 µg/m³ Ⅳ级")
    await expect(chart.locator("canvas")).to_have_count(1)
    await expect(page).to_have_url(re.compile(r"gateway=gw-ld01&device=air-0201"))
    out = screenshots(tmp_path)
    await page.get_by_role("button", name="1小时").click()
    await expect(page.locator("#what")).to_contain_text("最近1小时")
    await screenshot(page, out / "trends.png")
    assert png_size(out / "trends.png") == (1280, 800)

    # nothing of formaldehyde: a message, no chart
    await page.locator("#field").select_option("hcho_mgm3")
    await expect(chart.locator(".trend-empty")).to_have_text("该时段没有读数")
    await expect(chart.locator("canvas")).to_have_count(0)

    # a reload keeps the choice (it is in the address); English on request
    await page.locator("#field").select_option("pm25_ugm3")
    await expect(chart.locator("canvas")).to_have_count(1)
    await page.reload()
    await expect(page.locator("#device")).to_have_value("gw-ld01/air-0201")
    await page.get_by_role("button", name="English").click()
    await expect(legend).to_contain_text("GB/T 18883-2022 24 h mean >50 µg/m³ level IV")
    await expect(page.locator("#what")).to_contain_text("last hour (1 min means)")
