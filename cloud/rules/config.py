"""The rules file (`firmware_configs/rules/*.yaml`): what becomes an alarm, at which level,
what clears it, how devices and gateways are supervised, and who is told and when.

Operators write this file, so every model is strict: an unknown key, an unknown unit, a
threshold whose clear bound sits on the wrong side or a level that no policy covers is an
error that names the file and the field (`load_rules`). Nothing here does I/O but reading the
file; `cloud/rules/engine.py` evaluates it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract.models import EventType, Kind, Values
from contract.site import ConfigFileError, Phone

Level = Annotated[int, Field(ge=1, le=4, description="1 = I red … 4 = IV blue")]
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9_]+$", max_length=63)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Seconds = Annotated[float, Field(ge=0, le=30 * 86400)]

#: Rule ids the cloud raises itself (supervision); a rules file may not reuse them.
DEVICE_SILENT = "device_silent"
GATEWAY_OFFLINE = "gateway_offline"
EVENTS_MISSING = "events_missing"
INVALID_INPUT = "invalid_input"
RESERVED = frozenset({DEVICE_SILENT, GATEWAY_OFFLINE, EVENTS_MISSING, INVALID_INPUT})

#: Event types that never raise an alarm, whatever a rules file says (by value, so a type the
#: contract adds later is covered by its name): a test, a heartbeat, and the ends of things —
#: a detector's clear, a cancelled call, a fault's restore. Some of them may *clear* an alarm.
NEVER_RAISE = frozenset({"test", "heartbeat", "clear", "cancel", "restore"})
#: …and these neither raise nor clear anything.
INERT = frozenset({"test", "heartbeat"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Strict):
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


class Step(_Strict):
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


class DeviceSilence(_Strict):
    """The cloud's own watch on devices that report periodically (telemetry)."""

    level: Level = 3
    zh: str = "设备失联"
    en: str = "Device silent"
    after_s: dict[Kind, Seconds] = Field(
        default_factory=dict, description="kind → silent after this long; absent: not watched"
    )
    models: dict[Slug, Seconds] = Field(default_factory=dict, description="per-model override")


class GatewayOffline(_Strict):
    level: Level = 2
    zh: str = "网关离线"
    en: str = "Gateway offline"
    silent_after_s: Seconds = Field(
        300, description="Nothing at all from the gateway this long counts as offline too"
    )


class EventsMissing(_Strict):
    """Events of a gateway (message version 2) that never arrived, though the cloud asked
    for them again: named by boot and seq range. An operator closes it."""

    level: Level = 3
    zh: str = "网关事件缺失"
    en: str = "Events missing from a gateway"


class InvalidInput(_Strict):
    """A gateway whose messages keep being refused (junk, a wrong clock, a device removed
    from the registry…): one alarm, repeated at most every `within_s`. An operator closes it."""

    level: Level = 3
    zh: str = "网关发送大量无效消息"
    en: str = "Gateway sends many invalid messages"
    at_least: int = Field(100, ge=1, description="refused messages within `within_s`")
    within_s: Seconds = 60


class Supervision(_Strict):
    device_silent: DeviceSilence = DeviceSilence()
    gateway_offline: GatewayOffline = GatewayOffline()
    events_missing: EventsMissing = EventsMissing()
    invalid_input: InvalidInput = InvalidInput()


class Inhibit(_Strict):
    """While `source` is firing on a gateway, `targets` from the same gateway are muted."""

    source: RuleId
    targets: list[RuleId] = Field(min_length=1)


class Target(StrEnum):
    DUTY_ROOM = "duty_room"  # the street's duty room (the live board)
    GRID_WORKER = "grid_worker"  # 网格员 of the alarm's grid (from the site file)
    STREET_SUPERVISOR = "street_supervisor"  # the street's duty leader (contacts below)
    EMERGENCY_CONTACTS = "emergency_contacts"  # the residents' contacts of the home


class Via(StrEnum):
    PUSH = "push"  # the live duty-room push (pages open in the browser)
    WEBHOOK = "webhook"  # an outbound HTTP POST, e.g. to an SMS or voice gateway


class Notify(_Strict):
    to: Target
    via: list[Via] = Field(min_length=1)


class Policy(_Strict):
    """Who is told, through which channels, and how long the duty room has to accept."""

    name: Slug
    levels: list[Level] = Field(default_factory=list, description="Applies to these levels…")
    rules: list[RuleId] = Field(default_factory=list, description="…or these rules (first)")
    budget_s: Seconds = Field(gt=0, description="Accept within this long, or it escalates")
    deliver_within_s: Seconds | None = Field(
        None, description="The first notifications must be delivered this fast (checked)"
    )
    notify: list[Notify] = Field(default_factory=list, description="Told at once")
    escalate: list[Notify] = Field(
        default_factory=list, description="Told in turn once the budget is spent"
    )
    escalate_every_s: Seconds = Field(60, gt=0, description="Between escalation steps")
    remind_every_s: Seconds = Field(120, gt=0, description="After the chain: reminders")
    reminders: int = Field(5, ge=0, le=100)

    @model_validator(mode="after")
    def _matches_something(self) -> Policy:
        if not self.levels and not self.rules:
            raise ValueError("give levels or rules the policy applies to")
        return self


class Person(_Strict):
    name: str = Field(min_length=1, max_length=100)
    phone: Phone


class Contacts(_Strict):
    street_supervisors: dict[Slug, Person] = Field(
        default_factory=dict, description="street id → the street's duty leader"
    )


DEFAULT_POLICIES = [
    Policy(
        name="life_safety",
        levels=[1],
        budget_s=60,
        deliver_within_s=15,
        notify=[Notify(to=Target.GRID_WORKER, via=[Via.WEBHOOK])],
        escalate=[
            Notify(to=Target.STREET_SUPERVISOR, via=[Via.PUSH, Via.WEBHOOK]),
            Notify(to=Target.EMERGENCY_CONTACTS, via=[Via.WEBHOOK]),
        ],
    ),
    Policy(
        name="other",
        levels=[2, 3, 4],
        budget_s=1800,
        escalate=[Notify(to=Target.STREET_SUPERVISOR, via=[Via.PUSH])],
        reminders=0,
    ),
]


class RulesFile(_Strict):
    version: str = Field("", max_length=64, description="A label for the audit log")
    events: list[EventRule]
    thresholds: list[ThresholdRule] = Field(default_factory=list)
    rates: list[RateRule] = Field(default_factory=list)
    counts: list[CountRule] = Field(default_factory=list)
    supervision: Supervision = Supervision()
    inhibit: list[Inhibit] = Field(default_factory=list)
    contacts: Contacts = Contacts()
    policies: list[Policy] = Field(default_factory=lambda: list(DEFAULT_POLICIES))

    @model_validator(mode="after")
    def _consistent(self) -> RulesFile:
        sections: dict[str, str] = {}
        for section, rules in (
            ("events", self.events),
            ("thresholds", self.thresholds),
            ("rates", self.rates),
            ("counts", self.counts),
        ):
            variants: dict[str, list[set[str] | None]] = {}
            for rule in rules:
                if rule.rule in RESERVED:
                    raise ValueError(f"{section}: rule id {rule.rule!r} is the cloud's own")
                if sections.setdefault(rule.rule, section) != section:
                    raise ValueError(
                        f"{section}: rule id {rule.rule!r} is already used in {sections[rule.rule]}"
                    )
                seen = variants.setdefault(rule.rule, [])
                models = set(rule.models) if rule.models is not None else None
                for other in seen:
                    if models is None and other is None:
                        raise ValueError(
                            f"{section}: rule {rule.rule!r} appears twice for all models"
                        )
                    if models is not None and other is not None and models & other:
                        raise ValueError(
                            f"{section}: rule {rule.rule!r} appears twice for models "
                            f"{sorted(models & other)}"
                        )
                seen.append(models)
        known = set(sections) | RESERVED
        for i, inhibit in enumerate(self.inhibit):
            for name in (inhibit.source, *inhibit.targets):
                if name not in known:
                    raise ValueError(f"inhibit.{i}: unknown rule {name!r}")
        names: set[str] = set()
        covered: set[int] = set()
        for i, policy in enumerate(self.policies):
            if policy.name in names:
                raise ValueError(f"policies.{i}: name {policy.name!r} is used twice")
            names.add(policy.name)
            for name in policy.rules:
                if name not in known:
                    raise ValueError(f"policies.{i} ({policy.name}): unknown rule {name!r}")
            covered.update(policy.levels)
        missing = sorted({1, 2, 3, 4} - covered)
        if missing:
            raise ValueError(f"policies: no policy covers level(s) {missing}")
        return self

    def policy_for(self, rule: str, level: int) -> Policy:
        """The first policy naming the rule, else the first covering the level."""
        for policy in self.policies:
            if rule in policy.rules:
                return policy
        for policy in self.policies:
            if level in policy.levels:
                return policy
        raise AssertionError("validated: every level is covered")

    def rule_ids(self) -> set[str]:
        ids = {r.rule for r in (*self.events, *self.thresholds, *self.rates, *self.counts)}
        return ids | RESERVED


#: The name the first rules core used; kept for callers and tests.
RulesConfig = RulesFile


@dataclass(frozen=True, slots=True)
class LoadedRules:
    """A validated rules file and a fingerprint of the very bytes validated (for the audit)."""

    config: RulesFile
    path: str
    digest: str


def load_rules(path: Path) -> RulesFile:
    return load_rules_with_digest(path).config


def load_rules_with_digest(path: Path) -> LoadedRules:
    """Read the file once, fingerprint it (sha256) and validate it; errors name file and field."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigFileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        config = RulesFile.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {exc.error_count()} problem(s) in {RulesFile.__name__}:"]
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "(top level)"
            lines.append(f"  - {where}: {err['msg']}")
        raise ConfigFileError("\n".join(lines)) from exc
    return LoadedRules(config=config, path=str(path), digest=hashlib.sha256(data).hexdigest()[:16])
