"""Closing a case cannot happen by accident (issue 15, point 2): an alarm nobody accepted has
no 办结 on its row or in its case, an accepted one is closed only with an outcome someone
chose (no default), and the API refuses to resolve an unaccepted alarm whatever the page does,
with its reason in the user's language."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Dialog, Page, expect

from tests.cloud.conftest import Publisher, RunningCloud
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish

# about the page, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])


async def state_of(client: httpx.AsyncClient, alarm_id: int) -> str:
    resp = await client.get(f"/api/alarms/{alarm_id}")
    resp.raise_for_status()
    return str(resp.json()["alarm"]["state"])


async def test_an_unaccepted_methane_alarm_cannot_be_closed_from_the_board(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    await board_live(page, cloud.url, "sup")
    await publish(gw1, "event", event(device="gas-0101", kind="gas", type="alarm"))
    row = page.locator("#board tbody tr").first
    await expect(row).to_contain_text("待受理")
    alarm_id = int(await row.get_attribute("data-id") or 0)
    # the row offers 受理 and the case, nothing that closes it
    await expect(row.get_by_role("button", name="受理")).to_be_visible()
    await expect(row.get_by_role("button", name="办结")).to_have_count(0)
    await expect(row.locator("select[data-outcome]")).to_have_count(0)
    # nor does the case, which says why
    await row.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await expect(dialog.locator("#accept-first")).to_have_text("受理后可派单、反馈情况和办结")
    await expect(dialog.locator("form#resolve")).to_have_count(0)
    await dialog.locator("#case-close").click()

    # accepted: 办结 appears, with no outcome chosen for the operator
    await row.get_by_role("button", name="受理").click()
    await expect(row).to_contain_text("已受理")
    outcome = row.locator("select[data-outcome]")
    await expect(outcome).to_have_value("")
    await expect(outcome.locator("option:checked")).to_have_text("请选择办结结果…")
    # 办结 without choosing closes nothing and points at the choice
    await row.get_by_role("button", name="办结").click()
    await expect(outcome).to_have_attribute("aria-invalid", "true")
    await expect(outcome).to_be_focused()
    assert await outcome.evaluate("(el) => el.validationMessage") == "请先选择办结结果"
    assert await state_of(operator, alarm_id) == "accepted"
    await expect(row).to_be_visible()

    await outcome.select_option(label="已处置")
    await expect(outcome).not_to_have_attribute("aria-invalid", "true")
    await row.get_by_role("button", name="办结").click()
    await expect(page.locator("#board tbody tr")).to_have_count(0)
    case = (await operator.get(f"/api/alarms/{alarm_id}")).json()["alarm"]
    assert case["state"] == "resolved" and case["outcome"] == "handled"
    assert case["accepted_at"] < case["resolved_at"]


async def test_the_api_refusal_reaches_the_page_in_its_language(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    """A stale page or a script posting 办结 for an unaccepted alarm: the API refuses, and the
    board's own request path shows the reason in the page's language."""
    messages: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        messages.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    row = page.locator("#board tbody tr").first
    await expect(row).to_contain_text("待受理")
    alarm_id = int(await row.get_attribute("data-id") or 0)
    resolve = f"post('/api/alarms/{alarm_id}/resolve', {{outcome: 'handled', note: ''}})"
    assert await page.evaluate(resolve) is None  # returns once the message was dismissed
    assert messages == [f"409: 告警 {alarm_id} 尚未受理，不能办结：请先受理"]
    await page.locator("#lang").click()
    assert await page.evaluate(resolve) is None
    assert messages[1:] == [
        f"409: alarm {alarm_id} is not accepted yet: accept it before resolving it"
    ]
    assert await state_of(operator, alarm_id) == "active"
