"""The pages against a crafted address and under their Content-Security-Policy, in a real
browser: a filter value from the address bar stays a value (no script, no new attribute), and
every page — charts included — runs with no inline script and no policy violation."""

from __future__ import annotations

from urllib.parse import quote

from playwright.async_api import Dialog, Page, expect

from tests.cloud.conftest import Publisher, RunningCloud
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import publish, sign_in

#: Closes the value="…" attribute and adds a focus handler, if the page writes it unescaped.
PAYLOAD = '" autofocus onfocus="window.__xss=1;alert(1)" x="'
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`));
"""


def _watch_dialogs(page: Page) -> list[str]:
    seen: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        seen.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


async def test_a_crafted_address_runs_no_script_on_the_ledger_or_the_report(
    cloud: RunningCloud, page: Page
) -> None:
    dialogs = _watch_dialogs(page)
    await sign_in(page, cloud.url, "sup")
    for path in ("/ledger", "/report"):
        await page.goto(f"{cloud.url}{path}?date_from={quote(PAYLOAD)}&date_to={quote(PAYLOAD)}")
        for name in ("date_from", "date_to"):
            field = page.locator(f"#filter input[name={name}]")
            await expect(field).to_have_count(1)
            # the payload did not break out of the value into attributes of its own
            for attribute in ("onfocus", "autofocus", "x"):
                assert await field.get_attribute(attribute) is None, (path, name, attribute)
            await field.focus()
        # (a date input drops a value that is no date) and nothing ran
        assert await field.input_value() == ""
        assert await page.evaluate("window.__xss") is None
    assert dialogs == []


async def test_every_page_runs_under_the_policy_with_no_violation(
    cloud: RunningCloud, gw1: Publisher, page: Page
) -> None:
    await page.add_init_script(WATCH)
    # Chromium also reports every refusal on the console, which outlives a page's unload
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await sign_in(page, cloud.url, "adm")
    await expect(page.locator("#board tbody tr")).to_have_count(1)
    assert await page.evaluate("window.__csp") == []
    # uPlot draws the report's charts and the trend (it styles its elements from script);
    # an accepted case gives the time charts something to draw (empty ones say so instead)
    alarm_id = await page.locator("#board tbody tr").first.get_attribute("data-id")
    assert (await page.request.post(f"{cloud.url}/api/alarms/{alarm_id}/accept")).ok
    await page.goto(f"{cloud.url}/report")
    await expect(page.locator("#tta-chart canvas")).to_have_count(1)
    assert await page.evaluate("window.__csp") == []
    for path, ready in (
        ("/ledger", "#ledger tbody tr"),
        ("/devices", "#buildings section"),
        ("/trends", "#building option"),
        ("/site", "#nav a"),
        ("/install", "#nav a"),
    ):
        await page.goto(f"{cloud.url}{path}")
        await expect(page.locator(ready).first).to_be_attached()
        assert await page.evaluate("window.__csp") == [], path
    # the sign-in page's script is a file now, and it still signs in
    await page.context.clear_cookies()
    await page.goto(f"{cloud.url}/login")
    await page.get_by_role("button", name="English").click()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert await page.evaluate("window.__csp") == []
    assert refused == []
