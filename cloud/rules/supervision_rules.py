"""The cloud's own rules: its watch on devices and gateways (silent, offline), on events a
gateway never delivered, and on gateways that keep sending what is refused; their rule ids are
reserved (a rules file may not reuse them). `cloud/rules/supervision.py` runs the watch.
"""

from __future__ import annotations

from pydantic import Field

from cloud.rules.fields import Level, Seconds, Slug, Strict
from contract.models import Kind

#: Rule ids the cloud raises itself (supervision); a rules file may not reuse them.
DEVICE_SILENT = "device_silent"
GATEWAY_OFFLINE = "gateway_offline"
EVENTS_MISSING = "events_missing"
INVALID_INPUT = "invalid_input"
CHECKIN_MISSED = "checkin_missed"  # a resident living alone did not check in (cloud/duty/)
RESERVED = frozenset(
    {DEVICE_SILENT, GATEWAY_OFFLINE, EVENTS_MISSING, INVALID_INPUT, CHECKIN_MISSED}
)


class DeviceSilence(Strict):
    """The cloud's own watch on devices that report periodically (telemetry)."""

    level: Level = 3
    zh: str = "设备失联"
    en: str = "Device silent"
    after_s: dict[Kind, Seconds] = Field(
        default_factory=dict, description="kind → silent after this long; absent: not watched"
    )
    models: dict[Slug, Seconds] = Field(default_factory=dict, description="per-model override")


class GatewayOffline(Strict):
    level: Level = 2
    zh: str = "网关离线"
    en: str = "Gateway offline"
    silent_after_s: Seconds = Field(
        300, description="Nothing at all from the gateway this long counts as offline too"
    )


class EventsMissing(Strict):
    """Events of a gateway (message version 2) that never arrived, though the cloud asked
    for them again: named by boot and seq range. An operator closes it."""

    level: Level = 3
    zh: str = "网关事件缺失"
    en: str = "Events missing from a gateway"


class InvalidInput(Strict):
    """A gateway whose messages keep being refused (junk, a wrong clock, a device removed
    from the registry…): one alarm, repeated at most every `within_s`. An operator closes it."""

    level: Level = 3
    zh: str = "网关发送大量无效消息"
    en: str = "Gateway sends many invalid messages"
    at_least: int = Field(100, ge=1, description="refused messages within `within_s`")
    within_s: Seconds = 60


class Supervision(Strict):
    device_silent: DeviceSilence = DeviceSilence()
    gateway_offline: GatewayOffline = GatewayOffline()
    events_missing: EventsMissing = EventsMissing()
    invalid_input: InvalidInput = InvalidInput()
