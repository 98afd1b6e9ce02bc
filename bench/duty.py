"""The duty-room side of the benchmark: signs in like the browser does, holds the live alarm
stream (SSE) and notes when each alarm message arrives, and reads the ingest counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


async def sign_in(base_url: str, user: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30.0))
    resp = await client.post("/api/login", json={"username": user, "password": password})
    resp.raise_for_status()
    return client


async def ingest_counts(client: httpx.AsyncClient) -> dict[str, int]:
    resp = await client.get("/api/stats")
    resp.raise_for_status()
    body = resp.json()
    counts = dict(body["ingest"])
    counts.update({f"rejected.{k}": v for k, v in body.get("rejected", {}).items()})
    return counts


def shown_at(arrivals: dict[str, float], order: dict[str, list[str]]) -> dict[str, float]:
    """When each event was on the live stream: the first alarm message naming it or a later
    event of the same device. The cloud sends one message per alarm per group commit, with
    its final state, so in a burst an alarm's repeats share one message: the page showed the
    state that includes the event. `order`: each device's event ids in the order sent."""
    out: dict[str, float] = {}
    for ids in order.values():
        best: float | None = None
        for event_id in reversed(ids):
            at = arrivals.get(event_id)
            if at is not None and (best is None or at < best):
                best = at
            if best is not None:
                out[event_id] = best
    return out


@dataclass
class AlarmStream:
    """One live page: GET /api/alarms/stream, reconnecting as a browser's EventSource does."""

    client: httpx.AsyncClient
    #: last_event_id → arrival time (time.time()) of the first alarm message naming it
    arrivals: dict[str, float] = field(default_factory=dict)
    messages: int = 0
    #: alarm messages whose alarm already carries `pushed_at`
    with_pushed_at: int = 0
    snapshots: int = 0
    connects: int = 0
    errors: list[str] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sse")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._once()
            except (httpx.HTTPError, ValueError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.connected.clear()
            await asyncio.sleep(0.5)

    async def _once(self) -> None:
        headers = {"Accept": "text/event-stream"}
        timeout = httpx.Timeout(30.0, read=None)
        async with self.client.stream(
            "GET", "/api/alarms/stream", headers=headers, timeout=timeout
        ) as resp:
            resp.raise_for_status()
            self.connects += 1
            kind = "message"
            data: list[str] = []
            async for line in resp.aiter_lines():
                if line == "":
                    if data:
                        self._message(kind, "\n".join(data), time.time())
                    kind, data = "message", []
                elif line.startswith(":"):
                    continue
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))

    def _message(self, kind: str, data: str, now: float) -> None:
        if kind == "snapshot":
            self.snapshots += 1
            self.connected.set()
            return
        if kind != "alarm":
            return
        self.messages += 1
        body: dict[str, Any] = json.loads(data)
        if body["alarm"].get("pushed_at") is not None:
            self.with_pushed_at += 1
        event_id = body["alarm"].get("last_event_id")
        if event_id and event_id not in self.arrivals:
            self.arrivals[event_id] = now
