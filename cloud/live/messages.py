"""Every message the duty-room pages get on the live stream, built here and serialised once:
the same bytes go to every open page (`LiveHub`) and onto the wire as a server-sent event."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloud.alarms.model import Alarm


@dataclass(frozen=True, slots=True)
class LiveMessage:
    """One server-sent event: its name and its JSON `data` (which repeats the name as
    `type`, for pages that read the data alone)."""

    event: str
    data: str

    def frame(self) -> str:
        """The event on the wire."""
        return f"event: {self.event}\ndata: {self.data}\n\n"

    def body(self) -> dict[str, Any]:
        """The data, read back (for tests and logs)."""
        body: dict[str, Any] = json.loads(self.data)
        return body


def _message(event: str, fields: dict[str, Any]) -> LiveMessage:
    return LiveMessage(event, json.dumps({"type": event, **fields}, ensure_ascii=False))


def alarm_changed(alarm: Alarm) -> LiveMessage:
    """An alarm raised, repeated, accepted, escalated, resolved…: its whole current state."""
    return LiveMessage("alarm", '{"type":"alarm","alarm":' + alarm.model_dump_json() + "}")


def call_changed(call: dict[str, Any]) -> LiveMessage:
    """A voice call offered, ringing, answered, connected or ended (cloud/voice/desk.py)."""
    return _message("call", {"call": call})


def gateway_state(gateway: str, state: str) -> LiveMessage:
    return _message("gateway", {"gateway": gateway, "state": state})


def broker_state(connected: bool, down_since: float | None) -> LiveMessage:
    """Whether alarms can reach the board at all: the cloud's link to its broker."""
    since = (
        None
        if down_since is None
        else datetime.fromtimestamp(down_since, UTC).isoformat().replace("+00:00", "Z")
    )
    return _message("broker", {"connected": connected, "down_since": since})


def notified(key: str, reason: str, step: int, target: str, name: str, alarm: Alarm) -> LiveMessage:
    """A notification of an alarm's plan delivered to the duty room (the push channel)."""
    return LiveMessage(
        "notify",
        json.dumps(
            {
                "type": "notify",
                "key": key,
                "reason": reason,
                "step": step,
                "to": {"target": target, "name": name},
            },
            ensure_ascii=False,
        )[:-1]
        + ',"alarm":'
        + alarm.model_dump_json()
        + "}",
    )
