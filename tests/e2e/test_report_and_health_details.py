"""The smaller things a trial found (issue 15, point 9): the English report's narrow tables keep
their headers inside their own column, the time charts' log axis ticks at round durations (not
"16分40秒"), an empty chart says so, and the admin's English menu breaks no item in two.
(Device health's never-heard devices and "在线 自": tests/e2e/test_devices_trends.py.)"""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.cloud.conftest import RunningCloud
from tests.e2e.conftest import sign_in
from tests.e2e.test_ledger import known_cloud  # noqa: F401  (the fixture)
from tests.e2e.test_screens import assert_on_one_line

ROUND = {1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400}


async def test_the_english_report_keeps_headers_in_their_tables_and_ticks_round(
    known_cloud: RunningCloud,
    page: Page,
) -> None:
    await sign_in(page, known_cloud.url, "sup")
    await page.locator("#lang").click()
    await page.goto(f"{known_cloud.url}/report?date_from=2026-03-02&date_to=2026-03-03")
    await expect(page.locator("#levels tr[data-level='all'] [data-col=count]")).to_have_text("9")
    for table in ("#by-model", "#by-building", "#causes"):
        box = await page.locator(table).locator("..").bounding_box()  # its column
        assert box
        for th in await page.locator(f"{table} th").all():
            cell = await th.bounding_box()
            assert cell and cell["x"] + cell["width"] <= box["x"] + box["width"] + 0.5, (
                f"{table}: {await th.text_content()!r} runs out of its column"
            )
    # the ticks of the two time charts (log scale): round durations only
    for chart in range(2):
        ticks = await page.evaluate(f"charts[{chart}].axes[1]._splits")
        assert ticks and set(ticks) <= ROUND, ticks
    await assert_on_one_line(page, "#nav a")


async def test_an_empty_chart_says_so(known_cloud: RunningCloud, page: Page) -> None:
    await sign_in(page, known_cloud.url, "sup")
    await page.goto(f"{known_cloud.url}/report?date_from=2025-01-01&date_to=2025-01-02")
    await expect(page.locator("#levels tr[data-level='all'] [data-col=count]")).to_have_text("0")
    for chart in ("#tta-chart", "#ttr-chart", "#budget-chart"):
        await expect(page.locator(chart)).to_have_text("所选时段内没有可统计的案件")
        await expect(page.locator(f"{chart} canvas")).to_have_count(0)
