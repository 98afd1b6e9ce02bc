"""The ledger (台账) and report pages in a real browser: a call raised through the real broker
and worked on the board is found in the ledger, opens its timeline, is in the CSV the browser
downloads, and is counted in the report; an installer is told the pages are not for them."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from cloud.ledger import export as ledger_export
from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    forget_gateway_status,
    running_cloud,
)
from tests.cloud.ingest.test_ingest import event
from tests.cloud.ledger.test_cases import write_known_cases
from tests.e2e.conftest import board_live, publish, screenshot, sign_in
from tests.servers import Mosquitto

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"


async def test_a_case_worked_on_the_board_is_in_the_ledger_its_export_and_the_report(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, page: Page, tmp_path: Path
) -> None:
    # a resident presses the call button; the operator accepts, dispatches and resolves it
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    row = page.locator("#board tbody tr").first
    await row.get_by_role("button", name="受理").click()
    await expect(row).to_have_attribute("data-state", "accepted")
    await row.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await dialog.locator("#dispatch input[name=to]").fill("李网格")
    await dialog.locator("#dispatch input[name=note]").fill("请立即上门")
    await dialog.locator("#dispatch button").click()
    await expect(dialog.locator('[data-step="dispatched_at"]')).not_to_have_text(re.compile("—"))
    await dialog.get_by_role("button", name="关闭").click()
    alarm_id = await row.get_attribute("data-id")
    await row.locator("select[data-outcome]").select_option("handled")
    await row.get_by_role("button", name="办结").click()
    await expect(page.locator("#board tbody tr")).to_have_count(0)

    # the ledger, from the navigation
    await page.locator("#nav").get_by_role("link", name="台账").click()
    await expect(page).to_have_url(re.compile(r"/ledger$"))
    await expect(page.locator("h1")).to_have_text("街道值班室 · 台账")
    await expect(page.locator("#nav a[aria-current=page]")).to_have_text("台账")
    found = page.locator(f"#ledger tbody tr[data-id='{alarm_id}']")
    await expect(found).to_contain_text("一键呼叫求助")
    await expect(found).to_contain_text("李网格")
    await expect(found).to_contain_text("已处置")
    await expect(found).to_contain_text("已办结")
    await expect(page.locator("#total")).to_contain_text("共 1 条")

    # filters narrow it down (and say why when they are wrong)
    await page.locator("#filter select[name=kind]").select_option("smoke")
    await page.get_by_role("button", name="查询").click()
    await expect(page.locator("#ledger tbody tr")).to_have_count(0)
    await expect(page.get_by_text("没有符合条件的案件")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"kind=smoke"))
    await page.locator("#filter select[name=kind]").select_option("call")
    await page.locator("#filter input[name=date_from]").fill("2030-01-02")
    await page.locator("#filter input[name=date_to]").fill("2030-01-01")
    await page.get_by_role("button", name="查询").click()
    await expect(page.get_by_role("alert")).to_contain_text("起始日期须早于截止日期")
    await page.locator("#filter input[name=date_from]").fill("")
    await page.locator("#filter input[name=date_to]").fill("")
    await page.get_by_role("button", name="查询").click()
    await expect(page.get_by_role("alert")).to_be_hidden()
    await expect(found).to_be_visible()

    # a click on the row opens the case's timeline
    await found.click()
    case = page.locator("#case")
    await expect(case).to_be_visible()
    for step in ("received_at", "accepted_at", "dispatched_at", "resolved_at"):
        await expect(case.locator(f"li[data-step='{step}']")).not_to_contain_text("—")
    await expect(case).to_contain_text("李网格: 请立即上门")
    await case.get_by_role("button", name="关闭").click()

    # the CSV the browser downloads holds the case, with Chinese headers
    async with page.expect_download() as info:
        await page.get_by_role("link", name="导出 CSV").click()
    download = await info.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.suffix == ".csv" and "台账" in download.suggested_filename
    data = saved.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    header, *lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header[0] == "案件编号"
    [line] = lines
    by_name = dict(zip(header, line, strict=True))
    assert by_name["案件编号"] == alarm_id
    assert (by_name["派给"], by_name["处置结果"], by_name["受理人"]) == ("李网格", "已处置", "op")
    # and the export is in the audit
    exports = await cloud.cloud.audit.recent(10, "ledger_export")
    assert [e.actor for e in exports] == ["op"] and '"kind": ["call"]' in exports[0].detail

    # the report counts it: one level-I case, accepted and resolved, with its times
    await page.locator("#nav").get_by_role("link", name="统计报表").click()
    await expect(page).to_have_url(re.compile(r"/report$"))
    level_one = page.locator("#levels tr[data-level='1']")
    await expect(level_one.locator("[data-col=count]")).to_have_text("1")
    await expect(level_one.locator("[data-col=tta-p50]")).to_have_text(re.compile(r"\d+秒"))
    await expect(level_one.locator("[data-col=ttr-p99]")).to_have_text(re.compile(r"\d+秒"))
    await expect(level_one.locator("[data-col=within]")).to_contain_text("100%")
    await expect(page.locator("#levels tr[data-level='2'] [data-col=count]")).to_have_text("0")
    await expect(
        page.locator("#by-model tr[data-key='call_button_gpio'] [data-col=rate]")
    ).to_have_text("0%")
    assert await page.locator("#tta-chart canvas").count() == 1  # drawn by uPlot

    # in English on request
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("h1")).to_have_text("Street duty room · Report")
    await expect(level_one.locator("[data-col=tta-p50]")).to_have_text(re.compile(r"\d+ s$"))


async def test_installer_is_told_the_ledger_is_not_for_them(
    cloud: RunningCloud, page: Page
) -> None:
    await sign_in(page, cloud.url, "inst")
    for path in ("/ledger", "/report"):
        await page.goto(f"{cloud.url}{path}")
        await expect(page.get_by_role("alert").filter(has_text="无权查看台账")).to_be_visible()
        await expect(page.locator("#content")).to_be_hidden()
        await expect(page.get_by_role("link", name="导出 CSV")).to_be_hidden()
    assert (await page.request.get(f"{cloud.url}/api/ledger")).status == 403


async def test_an_export_over_its_limit_says_so_instead_of_failing_as_a_download(
    known_cloud: RunningCloud, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ledger_export.EXPORT_MAX_ROWS, "xlsx", 2)  # the known cases are more
    await sign_in(page, known_cloud.url, "op")
    await page.goto(f"{known_cloud.url}/ledger?date_from=2026-03-01&date_to=2026-03-31")
    await expect(page.locator("#ledger tbody tr").first).to_be_visible()
    xlsx = page.get_by_role("link", name="导出 Excel")
    await expect(xlsx).to_have_attribute("aria-disabled", "true")
    await expect(page.get_by_role("link", name="导出 CSV")).to_have_attribute(
        "aria-disabled", "false"
    )
    await xlsx.click(force=True)  # marked disabled, but a mouse can still click it
    await expect(page.locator("#error")).to_contain_text("超过一次导出的上限 2 条")


@pytest.fixture
async def known_cloud(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[RunningCloud]:
    await write_known_cases(tmp_path / "cloud.db")
    forget_gateway_status(mosquitto)
    async with running_cloud(cloud_settings(tmp_path, mosquitto)) as running:
        yield running


async def test_screenshots(known_cloud: RunningCloud, page: Page, tmp_path: Path) -> None:
    """docs/screenshots/ledger.png and report.png, of the known cases of the report test.
    Taken on every run; written to docs/ only with SC_SCREENSHOTS=1:

        SC_SCREENSHOTS=1 .venv/bin/pytest tests/e2e/test_ledger.py -k screenshots
    """
    out = SCREENSHOTS if os.environ.get("SC_SCREENSHOTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    await sign_in(page, known_cloud.url, "sup")
    await page.goto(f"{known_cloud.url}/ledger")
    await expect(page.locator("#ledger tbody tr")).to_have_count(9)
    await screenshot(page, out / "ledger.png")
    # the report opens on the last 30 days: the known cases are from 2 and 3 March 2026
    await page.goto(f"{known_cloud.url}/report?date_from=2026-03-02&date_to=2026-03-03")
    await expect(page.locator("#levels tr[data-level='all'] [data-col=count]")).to_have_text("9")
    await expect(page.locator("#budget-chart canvas")).to_have_count(1)
    await screenshot(page, out / "report.png", full_page=True)
