"""The duty-room board with a thousand open alarms: `python -m bench.board_load`.

Real parts only: Mosquitto, the cloud (`python -m cloud`, a subprocess), simulated gateways
publishing over MQTT, and the board page in Debian's Chromium driven by Playwright.

1. Fill: `--filler` alarms (default 1,000) are raised through the broker — calls, smoke and
   gas alarms, faults, tampering and low batteries over a generated street — and left open.
2. Open: an operator signs in and opens the board. Measured: from navigation to the last of
   the snapshot's rows in the DOM, the board's own parse/draw time of the snapshot, and the
   page weight (bytes of every response of the page load as served — the cloud gzips pages,
   scripts and JSON — apart from the live stream; each body's own gzip -6 size is given for
   reference).
3. Raise: `--alarms` more (default 300) are published at `--rate` per second, one at a time,
   through the broker. For each, the page notes when a row with its id first appears in the
   DOM (a MutationObserver added before the page's own scripts, on the browser's clock:
   `performance.timeOrigin + performance.now()`); the cloud's `stored_at` and `pushed_at`
   come from the API. Both clocks are this machine's. Reported: stored → drawn, and split
   into stored → pushed (the cloud) and pushed → drawn (the stream, the browser, the page's
   drawing), with the main thread's long tasks while it ran.

`--board-js FILE` and `--board-css FILE` serve another board.js / board.css in place of the
cloud's (e.g. an older version, for a before/after comparison under the same conditions).

    .venv/bin/python -m bench.board_load
    git show f5a69c1:cloud/web/static/board.js > /tmp/board-before.js
    git show f5a69c1:cloud/web/static/board.css > /tmp/board-before.css
    .venv/bin/python -m bench.board_load --board-js /tmp/board-before.js \
        --board-css /tmp/board-before.css
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, Request, async_playwright

from bench.load import Gateway, start_gateways
from bench.procs import Child
from bench.sitegen import BenchDevice, write_site
from bench.stack import BENCH_PASSWORD, BENCH_USER, write_bench_rules
from bench.stats import LATENCY_HEADERS, latency_row, ratio, summary_ms, table
from contract import topics
from contract.models import Event, EventType, Kind, Values, encode, utc_now
from tests.servers import Mosquitto

CHROMIUM = os.environ.get("SC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"]

#: What each kind of device can raise, one open alarm per (device, rule).
TYPES = {
    "call": [EventType.PRESS, EventType.FAULT, EventType.TAMPER, EventType.BATTERY_LOW],
    "smoke": [EventType.ALARM, EventType.FAULT, EventType.TAMPER, EventType.BATTERY_LOW],
    "gas": [EventType.ALARM, EventType.FAULT, EventType.TAMPER, EventType.BATTERY_LOW],
    "air": [EventType.FAULT, EventType.TAMPER, EventType.BATTERY_LOW],
}

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


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Combo:
    gateway: Gateway
    device: BenchDevice
    type: EventType


def combos(gateways: list[Gateway], seed: int) -> list[Combo]:
    out = [
        Combo(gw, device, kind)
        for gw in gateways
        for device in gw.spec.devices
        for kind in TYPES[device.kind]
    ]
    random.Random(seed).shuffle(out)
    return out


def publish(combo: Combo, event_id: str) -> None:
    gw = combo.gateway
    values = (
        Values(ch4_pct_lel=42.0)
        if combo.type is EventType.ALARM and combo.device.kind == "gas"
        else Values()
    )
    message = Event(
        v=2,
        id=event_id,
        gateway=gw.id,
        device=combo.device.id,
        boot=gw.boot,
        seq=gw.next_event_seq(),
        ts=utc_now(),
        kind=Kind(combo.device.kind),
        type=combo.type,
        values=values,
    )
    gw.send(topics.event(gw.id), encode(message))


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


async def run(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    needed = opts.filler + opts.alarms
    gateways_n = opts.gateways
    broker = Mosquitto()
    site = write_site(workdir / "site.yaml", gateways_n, opts.devices_per_gateway)
    for spec in site:
        broker.users[spec.id] = f"pw-{spec.id}-{os.urandom(4).hex()}"
    cloud_password = broker.add_user("cloud")
    broker.start()
    stack = contextlib.ExitStack()
    stack.callback(broker.cleanup)
    try:
        gateways = start_gateways(site, dict(broker.users), broker.port)
        for gw in gateways:
            stack.callback(gw.stop)
        plan = combos(gateways, opts.seed)
        if len(plan) < needed:
            raise SystemExit(f"the street has {len(plan)} device/rule pairs; {needed} needed")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SC_CLOUD_")}
        env.update(
            {
                "SC_CLOUD_RULES_FILE": str(write_bench_rules(workdir)),
                "SC_CLOUD_MQTT_HOST": "127.0.0.1",
                "SC_CLOUD_MQTT_PORT": str(broker.port),
                "SC_CLOUD_MQTT_USERNAME": "cloud",
                "SC_CLOUD_MQTT_PASSWORD": cloud_password,
                "SC_CLOUD_MQTT_CLIENT_ID": "bench-board-cloud",
                "SC_CLOUD_DATABASE": str(workdir / "cloud.db"),
                "SC_CLOUD_TELEMETRY_URL": f"sqlite:///{workdir / 'telemetry.db'}",
                "SC_CLOUD_SITE_FILE": str(workdir / "site.yaml"),
                "SC_CLOUD_WEB_HOST": "127.0.0.1",
                "SC_CLOUD_WEB_PORT": "0",
                "SC_CLOUD_SESSION_SECRET": os.urandom(16).hex(),
                "SC_CLOUD_BOOTSTRAP_USERS": json.dumps({BENCH_USER: ["operator", BENCH_PASSWORD]}),
                "PYTHONUNBUFFERED": "1",
            }
        )
        cloud = Child("cloud", [sys.executable, "-m", "cloud"], workdir / "cloud.log", env=env)
        match = cloud.start(ready=r"duty room: (http://\S+)", timeout=90)
        stack.callback(cloud.stop)
        assert cloud.reader is not None
        cloud.reader.wait_for(r"^ingest connected", 60)  # what we publish reaches it
        url = match.group(1)
        say(f"cloud {url}; {gateways_n} gateways, {len(plan)} device/rule pairs")
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            login = {"username": BENCH_USER, "password": BENCH_PASSWORD}
            (await http.post("/api/login", json=login)).raise_for_status()
            return await measure(opts, url, http, plan)
    finally:
        stack.close()


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


def report(results: dict[str, Any], opts: argparse.Namespace) -> None:
    opened, raised = results["open"], results["raise"]
    board = ", ".join([opts.board_js or "cloud/web/static/board.js", opts.board_css or "board.css"])
    say(f"\n## Board with {results['filler']:,} open alarms ({board})")
    snap = opened["board_snapshot"]
    say(
        f"\nnavigation → all {results['filler']:,} rows in the DOM: "
        f"{opened['navigation_to_all_rows_ms']:.0f} ms"
        + (
            f"; the board's own snapshot parse {snap['parse_ms']:.1f} ms,"
            f" draw {snap['draw_ms']:.1f} ms"
            if snap
            else ""
        )
        + f"; 'shown' reports: {opened['shown_requests']} request(s)"
    )
    say(
        table(
            "Page weight (as served; the live stream not counted)",
            ["response", "status", "bytes", "gzip -6 bytes"],
            [
                *opened["weight_rows"],
                ["total", "", opened["weight_bytes"], opened["weight_gzip_bytes"]],
            ],
        )
    )
    say(
        "\n(the live stream's first message, the snapshot, is about "
        f"{results['snapshot_json_bytes']:,} B of JSON)"
    )
    say(
        table(
            f"{raised['alarms']} alarms raised at {raised['rate']:g}/s onto the full board (ms)",
            LATENCY_HEADERS,
            [
                latency_row("stored → drawn (row in the DOM)", raised["stored_to_drawn_ms"]),
                latency_row("  stored → pushed (cloud)", raised["stored_to_pushed_ms"]),
                latency_row("  pushed → drawn (stream + page)", raised["pushed_to_drawn_ms"]),
                latency_row("received → stored (cloud)", raised["received_to_stored_ms"]),
            ],
        )
    )
    idle = results["idle"]
    say(
        f"\nidle {idle['seconds']:g} s with {results['filler']:,} rows: {idle['long_tasks']} long"
        f" tasks on the main thread ({idle['long_task_ms']:.0f} ms in all, longest"
        f" {idle['long_task_max_ms']:.0f} ms)"
    )
    spent = ", ".join(f"{k} {v:.2f} s" for k, v in raised["main_thread_s"].items())
    say(f"main thread while raising (CDP): {spent}")
    share = ratio(raised["pushed_to_drawn_ms"]["p50"], raised["stored_to_drawn_ms"]["p50"])
    say(
        f"\npushed → drawn is {100 * (share or 0):.0f} % of stored → drawn at p50; "
        f"long tasks on the page's main thread meanwhile: {raised['long_tasks']} "
        f"({raised['long_task_ms']:.0f} ms in all, longest {raised['long_task_max_ms']:.0f} ms)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.board_load", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--filler", type=int, default=1000, help="open alarms before the page opens"
    )
    parser.add_argument("--alarms", type=int, default=300, help="alarms raised onto the full board")
    parser.add_argument("--rate", type=float, default=10.0, help="of the raised alarms, per second")
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle phase, seconds")
    parser.add_argument("--gateways", type=int, default=40)
    parser.add_argument("--devices-per-gateway", type=int, default=12)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--board-js", help="serve this file as /static/board.js")
    parser.add_argument("--board-css", help="serve this file as /static/board.css")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    opts = parser.parse_args(argv)
    opts.replaced = {
        name: (Path(path).read_text(encoding="utf-8"), kind)
        for name, path, kind in (
            ("board.js", opts.board_js, "text/javascript"),
            ("board.css", opts.board_css, "text/css"),
        )
        if path
    }
    if not Path(CHROMIUM).exists():
        say(f"no Chromium at {CHROMIUM} (Debian package `chromium`)")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="sc-board-bench-"))
    try:
        results = asyncio.run(run(opts, workdir))
    finally:
        if not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    report(results, opts)
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
