"""The fuzzer's junk: contract messages from one gateway's account, each mutated so that it is
invalid (docs/reliability.md lists the mutations)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contract.models import MAX_EVENT_BYTES, MAX_TELEMETRY_BYTES
from tests.faults.site import GATEWAYS

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


def now() -> str:
    """The current time as gateways write it (RFC 3339, UTC, milliseconds)."""
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
            "ts": now(),
            "kind": kind,
            "type": type_,
            "values": {},
            "clock_synced": True,
        }
        body.update(changes)
        return body

    def telemetry(self, readings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        self.seq += 1
        reading = {"device": "gas-01", "ts": now(), "kind": "gas", "values": {"ch4_pct_lel": 1.0}}
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
                {"device": "gas-01", "ts": now(), "kind": "gas", "values": {"ch4_pct_lel": 1.0}}
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
                "ts": now(),
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
            "ts": now(),
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
        reading = {"device": "gas-01", "ts": now(), "kind": "gas", "values": {"ch4_pct_lel": 1.0}}
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
