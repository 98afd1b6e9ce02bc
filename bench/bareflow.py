"""The bare-flow peer: parse → threshold → republish, nothing else (no validation, no
registry, no store, no alarm book, no push). Run as its own process by `python -m bench
--peer`; the yardstick our full path is compared with.

One aiomqtt session (QoS 1, TCP_NODELAY, the library's automatic acknowledgement): each
message from `sc/v1/+/event` and `sc/v1/+/telemetry` is `json.loads`-ed; a call press, a
detector alarm, or a reading over the same instantaneous limits as our rules (methane ≥ 10 %
LEL, PM2.5 > 50 µg/m³, CO2 > 1000 ppm) is republished at QoS 1 on OUT_TOPIC. Publishes run
concurrently (up to 1000 waiting for their acknowledgement), as aiomqtt's `publish` waits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
from typing import Any

import aiomqtt

OUT_TOPIC = "sc/v1/bench-peer/alarm"
LIMITS = (("ch4_pct_lel", 10.0), ("pm25_ugm3", 50.0), ("co2_ppm", 1000.0))
ALARM_TYPES = frozenset({"press", "alarm"})


def alarms(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    if "readings" in data:
        for reading in data["readings"]:
            values = reading.get("values", {})
            for name, limit in LIMITS:
                if values.get(name, 0) > limit:
                    out.append({"id": data["id"], "device": reading["device"], "field": name})
    elif data.get("type") in ALARM_TYPES:
        out.append({"id": data["id"], "device": data["device"], "kind": data["kind"]})
    return out


async def run(port: int, user: str, password: str) -> None:
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        username=user,
        password=password,
        identifier="bench-bareflow",
        protocol=aiomqtt.ProtocolVersion.V311,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    ) as client:
        client.pending_calls_threshold = 100_000
        await client.subscribe("sc/v1/+/event", qos=1)
        await client.subscribe("sc/v1/+/telemetry", qos=1)
        print("ready", flush=True)
        slots = asyncio.Semaphore(1000)
        tasks: set[asyncio.Task[None]] = set()

        async def publish(body: bytes) -> None:
            try:
                await client.publish(OUT_TOPIC, body, qos=1)
            finally:
                slots.release()

        async for message in client.messages:
            try:
                data = json.loads(message.payload)
                found = alarms(data)
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
            for alarm in found:
                await slots.acquire()
                task = asyncio.create_task(publish(json.dumps(alarm).encode()))
                tasks.add(task)
                task.add_done_callback(tasks.discard)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.port, args.user, args.password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
