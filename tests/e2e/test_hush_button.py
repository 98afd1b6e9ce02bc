"""The case dialog's remote hush (远程消音) in a real browser: an accepted smoke alarm offers it,
one click reaches the real gateway agent through Mosquitto, and the device's answer appears in
the case's history by itself."""

from __future__ import annotations

from playwright.async_api import Page, expect

from gateway.agent import GatewayAgent
from tests.cloud.alarms.test_hush import SMOKE, agent, hush_cloud, hush_site  # noqa: F401
from tests.cloud.conftest import RunningCloud
from tests.e2e.conftest import board_live
from tests.e2e.test_board import rows


async def test_an_operator_hushes_an_accepted_smoke_alarm_from_the_case(
    hush_cloud: RunningCloud, agent: GatewayAgent, page: Page
) -> None:
    assert agent.hardware is not None
    await board_live(page, hush_cloud.url)
    agent.hardware.trip_smoke(SMOKE)
    row = rows(page).first
    await expect(row).to_contain_text("烟雾报警")
    await row.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await expect(dialog.locator("form#hush")).to_have_count(0)  # not before it is accepted
    await dialog.locator("#case-accept").click()

    form = dialog.locator("form#hush")
    await form.locator("select[name=duration_s]").select_option(label="1 分钟")
    await form.get_by_role("button", name="远程消音").click()
    await expect(form.get_by_role("status")).to_have_text("消音指令已发送，等待设备回复")
    await expect(dialog.locator("#case-history")).to_contain_text("消音结果 设备已消音")
    assert agent.hardware.level(SMOKE, "hush") is True
