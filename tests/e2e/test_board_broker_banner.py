"""The board while the cloud has lost its MQTT broker, in a real browser: a banner says since
when alarms cannot arrive (Chinese first, English on request), the board stays usable, and the
banner goes when the broker is back — all without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from tests.cloud.conftest import Publisher, cloud_settings, eventually, running_cloud, signed_in
from tests.cloud.ingest.test_ingest import event
from tests.cloud.transport.test_broker_outage import _broker_if
from tests.e2e.conftest import board_live
from tests.servers import Mosquitto

BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    own = Mosquitto()
    for user in ("cloud", "gw-ld01"):
        own.add_user(user)
    own.start()
    yield own
    own.cleanup()


async def test_the_board_says_since_when_the_broker_is_unreachable_and_stays_usable(
    tmp_path: Path, broker: Mosquitto, page: Page
) -> None:
    settings = cloud_settings(tmp_path, broker, mqtt_retry_min_s=0.1, mqtt_retry_max_s=1.0)
    async with running_cloud(settings) as running:
        op = await signed_in(running.url, "op")
        gateway = Publisher(broker, "gw-ld01")
        try:
            await board_live(page, running.url)
            banner = page.locator("#broker")
            await expect(banner).to_be_hidden()
            gateway.publish(
                "sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press")
            )
            row = page.locator("#board tbody tr").first
            await expect(row).to_contain_text("待受理")
        finally:
            gateway.close()

        broker.kill()  # kill -9, by its pid
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("告警通道中断")
        await expect(banner).to_contain_text("连接不上消息服务器")
        down = await eventually(lambda: _broker_if(op, lambda b: b["down_since"]))
        since = datetime.fromisoformat(down["down_since"])
        await expect(banner.locator("time")).to_have_attribute("datetime", down["down_since"])
        await expect(banner).to_contain_text(since.astimezone(BEIJING).strftime("%H:%M:%S"))
        await expect(page.locator("#conn")).to_have_text("实时连接正常")  # the page's own link

        # the board stays usable: the open call is accepted as ever
        await row.get_by_role("button", name="受理").click()
        await expect(row).to_contain_text("已受理")

        await page.locator("#lang").click()
        await expect(banner).to_contain_text("Alarm feed interrupted")
        await expect(banner).to_contain_text("has not reached its message broker since")
        await expect(banner).not_to_contain_text("告警")
        # a page opened during the outage shows it at once (in the language chosen)
        await page.reload()
        await expect(banner).to_contain_text("Alarm feed interrupted")

        broker.start()  # back on the same port
        await expect(banner).to_be_hidden()
        gateway = Publisher(broker, "gw-ld01")
        try:
            gateway.publish("sc/v1/gw-ld01/event", event(device="smoke-0102"))
            await expect(page.locator("#board tbody tr")).to_have_count(2)
        finally:
            gateway.close()
        await op.aclose()
