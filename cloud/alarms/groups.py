"""Storm folding: the open alarms of one building and category as one group, so a storm (a
floor of smoke detectors, a building's air monitors) is one line on a list. A life-safety
alarm is never folded: it is always a group of its own, so grouping can never hide one."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from cloud.alarms.model import Alarm, AlarmState, Mode


class AlarmGroup(BaseModel):
    """Open alarms of one building and category, for a storm; a life-safety alarm is always
    a group of its own (`key` null), so grouping can never hide one, and so is a drill's
    (never folded with a real alarm)."""

    key: str | None
    building_id: str
    building: str
    category: str | None
    level: int
    count: int
    unaccepted: int
    life_safety: bool
    drill: bool = Field(False, description="A drill's incident (演练), not a real alarm")
    alarm_ids: list[int]
    oldest_received_at: datetime


def group_alarms(alarms: Iterable[Alarm]) -> list[AlarmGroup]:
    """The alarms grouped by their `group_key` (building/category), most severe group first,
    then life safety, then the longest waiting; a drill's alarms after every real one."""
    grouped: dict[str, list[Alarm]] = {}
    for alarm in alarms:
        foldable = alarm.group_key and not alarm.life_safety and alarm.mode is Mode.LIVE
        key = alarm.group_key if foldable and alarm.group_key else f"#{alarm.id}"
        grouped.setdefault(key, []).append(alarm)
    out = []
    for key, members in grouped.items():
        first = members[0]
        single = key.startswith("#")
        out.append(
            AlarmGroup(
                key=None if single else key,
                building_id=first.building_id,
                building=first.building,
                category=None if single else key.split("/", 1)[-1],
                level=min(a.level for a in members),
                count=len(members),
                unaccepted=sum(a.state == AlarmState.ACTIVE for a in members),
                life_safety=any(a.life_safety for a in members),
                drill=first.mode is Mode.DRILL,
                alarm_ids=[a.id for a in members],
                oldest_received_at=min(a.received_at for a in members),
            )
        )
    out.sort(key=lambda g: (g.drill, g.level, not g.life_safety, g.oldest_received_at))
    return out
