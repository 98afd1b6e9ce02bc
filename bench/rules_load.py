"""The rules core under load: `python -m bench.rules_load`.

A street of simulated buildings (one gateway each, a call button, a smoke alarm, a methane
detector and an air monitor per home) reports at design rates — events (heartbeats, test
presses, clears, faults and restores) at `--rate` per second and a telemetry batch per
gateway every 2 s (methane every 5 s, air every 10 s) — while a burst of `--burst` smoke
alarms from different homes of the street arrives within `--burst-window` seconds (GB/T
45839-2025 asks a platform to take 20 fire alarms in 60 s). Nobody accepts the fire alarms,
so each escalates when its acceptance budget runs out.

It drives the cloud's own message path in-process — `Ingest.handle()` (validation, the rules
core, the alarm book in SQLite with synchronous=FULL, the live push) with the escalator and
the webhook channel running — without MQTT, so the figures are the rules core's share. Arrival
is open-loop: messages are queued at their scheduled times and handled in order by one
consumer, as ingest does, so queueing delay counts. A local HTTP server receives the webhook.

Reported: alarm latency (arrival → the live push reaching a subscribed duty-room page),
per-message handling time, first notification to people (arrival → the grid worker's webhook
received), and the time from budget expiry to the escalation step being fired and to the
street supervisor's webhook being received. Every fire alarm must escalate exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from cloud.parts import Cloud, open_cloud
from cloud.settings import DEFAULT_RULES, CloudSettings
from contract import topics
from contract.models import Event, EventType, Kind, Reading, Telemetry, Values, encode

STREET = "jd-bench"


# ---- the street -------------------------------------------------------------------------------


def site(gateways: int, homes: int) -> dict[str, Any]:
    grids = []
    for g in range(0, gateways, 10):
        buildings = []
        for b in range(g, min(g + 10, gateways)):
            buildings.append(
                {
                    "id": f"b{b:04d}",
                    "name": f"{b + 1}栋",
                    "homes": [
                        {
                            "id": f"h{b:04d}-{h}",
                            "name": f"{h + 1}01",
                            "residents": [
                                {
                                    "name": f"住户{b}-{h}",
                                    "contacts": [
                                        {"name": f"家属{b}-{h}", "phone": "139 0000 0000"}
                                    ],
                                }
                            ],
                        }
                        for h in range(homes)
                    ],
                }
            )
        grids.append(
            {
                "id": f"g{g // 10:03d}",
                "name": f"第{g // 10 + 1}网格",
                "worker": {"name": f"网格员{g // 10 + 1}", "phone": "138 0000 0000"},
                "buildings": buildings,
            }
        )
    return {
        "street": {"id": STREET, "name": "压测街道"},
        "communities": [{"id": "c-bench", "name": "压测社区", "grids": grids}],
        "gateways": [
            {
                "id": f"gw-{b:04d}",
                "building": f"b{b:04d}",
                "profile": "rpi4-standard",
                "devices": [
                    {"id": f"{kind}-{h}", "model": model, "home": f"h{b:04d}-{h}"}
                    for h in range(homes)
                    for kind, model in (
                        ("call", "call_button_gpio"),
                        ("smoke", "smoke_dry_contact"),
                        ("gas", "gas_mcp3008"),
                        ("air", "air_pms5003"),
                    )
                ],
            }
            for b in range(gateways)
        ],
    }


def rules(budget_s: float) -> dict[str, Any]:
    data = dict(yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8")))
    for policy in data["policies"]:
        policy["budget_s"] = budget_s
    data["contacts"] = {
        "street_supervisors": {STREET: {"name": "值班长", "phone": "138 0000 0009"}}
    }
    return data


# ---- the load ------------------------------------------------------------------------------------


@dataclass(order=True)
class Message:
    at: float  # seconds after the start
    topic: str = field(compare=False)
    payload: bytes = field(compare=False)
    fire: bool = field(default=False, compare=False)


def _event(gateway: str, device: str, kind: Kind, type_: EventType, seq: int) -> bytes:
    return encode(
        Event(
            id=str(uuid.uuid4()),
            gateway=gateway,
            device=device,
            boot="bench",
            seq=seq,
            ts=datetime.now(UTC),
            kind=kind,
            type=type_,
        )
    )


def schedule(
    gateways: int, homes: int, seconds: float, rate: float, burst: int, window: float, seed: int
) -> list[Message]:
    rnd = random.Random(seed)
    out: list[Message] = []
    seq = 0
    kinds = [(Kind.CALL, "call"), (Kind.SMOKE, "smoke"), (Kind.GAS, "gas"), (Kind.AIR, "air")]
    # events at `rate`: heartbeats, tests, clears, restores and a few faults
    for i in range(int(rate * seconds)):
        gw = rnd.randrange(gateways)
        gateway = f"gw-{gw:04d}"
        seq += 1
        pick = rnd.random()
        if pick < 0.4:
            payload = _event(gateway, gateway, Kind.GATEWAY, EventType.HEARTBEAT, seq)
        else:
            kind, prefix = rnd.choice(kinds)
            device = f"{prefix}-{rnd.randrange(homes)}"
            type_ = (
                EventType.TEST
                if pick < 0.7
                else EventType.CLEAR
                if pick < 0.9 or kind is Kind.CALL
                else EventType.RESTORE
                if pick < 0.97
                else EventType.FAULT
            )
            payload = _event(gateway, device, kind, type_, seq)
        out.append(Message(i / rate, topics.event(gateway), payload))
    # telemetry: every gateway every 2 s, methane every 5 s and air every 10 s per home
    for gw in range(gateways):
        gateway = f"gw-{gw:04d}"
        offset = rnd.random() * 2
        t = offset
        while t < seconds:
            readings = []
            for h in range(homes):
                if int(t / 5) != int((t - 2) / 5) or t < 2:
                    readings.append(
                        Reading(
                            device=f"gas-{h}",
                            ts=datetime.now(UTC),
                            kind=Kind.GAS,
                            values=Values(ch4_pct_lel=round(rnd.uniform(0, 3), 2)),
                        )
                    )
                if int(t / 10) != int((t - 2) / 10) or t < 2:
                    readings.append(
                        Reading(
                            device=f"air-{h}",
                            ts=datetime.now(UTC),
                            kind=Kind.AIR,
                            values=Values(
                                pm25_ugm3=round(rnd.uniform(5, 40), 1),
                                pm10_ugm3=round(rnd.uniform(10, 60), 1),
                            ),
                        )
                    )
            if readings:
                seq += 1
                batch = Telemetry(
                    id=str(uuid.uuid4()), gateway=gateway, boot="bench", seq=seq, readings=readings
                )
                out.append(Message(t, topics.telemetry(gateway), encode(batch)))
            t += 2
    # the burst: `burst` smoke alarms from different homes within `window` seconds
    homes_all = [(gw, h) for gw in range(gateways) for h in range(homes)]
    for n, (gw, h) in enumerate(rnd.sample(homes_all, burst)):
        gateway = f"gw-{gw:04d}"
        at = 1.0 + n * window / burst
        seq += 1
        payload = _event(gateway, f"smoke-{h}", Kind.SMOKE, EventType.ALARM, seq)
        out.append(Message(at, topics.event(gateway), payload, fire=True))
    out.sort()
    return out


# ---- the webhook receiver --------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = time.time()
                with receiver._lock:
                    receiver.got.append((at, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- the run ------------------------------------------------------------------------------


def pct(values: list[float]) -> dict[str, float | int | None]:
    values = sorted(values)
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    if len(values) == 1:
        v = values[0]
        return {"n": 1, "p50": v, "p95": v, "p99": v, "max": v}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"n": len(values), "p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": values[-1]}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="sc-rules-load-"))
    (work / "site.yaml").write_text(
        yaml.safe_dump(site(args.gateways, args.homes), allow_unicode=True), encoding="utf-8"
    )
    (work / "rules.yaml").write_text(
        yaml.safe_dump(rules(args.budget_s), allow_unicode=True), encoding="utf-8"
    )
    receiver = Receiver()
    settings = CloudSettings(
        database=work / "cloud.db",
        telemetry_url=f"sqlite:///{work / 'telemetry.db'}",
        site_file=work / "site.yaml",
        rules_file=work / "rules.yaml",
        webhook_url=receiver.url,
    )
    plan = schedule(
        args.gateways,
        args.homes,
        args.seconds,
        args.rate,
        args.burst,
        args.burst_window,
        args.seed,
    )
    batches = sum(1 for m in plan if m.topic.endswith("/telemetry"))
    readings = sum(
        json.loads(m.payload)["readings"].__len__() for m in plan if m.topic.endswith("/telemetry")
    )
    say(
        f"{args.gateways} gateways, {args.gateways * args.homes * 4} devices; "
        f"{args.rate:g} events/s and {batches / args.seconds:.0f} telemetry batches/s "
        f"({readings / args.seconds:.0f} readings/s) for {args.seconds:g} s; "
        f"{args.burst} smoke alarms within {args.burst_window:g} s; budget {args.budget_s:g} s"
    )
    pushes: dict[int, float] = {}
    handle_s: list[float] = []
    fire_ids: set[int] = set()
    try:
        async with open_cloud(settings) as cloud:
            sub = cloud.hub.subscribe()

            async def page() -> None:  # a duty-room page reading the live push
                while True:
                    message = await sub.queue.get()
                    if message.event == "alarm":
                        pushes.setdefault(message.body()["alarm"]["id"], time.time())

            queue: asyncio.Queue[tuple[float, Message]] = asyncio.Queue()

            async def consume() -> None:  # one consumer, in order, as ingest's loop
                while True:
                    arrived, message = await queue.get()
                    started = time.time()
                    await cloud.ingest.handle(message.topic, message.payload, arrived)
                    handle_s.append(time.time() - started)
                    queue.task_done()

            async def housekeeping() -> None:  # what Ingest.run's side tasks do
                while True:
                    await asyncio.sleep(0.2)
                    await cloud.ingest.flush()
                    await cloud.ingest.tick()

            tasks = [
                asyncio.create_task(page()),
                asyncio.create_task(consume()),
                asyncio.create_task(housekeeping()),
                asyncio.create_task(cloud.escalator.run()),
            ]
            start = time.time()
            for message in plan:
                delay = start + message.at - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                queue.put_nowait((time.time(), message))
            await queue.join()
            say(f"load sent in {time.time() - start:.1f} s; waiting for the escalations")
            fire_ids = await _fire_ids(cloud)
            for _ in range(int((args.budget_s + 30) / 0.2)):
                if len(_steps(receiver, fire_ids, 1)) >= len(fire_ids):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            return await _results(cloud, receiver, fire_ids, pushes, handle_s, args)
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)


async def _fire_ids(cloud: Cloud) -> set[int]:
    return {a.id for a in await cloud.alarms.active() if a.rule == "smoke_alarm"}


def _steps(receiver: Receiver, ids: set[int], step: int) -> dict[int, list[float]]:
    got: dict[int, list[float]] = {}
    for at, body in list(receiver.got):
        if body["alarm"]["id"] in ids and body["step"] == step:
            got.setdefault(body["alarm"]["id"], []).append(at)
    return got


async def _results(
    cloud: Cloud,
    receiver: Receiver,
    fire_ids: set[int],
    pushes: dict[int, float],
    handle_s: list[float],
    args: argparse.Namespace,
) -> dict[str, Any]:
    alarms = {a.id: a for a in await cloud.alarms.active()}
    latency_all = [pushes[i] - a.received_at.timestamp() for i, a in alarms.items() if i in pushes]
    latency_fire = [pushes[i] - alarms[i].received_at.timestamp() for i in fire_ids if i in pushes]
    received = {i: alarms[i].received_at.timestamp() for i in fire_ids}
    first = _steps(receiver, fire_ids, 0)
    notify_s = [min(ts) - received[i] for i, ts in first.items()]
    escalated = _steps(receiver, fire_ids, 1)
    fired = [f for f in cloud.escalator.fired if f.alarm_id in fire_ids and f.step == 1]
    to_fired = [f.fired_at - f.due_at for f in fired]
    to_webhook = [min(ts) - (received[i] + args.budget_s) for i, ts in escalated.items()]
    keys = [body["key"] for _, body in receiver.got]
    return {
        "counts": dict(cloud.ingest.counts + cloud.announcer.counts),
        "rejected": dict(cloud.rejects.counts),
        "fire_alarms": len(fire_ids),
        "alarm_latency_fire_s": pct(latency_fire),
        "alarm_latency_all_s": pct(latency_all),
        "handle_s": pct(handle_s),
        "first_notification_s": pct(notify_s),
        "expiry_to_step_fired_s": pct(to_fired),
        "expiry_to_supervisor_webhook_s": pct(to_webhook),
        "escalated": len(escalated),
        "escalated_twice": sum(1 for ts in escalated.values() if len(ts) > 1),
        "duplicate_deliveries": len(keys) - len(set(keys)),
    }


def say(text: str) -> None:
    print(text, flush=True)


def _ms(row: dict[str, Any]) -> str:
    if not row["n"]:
        return "n=0"
    return (
        f"n={row['n']:<6} p50 {row['p50'] * 1000:8.2f} ms  p95 {row['p95'] * 1000:8.2f} ms  "
        f"p99 {row['p99'] * 1000:8.2f} ms  max {row['max'] * 1000:8.2f} ms"
    )


def report(r: dict[str, Any]) -> bool:
    c = r["counts"]
    say("")
    say(
        f"handled: {c.get('events', 0)} events, {c.get('telemetry_batches', 0)} batches "
        f"({c.get('readings', 0)} readings), {c.get('alarms_raised', 0)} alarms raised, "
        f"{c.get('alarm_repeats', 0)} repeats, {c.get('alarms_cleared', 0)} cleared; "
        f"rejected {sum(r['rejected'].values())}"
    )
    rows = [
        ("alarm latency, fire burst (arrival → live push at a page)", "alarm_latency_fire_s"),
        ("alarm latency, all alarms", "alarm_latency_all_s"),
        ("handling time per message", "handle_s"),
        ("first notification to people (arrival → grid worker webhook)", "first_notification_s"),
        ("budget expiry → escalation step fired", "expiry_to_step_fired_s"),
        ("budget expiry → street supervisor's webhook received", "expiry_to_supervisor_webhook_s"),
    ]
    for label, key in rows:
        say(f"{label:<64} {_ms(r[key])}")
    ok = (
        r["escalated"] == r["fire_alarms"]
        and r["escalated_twice"] == 0
        and r["duplicate_deliveries"] == 0
        and (r["first_notification_s"]["max"] or 99) < 15
    )
    say(
        f"fire alarms {r['fire_alarms']}, escalated {r['escalated']}, twice "
        f"{r['escalated_twice']}, duplicate deliveries {r['duplicate_deliveries']}: "
        f"{'OK' if ok else 'FAILED'}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rules_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gateways", type=int, default=100, help="buildings, one gateway each")
    parser.add_argument("--homes", type=int, default=4, help="homes per building (4 devices each)")
    parser.add_argument("--seconds", type=float, default=60, help="length of the load")
    parser.add_argument("--rate", type=float, default=50, help="events per second")
    parser.add_argument("--burst", type=int, default=20, help="smoke alarms in the burst")
    parser.add_argument("--burst-window", type=float, default=60, help="seconds the burst spans")
    parser.add_argument("--budget-s", type=float, default=10, help="acceptance budget (all levels)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.burst > args.gateways * args.homes:
        parser.error("more burst alarms than homes")
    try:
        results = asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    ok = report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
