"""What the board benchmark raises: every (device, rule) pair of the generated street that can
hold an open alarm, in a seeded random order, published as a v2 event by its gateway."""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench.load import Gateway
from bench.sitegen import BenchDevice
from contract import topics
from contract.models import Event, EventType, Kind, Values, encode, utc_now

#: What each kind of device can raise, one open alarm per (device, rule).
TYPES = {
    "call": [EventType.PRESS, EventType.FAULT, EventType.TAMPER, EventType.BATTERY_LOW],
    "smoke": [EventType.ALARM, EventType.FAULT, EventType.TAMPER, EventType.BATTERY_LOW],
    "gas": [EventType.ALARM, EventType.FAULT, EventType.TAMPER, EventType.BATTERY_LOW],
    "air": [EventType.FAULT, EventType.TAMPER, EventType.BATTERY_LOW],
}


@dataclass
class Combo:
    gateway: Gateway
    device: BenchDevice
    type: EventType


def combos(gateways: list[Gateway], seed: int) -> list[Combo]:
    out = [
        Combo(gw, device, kind)
        for gw in gateways
        for device in gw.spec.devices
        for kind in TYPES[device.kind]
    ]
    random.Random(seed).shuffle(out)
    return out


def publish(combo: Combo, event_id: str) -> None:
    gw = combo.gateway
    values = (
        Values(ch4_pct_lel=42.0)
        if combo.type is EventType.ALARM and combo.device.kind == "gas"
        else Values()
    )
    message = Event(
        v=2,
        id=event_id,
        gateway=gw.id,
        device=combo.device.id,
        boot=gw.boot,
        seq=gw.next_event_seq(),
        ts=utc_now(),
        kind=Kind(combo.device.kind),
        type=combo.type,
        values=values,
    )
    gw.send(topics.event(gw.id), encode(message))
