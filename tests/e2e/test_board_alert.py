"""The board's alert and case dialog in a real browser: a new unaccepted level-I alarm beeps at
once and its repeats are queued on the audio clock (a background tab's timers may run once a
minute), accepting it silences them; a background tab's title flashes; dispatch and feedback
wait for acceptance; a refusal from the API is shown with its reason; a lost "shown" report
is sent again."""

from __future__ import annotations

import itertools
import re
from typing import Any

import httpx
from playwright.async_api import Dialog, Page, Route, expect

from tests.cloud.conftest import Publisher, RunningCloud, eventually
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish

#: Records each oscillator started (when, on the audio clock, and the clock then) and each
#: stopped early; also lets a test say the tab is in the background.
RECORD = """
window.__beeps = []; window.__stopped = 0; window.__vis = "visible";
const start = OscillatorNode.prototype.start, stop = OscillatorNode.prototype.stop;
OscillatorNode.prototype.start = function (when) {
  window.__beeps.push({when: when ?? 0, at: this.context.currentTime});
  return start.call(this, when);
};
OscillatorNode.prototype.stop = function (when) {
  if (when === undefined) window.__stopped++; return stop.call(this, when);
};
const visibility = (get) => ({configurable: true, get});
Object.defineProperty(document, "visibilityState", visibility(() => window.__vis));
Object.defineProperty(document, "hidden", visibility(() => window.__vis === "hidden"));
"""


TO_BACKGROUND = "window.__vis = 'hidden'; document.dispatchEvent(new Event('visibilitychange'))"


def rows(page: Page) -> Any:
    return page.locator("#board tbody tr")


async def test_a_new_level_one_alarm_beeps_at_once_and_queues_its_repeats_on_the_audio_clock(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await page.add_init_script(RECORD)
    await board_live(page, cloud.url)
    await page.locator("#sound").click()
    await expect(page.locator("#sound")).to_have_class(re.compile(r"\bon\b"))
    assert await page.evaluate("window.__beeps.length") == 0  # nothing to alert about

    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await expect(page.locator("body")).to_have_attribute("data-alerting", "true")
    beeps = await page.evaluate("window.__beeps")
    first = beeps[0]
    assert first["when"] <= first["at"] + 1e-9  # now, not at the next timer's turn
    whens = [b["when"] for b in beeps]
    assert all(b - a == _approx(1.5) for a, b in itertools.pairwise(whens))
    # queued a minute and more ahead: a background tab's once-a-minute timer keeps it going
    assert whens[-1] - whens[0] >= 60

    await rows(page).first.get_by_role("button", name="受理").click()
    await expect(page.locator("body")).to_have_attribute("data-alerting", "false")
    assert await page.evaluate("window.__stopped") > 0  # the queued beeps are cancelled


class _approx:
    def __init__(self, value: float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float | int) and abs(other - self.value) < 1e-6

    def __hash__(self) -> int:
        return hash(self.value)


async def test_a_background_tab_flashes_its_title_while_a_call_waits(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await page.add_init_script(RECORD)
    await board_live(page, cloud.url)
    await page.evaluate(
        "window.__vis = 'hidden'; document.dispatchEvent(new Event('visibilitychange'))"
    )
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await expect(page).to_have_title(re.compile("^【新告警】"))
    await page.evaluate(TO_BACKGROUND.replace("hidden", "visible"))
    await expect(page).to_have_title("街道值班室 · 告警看板")


async def test_dispatch_and_feedback_appear_once_the_case_is_accepted(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await rows(page).first.get_by_role("button", name="时间线").click()
    dialog = page.locator("#case")
    await expect(dialog.locator("#accept-first")).to_be_visible()
    await expect(dialog.locator("#dispatch, #feedback, #resolve")).to_have_count(0)
    await dialog.locator("#case-accept").click()
    await expect(dialog.locator("#resolve")).to_be_visible()
    await expect(dialog.locator("#dispatch input[name=to]")).to_be_visible()
    await expect(dialog.locator("#feedback input[name=note]")).to_be_visible()
    await expect(dialog.locator("#accept-first")).to_have_count(0)


async def test_a_supervisor_is_told_why_they_may_not_verify_their_own_case(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    messages: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        messages.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await board_live(page, cloud.url, "sup")
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    row = rows(page).first
    alarm_id = await row.get_attribute("data-id")
    await row.get_by_role("button", name="受理").click()
    await row.locator("select[data-outcome]").select_option(label="已处置")
    await row.get_by_role("button", name="办结").click()
    awaiting = page.locator(f"#awaiting tbody tr[data-id='{alarm_id}']")
    await awaiting.get_by_role("button", name="查看并核实").click()
    await page.locator("#verify button").click()
    found = await eventually(lambda: _first(messages))
    assert found == f"409: alarm {alarm_id} was resolved by sup: another supervisor verifies it"
    await expect(page.locator("#verify")).to_be_visible()  # still there for another try


async def _first(items: list[str]) -> str | None:
    return items[0] if items else None


async def test_a_lost_shown_report_is_sent_again(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    failed: list[str] = []

    async def fail_once(route: Route) -> None:
        if not failed:
            failed.append(route.request.url)
            await route.abort()
        else:
            await route.continue_()

    await page.route("**/api/alarms/shown", fail_once)
    await board_live(page, cloud.url)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await expect(rows(page)).to_have_count(1)
    alarm_id = await rows(page).first.get_attribute("data-id")

    async def shown() -> str | None:
        case = (await operator.get(f"/api/alarms/{alarm_id}")).json()
        return case["alarm"]["shown_at"]

    assert await eventually(shown)
    assert failed  # the first report was lost
