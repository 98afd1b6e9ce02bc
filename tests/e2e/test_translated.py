"""Every visible string of every page, in Chinese, is Chinese (issue 15, point 6): the test
walks each page's visible text (and placeholders, titles, labels and the options of visible
lists) in the states a user meets — the board with a waiting alarm and its case open, a
worked case in the ledger with its history, the report, device health, trends, the site
registry, the installer's page during a walk test, the accounts — and finds no untranslated
identifier: no snake_case token and no English word outside a short allow-list of names that
are the same in either language (brands, file formats, units, our own ids). A command to type
(`<code>`) is verbatim, not text to translate."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.cloud.conftest import Publisher, RunningCloud, eventually
from tests.cloud.ingest.test_ingest import event
from tests.e2e.conftest import board_live, publish, sign_in
from tests.e2e.test_board import telemetry

# about the pages, not the database: on SQLite only (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])

REPO = Path(__file__).resolve().parents[2]
#: Device models are product names (as printed on the box), the same in either language.
MODELS = {p.stem for p in (REPO / "firmware_configs" / "models").glob("*.yaml")}
#: Words that are the same in Chinese: the language switch, formats, units, brands.
ALLOWED = {
    "English", "CSV", "Excel", "PM", "TVOC", "CO", "CH", "LEL", "GB", "ppm", "mg", "dBm", "mA",
    "RSSI", "MQTT", "Zigbee", "Raspberry", "Pi", "JSON", "YAML", "GPIO", "ADC", "ID", "UTF",
    "GBK",
}  # fmt: skip
#: Our own identifiers (data, not words): devices, gateways, homes, buildings, user names,
#: claim codes, numbers with units.
DATA = re.compile(
    r"\b(?:[a-z][a-z0-9]*-[a-z0-9]+(?:-[a-z0-9]+)*|op|sup|inst|adm|[A-Z0-9]{4}-[A-Z0-9]{4})\b"
)
SNAKE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")
WORD = re.compile(r"[A-Za-z][A-Za-z]+")

VISIBLE_STRINGS = """() => {
  const out = [];
  const seen = (el) => el.checkVisibility({visibilityProperty: true});
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!el || !node.textContent.trim() || el.closest("script, style, option, code")) continue;
    if (seen(el)) out.push(node.textContent.trim());
  }
  for (const el of document.querySelectorAll("[placeholder], [title], [aria-label]")) {
    if (!seen(el)) continue;
    for (const name of ["placeholder", "title", "aria-label"]) {
      const value = el.getAttribute(name);
      if (value) out.push(value);
    }
  }
  for (const select of document.querySelectorAll("select")) {
    if (seen(select)) for (const option of select.options) out.push(option.textContent.trim());
  }
  out.push(document.title);
  return out;
}"""


def untranslated(text: str) -> list[str]:
    """The identifiers and English words in one visible string."""
    found = [m for m in SNAKE.findall(text) if m not in MODELS]
    rest = DATA.sub(" ", SNAKE.sub(" ", text))
    rest = re.sub(r"https?://\S+|/[\w./-]+", " ", rest)  # addresses and paths
    found += [w for w in WORD.findall(rest) if w not in ALLOWED]
    return found


async def assert_all_chinese(page: Page, where: str) -> None:
    strings = await page.evaluate(VISIBLE_STRINGS)
    bad = {s: untranslated(s) for s in strings if untranslated(s)}
    assert not bad, f"{where}: untranslated text on screen: {bad}"


async def test_every_visible_string_is_chinese(
    cloud: RunningCloud, gw1: Publisher, operator: httpx.AsyncClient, page: Page
) -> None:
    await page.goto(f"{cloud.url}/login")
    await assert_all_chinese(page, "login")

    # a call worked to the end (ledger, report), a smoke alarm waiting (board, case)
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    [call] = await eventually(lambda: _open(operator))
    url = f"/api/alarms/{call['id']}"
    for action, body in (
        ("accept", None),
        ("dispatch", {"to": "网格员 李网格", "note": "上门查看"}),
        ("feedback", {"note": "老人不慎误按"}),
        ("resolve", {"outcome": "false_alarm", "cause": "mistouch", "note": "已回访"}),
    ):
        (await operator.post(f"{url}/{action}", json=body)).raise_for_status()
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="alarm"))
    # its repeat and its clear (latched: the case stays); methane raised from level II to I
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="alarm"))
    await publish(gw1, "event", event(device="smoke-0102", kind="smoke", type="clear"))
    for lel in (12, 27):
        await publish(gw1, "telemetry", telemetry("gw-ld01", "gas-0101", "gas", ch4_pct_lel=lel))

    await board_live(page, cloud.url, "sup")
    row = page.locator("#board tbody tr").first
    await expect(row).to_contain_text("烟雾报警")
    await assert_all_chinese(page, "board")
    await row.get_by_role("button", name="时间线").click()
    history = page.locator("#case-history li")
    await expect(history.filter(has_text="未通知")).not_to_have_count(0)
    await expect(history.filter(has_text="重复触发")).not_to_have_count(0)
    await expect(history.filter(has_text="设备已解除")).not_to_have_count(0)
    await assert_all_chinese(page, "case (waiting)")
    await page.locator("#case-close").click()
    methane = page.locator("#board tbody tr", has_text="甲烷浓度超标")
    await methane.get_by_role("button", name="时间线").click()
    await expect(history.filter(has_text="由Ⅱ级 重大升级")).to_have_count(1)
    await assert_all_chinese(page, "case (methane raised to level I)")
    await page.locator("#case-close").click()
    await row.get_by_role("button", name="时间线").click()
    await page.locator("#case-accept").click()
    await expect(page.locator("#case form#dispatch")).to_be_visible()
    await assert_all_chinese(page, "case (accepted)")
    await page.locator("#case-close").click()
    await page.locator("#awaiting tbody tr button").first.click()
    await expect(page.locator("#case form#verify")).to_be_visible()
    await assert_all_chinese(page, "case (resolved, awaiting verification)")
    await page.locator("#case-close").click()

    await page.goto(f"{cloud.url}/ledger")
    ledger_row = page.locator("#ledger tbody tr").first
    await expect(ledger_row).to_be_visible()
    await assert_all_chinese(page, "ledger")
    await page.locator(f"#ledger tbody tr[data-id='{call['id']}']").click()
    await expect(page.locator("dialog ol.history li")).not_to_have_count(0)
    await assert_all_chinese(page, "ledger case")
    for name in ("report", "devices", "trends"):
        await page.goto(f"{cloud.url}/{name}")
        await expect(page.locator("#nav a[aria-current=page]")).to_be_visible()
        await page.wait_for_load_state("networkidle")
        await assert_all_chinese(page, name)

    await page.request.post(f"{cloud.url}/api/logout")
    await sign_in(page, cloud.url, "inst")
    await page.goto(f"{cloud.url}/install")
    await expect(page.locator("#gw-select")).to_have_value("gw-ld01")
    await page.get_by_role("button", name="生成认领码").click()
    await expect(page.locator("#code-cmd")).to_be_visible()
    await page.locator("#start-test").click()
    await expect(page.locator("#walk-status")).to_contain_text("测试进行中")
    await publish(gw1, "event", event(device="call-0101", kind="call", type="press"))
    await expect(page.locator("#devices tbody tr.seen")).not_to_have_count(0)
    await page.wait_for_load_state("networkidle")
    await assert_all_chinese(page, "install (walk test)")
    await page.goto(f"{cloud.url}/devices")
    await expect(page.locator("#nav a[aria-current=page]")).to_be_visible()
    await page.wait_for_load_state("networkidle")
    await assert_all_chinese(page, "devices (walk test)")

    await page.request.post(f"{cloud.url}/api/logout")
    await sign_in(page, cloud.url, "adm")
    for name in ("site", "users"):
        await page.goto(f"{cloud.url}/{name}")
        await expect(page.locator("#nav a[aria-current=page]")).to_be_visible()
        await page.wait_for_load_state("networkidle")
        await assert_all_chinese(page, name)


async def _open(client: httpx.AsyncClient) -> list[dict[str, object]] | None:
    resp = await client.get("/api/alarms")
    resp.raise_for_status()
    return resp.json() or None
