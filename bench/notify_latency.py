"""A fire alarm reaching two channels: `python -m bench.notify_latency`.

GB/T 45839-2025 asks that a fire alarm reach people by at least two channels within 15 s. Real
parts: Mosquitto, the cloud (`python -m cloud`, a subprocess configured only through
`SC_CLOUD_*`), simulated gateways publishing over MQTT, and the vendor fake
(tests/vendor_fakes.py: Aliyun SendSms and the WeCom group robot with their signature checks,
on loopback) standing in for the vendors' servers.

`--fires` smoke alarms (one per gateway: each is a new alarm) are published `--interval`
seconds apart. The fire policy tells the grid worker by SMS (Aliyun) and by the WeCom robot at
once, with a voice call (Aliyun) as the fallback. Measured per fire, from the event's
timestamp (taken when it is published) to the moment the fake received it: the SMS, the robot
message, and both (the later of the two: when the second channel had it). Checked: every fire
reached both channels, and the p99 of "both" is within the 15 s budget.

The vendors' rate limits are off by default: every fire goes to the same grid worker, whom
Aliyun's default flow control allows one SMS a minute, and the robot takes 20 messages a
minute (`--vendor-limits` keeps them, to see fallback under a storm). The default 20 fires
stay within the robot's own 20 a minute.

    .venv/bin/python -m bench.notify_latency                 # 20 fires, 0.5 s apart, ~25 s
    .venv/bin/python -m bench.notify_latency --fires 20 --interval 3 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from bench.load import start_gateways
from bench.procs import Child
from bench.report import say
from bench.sitegen import write_site
from bench.stack import BENCH_PASSWORD, BENCH_USER, write_bench_rules
from bench.stats import LATENCY_HEADERS, latency_row, summary_ms, table
from tests import vendor_fakes as v
from tests.servers import Mosquitto

BUDGET_S = 15.0
WHERE = re.compile(r"压测小区(\d+)栋")


def fire_rules(workdir: Path) -> Path:
    path = write_bench_rules(workdir)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    [fire] = [p for p in data["policies"] if p["name"] == "fire"]
    fire["notify"] = [
        {"to": "grid_worker", "via": ["sms_aliyun", "wecom"], "fallback": ["voice_aliyun"]}
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def vendor_env(fake: v.VendorFake) -> dict[str, str]:
    return {
        "SC_CLOUD_ALIYUN__ACCESS_KEY_ID": v.ALIYUN_KEY_ID,
        "SC_CLOUD_ALIYUN__ACCESS_KEY_SECRET": v.ALIYUN_SECRET,
        "SC_CLOUD_ALIYUN__SMS_ENDPOINT": fake.url("sms_aliyun"),
        "SC_CLOUD_ALIYUN__SMS_SIGN_NAME": v.SMS_SIGN,
        "SC_CLOUD_ALIYUN__SMS_TEMPLATE_CODE": v.SMS_TEMPLATE,
        "SC_CLOUD_ALIYUN__VOICE_ENDPOINT": fake.url("voice_aliyun"),
        "SC_CLOUD_ALIYUN__VOICE_TTS_CODE": v.TTS_CODE,
        "SC_CLOUD_ALIYUN__VOICE_SHOW_NUMBER": v.SHOW_NUMBER,
        "SC_CLOUD_WECOM_URL": fake.url("wecom"),
        "SC_CLOUD_CASE_URL": "https://duty.example.cn/?alarm={id}",
    }


def gateway_of(text: str) -> int | None:
    found = WHERE.search(text)
    return int(found.group(1)) if found else None


def run(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    broker = Mosquitto()
    site = write_site(workdir / "site.yaml", opts.fires, 2)  # a call button and a smoke alarm
    for spec in site:
        broker.users[spec.id] = f"pw-{spec.id}-{os.urandom(4).hex()}"
    cloud_password = broker.add_user("cloud")
    fake = v.VendorFake(limits=dict(v.DOCUMENTED_LIMITS) if opts.vendor_limits else {})
    exits = contextlib.ExitStack()
    try:
        broker.start()
        exits.callback(broker.cleanup)
        fake.start()
        exits.callback(fake.stop)
        gateways = start_gateways(site, dict(broker.users), broker.port)
        for gw in gateways:
            exits.callback(gw.stop)
        env = {k: val for k, val in os.environ.items() if not k.startswith("SC_CLOUD_")}
        env.update(
            {
                "SC_CLOUD_RULES_FILE": str(fire_rules(workdir)),
                "SC_CLOUD_MQTT_HOST": "127.0.0.1",
                "SC_CLOUD_MQTT_PORT": str(broker.port),
                "SC_CLOUD_MQTT_USERNAME": "cloud",
                "SC_CLOUD_MQTT_PASSWORD": cloud_password,
                "SC_CLOUD_MQTT_CLIENT_ID": "bench-notify-cloud",
                "SC_CLOUD_DATABASE": str(workdir / "cloud.db"),
                "SC_CLOUD_TELEMETRY_URL": f"sqlite:///{workdir / 'telemetry.db'}",
                "SC_CLOUD_SITE_FILE": str(workdir / "site.yaml"),
                "SC_CLOUD_WEB_HOST": "127.0.0.1",
                "SC_CLOUD_WEB_PORT": "0",
                "SC_CLOUD_SESSION_SECRET": os.urandom(16).hex(),
                "SC_CLOUD_BOOTSTRAP_USERS": json.dumps({BENCH_USER: ["operator", BENCH_PASSWORD]}),
                "PYTHONUNBUFFERED": "1",
                **vendor_env(fake),
            }
        )
        cloud = Child("cloud", [sys.executable, "-m", "cloud"], workdir / "cloud.log", env=env)
        cloud.start(ready=r"duty room: (http://\S+)", timeout=90)
        exits.callback(cloud.stop)
        assert cloud.reader is not None
        cloud.reader.wait_for(r"^ingest connected", 60)
        say(f"cloud up; {opts.fires} fires, {opts.interval:g} s apart, to SMS + WeCom robot")
        sent: dict[int, float] = {}
        for index, gw in enumerate(gateways, start=1):
            [smoke] = gw.spec.of_kind("smoke")
            topic, payload = gw.event(smoke, str(uuid.uuid4()))
            sent[index] = time.time()  # the event's ts is utc_now() of the line above
            gw.send(topic, payload)
            time.sleep(opts.interval)
        fake.wait_for("sms_aliyun", opts.fires, timeout=BUDGET_S * 4)
        fake.wait_for("wecom", opts.fires, timeout=BUDGET_S * 4)
        time.sleep(0.5)  # nothing more should come; anything that does is counted below
        return collect(fake, sent)
    finally:
        exits.close()


def collect(fake: v.VendorFake, sent: dict[int, float]) -> dict[str, Any]:
    firsts: dict[str, dict[int, float]] = {}
    counts: dict[str, int] = {}
    for product in ("sms_aliyun", "wecom", "voice_aliyun"):
        got = fake.received(product)
        counts[product] = len(got)
        mine: dict[int, float] = {}
        for item in got:
            gw = gateway_of(item.text)
            if gw is not None and gw in sent:
                mine.setdefault(gw, item.at)
        firsts[product] = mine
    sms = [firsts["sms_aliyun"][g] - t for g, t in sent.items() if g in firsts["sms_aliyun"]]
    robot = [firsts["wecom"][g] - t for g, t in sent.items() if g in firsts["wecom"]]
    reached = [
        max(firsts[a][g] for a in ("sms_aliyun", "wecom", "voice_aliyun") if g in firsts[a]) - t
        for g, t in sent.items()
        if sum(g in firsts[a] for a in ("sms_aliyun", "wecom", "voice_aliyun")) >= 2
    ]
    return {
        "fires": len(sent),
        "received": counts,
        "refusals": len(fake.refusals),
        "latency": {
            "sms": summary_ms(sms),
            "robot": summary_ms(robot),
            "two_channels": summary_ms(reached),
        },
        "reached_two": len(reached),
        "samples_s": {"sms": sms, "robot": robot, "two_channels": reached},
    }


def report(results: dict[str, Any], opts: argparse.Namespace) -> bool:
    lat = results["latency"]
    say(
        table(
            f"Fire alarm → vendor fake, {results['fires']} fires {opts.interval:g} s apart"
            " (event timestamp → the fake's receipt)",
            LATENCY_HEADERS,
            [
                latency_row("SMS (Aliyun SendSms)", lat["sms"]),
                latency_row("WeCom robot", lat["robot"]),
                latency_row("both channels (the later)", lat["two_channels"]),
            ],
        )
    )
    p99 = lat["two_channels"]["p99"]
    ok = results["reached_two"] == results["fires"] and p99 is not None and p99 <= BUDGET_S * 1000
    say(
        f"\nreached two channels: {results['reached_two']}/{results['fires']}; received"
        f" {results['received']}; vendor refusals {results['refusals']}; p99 two channels"
        f" {p99 if p99 is None else round(p99)} ms against the {BUDGET_S:g} s budget:"
        f" {'PASS' if ok else 'FAIL'}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.notify_latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--fires", type=int, default=20, help="smoke alarms, one per gateway")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between fires")
    parser.add_argument(
        "--vendor-limits", action="store_true", help="keep the vendors' documented rate limits"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    opts = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sc-notify-bench-"))
    try:
        results = run(opts, workdir)
    finally:
        if opts.keep:
            say(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    ok = report(results, opts)
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
