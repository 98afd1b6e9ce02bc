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
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.board_alarms import combos
from bench.board_page import CHROMIUM, measure
from bench.board_report import report
from bench.load import start_gateways
from bench.procs import Child
from bench.report import say
from bench.sitegen import write_site
from bench.stack import BENCH_PASSWORD, BENCH_USER, write_bench_rules
from tests.servers import Mosquitto


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
