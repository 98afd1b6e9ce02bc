"""The admins' account page (账号管理) in a real browser: create an account, change its role,
disable an operator (whose open session ends at once), the refusal for the last admin shown
with its reason, English on request, and a plain refusal for a role that may not manage."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Dialog, Page, expect

from tests.cloud.conftest import PASSWORDS, RunningCloud
from tests.e2e.conftest import sign_in


async def test_admin_manages_accounts_on_the_page(
    cloud: RunningCloud, operator: httpx.AsyncClient, page: Page
) -> None:
    await sign_in(page, cloud.url, "adm")
    await page.get_by_role("link", name="账号管理").click()
    await expect(page).to_have_url(re.compile(r"/users$"))
    await expect(page.locator("h1")).to_have_text("街道值班室 · 账号管理")
    table = page.locator("#accounts tbody tr")
    await expect(table).to_have_count(4)
    op_row = page.locator("#accounts tr[data-name='op']")
    await expect(op_row).to_contain_text("启用")

    # a new supervisor account
    await page.locator("#new-name").fill("night3")
    await page.locator("#new-role").select_option("supervisor")
    await page.locator("#new-password").fill("short")
    await page.get_by_role("button", name="创建").click()
    await expect(page.locator("#message")).to_contain_text("密码：至少 10 个字符")
    await expect(table).to_have_count(4)
    await page.locator("#new-password").fill("night-shift-2027")
    await page.get_by_role("button", name="创建").click()
    await expect(page.locator("#message")).to_have_text("已创建账号 night3")
    night = page.locator("#accounts tr[data-name='night3']")
    await expect(night.locator("select")).to_have_value("supervisor")
    await expect(night).to_contain_text("由 adm")

    # ... made an operator
    await night.locator("select").select_option("operator")
    await expect(page.locator("#message")).to_have_text("night3 的角色已改为 值班员")

    # disabling the operator (confirmed) ends the session they have open elsewhere
    assert (await operator.get("/api/me")).status_code == 200

    async def accept(dialog: Dialog) -> None:
        assert "op" in dialog.message
        await dialog.accept()

    page.once("dialog", accept)
    await op_row.get_by_role("button", name="停用").click()
    await expect(op_row).to_contain_text("已停用")
    await expect(page.locator("#message")).to_have_text("op 已停用，其所有登录已失效")
    assert (await operator.get("/api/me")).status_code == 401

    # the last admin cannot be disabled: the reason is shown, nothing changes
    adm_row = page.locator("#accounts tr[data-name='adm']")
    page.once("dialog", lambda dialog: dialog.accept())
    await adm_row.get_by_role("button", name="停用").click()
    await expect(page.locator("#message")).to_contain_text("last active admin")
    await expect(page.locator("#message")).to_have_class(re.compile(r"\berror\b"))
    await expect(adm_row).to_contain_text("启用")

    # English on request
    await page.locator("#lang").click()
    await expect(page.locator("h1")).to_have_text("Street duty room · Accounts")
    await expect(op_row).to_contain_text("disabled")
    await expect(op_row.get_by_role("button", name="Enable")).to_be_visible()
    await page.locator("#lang").click()  # back to Chinese for the next sign-in

    # an installer may not manage accounts: no link, and the page says so
    await page.locator("#logout").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.get_by_label("用户名").fill("inst")
    await page.get_by_label("密码").fill(PASSWORDS["inst"])
    await page.get_by_role("button", name="登录").click()
    await expect(page).to_have_url(re.compile(r"/install$"))
    await page.goto(f"{cloud.url}/users")
    await expect(page.locator("#denied")).to_be_visible()
    await expect(page.get_by_role("link", name="账号管理")).to_have_count(0)
    await expect(page.locator("#accounts")).to_be_hidden()
