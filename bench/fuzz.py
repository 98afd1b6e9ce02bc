"""`python -m bench.fuzz`: junk from one gateway's account to the real cloud while another
gateway raises valid smoke alarms.

    .venv/bin/python -m bench.fuzz --count 100000

The system is the fault suite's (tests/faults/): Mosquitto from the shipped configuration
(ACL included), `python -m cloud`. Gateway gw-f01's account (valid password, its own topic
subtree, so the broker lets it through) publishes `--count` mutated contract messages as fast
as the broker takes them; meanwhile gw-f02's account publishes a valid smoke alarm every
`--valid-every-s`, and a signed-in operator holds the live alarm stream. Printed:
- crashes: the cloud process died, tracebacks in its log, `internal_error` rejects;
- alarms raised by invalid input (everything gw-f01 sends is invalid by construction) and
  invalid messages the cloud stored as if valid;
- rejects by reason (`GET /api/stats`);
- the delay of each valid alarm (published → on the operator's live stream), and whether the
  cloud stored every one;
- the cloud's memory (RSS) before and after the flood.
docs/reliability.md lists the mutations and the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sqlite3
import statistics
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from bench.duty import AlarmStream, ingest_counts, sign_in
from contract.models import MAX_EVENT_BYTES, MAX_TELEMETRY_BYTES
from tests.faults.procs import CLOUD_USER
from tests.faults.site import GATEWAYS
from tests.faults.stack import Options, Stack

JUNK_GATEWAY, VALID_GATEWAY = GATEWAYS
OWN = [
    ("smoke-01", "smoke", "alarm"),
    ("smoke-02", "smoke", "alarm"),
    ("gas-01", "gas", "alarm"),
    ("call-01", "call", "press"),
]

#: Times no gateway can have meant: boundaries of the RFC 3339 range, the epoch, leap seconds,
#: impossible dates, no offset, offsets out of range.
ABSURD_TIMES = [
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "1970-01-01T08:00:00+08:00",
    "2016-12-31T23:59:60Z",
    "1998-12-31T23:59:60.5Z",
    "2026-02-30T12:00:00Z",
    "2026-11-22T24:00:01Z",
    "2026-11-22T04:15:00",
    "2026-11-22T04:15:00+24:00",
    "+275760-09-13T00:00:00Z",
    "2126-01-01T00:00:00Z",
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Junk:
    """Mutated contract messages from `gateway` (every one invalid by construction)."""

    rng: random.Random
    gateway: str = JUNK_GATEWAY
    other: str = VALID_GATEWAY
    boot: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    seq: int = 0

    def event(self, **changes: Any) -> dict[str, Any]:
        device, kind, type_ = self.rng.choice(OWN)
        self.seq += 1
        body: dict[str, Any] = {
            "v": 1,
            "id": str(uuid.uuid4()),
            "gateway": self.gateway,
            "device": device,
            "boot": self.boot,
            "seq": self.seq,
            "ts": _now(),
            "kind": kind,
            "type": type_,
            "values": {},
            "clock_synced": True,
        }
        body.update(changes)
        return body

    def telemetry(self, readings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        self.seq += 1
        reading = {"device": "gas-01", "ts": _now(), "kind": "gas", "values": {"ch4_pct_lel": 1.0}}
        return {
            "v": 1,
            "id": str(uuid.uuid4()),
            "gateway": self.gateway,
            "boot": self.boot,
            "seq": self.seq,
            "readings": readings if readings is not None else [reading],
        }

    def topic(self, channel: str = "event") -> str:
        return f"sc/v1/{self.gateway}/{channel}"

    # -- the mutations: each returns (topic, payload) ----------------------------------------

    def malformed_json(self) -> tuple[str, bytes]:
        text = json.dumps(self.event())
        choice = self.rng.randrange(7)
        if choice == 0:
            payload = self.rng.randbytes(self.rng.randrange(1, 300))
        elif choice == 1:
            payload = text.replace('"', "'").encode()
        elif choice == 2:
            payload = (text[:-1] + ",}").encode()
        elif choice == 3:
            payload = b""
        elif choice == 4:
            payload = self.rng.choice([b"null", b"[]", b"0", b'"event"', b"true", b"{}"])
        elif choice == 5:
            payload = text.encode() + b"{}"
        else:
            payload = b"\xef\xbb\xbf" + text.encode("utf-16")
        return self.topic(self.rng.choice(["event", "telemetry", "status", "reply"])), payload

    def truncated(self) -> tuple[str, bytes]:
        text = json.dumps(self.event()).encode()
        return self.topic(), text[: self.rng.randrange(1, len(text) - 1)]

    def oversize(self) -> tuple[str, bytes]:
        if self.rng.random() < 0.02:
            readings = [
                {"device": "gas-01", "ts": _now(), "kind": "gas", "values": {"ch4_pct_lel": 1.0}}
            ] * 900
            body = self.telemetry(readings)
            body["pad"] = "x" * (MAX_TELEMETRY_BYTES - len(json.dumps(body)) + 10)
            return self.topic("telemetry"), json.dumps(body).encode()
        body = self.event()
        body["values"] = {"ch4_pct_lel": 1.0}
        pad = MAX_EVENT_BYTES + self.rng.randrange(1, 20000)
        body["id"] = "x" * pad if self.rng.random() < 0.5 else body["id"]
        if len(json.dumps(body)) <= MAX_EVENT_BYTES:
            body["pad"] = "y" * pad
        return self.topic(), json.dumps(body).encode()

    def wrong_type(self) -> tuple[str, bytes]:
        # each field of an event with values of the wrong JSON type for it
        wrong: list[tuple[str, list[object]]] = [
            ("seq", ["5", 5.5, True, None, [5]]),
            ("ts", [1763784900, True, None, {"t": 1}]),
            ("kind", [3, ["smoke"], None, {"kind": "smoke"}]),
            ("values", [[], "x", 1, None]),
            ("clock_synced", ["yes", 1, None]),
            ("id", [123, None, ["id"]]),
            ("boot", [{}, 7]),
            ("device", [7, None, True]),
            ("gateway", [None, 1, [self.gateway]]),
            ("type", [None, 1, "ALARM"]),
            ("v", [3, "1", None]),
            ("replayed", ["no", 0]),
        ]
        name, values = self.rng.choice(wrong)
        return self.topic(), json.dumps(self.event(**{name: self.rng.choice(values)})).encode()

    def unknown_field(self) -> tuple[str, bytes]:
        if self.rng.random() < 0.5:
            body = self.event(**{self.rng.choice(["priority", "level", "__proto__", "$where"]): 1})
        else:
            body = self.event(values={"ch4_ppm": 3.0})
        return self.topic(), json.dumps(body).encode()

    def duplicate_key(self) -> tuple[str, bytes]:
        body = self.event()
        key, first, last = self.rng.choice(
            [
                ("gateway", self.other, self.gateway),
                ("gateway", self.gateway, self.other),
                ("kind", "air", body["kind"]),
                ("type", "test", body["type"]),
                ("device", "smoke-99", body["device"]),
                ("seq", 1, body["seq"]),
            ]
        )
        body[key] = last
        text = json.dumps(body)
        return self.topic(), ("{" + f'"{key}": {json.dumps(first)}, ' + text[1:]).encode()

    def absurd_time(self) -> tuple[str, bytes]:
        ts = self.rng.choice(ABSURD_TIMES)
        choice = self.rng.randrange(4)
        if choice == 0:
            reading = {"device": "gas-01", "ts": ts, "kind": "gas", "values": {"ch4_pct_lel": 30.0}}
            return self.topic("telemetry"), json.dumps(self.telemetry([reading])).encode()
        if choice == 1:
            status = {
                "v": 1,
                "gateway": self.gateway,
                "state": "offline",
                "boot": self.boot,
                "ts": ts,
            }
            return self.topic("status"), json.dumps(status).encode()
        # a valid-looking life-safety event of its own devices, at an absurd time
        return self.topic(), json.dumps(self.event(ts=ts)).encode()

    def huge_number(self) -> tuple[str, bytes]:
        choice = self.rng.randrange(4)
        if choice == 0:
            body = self.event(seq=self.rng.choice([2**64, -1, 2**53 + 1, 10**400]))
            return self.topic(), json.dumps(body).encode()
        if choice == 1:
            body = self.event(values={"ch4_pct_lel": self.rng.choice([1e308, -1.0, 101.0])})
            return self.topic(), json.dumps(body).encode()
        literal = self.rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-0.0e-99999"])
        text = json.dumps(self.event(values={"ch4_pct_lel": 12345.5}))
        text = text.replace("12345.5", literal)
        if literal == "-0.0e-99999":  # a valid zero: make the message invalid elsewhere
            text = text.replace('"v": 1', '"v": NaN')
        return self.topic(), text.encode()

    def deep_nesting(self) -> tuple[str, bytes]:
        depth = self.rng.randrange(100, 1900)
        opener, closer = self.rng.choice([("[", "]"), ('{"a":', "}")])
        nested = opener * depth + "1" + closer * depth
        text = json.dumps(self.event(values={"ch4_pct_lel": 0.5}))
        text = text.replace('{"ch4_pct_lel": 0.5}', nested)
        return self.topic(), text.encode()

    def unicode_junk(self) -> tuple[str, bytes]:
        choice = self.rng.randrange(5)
        if choice == 0:
            body = self.event(
                device=self.rng.choice(
                    ["смоук-01", "smoke-01\u200b", "烟感-01", "smoke\u202e10-", "smoke-01\u0000"]
                )
            )
            return self.topic(), json.dumps(body, ensure_ascii=False).encode()
        if choice == 1:
            text = json.dumps(self.event()).replace(self.gateway, self.gateway + "\\ud800", 1)
            return self.topic(), text.encode()
        if choice == 2:
            text = json.dumps(self.event())
            return self.topic(), text.encode().replace(b'"type"', b'"ty\xff\xfepe"')
        if choice == 3:
            return self.topic(), json.dumps(self.event(type="alarm\u0301")).encode()
        return self.topic(), json.dumps(self.event(kind="\U0001f525")).encode()

    def wrong_topic(self) -> tuple[str, bytes]:
        topic = self.rng.choice(
            [
                f"sc/v1/{self.gateway}/alarm",
                f"sc/v1/{self.gateway}/event/extra",
                f"sc/v1/{self.gateway}",
                f"sc/v1/{self.other}/event",
                f"sc/v2/{self.gateway}/event",
                f"sc/v1/{self.gateway}/cmd/config",
                f"sc/v1/{self.gateway}/status/x",
                "sc/v1",
                f"sc/v1/{self.gateway.upper()}/event",
            ]
        )
        return topic, json.dumps(self.event()).encode()

    def other_gateway(self) -> tuple[str, bytes]:
        return self.topic(), json.dumps(self.event(gateway=self.other)).encode()

    def unregistered_device(self) -> tuple[str, bytes]:
        device = self.rng.choice(["smoke-99", "ghost", "call-0101", "air-01x"])
        if self.rng.random() < 0.3:
            reading = {
                "device": device,
                "ts": _now(),
                "kind": "gas",
                "values": {"ch4_pct_lel": 50.0},
            }
            return self.topic("telemetry"), json.dumps(self.telemetry([reading])).encode()
        return self.topic(), json.dumps(self.event(device=device)).encode()

    def status_junk(self) -> tuple[str, bytes]:
        status: dict[str, Any] = {
            "v": 1,
            "gateway": self.gateway,
            "state": "offline",
            "boot": self.boot,
            "ts": _now(),
        }
        name, value = self.rng.choice(
            [
                ("state", "burning"),
                ("state", None),
                ("boot", "b@d boot"),
                ("gateway", self.other),
                ("extra", True),
                ("ts", None),
                ("v", 9),
                ("state", "OFFLINE"),
            ]
        )
        status[name] = value
        return self.topic("status"), json.dumps(status).encode()

    def reply_junk(self) -> tuple[str, bytes]:
        reply: dict[str, Any] = {
            "v": 1,
            "id": str(uuid.uuid4()),
            "gateway": self.gateway,
            "ok": True,
            "detail": "",
        }
        name, value = self.rng.choice(
            [
                ("detail", "x" * 501),
                ("ok", "true"),
                ("id", "short"),
                ("gateway", self.other),
                ("extra", 1),
            ]
        )
        reply[name] = value
        return self.topic("reply"), json.dumps(reply).encode()

    def telemetry_junk(self) -> tuple[str, bytes]:
        reading = {"device": "gas-01", "ts": _now(), "kind": "gas", "values": {"ch4_pct_lel": 1.0}}
        choice = self.rng.randrange(4)
        if choice == 0:
            body = self.telemetry([])
        elif choice == 1:
            body = self.telemetry([{**reading, "values": {}}])
        elif choice == 2:
            body = self.telemetry([reading] * 1001)
        else:
            body = self.telemetry([{**reading, "kind": "volcano"}])
        return self.topic("telemetry"), json.dumps(body).encode()

    def spoofed_kind(self) -> tuple[str, bytes]:
        return self.topic(), json.dumps(self.event(kind="gateway", type="alarm")).encode()

    MUTATIONS: tuple[str, ...] = (
        "malformed_json",
        "truncated",
        "oversize",
        "wrong_type",
        "unknown_field",
        "duplicate_key",
        "absurd_time",
        "huge_number",
        "deep_nesting",
        "unicode_junk",
        "wrong_topic",
        "other_gateway",
        "unregistered_device",
        "status_junk",
        "reply_junk",
        "telemetry_junk",
        "spoofed_kind",
    )

    def messages(self, count: int) -> Iterator[tuple[str, str, bytes]]:
        """(mutation, topic, payload), `count` of them, mutations in turn at random."""
        for _ in range(count):
            name = self.rng.choice(self.MUTATIONS)
            mutate: Callable[[], tuple[str, bytes]] = getattr(self, name)
            topic, payload = mutate()
            yield name, topic, payload


def reaches_cloud(topic: str, gateway: str = JUNK_GATEWAY) -> bool:
    """Whether the shipped ACL lets `gateway` publish there and the cloud subscribes to it."""
    return topic in {f"sc/v1/{gateway}/{c}" for c in ("status", "event", "telemetry", "reply")}


# -- the run -------------------------------------------------------------------------------------


class Client:
    """A gateway's MQTT account (paho, QoS 1), keeping at most `window` publishes unanswered."""

    def __init__(self, port: int, user: str, password: str, window: int = 500):
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv311
        )
        self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(100)
        self.connected = threading.Event()
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError(f"{user} could not connect")
        self.window = window
        self._open: deque[mqtt.MQTTMessageInfo] = deque()

    def publish(self, topic: str, payload: bytes) -> None:
        self._open.append(self.client.publish(topic, payload, qos=1))
        while len(self._open) > self.window:
            self._open.popleft().wait_for_publish(60)

    def flush(self) -> None:
        while self._open:
            self._open.popleft().wait_for_publish(60)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class ValidAlarm:
    id: str
    device: str
    published_at: float
    during_flood: bool


class ValidSender:
    """gw-f02 raises a valid smoke alarm every `every_s` (its smoke alarms in turn)."""

    def __init__(self, port: int, password: str, every_s: float, flood: threading.Event):
        self.client = Client(port, VALID_GATEWAY, password, window=10)
        self.every_s = every_s
        self.flood = flood
        self.boot = uuid.uuid4().hex[:16]
        self.sent: list[ValidAlarm] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def send_one(self) -> ValidAlarm:
        n = len(self.sent) + 1
        device = f"smoke-{(n - 1) % 8 + 1:02d}"
        alarm_id = str(uuid.uuid4())
        body = {
            "v": 1,
            "id": alarm_id,
            "gateway": VALID_GATEWAY,
            "device": device,
            "boot": self.boot,
            "seq": n,
            "ts": _now(),
            "kind": "smoke",
            "type": "alarm",
        }
        alarm = ValidAlarm(alarm_id, device, time.time(), self.flood.is_set())
        self.sent.append(alarm)
        self.client.publish(f"sc/v1/{VALID_GATEWAY}/event", json.dumps(body).encode())
        return alarm

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.send_one()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.flush()
        self.client.close()


@dataclass
class FuzzReport:
    count: int
    reaching: int  # junk messages on topics the ACL lets through to the cloud
    by_mutation: dict[str, int]
    publish_s: float  # publishing the junk
    processed_s: float | None  # until the cloud had handled all of it (None: it did not)
    cloud_died: bool
    tracebacks: int
    internal_errors: int
    rejected: dict[str, int]
    dropped: int  # a flooding gateway's messages over its rate: counted, not checked
    put_aside: int  # a flooding gateway's messages acknowledged to the broker before checking
    junk_stored: dict[str, int]  # invalid messages the cloud stored as if valid, per table
    junk_alarms: list[dict[str, Any]]  # alarms raised by invalid input
    valid_sent: int
    valid_stored: int
    valid_delays_s: list[float]  # published → on the live stream, during the flood
    valid_missing: int  # valid alarms never seen on the live stream
    rss_before_mb: float
    rss_after_mb: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def max_delay_s(self) -> float | None:
        return max(self.valid_delays_s) if self.valid_delays_s else None

    @property
    def lag_s(self) -> float | None:
        """How long after the last junk was published the cloud finished handling the flood."""
        return None if self.processed_s is None else max(0.0, self.processed_s - self.publish_s)

    def text(self) -> str:
        def ms(values: list[float], q: float) -> str:
            if not values:
                return "-"
            ordered = sorted(values)
            return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.2f}"

        d = self.valid_delays_s
        lines = [
            f"junk: {self.count} messages ({self.reaching} on topics the ACL lets through),"
            f" published in {self.publish_s:.1f} s; the cloud handled them by"
            f" {'never' if self.processed_s is None else f'{self.processed_s:.1f} s'}",
            f"crashes: cloud died {'YES' if self.cloud_died else 'no'}, tracebacks in its log"
            f" {self.tracebacks}, internal_error rejects {self.internal_errors}",
            f"rejects by reason: {json.dumps(dict(sorted(self.rejected.items())))}",
            f"flood control: {self.put_aside} put aside for the flooding gateway,"
            f" {self.dropped} of them over its rate (counted, not checked)",
            f"invalid input stored as valid: {json.dumps(self.junk_stored)};"
            f" alarms raised by invalid input: {len(self.junk_alarms)}",
        ]
        for alarm in self.junk_alarms[:5]:
            lines.append(f"  e.g. {json.dumps(alarm, ensure_ascii=False)}")
        lines += [
            f"valid smoke alarms of {VALID_GATEWAY}: {self.valid_sent} sent, {self.valid_stored}"
            f" stored, {self.valid_missing} never on the live stream",
            f"  delay during the flood (published → live stream), s: n={len(d)}"
            f" p50 {ms(d, 0.5)} p95 {ms(d, 0.95)} max {ms(d, 1.0)}"
            + (f" mean {statistics.fmean(d):.2f}" if d else ""),
            f"cloud memory (RSS): {self.rss_before_mb:.0f} MB before,"
            f" {'-' if self.rss_after_mb is None else f'{self.rss_after_mb:.0f}'} MB after",
            f"by mutation: {json.dumps(self.by_mutation)}",
            *self.notes,
        ]
        return "\n".join(lines)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=100_000, help="junk messages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--valid-every-s",
        type=float,
        default=0.5,
        help="the other gateway's valid smoke alarm period",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=900.0,
        help="how long to wait for the cloud to handle the flood",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    report = asyncio.run(
        run_fuzz(
            args.count,
            seed=args.seed,
            valid_every_s=args.valid_every_s,
            settle_s=args.settle_s,
            keep=args.keep,
        )
    )
    print()
    print(report.text())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report.__dict__, out, indent=2, ensure_ascii=False, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
