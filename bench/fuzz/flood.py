"""The fuzzer's run: start the system, flood it with junk while the other gateway raises valid
alarms, then gather the figures (from the cloud's stats, its live stream and its database)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil

from bench.duty import AlarmStream, ingest_counts, sign_in
from bench.fuzz.junk import JUNK_GATEWAY, VALID_GATEWAY, Junk, reaches_cloud
from bench.fuzz.report import FuzzReport
from bench.fuzz.senders import Client, ValidSender
from tests.faults.procs import CLOUD_USER
from tests.faults.stack import Options, Stack


def _rss_mb(pid: int) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


async def run_fuzz(
    count: int,
    *,
    seed: int = 1,
    valid_every_s: float = 0.5,
    settle_s: float = 600.0,
    keep: bool = False,
    say: Callable[[str], None] = print,
) -> FuzzReport:
    """The whole run: start the system, flood, measure, stop. Never raises for what the cloud
    does (a crash is a figure); raises if the system cannot be started."""
    rng = random.Random(seed)
    opts = Options(keep=keep, say=say)
    with Stack(opts, duration_s=0) as stack:
        await asyncio.to_thread(stack.start, agents=False)
        say(
            f"broker :{stack.broker.port} (shipped config), cloud {stack.cloud.url},"
            f" work folder {stack.workdir}"
        )
        name, _, password = CLOUD_USER
        http = await sign_in(stack.cloud.url, name, password)
        live = AlarmStream(http)
        live.start()
        await asyncio.wait_for(live.connected.wait(), 30)
        flood = threading.Event()
        sender = await asyncio.to_thread(
            ValidSender, stack.broker.port, stack.passwords[VALID_GATEWAY], valid_every_s, flood
        )
        try:
            # a valid alarm before the flood: the path works, and a baseline for memory
            first = await asyncio.to_thread(sender.send_one)
            await _until(lambda: first.id in live.arrivals, 30)
            rss_before = _rss_mb(stack.cloud.pid) or 0.0
            sender.start()
            junk = Junk(rng)
            by_mutation: Counter[str] = Counter()
            reaching = 0
            publisher = await asyncio.to_thread(
                Client, stack.broker.port, JUNK_GATEWAY, stack.passwords[JUNK_GATEWAY]
            )
            say(
                f"flooding {count} junk messages as {JUNK_GATEWAY}; {VALID_GATEWAY} raises a"
                f" valid smoke alarm every {valid_every_s:g} s"
            )

            def flood_all() -> None:
                nonlocal reaching
                flood.set()
                for mutation, topic, payload in junk.messages(count):
                    by_mutation[mutation] += 1
                    reaching += reaches_cloud(topic)
                    publisher.publish(topic, payload)
                publisher.flush()

            t0 = time.time()
            await asyncio.to_thread(flood_all)
            publish_s = time.time() - t0
            say(f"published in {publish_s:.1f} s; waiting for the cloud to handle it all")
            processed_s = await _processed(stack, http, reaching, sender, settle_s, t0, say)
            flood.clear()
            # two more valid alarms after the flood, then wait for all to be on the stream
            for _ in range(2):
                await asyncio.sleep(valid_every_s)
            sender.stop()
            await _until(lambda: all(a.id in live.arrivals for a in sender.sent), 60)
            await asyncio.to_thread(publisher.close)
            cloud_died = not stack.cloud.alive()
            rss_after = None if cloud_died else _rss_mb(stack.cloud.pid)
            rejected: dict[str, int] = {}
            counts: dict[str, int] = {}
            if not cloud_died:
                with contextlib.suppress(httpx.HTTPError):
                    counts = await ingest_counts(http)
                    rejected = {
                        k.removeprefix("rejected."): v
                        for k, v in counts.items()
                        if k.startswith("rejected.")
                    }

        finally:
            with contextlib.suppress(Exception):
                sender.stop()
            await live.stop()
            await http.aclose()
        valid_ids = {a.id for a in sender.sent}
        stored_valid, junk_stored, junk_alarms = _from_database(stack, valid_ids)
        delays = [
            live.arrivals[a.id] - a.published_at
            for a in sender.sent
            if a.during_flood and a.id in live.arrivals
        ]
        report = FuzzReport(
            count=count,
            reaching=reaching,
            by_mutation=dict(sorted(by_mutation.items())),
            publish_s=publish_s,
            processed_s=processed_s,
            cloud_died=cloud_died,
            tracebacks=stack.cloud_tracebacks(),
            internal_errors=rejected.get("internal_error", 0),
            rejected=rejected,
            dropped=counts.get("put_aside_dropped", 0),
            put_aside=counts.get("put_aside", 0),
            junk_stored=junk_stored,
            junk_alarms=junk_alarms,
            valid_sent=len(sender.sent),
            valid_stored=stored_valid,
            valid_delays_s=delays,
            valid_missing=sum(1 for a in sender.sent if a.id not in live.arrivals),
            rss_before_mb=rss_before,
            rss_after_mb=rss_after,
        )
        if cloud_died:
            report.notes.append(f"the cloud exited; its log: {stack.cloud.logs[-1]}")
        return report


async def _until(check: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return False


async def _processed(
    stack: Stack,
    http: httpx.AsyncClient,
    reaching: int,
    sender: ValidSender,
    within_s: float,
    t0: float,
    say: Callable[[str], None],
) -> float | None:
    """Seconds from the flood's start until the cloud had handled every junk message that
    reaches it (its `messages` count covers them and the valid alarms), or None."""
    deadline = time.monotonic() + within_s
    shown = time.monotonic()
    while time.monotonic() < deadline and stack.cloud.alive():
        try:
            counts = await ingest_counts(http)
        except httpx.HTTPError:
            counts = {}
        handled = counts.get("messages", 0)
        if handled >= reaching + len(sender.sent) - 1:  # the newest valid one may be in flight
            return time.time() - t0
        if time.monotonic() - shown > 10:
            say(f"  the cloud has handled {handled} of {reaching + len(sender.sent)}")
            shown = time.monotonic()
        await asyncio.sleep(0.2)
    return None


def _from_database(
    stack: Stack, valid_ids: set[str]
) -> tuple[int, dict[str, int], list[dict[str, Any]]]:
    db = sqlite3.connect(f"file:{stack.cloud.database}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        ids = list(valid_ids)
        stored = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            stored += db.execute(
                f"SELECT COUNT(*) FROM events WHERE id IN ({marks})", chunk
            ).fetchone()[0]
        junk_stored = {
            "events": db.execute(
                # (the harness's own readiness probe has boot "probe")
                "SELECT COUNT(*) FROM events WHERE gateway = ? AND boot != 'probe'",
                (JUNK_GATEWAY,),
            ).fetchone()[0],
            "telemetry_batches": db.execute(
                "SELECT COUNT(*) FROM telemetry_batches WHERE gateway = ?", (JUNK_GATEWAY,)
            ).fetchone()[0],
        }
        alarms = []
        for row in db.execute(
            "SELECT id, rule, level, gateway, device, first_event_id, device_ts, repeats"
            " FROM alarms ORDER BY id"
        ):
            if row["rule"] == "invalid_input":
                continue  # the alarm about the flood itself: wanted, not raised by junk
            if row["gateway"] == JUNK_GATEWAY or row["first_event_id"] not in valid_ids:
                alarm = dict(row)
                alarm["device_time"] = datetime.fromtimestamp(row["device_ts"], UTC).isoformat()
                alarms.append(alarm)
    finally:
        db.close()
    return stored, junk_stored, alarms
