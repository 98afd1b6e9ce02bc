"""What an alarm is: its states, outcomes and modes, the alarm with its timeline, a log line,
and what a decision did to an alarm (`Raised`)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from cloud.db.database import Row

LEVEL_NAMES = {1: "I", 2: "II", 3: "III", 4: "IV"}


class AlarmState(StrEnum):
    ACTIVE = "active"  # raised, waiting for an operator
    ACCEPTED = "accepted"  # an operator took the case (受理)
    RESOLVED = "resolved"  # closed with an outcome (办结)


class Outcome(StrEnum):
    HANDLED = "handled"  # real case, dealt with
    FALSE_ALARM = "false_alarm"  # 误报
    TEST = "test"  # someone was testing
    CLEARED = "cleared"  # closed by the system: the condition ended before anyone accepted


class FalseAlarmCause(StrEnum):
    """Why a false alarm was one: required when a case is closed as a false alarm, so the
    false-alarm rate can be followed per cause, device model and building."""

    MISTOUCH = "mistouch"  # 误触: pressed by mistake
    DEVICE_FAULT = "device_fault"  # 设备故障
    COOKING = "cooking"  # 烹饪油烟: cooking fumes or steam
    UNANNOUNCED_TEST = "unannounced_test"  # 测试未报备: a test nobody announced
    OTHER = "other"  # 其他: the note says what


class Mode(StrEnum):
    LIVE = "live"  # the duty room's
    WALK_TEST = "walk_test"  # an installer is testing the devices
    MAINTENANCE = "maintenance"  # a planned window of work on the devices
    DRILL = "drill"  # an emergency drill's scripted incident (应急演练), never a real alarm


#: The modes the duty room works on its board: real alarms, and a drill's incidents (shown
#: marked 演练 DRILL, behind every real one, told to nobody outside the duty room).
WORKED = (Mode.LIVE, Mode.DRILL)


_TIMES = (
    "device_ts",
    "received_at",
    "stored_at",
    "pushed_at",
    "shown_at",
    "accepted_at",
    "dispatched_at",
    "feedback_at",
    "resolved_at",
    "verified_at",
    "cleared_at",
    "escalated_at",
    "notify_due_at",
    "accept_by",
)


class Alarm(BaseModel):
    id: int
    rule: str
    level: int
    level_name: str
    kind: str
    gateway: str
    device: str
    model: str
    street_id: str
    community_id: str
    community: str
    grid_id: str
    grid: str
    building_id: str
    building: str
    home_id: str
    home: str
    title_zh: str
    title_en: str
    value: float | None
    first_event_id: str | None
    last_event_id: str | None
    repeats: int
    state: AlarmState
    mode: Mode = Mode.LIVE
    window_id: int | None = None
    life_safety: bool = False
    group_key: str | None = None
    policy: str | None = None
    device_ts: datetime
    received_at: datetime
    stored_at: datetime
    pushed_at: datetime | None
    shown_at: datetime | None
    accepted_at: datetime | None
    accepted_by: str | None
    dispatched_at: datetime | None = None
    dispatched_by: str | None = None
    dispatched_to: str | None = None
    feedback_at: datetime | None = None
    feedback_by: str | None = None
    resolved_at: datetime | None
    resolved_by: str | None
    verified_at: datetime | None = None
    verified_by: str | None = None
    cleared_at: datetime | None = None
    escalations: int = 0
    escalated_at: datetime | None = None
    notify_step: int | None = None
    notify_due_at: datetime | None = None
    accept_by: datetime | None = Field(
        None,
        description="The acceptance budget: received_at + its policy's budget_s (None for"
        " tests, maintenance, and alarms the cloud has no budget for)",
    )
    outcome: Outcome | None
    cause: FalseAlarmCause | None = None
    note: str | None

    @classmethod
    def from_row(cls, row: Row) -> Alarm:
        """An alarm as the book stores it (trusted: the book wrote it; not validated again)."""
        data = dict(zip(row.keys(), row, strict=True))
        data.pop("open_key", None)
        data["level_name"] = LEVEL_NAMES[data["level"]]
        data["life_safety"] = bool(data.get("life_safety"))
        data["state"] = AlarmState(data["state"])
        data["mode"] = Mode(data.get("mode") or Mode.LIVE)
        if data.get("outcome") is not None:
            data["outcome"] = Outcome(data["outcome"])
        if data.get("cause") is not None:
            data["cause"] = FalseAlarmCause(data["cause"])
        for key in _TIMES:
            if data.get(key) is not None:
                data[key] = datetime.fromtimestamp(data[key], UTC)
        return cls.model_construct(**{k: v for k, v in data.items() if k in _FIELDS})


_FIELDS = frozenset(Alarm.model_fields)


class LogEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: str


class Raised(BaseModel):
    """One alarm touched by a decision: newly raised, a repeat, or cleared."""

    alarm: Alarm
    new: bool
    change: str = "raised"  # raised, repeat, cleared (closed), noted (a latched alarm's clear)


SYSTEM = "system"
#: The states of an open case, as SQL literals (a literal list lets SQLite use an index).
OPEN_STATES = f"'{AlarmState.ACTIVE.value}', '{AlarmState.ACCEPTED.value}'"


def open_key(gateway: str, device: str, rule: str, mode: str, window: int | None) -> str:
    """At most one open alarm per device and rule (tests of a window have their own)."""
    base = f"{gateway}/{device}/{rule}"
    return base if mode == Mode.LIVE else f"{mode}:{window}:{base}"
