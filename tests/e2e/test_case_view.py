"""The board's acceptance budget and the case dialog, in a real browser against the real
broker and cloud: the countdown an operator watches run down and turn overdue; closing a false
alarm only with its cause; a supervisor's verification (督办) from the list of resolved cases;
the device's recent readings as a chart; and the resident's profile for the duty room only,
every read in the audit."""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.async_api import Page, expect

from cloud.settings import DEFAULT_RULES
from tests.cloud.conftest import (
    Publisher,
    RunningCloud,
    cloud_settings,
    eventually,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.cloud.ingest.test_ingest import active, event
from tests.e2e.conftest import board_live, publish, screenshot, sign_in
from tests.e2e.test_board import SCREENSHOTS, png_size, rows
from tests.servers import Mosquitto

COUNTDOWN = re.compile(r"^剩余 (\d+):(\d\d)$")


def seconds_left(text: str) -> int:
    match = COUNTDOWN.match(text)
    assert match, text
    return int(match.group(1)) * 60 + int(match.group(2))


@pytest.fixture
async def short_budget_cloud(tmp_path: Path, mosquitto: Mosquitto) -> Any:
    """A cloud whose life-safety and fire policies give 10 s to accept (the default is 60 s),
    so a test can watch a budget run out and the escalation that follows."""
    rules = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    for policy in rules["policies"]:
        if policy["name"] in ("life_safety", "fire"):
            policy["budget_s"] = 10
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    forget_gateway_status(mosquitto)
    async with running_cloud(cloud_settings(tmp_path, mosquitto, rules_file=path)) as running:
        yield running


async def test_the_acceptance_budget_counts_down_then_shows_overdue(
    short_budget_cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    url = short_budget_cloud.url
    await board_live(page, url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="fault"))
    await expect(rows(page)).to_have_count(2)
    call, fault = rows(page).nth(0), rows(page).nth(1)

    # the call's ten seconds run down, second by second
    budget = call.locator(".budget")
    await expect(budget).to_have_text(COUNTDOWN)
    first = await budget.text_content() or ""
    await expect(budget).not_to_have_text(first)
    later = await budget.text_content() or ""
    if COUNTDOWN.match(later):
        assert seconds_left(later) < seconds_left(first)

    # ... then it is overdue, in red, and the cloud has escalated it
    await expect(budget).to_have_text(re.compile(r"^超时 \d+:\d\d$"), timeout=20_000)
    await expect(budget).to_have_class(re.compile(r"\boverdue\b"))
    await expect(budget).to_have_css("background-color", "rgb(183, 28, 28)")
    await expect(call).to_contain_text("已升级 ×1")
    # a device fault (level III) has an hour: it is still counting, and not escalated
    assert 3500 < seconds_left(await fault.locator(".budget").text_content() or "") <= 3600
    await expect(fault).not_to_contain_text("已升级")

    # once accepted, there is no budget to watch
    await call.get_by_role("button", name="受理").click()
    await expect(call).to_have_attribute("data-state", "accepted")
    await expect(call.locator(".budget")).to_have_count(0)

    # in English too
    await page.get_by_role("button", name="English").click()
    await expect(fault.locator(".budget")).to_have_text(re.compile(r"^left (\d+:)?\d+:\d\d$"))


async def test_a_false_alarm_is_closed_with_its_cause(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="alarm"))
    row = rows(page).first
    await expect(row).to_contain_text("烟雾报警")
    alarm_id = int(await row.get_attribute("data-id") or 0)
    await row.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    form = dialog.locator("form#resolve")
    await dialog.locator("#case-accept").click()
    cause = form.locator("select[name=cause]")
    await expect(form.locator("select[name=outcome]")).to_have_value("")  # nobody chose yet
    await expect(cause).to_be_hidden()  # asked for only with a false alarm
    await form.get_by_role("button", name="办结").click()
    await expect(form.get_by_role("alert")).to_have_text("请先选择办结结果")

    await form.locator("select[name=outcome]").select_option(label="误报")
    await expect(cause).to_be_visible()
    await form.get_by_role("button", name="办结").click()
    await expect(form.get_by_role("alert")).to_have_text("误报必须选择原因")
    await cause.select_option(label="其他")
    await form.get_by_role("button", name="办结").click()
    await expect(form.get_by_role("alert")).to_have_text("原因选“其他”时，请在说明中写明")
    # nothing was closed meanwhile
    assert (await operator.get(f"/api/alarms/{alarm_id}")).json()["alarm"]["state"] == "accepted"
    await expect(rows(page)).to_have_count(1)

    await cause.select_option(label="烹饪油烟")
    await form.locator("input[name=note]").fill("炒菜油烟触发")
    await form.get_by_role("button", name="办结").click()
    await expect(dialog.locator("li[data-step='resolved_at']")).to_contain_text("误报（烹饪油烟）")
    await expect(rows(page)).to_have_count(0)
    await expect(dialog.locator("form#resolve")).to_have_count(0)
    closed = (await operator.get(f"/api/alarms/{alarm_id}")).json()["alarm"]
    assert (closed["outcome"], closed["cause"], closed["note"]) == (
        "false_alarm",
        "cooking",
        "炒菜油烟触发",
    )


async def test_a_supervisor_verifies_a_resolved_case_on_the_board(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, page: Page
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    [alarm] = await eventually(lambda: active(operator))
    await board_live(page, cloud.url, "sup")
    awaiting = page.locator("#awaiting")
    await expect(awaiting).to_be_visible()
    await expect(awaiting).to_contain_text("没有待核实的案件")

    # the operator closes the case elsewhere: it comes to the supervisor's list by itself
    await operator.post(f"/api/alarms/{alarm['id']}/accept")
    await operator.post(
        f"/api/alarms/{alarm['id']}/resolve", json={"outcome": "handled", "note": "已上门"}
    )
    waiting = awaiting.locator(f"tbody tr[data-id='{alarm['id']}']")
    await expect(waiting).to_contain_text("已处置")
    await expect(waiting).to_contain_text("办结人 op")
    await waiting.get_by_role("button", name="查看并核实").click()

    dialog = page.locator("#case")
    verified = dialog.locator("li[data-step='verified_at']")
    await expect(verified).to_contain_text("—")
    await dialog.locator("form#verify input[name=note]").fill("已电话回访，属实")
    await dialog.locator("form#verify").get_by_role("button", name="督办核实").click()
    await expect(verified).not_to_contain_text("—")
    await expect(verified).to_contain_text("sup")
    await expect(dialog).to_contain_text("已电话回访，属实")
    await expect(dialog.locator("form#verify")).to_have_count(0)
    await dialog.get_by_role("button", name="关闭").click()
    await expect(awaiting).to_contain_text("没有待核实的案件")
    case = (await operator.get(f"/api/alarms/{alarm['id']}")).json()
    assert case["alarm"]["verified_by"] == "sup"


async def test_an_operator_does_not_get_the_supervisors_list(
    cloud: RunningCloud, page: Page
) -> None:
    await board_live(page, cloud.url)
    await expect(page.locator("#awaiting")).to_be_hidden()


def readings(gateway: str, device: str, values: list[float]) -> dict[str, Any]:
    """Methane readings a minute apart, ending now."""
    end = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "gateway": gateway,
        "boot": "boot1",
        "seq": 1,
        "readings": [
            {
                "device": device,
                "ts": (end - timedelta(minutes=len(values) - 1 - i)).isoformat(),
                "kind": "gas",
                "values": {"ch4_pct_lel": v},
            }
            for i, v in enumerate(values)
        ],
    }


async def resident_reads(cloud: RunningCloud) -> list[dict[str, Any]]:
    auditor = await signed_in(cloud.url, "adm")
    try:
        resp = await auditor.get("/api/audit", params={"action": "resident_read"})
        resp.raise_for_status()
        return resp.json()
    finally:
        await auditor.aclose()


async def test_an_operator_sees_the_residents_profile_and_the_read_is_audited(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    row = rows(page).first
    await expect(row).to_contain_text("一键呼叫求助")
    alarm_id = int(await row.get_attribute("data-id") or 0)
    await row.get_by_role("button", name="时间线").click()

    profile = page.locator("#case #resident")
    await expect(profile).to_contain_text("王秀英")
    await expect(profile).to_contain_text("年龄 82岁")
    await expect(profile).to_contain_text("高血压，行动不便，独居")
    await expect(profile).to_contain_text("王建国（儿子） 139 0000 1001")
    await expect(profile).to_contain_text("仅值班人员可见，每次查看均记入审计")
    await expect(profile.get_by_role("link", name="139 0000 1001")).to_have_attribute(
        "href", "tel:13900001001"
    )

    [read] = await resident_reads(cloud)
    assert read["actor"] == "op"
    assert f"alarm {alarm_id}" in read["detail"] and "王秀英" in read["detail"]
    # acting in the open case does not read it again (the page never asks); opening it again does
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith("/resident") else None)
    await page.locator("#case #case-accept").click()
    await expect(page.locator("#case li[data-step='accepted_at']")).not_to_contain_text("—")
    await expect(profile).to_contain_text("王秀英")
    assert asked == []
    await page.get_by_role("button", name="关闭").click()
    async with page.expect_response(lambda r: r.url.endswith("/resident")):
        await row.get_by_role("button", name="时间线").click()
    await expect(profile).to_contain_text("王秀英")
    assert len(await resident_reads(cloud)) == 2


async def test_the_case_charts_the_devices_recent_readings(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await board_live(page, cloud.url)
    values = [2.0, 2.5, 3.0, 4.0, 6.5, 9.0, 14.5]
    await publish(gw1, "telemetry", readings("gw-ld01", "gas-0101", values))
    row = rows(page).first
    await expect(row).to_contain_text("甲烷浓度超标")
    await row.get_by_role("button", name="时间线").click()
    chart = page.locator("#case #readings")
    await expect(chart.locator(".uplot canvas")).to_have_count(1)
    await expect(chart).to_have_attribute("data-points", str(len(values)))
    await expect(chart).to_contain_text("甲烷 (%LEL)")
    # the limits of the rules in force, as dashed lines named in the legend
    await expect(chart.locator(".u-legend")).to_contain_text("≥10 %LEL Ⅱ级")
    await expect(chart.locator(".u-legend")).to_contain_text("≥25 %LEL Ⅰ级")
    # a call button has no readings to chart: its case has no readings panel at all
    await page.get_by_role("button", name="关闭").click()
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    call = page.locator("#board tbody tr[data-level='1']")
    await call.get_by_role("button", name="时间线").click()
    await expect(page.locator("#case h2")).to_contain_text("一键呼叫求助")
    await expect(page.locator("#case #readings")).to_have_count(0)


async def test_an_installer_cannot_open_a_residents_profile(
    cloud: RunningCloud, operator: httpx.AsyncClient, gw1: Publisher, page: Page
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    [alarm] = await eventually(lambda: active(operator))
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/")
    await expect(page.get_by_text("当前账号无权查看告警")).to_be_visible()
    await expect(page.locator("#case")).to_be_hidden()
    await expect(page.get_by_text("王秀英")).to_have_count(0)
    refused = await page.request.get(f"{cloud.url}/api/alarms/{alarm['id']}/resident")
    assert refused.status == 403
    assert "王秀英" not in await refused.text()
    assert await resident_reads(cloud) == []


async def test_case_screenshot(
    cloud: RunningCloud, gw1: Publisher, page: Page, tmp_path: Path
) -> None:
    """docs/screenshots/case.png: a methane alarm in an elderly resident's home, with the
    chart and the profile. Written to docs/ only with SC_SCREENSHOTS=1:

    SC_SCREENSHOTS=1 .venv/bin/pytest tests/e2e -k screenshot"""
    out = SCREENSHOTS if os.environ.get("SC_SCREENSHOTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    await board_live(page, cloud.url)
    values = [1.5, 1.8, 2.0, 2.4, 2.2, 3.1, 3.8, 4.6, 5.9, 7.2, 8.8, 11.5, 14.5]
    await publish(gw1, "telemetry", readings("gw-ld01", "gas-0101", values))
    row = rows(page).first
    await expect(row).to_contain_text("甲烷浓度超标")
    await row.get_by_role("button", name="受理").click()
    await expect(row).to_have_attribute("data-state", "accepted")
    await row.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await dialog.locator("#dispatch input[name=to]").fill("李网格")
    await dialog.locator("#dispatch input[name=note]").fill("请立即上门，关闭燃气阀门")
    await dialog.locator("#dispatch button").click()
    await expect(dialog.locator("li[data-step='dispatched_at']")).not_to_contain_text("—")
    await expect(dialog.locator("#resident")).to_contain_text("王秀英")
    await expect(dialog.locator("#readings .uplot canvas")).to_have_count(1)
    await screenshot(page, out / "case.png")
    assert png_size(out / "case.png") == (1280, 800)
