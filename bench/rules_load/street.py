"""The rules benchmark's street: its site and rules files, and the plan of messages it sends
(events at a rate, telemetry per gateway, a burst of smoke alarms)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from cloud.settings import DEFAULT_RULES
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
