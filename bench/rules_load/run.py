"""The rules benchmark's run: the cloud in-process on a temporary folder, the plan fed to
`Ingest.handle()` at its times, a local server receiving the webhook, then the figures."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from bench.rules_load.report import pct, say
from bench.rules_load.street import Message, rules, schedule, site
from cloud.parts import Cloud, open_cloud
from cloud.settings import CloudSettings


class Receiver:
    """A local HTTP server taking the cloud's webhook posts, each with the time it arrived."""

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
