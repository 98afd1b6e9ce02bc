"""The installer's page in a real browser (Debian's Chromium), fed through the real broker:
a claim code shown big with its countdown (and it claims the gateway), a walk test where a
device triggered through the broker appears with its reading, battery and signal, devices
never heard listed, the summary of who tested what when it ends — and the duty room got
nothing. No resident's name or phone appears on the page."""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from contract.provisioning import CLAIM_ALPHABET
from tests.cloud.conftest import Publisher, RunningCloud
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import publish, screenshot, sign_in

REPO = Path(__file__).resolve().parents[2]
CODE = re.compile(rf"^[{CLAIM_ALPHABET}]{{4}}-[{CLAIM_ALPHABET}]{{4}}$")


def reading(device: str, kind: str, **values: float) -> dict[str, object]:
    return {
        "id": f"t-{uuid.uuid4()}",
        "gateway": "gw-ld01",
        "boot": "boot1",
        "seq": 1,
        "readings": [
            {"device": device, "ts": datetime.now(UTC).isoformat(), "kind": kind, "values": values}
        ],
    }


async def test_installer_claims_and_walk_tests_a_gateway(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page, tmp_path: Path
) -> None:
    # pictures for docs/provisioning.md: written to docs/screenshots/ with SC_SCREENSHOTS=1
    shots = REPO / "docs" / "screenshots" if os.environ.get("SC_SCREENSHOTS") else tmp_path
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/install")
    await expect(page.locator("#nav a[aria-current=page]")).to_have_text("安装调试")
    await expect(page.locator("#user")).to_have_text("inst (安装人员)")
    await expect(page.locator("#gw-select")).to_have_value("gw-ld01")
    info = page.locator("#gw-info")
    await expect(info).to_contain_text("红星小区1栋")
    await expect(info.locator("[data-field=credential]")).to_have_text("网关凭据 尚未认领")

    # 生成认领码: the code big, its countdown, the command to type on the box
    await page.get_by_role("button", name="生成认领码").click()
    code_box = page.locator("#code")
    await expect(code_box).to_have_text(CODE)
    code = await code_box.text_content()
    assert code
    await expect(page.locator("#code-expiry")).to_have_text(
        re.compile(r"^gw-ld01 · 有效期剩余 1[45]:\d\d$")
    )
    await expect(page.locator("#code-cmd")).to_contain_text(f"--code {code}")
    await screenshot(page, shots / "install-code.png")
    assert await code_box.evaluate("el => parseFloat(getComputedStyle(el).fontSize)") >= 36

    # the code claims the gateway (as `python -m gateway claim` does); the page shows it
    async with httpx.AsyncClient(base_url=cloud.url) as box:
        resp = await box.post("/api/provision/claim", json={"code": code})
        assert resp.status_code == 200, resp.text
    await expect(page.locator("#code-expiry")).to_have_text("gw-ld01 · 认领码已使用，网关已认领")
    await expect(info.locator("[data-field=credential]")).to_contain_text("已认领")
    await expect(info.locator("[data-field=credential]")).to_contain_text("由 inst")

    # 开始测试: every device of the gateway listed, none seen yet
    await page.get_by_role("button", name="开始测试").click()
    rows = page.locator("#devices tbody tr")
    await expect(rows).to_have_count(4)
    await expect(page.locator("#walk-status")).to_contain_text("测试进行中")
    await expect(page.locator("#walk-status")).to_contain_text("开始人 inst")
    await expect(page.locator("#never-seen")).to_contain_text("call-0101")

    # the installer gives the call button a test press: it shows up with battery and signal
    # (a real press would reach the duty room: a life-safety device is never muted)
    await publish(
        gw1,
        "event",
        event(
            device="call-0101",
            kind="call",
            type="test",
            values={"battery_pct": 87, "rssi_dbm": -61},
        ),
    )
    # and holds the gas detector's test gas: its reading shows up
    await publish(gw1, "telemetry", reading("gas-0101", "gas", ch4_pct_lel=3.5, rssi_dbm=-70))
    call = page.locator("tr[data-device=call-0101]")
    await expect(call.locator(".seen-cell")).to_have_text("已触发")
    await expect(call).to_contain_text("测试")
    await expect(call.locator(".battery")).to_have_text("87 %")
    await expect(call.locator(".signal")).to_have_text("-61 dBm")
    gas = page.locator("tr[data-device=gas-0101]")
    await expect(gas.locator(".seen-cell")).to_have_text("已触发")
    await expect(gas.locator(".readings")).to_have_text("甲烷 %LEL 3.5")
    await expect(gas.locator(".signal")).to_have_text("-70 dBm")
    # the ones not yet triggered are listed as such
    never = page.locator("#never-seen")
    await expect(never).to_contain_text("未触发的设备")
    await expect(never).to_contain_text("smoke-0102")
    await expect(never).to_contain_text("air-0201")
    await expect(never).not_to_contain_text("call-0101")
    await expect(page.locator("tr[data-device=smoke-0102] .seen-cell")).to_have_text("未触发")
    await expect(page.locator("#walk-status")).to_contain_text("已触发 2/4")
    await screenshot(page, shots / "install-walktest.png", full_page=True)

    # 结束测试: who tested what
    await page.get_by_role("button", name="结束测试").click()
    summary = page.locator("#summary")
    await expect(summary).to_be_visible()
    await expect(summary.locator("[data-field=who]")).to_contain_text("开始人 inst")
    await expect(summary.locator("[data-field=who]")).to_contain_text("结束人 inst")
    await expect(summary.locator("[data-field=seen]")).to_contain_text("已触发 2/4")
    await expect(summary.locator("[data-field=seen]")).to_contain_text("call-0101")
    await expect(summary.locator("[data-field=never]")).to_contain_text("smoke-0102")
    await expect(summary.locator("[data-field=alarms]")).to_contain_text("无测试告警")
    await expect(page.locator("#walk-live")).to_be_hidden()

    # the duty room was not paged: no open alarm, nothing on the board's feed
    alarms = await operator.get("/api/alarms")
    assert alarms.json() == []
    # and nothing about the residents was on the installer's page
    text = await page.locator("body").inner_text()
    for private in ("王秀英", "王建国", "139 0000", "8600 0101", "高血压"):
        assert private not in text

    # the box goes missing: its credential is revoked from the page (after a confirmation)
    page.once("dialog", lambda dialog: dialog.accept())
    await info.get_by_role("button", name="吊销凭据（设备丢失/被盗）").click()
    await expect(info.locator("[data-field=credential]")).to_contain_text("已吊销")
    creds = await cloud.cloud.credentials.info("gw-ld01")
    assert creds is not None and creds.revoked_at is not None

    # English on request
    await page.locator("#lang").click()
    await expect(summary.locator("[data-field=who]")).to_contain_text("started by inst")
    await expect(page.get_by_role("button", name="Generate claim code")).to_be_visible()


async def test_an_operator_is_told_the_page_is_not_for_them(
    cloud: RunningCloud, page: Page
) -> None:
    await sign_in(page, cloud.url, "op")
    await page.goto(f"{cloud.url}/install")
    await expect(page.locator("#denied")).to_be_visible()
    await expect(page.locator("#denied")).to_contain_text("仅供安装人员和管理员使用")
    await expect(page.get_by_role("button", name="生成认领码")).to_be_hidden()
