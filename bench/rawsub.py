"""A bare paho subscriber run as its own process: counts messages (and, with --ids, records
each message's `id` with its arrival time). Prints `ready` once subscribed, then one JSON line
with the result when --count messages arrived, its stdin is closed (the benchmark asks for
the result), or nothing arrived for --idle seconds; it exits when its stdin is closed.

    python -m bench.rawsub --port 1883 --user cloud --password PW --topic 'sc/v1/+/event' \
        --count 1000 [--ids]

Messages whose payload contains `"id":"probe-` are not counted (readiness probes).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from bench.load import connect, paho_client

PROBE = b'"id":"probe-'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ids", action="store_true")
    parser.add_argument("--idle", type=float, default=120.0)
    parser.add_argument("--client-id", default="bench-rawsub")
    args = parser.parse_args(argv)

    state: dict[str, Any] = {"count": 0, "first": None, "last": None}
    arrivals: list[tuple[str, float]] = []
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        payload = message.payload
        if PROBE in payload:
            return
        if state["first"] is None:
            state["first"] = now
        state["last"] = now
        state["count"] += 1
        if args.ids:
            arrivals.append((json.loads(payload)["id"], now))
        if state["count"] >= args.count:
            done.set()

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, codes: Any, props: Any) -> None:
        subscribed.set()

    client = paho_client(args.client_id, args.user, args.password)
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    connect(client, args.port)
    client.subscribe([(t, 1) for t in args.topic])
    if not subscribed.wait(10):
        print("no SUBACK", file=sys.stderr)
        return 1
    print("ready", flush=True)

    eof = threading.Event()

    def stdin_closed() -> None:
        sys.stdin.read()
        eof.set()
        done.set()

    threading.Thread(target=stdin_closed, daemon=True).start()
    seen = -1
    while not done.wait(args.idle):
        if state["count"] == seen:  # nothing for a whole idle period: give up
            break
        seen = state["count"]
    client.disconnect()
    client.loop_stop()
    result = dict(state, ids=arrivals)
    print(json.dumps(result), flush=True)
    eof.wait(60)  # the benchmark reads this process's CPU time before it lets it exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
