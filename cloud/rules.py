"""The first rules core: events and readings in, alarm drafts out.

Pure and synchronous: no I/O, time comes in with the data, so it is easy to test and fast.
The rules themselves are configuration (`firmware_configs/rules/default.yaml`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.models import Event, EventType, Kind, Reading, Values
from contract.site import load_yaml_model

Level = Annotated[int, Field(ge=1, le=4, description="1 = I red … 4 = IV blue")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventRule(_Strict):
    rule: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Kind | None = Field(None, description="Any kind when left out")
    type: EventType
    level: Level
    zh: str
    en: str


class Step(_Strict):
    above: float | None = None
    at_or_above: float | None = None
    level: Level

    @model_validator(mode="after")
    def _one_bound(self) -> Step:
        if (self.above is None) == (self.at_or_above is None):
            raise ValueError("give exactly one of 'above' or 'at_or_above'")
        return self

    def exceeded(self, value: float) -> bool:
        if self.above is not None:
            return value > self.above
        assert self.at_or_above is not None
        return value >= self.at_or_above


class ThresholdRule(_Strict):
    rule: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Kind
    field: str
    window_s: float = Field(ge=0, le=7 * 86400, description="0 = each reading on its own")
    zh: str
    en: str
    levels: list[Step] = Field(min_length=1)

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value not in Values.model_fields:
            raise ValueError(f"unknown unit name {value!r}")
        return value


class RulesConfig(_Strict):
    events: list[EventRule]
    thresholds: list[ThresholdRule] = Field(default_factory=list)


def load_rules(path: Path) -> RulesConfig:
    return load_yaml_model(path, RulesConfig)


@dataclass(frozen=True, slots=True)
class AlarmDraft:
    """What the rules decided; the alarm book turns it into (or onto) an alarm."""

    rule: str
    level: int
    kind: str
    gateway: str
    device: str
    title_zh: str
    title_en: str
    device_ts: datetime
    value: float | None = None
    event_id: str | None = None


class _Window:
    """Readings of one device and field inside a time window, for a running mean."""

    __slots__ = ("_latest", "_points", "_sum", "span")

    def __init__(self, span: timedelta) -> None:
        self.span = span
        self._points: deque[tuple[datetime, float]] = deque()
        self._sum = 0.0
        self._latest: datetime | None = None

    def add(self, ts: datetime, value: float) -> float:
        self._points.append((ts, value))
        self._sum += value
        self._latest = ts if self._latest is None else max(self._latest, ts)
        horizon = self._latest - self.span
        while self._points and self._points[0][0] < horizon:
            _, old = self._points.popleft()
            self._sum -= old
        return self._sum / len(self._points)


class Rules:
    """Evaluates events and readings against one RulesConfig."""

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self._windows: dict[tuple[str, str, str], _Window] = {}

    def for_event(self, event: Event) -> list[AlarmDraft]:
        for rule in self.config.events:
            if rule.type is event.type and (rule.kind is None or rule.kind is event.kind):
                return [
                    AlarmDraft(
                        rule=rule.rule,
                        level=rule.level,
                        kind=event.kind.value,
                        gateway=event.gateway,
                        device=event.device,
                        title_zh=rule.zh,
                        title_en=rule.en,
                        device_ts=event.ts,
                        value=_first_value(event),
                        event_id=event.id,
                    )
                ]
        # Only telemetry readings are held against thresholds: a test press, a heartbeat or a
        # clear that happens to carry a value must never page anyone.
        return []

    def for_reading(self, gateway: str, reading: Reading) -> list[AlarmDraft]:
        return self._thresholds(gateway, reading.device, reading.kind, reading.ts, reading)

    def _thresholds(
        self, gateway: str, device: str, kind: Kind, ts: datetime, source: Reading
    ) -> list[AlarmDraft]:
        values = source.values.present()
        drafts: list[AlarmDraft] = []
        for rule in self.config.thresholds:
            if rule.kind is not kind or rule.field not in values:
                continue
            value = values[rule.field]
            if rule.window_s:
                key = (gateway, device, rule.rule)
                window = self._windows.get(key)
                if window is None:
                    window = self._windows[key] = _Window(timedelta(seconds=rule.window_s))
                value = window.add(ts, value)
            hit = [step.level for step in rule.levels if step.exceeded(value)]
            if hit:
                drafts.append(
                    AlarmDraft(
                        rule=rule.rule,
                        level=min(hit),
                        kind=kind.value,
                        gateway=gateway,
                        device=device,
                        title_zh=rule.zh,
                        title_en=rule.en,
                        device_ts=ts,
                        value=round(value, 3),
                    )
                )
        return drafts


def _first_value(event: Event) -> float | None:
    present = event.values.present()
    return next(iter(present.values())) if present else None
