"""What the rules decide: raise (or repeat) an alarm (`AlarmDraft`), or clear it (`Clear`),
for one (gateway, device, rule) (`Key`). The alarm book turns decisions into alarms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

Key = tuple[str, str, str]  # gateway, device, rule


@dataclass(frozen=True, slots=True)
class AlarmDraft:
    """A rule fired (or still fires): the alarm book raises an alarm or repeats the open one."""

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
    life_safety: bool = False
    group: str = ""
    #: set by the maintenance gate: live, walk_test or maintenance (drill: by the drill gate)
    mode: str = "live"
    window: int | None = None

    @property
    def key(self) -> Key:
        return (self.gateway, self.device, self.rule)


@dataclass(frozen=True, slots=True)
class Clear:
    """The condition is over: a non-latched open alarm closes, a latched one only notes it."""

    rule: str
    gateway: str
    device: str
    at: datetime
    reason: str
    event_id: str | None = None
    mode: str = "live"
    window: int | None = None

    @property
    def key(self) -> Key:
        return (self.gateway, self.device, self.rule)


Decision = AlarmDraft | Clear
