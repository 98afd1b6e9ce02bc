"""The rules that raise and clear alarms: an event of one type (`EventRule`), a measured
value beyond graded bounds with hysteresis (`ThresholdRule`), a value rising fast
(`RateRule`), and events repeating within a window (`CountRule`). `cloud/rules/engine.py`
evaluates them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from cloud.rules.fields import Level, RuleId, Seconds, Slug, Strict
from contract.models import EventType, Kind, Values

#: Event types that never raise an alarm, whatever a rules file says (by value, so a type the
#: contract adds later is covered by its name): a test, a heartbeat, and the ends of things —
#: a detector's clear, a cancelled call, a fault's restore. Some of them may *clear* an alarm.
NEVER_RAISE = frozenset({"test", "heartbeat", "clear", "cancel", "restore"})
#: …and these neither raise nor clear anything.
INERT = frozenset({"test", "heartbeat"})


class _Rule(Strict):
    rule: RuleId
    models: list[Slug] | None = Field(
        None,
        description="Only devices of these models. A rule id may appear once without `models` "
        "and again with `models`: the model-specific variant wins for those models.",
    )
    zh: str = Field(min_length=1, max_length=100)
    en: str = Field(min_length=1, max_length=100)
    group: str | None = Field(
        None,
        pattern=r"^[a-z0-9_]+$",
        description="How the board groups a storm from one building (default: the kind)",
    )


class EventRule(_Rule):
    """An event of one type (from one kind of device, or any kind) raises an alarm."""

    kind: Kind | None = Field(None, description="Any kind when left out")
    type: EventType
    level: Level
    life_safety: bool = Field(
        False, description="Latches: the device clearing never closes the case, an operator does"
    )
    clear_on: list[EventType] = Field(
        default_factory=list, description="Event types from the same device that clear it"
    )
    clear_hold_s: Seconds = Field(
        0, description="The clear must hold this long (no new alarm meanwhile) to close the case"
    )

    @model_validator(mode="after")
    def _sane(self) -> EventRule:
        if self.type.value in NEVER_RAISE:
            raise ValueError(f"'{self.type}' events never page; they cannot raise an alarm")
        if self.type in self.clear_on:
            raise ValueError(f"'{self.type}' cannot both raise and clear the alarm")
        inert = [t.value for t in self.clear_on if t.value in INERT]
        if inert:
            raise ValueError(f"{inert} events clear nothing")
        return self


class Direction(StrEnum):
    UP = "up"  # alarms when the value is high (gas, dust, CO2)
    DOWN = "down"  # alarms when the value is low (battery)


class Step(Strict):
    above: float | None = None
    at_or_above: float | None = None
    below: float | None = None
    at_or_below: float | None = None
    level: Level

    @model_validator(mode="after")
    def _one_bound(self) -> Step:
        given = [
            b for b in (self.above, self.at_or_above, self.below, self.at_or_below) if b is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of above, at_or_above, below, at_or_below")
        return self

    @property
    def direction(self) -> Direction:
        return (
            Direction.UP
            if self.above is not None or self.at_or_above is not None
            else Direction.DOWN
        )

    @property
    def bound(self) -> float:
        for b in (self.above, self.at_or_above, self.below, self.at_or_below):
            if b is not None:
                return b
        raise AssertionError("validated: one bound")

    def exceeded(self, value: float) -> bool:
        if self.above is not None:
            return value > self.above
        if self.at_or_above is not None:
            return value >= self.at_or_above
        if self.below is not None:
            return value < self.below
        assert self.at_or_below is not None
        return value <= self.at_or_below


def _known_unit(value: str) -> str:
    if value not in Values.model_fields:
        raise ValueError(f"unknown unit name {value!r}")
    return value


class ThresholdRule(_Rule):
    """A measured value (or its running mean) beyond graded bounds, with hysteresis."""

    kind: Kind
    field: str
    window_s: Seconds = Field(0, description="Running mean over this long; 0 = each reading")
    levels: list[Step] = Field(min_length=1)
    clear_below: float | None = Field(
        None, description="Hysteresis for rising rules: clears only under this value"
    )
    clear_above: float | None = Field(
        None, description="Hysteresis for falling rules: clears only over this value"
    )
    hold_s: Seconds = Field(0, description="The value must stay beyond a bound this long first")
    clear_hold_s: Seconds = Field(0, description="…and beyond the clear bound this long to clear")
    life_safety_at_level: Level | None = Field(
        None, description="At this level or more severe the alarm latches (e.g. methane level I)"
    )

    @field_validator("field")
    @classmethod
    def _unit(cls, value: str) -> str:
        return _known_unit(value)

    @model_validator(mode="after")
    def _hysteresis(self) -> ThresholdRule:
        directions = {step.direction for step in self.levels}
        if len(directions) != 1:
            raise ValueError("levels must all be 'above' bounds or all 'below' bounds")
        if self.direction is Direction.UP:
            if self.clear_above is not None:
                raise ValueError("a rising rule clears with clear_below, not clear_above")
            if self.clear_below is not None and self.clear_below > self.raise_bound:
                raise ValueError(
                    f"clear_below {self.clear_below} is above the lowest alarm bound "
                    f"{self.raise_bound}: the alarm would clear while still in alarm"
                )
        else:
            if self.clear_below is not None:
                raise ValueError("a falling rule clears with clear_above, not clear_below")
            if self.clear_above is not None and self.clear_above < self.raise_bound:
                raise ValueError(
                    f"clear_above {self.clear_above} is below the highest alarm bound "
                    f"{self.raise_bound}: the alarm would clear while still in alarm"
                )
        return self

    @property
    def direction(self) -> Direction:
        return self.levels[0].direction

    @property
    def raise_bound(self) -> float:
        """The least severe bound: beyond it the rule is in alarm."""
        bounds = [step.bound for step in self.levels]
        return min(bounds) if self.direction is Direction.UP else max(bounds)

    def level_of(self, value: float) -> int | None:
        hit = [step.level for step in self.levels if step.exceeded(value)]
        return min(hit) if hit else None

    def cleared(self, value: float) -> bool:
        """Whether the value is back beyond the clear bound (out of the hysteresis band)."""
        if self.direction is Direction.UP:
            if self.clear_below is None:
                return self.level_of(value) is None
            return value < self.clear_below
        if self.clear_above is None:
            return self.level_of(value) is None
        return value > self.clear_above


class RateRule(_Rule):
    """A value rising fast: at least `rise` within `within_s` (e.g. a heat rate-of-rise)."""

    kind: Kind
    field: str
    rise: float = Field(gt=0)
    within_s: Seconds = Field(gt=0)
    level: Level
    clear_rise: float | None = Field(
        None,
        ge=0,
        description="Clears once the rise within the window is under this (default half)",
    )

    @field_validator("field")
    @classmethod
    def _unit(cls, value: str) -> str:
        return _known_unit(value)

    @model_validator(mode="after")
    def _band(self) -> RateRule:
        if self.clear_rise is not None and self.clear_rise > self.rise:
            raise ValueError("clear_rise must not be above rise")
        return self

    @property
    def clear_bound(self) -> float:
        return self.rise / 2 if self.clear_rise is None else self.clear_rise


class CountRule(_Rule):
    """At least `at_least` events of one type within `within_s`; an operator closes it."""

    kind: Kind | None = None
    type: EventType
    at_least: int = Field(ge=2, le=10000)
    within_s: Seconds = Field(gt=0)
    level: Level

    @model_validator(mode="after")
    def _sane(self) -> CountRule:
        if self.type.value in NEVER_RAISE:
            raise ValueError(f"'{self.type}' events never page; they cannot raise an alarm")
        return self
