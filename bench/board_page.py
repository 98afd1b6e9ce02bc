"""The board page in Chromium, driven by Playwright: fill the board with open alarms, open it,
leave it idle, raise more one at a time, and measure each step (see bench/board_load.py)."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import time
from datetime import datetime
from typing import Any

import httpx
from playwright.async_api import Page, Request, async_playwright

from bench.board_alarms import Combo, publish
from bench.report import say
from bench.stack import BENCH_PASSWORD, BENCH_USER
from bench.stats import summary_ms

CHROMIUM = os.environ.get("SC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"]


#: Added before the page's scripts: when a row with an id first appears, and long tasks.
OBSERVER = """
window.__drawn = {};
window.__rows = 0;
window.__allDrawnAt = null;
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
}).observe({type: "longtask", buffered: true});
new MutationObserver((records) => {
  const at = performance.timeOrigin + performance.now();
  for (const r of records) for (const n of r.addedNodes) {
    if (n.nodeType !== 1 || !n.matches("#board tbody tr[data-id]")) continue;
    if (!(n.dataset.id in window.__drawn)) {
      window.__drawn[n.dataset.id] = at;
      window.__rows += 1;
      if (window.__rows === window.__expect) window.__allDrawnAt = at;
    }
  }
}).observe(document, {childList: true, subtree: true});
"""


async def open_alarms(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    resp = await http.get("/api/alarms")
    resp.raise_for_status()
    return resp.json()


async def wait_for(check: Any, limit_s: float, what: str, every: float = 0.25) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(every)
    raise TimeoutError(f"{what} not within {limit_s:g} s")


class Weight:
    """Bytes of the page's responses as they came over the wire (headers + body)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    def on_request(self, request: Request) -> None:
        self.requests.append(request)

    async def table(self, page: Page) -> tuple[list[list[Any]], int, int]:
        rows: list[list[Any]] = []
        total = gz_total = 0
        for request in self.requests:
            url = request.url.split("?")[0]
            if url.endswith("/api/alarms/stream") or request.method != "GET":
                continue
            response = await request.response()
            if response is None:
                continue
            sizes = await request.sizes()
            body = await response.body()
            wire = sizes["responseBodySize"] + sizes["responseHeadersSize"]
            zipped = len(gzip.compress(body, 6))
            total += wire
            gz_total += zipped
            rows.append([request.url.split("/", 3)[-1] or "/", response.status, wire, zipped])
        return rows, total, gz_total


async def measure(
    opts: argparse.Namespace, url: str, http: httpx.AsyncClient, plan: list[Combo]
) -> dict[str, Any]:
    filler, fresh = plan[: opts.filler], plan[opts.filler : opts.filler + opts.alarms]
    say(f"\n== 1. fill: {len(filler)} alarms through the broker")
    t0 = time.monotonic()
    for i, combo in enumerate(filler):
        publish(combo, f"fill-{i}-{os.urandom(3).hex()}")
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # let the broker breathe; the cloud commits in groups

    async def filled() -> bool:
        return len(await open_alarms(http)) >= len(filler)

    await wait_for(filled, 120, "the filler alarms")
    snapshot = await http.get("/api/alarms")
    snapshot_bytes = len(snapshot.content)
    say(f"{len(filler)} open alarms in {time.monotonic() - t0:.1f} s; list {snapshot_bytes:,} B")

    results: dict[str, Any] = {"filler": len(filler), "snapshot_json_bytes": snapshot_bytes}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = await browser.new_context(
            viewport={"width": 1280, "height": 800},
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            # the page's Content-Security-Policy forbids eval, which the measuring probes
            # (wait_for_function with an expression) need; the page itself is unchanged
            bypass_csp=True,
        )
        try:
            await context.request.post(f"{url}/api/login", data=login_body())
            for name, (body, kind) in opts.replaced.items():
                await context.route(f"**/static/{name}", _serve(body, kind))
            page = await context.new_page()
            await page.add_init_script(OBSERVER + f"\nwindow.__expect = {len(filler)};")
            weight = Weight()
            page.on("request", weight.on_request)
            shown_posts: list[str] = []
            page.on(
                "request",
                lambda r: shown_posts.append(r.url) if r.url.endswith("shown") else None,
            )

            say("\n== 2. open the board")
            await page.goto(f"{url}/")
            await page.wait_for_function("window.__allDrawnAt !== null", timeout=120_000)
            nav = await page.evaluate("performance.timeOrigin")
            all_drawn = await page.evaluate("window.__allDrawnAt")
            perf = await page.evaluate("window.boardPerf || null")
            # the page reports what it drew ("shown"); let that settle before measuring
            await wait_for(_shown_all(http, len(filler)), 120, "every row reported shown")
            await asyncio.sleep(1.0)
            rows, total, gz_total = await weight.table(page)
            results["open"] = {
                "navigation_to_all_rows_ms": all_drawn - nav,
                "board_snapshot": perf["snapshots"][0] if perf and perf["snapshots"] else None,
                "shown_requests": len(shown_posts),
                "weight_rows": rows,
                "weight_bytes": total,
                "weight_gzip_bytes": gz_total,
            }
            say(f"all {len(filler)} rows in the DOM {all_drawn - nav:.0f} ms after navigation")

            say(f"\n== idle: {opts.idle_s:g} s with nothing new (the clocks tick)")
            await page.evaluate("window.__longTasks = []")
            await asyncio.sleep(opts.idle_s)
            idle: list[list[float]] = await page.evaluate("window.__longTasks")
            results["idle"] = {
                "seconds": opts.idle_s,
                "long_tasks": len(idle),
                "long_task_ms": sum(d for _, d in idle),
                "long_task_max_ms": max((d for _, d in idle), default=0.0),
            }

            say(f"\n== 3. raise {len(fresh)} alarms at {opts.rate:g}/s, one at a time")
            cdp = await context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            before = await _metrics(cdp)
            await page.evaluate("window.__longTasks = []")
            base = await page.evaluate("window.__rows")
            sent: dict[str, float] = {}
            start = time.monotonic()
            for i, combo in enumerate(fresh):
                due = start + i / opts.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                event_id = f"new-{i}-{os.urandom(3).hex()}"
                sent[event_id] = time.time()
                await asyncio.to_thread(publish, combo, event_id)
            want = base + len(fresh)
            await page.wait_for_function(f"window.__rows >= {want}", timeout=120_000)
            drawn: dict[str, float] = await page.evaluate("window.__drawn")
            after = await _metrics(cdp)
            long_tasks: list[list[float]] = await page.evaluate("window.__longTasks")
            alarms = {a["last_event_id"]: a for a in await open_alarms(http)}
        finally:
            await context.close()
            await browser.close()

    stored_drawn, stored_pushed, pushed_drawn, received_stored = [], [], [], []
    for event_id in sent:
        alarm = alarms.get(event_id)
        if alarm is None or str(alarm["id"]) not in drawn:
            continue
        at = drawn[str(alarm["id"])] / 1000.0
        stored = _ts(alarm["stored_at"])
        pushed = _ts(alarm["pushed_at"])
        stored_drawn.append(at - stored)
        stored_pushed.append(pushed - stored)
        pushed_drawn.append(at - pushed)
        received_stored.append(stored - _ts(alarm["received_at"]))
    results["raise"] = {
        "alarms": len(fresh),
        "rate": opts.rate,
        "stored_to_drawn_ms": summary_ms(stored_drawn),
        "stored_to_pushed_ms": summary_ms(stored_pushed),
        "pushed_to_drawn_ms": summary_ms(pushed_drawn),
        "received_to_stored_ms": summary_ms(received_stored),
        "long_tasks": len(long_tasks),
        "long_task_ms": sum(d for _, d in long_tasks),
        "long_task_max_ms": max((d for _, d in long_tasks), default=0.0),
        # the renderer's own account of where the main thread's time went (CDP Performance)
        "main_thread_s": {k: after[k] - before[k] for k in MAIN_THREAD if k in after},
    }
    return results


MAIN_THREAD = ("TaskDuration", "ScriptDuration", "RecalcStyleDuration", "LayoutDuration")


async def _metrics(cdp: Any) -> dict[str, float]:
    got = await cdp.send("Performance.getMetrics")
    return {m["name"]: float(m["value"]) for m in got["metrics"]}


def _serve(body: str, kind: str) -> Any:
    async def fulfil(route: Any) -> None:
        await route.fulfill(body=body, content_type=kind)

    return fulfil


def login_body() -> dict[str, str]:
    return {"username": BENCH_USER, "password": BENCH_PASSWORD}


def _shown_all(http: httpx.AsyncClient, n: int) -> Any:
    async def check() -> bool:
        return sum(a["shown_at"] is not None for a in await open_alarms(http)) >= n

    return check


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
