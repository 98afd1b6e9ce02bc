"""The site page in a real browser (Debian's Chromium): an installer imports the street
office's spreadsheet, reads the error that names the bad row, fixes it, imports it, sees the
homes in the tree, and binds a device (a refusal first, then the right pins)."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.async_api import Page, expect

from tests.cloud.conftest import RunningCloud
from tests.e2e.conftest import sign_in

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

HEADER = "社区,网格,楼栋编号,楼栋名称,地址,房屋编号,门牌\n"
ROW_2 = "红星社区,第一网格,ld-03,红星小区3栋,红星路12号3栋,3-1-101,1单元101\n"


async def import_file(page: Page, path: Path, button: str) -> None:
    await page.locator("#csv-file").set_input_files(path)
    await page.get_by_role("button", name=button, exact=True).click()


async def test_installer_imports_homes_fixes_a_bad_row_and_binds_a_device(
    cloud: RunningCloud, page: Page, tmp_path: Path
) -> None:
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/site")
    tree = page.locator("#tree")
    await expect(tree).to_contain_text("红星小区1栋")
    await expect(page.locator("nav a[aria-current=page]")).to_have_text("场所与设备")
    await expect(page.locator("#version")).to_have_text("版本 1")

    # the street office's file, saved by Chinese Excel (GBK), with a grid that does not exist
    bad = tmp_path / "homes-bad.csv"
    bad.write_bytes(
        (HEADER + ROW_2 + "红星社区,第九网格,ld-03,红星小区3栋,,3-1-102,1单元102\n").encode("gbk")
    )
    await import_file(page, bad, "导入")
    errors = page.locator("#csv-errors")
    await expect(errors).to_be_visible()
    await expect(errors).to_contain_text("文件有 1 处问题，未导入任何数据")
    await expect(errors.locator("tbody tr")).to_have_text(
        ["3网格第 3 行：网格“第九网格”不存在（社区 红星社区）"]
    )
    await expect(tree).not_to_contain_text("红星小区3栋")  # row 2 was fine: still nothing applied

    # fixed: a dry run first shows what would change, then the import
    good = tmp_path / "homes.csv"
    good.write_bytes(
        (HEADER + ROW_2 + "红星社区,第一网格,ld-03,红星小区3栋,,3-1-102,1单元102\n").encode("gbk")
    )
    await import_file(page, good, "预检")
    await expect(page.locator("#csv-preview")).to_contain_text(
        "预检通过：将新增 2 户、1 栋楼（尚未导入）"
    )
    await expect(errors).to_be_hidden()
    await expect(tree).not_to_contain_text("红星小区3栋")
    await page.get_by_role("button", name="导入", exact=True).click()
    await expect(page.locator("#msg")).to_have_text("已导入 2 户、1 栋楼（版本 2）")
    building = tree.locator("details.building[data-id=ld-03]")
    await expect(building.locator("summary")).to_contain_text("红星小区3栋")
    await expect(building.locator("li.home")).to_have_text(["1单元101 3-1-101", "1单元102 3-1-102"])

    # bind a smoke detector in 1单元201 of building 1: first on a pin the call button uses
    await page.get_by_text("绑定设备", exact=True).click()
    form = page.locator("#device-form")
    await form.locator("[name=gateway]").select_option("gw-ld01")
    await form.locator("[name=id]").fill("smoke-0201")
    await form.locator("[name=model]").select_option("smoke_dry_contact")
    await form.locator("[name=home]").select_option("h-01-0201")
    await form.locator("[name=pins]").fill("alarm=17, fault=20")
    await form.get_by_role("button", name="绑定").click()
    await expect(page.locator("#msg")).to_contain_text("GPIO17 已被 call-0101.button 占用")
    await expect(tree.locator("[data-device='gw-ld01/smoke-0201']")).to_have_count(0)

    await form.locator("[name=pins]").fill("alarm=19, fault=20")
    await form.get_by_role("button", name="绑定").click()
    await expect(page.locator("#msg")).to_have_text("已保存：版本 3")
    device = tree.locator("[data-device='gw-ld01/smoke-0201']")
    await expect(device).to_contain_text("smoke_dry_contact → 1单元201")
    await expect(device).to_contain_text("报警 GPIO19，故障 GPIO20")
    assert cloud.cloud.registry.device("gw-ld01", "smoke-0201") is not None

    # an installer's page never shows who lives there
    assert "王秀英" not in await page.content()

    out = SCREENSHOTS if os.environ.get("SC_SCREENSHOTS") else tmp_path
    await page.screenshot(path=out / "site.png", full_page=True)


async def test_replacing_a_device_from_the_tree_records_the_new_serial(
    cloud: RunningCloud, page: Page
) -> None:
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/site")
    device = page.locator("#tree [data-device='gw-ld01/smoke-0102']")
    await device.get_by_role("button", name="更换").click()
    dialog = page.locator("#device-dialog")
    await expect(dialog).to_contain_text("更换设备 gw-ld01/smoke-0102（编号、房屋和历史记录不变）")
    await dialog.locator("[name=serial]").fill("HS-0002")
    await dialog.locator("[name=note]").fill("原探头故障")
    await dialog.get_by_role("button", name="确定").click()
    await expect(page.locator("#msg")).to_have_text("已保存：版本 2")
    await expect(device).to_contain_text("SN HS-0002")
    await expect(device).to_contain_text("1单元102")


async def test_a_duty_role_sees_the_tree_read_only(cloud: RunningCloud, page: Page) -> None:
    await sign_in(page, cloud.url, "op")
    await page.goto(f"{cloud.url}/site")
    await expect(page.locator("#tree")).to_contain_text("红星小区1栋")
    await expect(page.locator(".tree-pane .notice").first).to_contain_text("只读")
    await expect(page.locator("#forms")).to_be_hidden()
    await expect(page.get_by_role("button", name="拆除")).to_have_count(0)
