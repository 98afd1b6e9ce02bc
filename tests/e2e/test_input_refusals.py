"""Bad input is refused with a reason in the user's language, naming the field (issue 15,
points 6 and 7): a dispatch target or feedback of spaces only is not saved (page and API), the
feedback form takes what the API takes (2,000 characters), a walk test of 0 or no minutes does
not start, a short password is "密码：至少 10 个字符" (not pydantic's English), and a ledger
filter the API refuses says why in Chinese and hides the rows of the previous filter."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.cloud.conftest import Publisher, RunningCloud, signed_in
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish, sign_in

# about the pages, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])


async def test_spaces_are_not_a_dispatch_or_feedback_and_the_form_takes_what_the_api_takes(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    row = page.locator("#board tbody tr").first
    alarm_id = int(await row.get_attribute("data-id") or 0)
    await row.get_by_role("button", name="受理").click()
    await row.get_by_role("button", name="时间线").click()
    to = page.locator("#dispatch input[name=to]")
    await to.fill("   ")
    await page.locator("#dispatch button").click()
    assert await to.evaluate("(el) => el.validationMessage") == "请填写内容（不能只有空格）"
    note = page.locator("#feedback input[name=note]")
    await note.fill("  \t ")
    await page.locator("#feedback button").click()
    assert await note.evaluate("(el) => el.validationMessage") == "请填写内容（不能只有空格）"
    case = (await operator.get(f"/api/alarms/{alarm_id}")).json()
    assert case["alarm"]["dispatched_to"] is None and case["alarm"]["feedback_at"] is None

    # the feedback box takes 2,000 characters, as the API does, and no more
    assert await note.get_attribute("maxlength") == "2000"
    await note.fill("情" * 2000)
    await page.locator("#feedback button").click()
    await expect(page.locator("#case-history li").filter(has_text="情况反馈")).to_have_count(1)
    case = (await operator.get(f"/api/alarms/{alarm_id}")).json()
    [fed] = [h for h in case["history"] if h["action"] == "feedback"]
    assert fed["detail"] == "情" * 2000


async def test_the_api_refuses_spaces_and_walk_tests_outside_the_forms_limits(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient
) -> None:
    gw1.publish("sc/v1/gw-ld01/event", event(device="call-0101", kind="call", type="press"))
    alarms: list[dict[str, object]] = []
    while not alarms:
        alarms = (await operator.get("/api/alarms")).json()
    url = f"/api/alarms/{alarms[0]['id']}"
    assert (await operator.post(f"{url}/accept")).status_code == 200
    for action, body, field in (
        ("dispatch", {"to": "  \u3000 "}, "to"),
        ("feedback", {"note": " \n "}, "note"),
    ):
        refused = await operator.post(f"{url}/{action}", json=body)
        assert refused.status_code == 422
        [problem] = refused.json()["detail"]
        assert problem["loc"][-1] == field and "must not be only spaces" in problem["msg"]
    installer = await signed_in(cloud.url, "inst")
    try:
        for minutes in (0, 0.5, 241):
            resp = await installer.post(
                "/api/walktests", json={"gateway": "gw-ld01", "minutes": minutes}
            )
            assert resp.status_code == 422, minutes
        assert (await installer.get("/api/walktests")).json() == []
    finally:
        await installer.aclose()


async def test_a_walk_test_of_no_or_zero_minutes_does_not_start(
    cloud: RunningCloud, page: Page
) -> None:
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/install")
    await expect(page.locator("#gw-select")).to_have_value("gw-ld01")
    error = page.locator("#walk-error")
    for typed in ("", "0", "-5", "300"):
        await page.locator("#minutes").fill(typed)
        await page.get_by_role("button", name="开始测试").click()
        await expect(error).to_have_text("测试时长：请填写 1–240 分钟")
        await expect(page.locator("#walk-live")).to_be_hidden()
    assert (await page.request.get(f"{cloud.url}/api/walktests")).ok
    assert await (await page.request.get(f"{cloud.url}/api/walktests")).json() == []
    await page.locator("#minutes").fill("15")
    await page.get_by_role("button", name="开始测试").click()
    await expect(page.locator("#walk-status")).to_contain_text("测试进行中")
    await expect(error).to_be_hidden()


async def test_a_short_password_is_refused_naming_the_field_in_each_language(
    cloud: RunningCloud, page: Page
) -> None:
    await sign_in(page, cloud.url, "adm")
    await page.goto(f"{cloud.url}/users")
    await page.locator("#new-name").fill("zhang")
    await page.locator("#new-password").fill("short")
    await page.locator("#new-submit").click()
    message = page.locator("#message")
    await expect(message).to_have_text(re.compile("密码：至少 10 个字符$"))
    await page.locator("#lang").click()
    await page.locator("#new-submit").click()
    await expect(message).to_have_text(re.compile("Password: at least 10 characters$"))


async def test_a_refused_ledger_filter_says_why_in_chinese_and_hides_the_old_rows(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await sign_in(page, cloud.url, "op")
    await page.goto(f"{cloud.url}/ledger")
    await expect(page.locator("#ledger tbody tr")).to_have_count(1)
    await page.locator("#filter input[name=date_from]").fill("2027-01-02")
    await page.locator("#filter input[name=date_to]").fill("2027-01-01")
    await page.locator("#filter button[type=submit]").click()
    await expect(page.locator("#error")).to_have_text("筛选条件有误：起始日期须早于截止日期")
    await expect(page.locator("#ledger")).to_be_hidden()
