"""A drill's report (应急演练报告): for each of its incidents, how long each step took from the
moment the cloud received the event — shown on an operator's board, accepted, dispatched,
resolved — against the budgets the rules file gives a real alarm of that rule and level (the
routing policy's `deliver_within_s` for the board, its `budget_s` to accept; the rules give
none to dispatch or to resolve, so those steps are measured, not judged); the same figures per
operator and shift; and the previous drill's figures beside them. Read-only.

A step nobody took before the drill ended is missed when it has a budget. A case the system
closed when the drill ended (resolved by `system`) was not resolved by the duty room.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from statistics import fmean

from pydantic import BaseModel, Field

from cloud.alarms.model import SYSTEM, Alarm, Mode
from cloud.alarms.queries import AlarmQueries
from cloud.devices.maintenance import Maintenance, Window
from cloud.duty.shifts import shift_at
from cloud.errors import NotFound
from cloud.ledger.cases import policy_of
from cloud.rules.config import RulesFile

#: The steps of a case, in order, and the alarm's time that ends each.
STEPS = ("shown", "accepted", "dispatched", "resolved")


class Step(BaseModel):
    step: str = Field(description="shown, accepted, dispatched or resolved")
    at: datetime | None = Field(description="When the step was taken (null: never)")
    seconds: float | None = Field(description="From the event's arrival (received_at) to `at`")
    budget_s: float | None = Field(description="The rules' budget for a real alarm (null: none)")
    within: bool | None = Field(
        description="Taken within the budget; false if late or never taken; null: no budget"
    )


class Incident(BaseModel):
    alarm_id: int
    device: str
    title_zh: str
    title_en: str
    level: int
    received_at: datetime
    operator: str | None = Field(description="Who accepted it")
    shift_zh: str = Field(description="The shift the event arrived in, e.g. 2026-12-02 白班")
    shift_en: str
    steps: list[Step]


class StepFigures(BaseModel):
    step: str
    taken: int = Field(description="Incidents where the step was taken")
    mean_s: float | None
    max_s: float | None
    within: int
    missed: int


class Group(BaseModel):
    operator: str | None
    shift_zh: str
    shift_en: str
    incidents: int
    steps: list[StepFigures]


class Earlier(BaseModel):
    drill_id: int
    starts_at: datetime
    incidents: int
    steps: list[StepFigures]


class DrillReport(BaseModel):
    drill: Window
    incidents: list[Incident]
    steps: list[StepFigures] = Field(description="All incidents of the drill, step by step")
    by_operator: list[Group] = Field(description="Per operator (who accepted) and shift")
    previous: Earlier | None = Field(description="The drill before this one, same figures")


def measure(alarm: Alarm, rules: RulesFile) -> list[Step]:
    """Each step of one drill alarm against the budgets of a real alarm of its rule/level."""
    policy = policy_of(alarm, rules)
    received = alarm.received_at.timestamp()
    resolved = alarm.resolved_at if alarm.resolved_by not in (None, SYSTEM) else None
    accept_budget = (
        round(alarm.accept_by.timestamp() - received, 3) if alarm.accept_by else policy.budget_s
    )
    ends = {
        "shown": (alarm.shown_at, policy.deliver_within_s),
        "accepted": (alarm.accepted_at, accept_budget),
        "dispatched": (alarm.dispatched_at, None),
        "resolved": (resolved, None),
    }
    steps = []
    for name in STEPS:
        at, budget = ends[name]
        seconds = None if at is None else round(at.timestamp() - received, 3)
        within = None
        if budget is not None:
            within = seconds is not None and seconds <= budget
        steps.append(Step(step=name, at=at, seconds=seconds, budget_s=budget, within=within))
    return steps


def figures(incidents: Iterable[Incident]) -> list[StepFigures]:
    """Per step: how many took it, mean and longest time, how many within and missed."""
    taken = list(incidents)
    out = []
    for i, name in enumerate(STEPS):
        steps = [incident.steps[i] for incident in taken]
        times = [s.seconds for s in steps if s.seconds is not None]
        out.append(
            StepFigures(
                step=name,
                taken=len(times),
                mean_s=round(fmean(times), 3) if times else None,
                max_s=max(times) if times else None,
                within=sum(s.within is True for s in steps),
                missed=sum(s.within is False for s in steps),
            )
        )
    return out


def incident(alarm: Alarm, rules: RulesFile) -> Incident:
    shift = shift_at(alarm.received_at.timestamp())
    return Incident(
        alarm_id=alarm.id,
        device=alarm.device,
        title_zh=alarm.title_zh,
        title_en=alarm.title_en,
        level=alarm.level,
        received_at=alarm.received_at,
        operator=alarm.accepted_by,
        shift_zh=shift.label(),
        shift_en=f"{shift.day.isoformat()} {shift.shift.en}",
        steps=measure(alarm, rules),
    )


def by_operator(incidents: list[Incident]) -> list[Group]:
    groups: dict[tuple[str | None, str], list[Incident]] = {}
    for item in incidents:
        groups.setdefault((item.operator, item.shift_zh), []).append(item)
    return [
        Group(
            operator=operator,
            shift_zh=shift,
            shift_en=members[0].shift_en,
            incidents=len(members),
            steps=figures(members),
        )
        for (operator, shift), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])
        )
    ]


class DrillReports:
    def __init__(
        self, maintenance: Maintenance, alarms: AlarmQueries, rules: Callable[[], RulesFile]
    ) -> None:
        self.maintenance = maintenance
        self.alarms = alarms
        self.rules = rules

    async def report(self, drill_id: int) -> DrillReport:
        """The report of drill `drill_id` (`NotFound` if it is no drill)."""
        drill = await self.maintenance.get(drill_id)
        if drill.mode is not Mode.DRILL:
            raise NotFound.said(f"#{drill_id} 不是应急演练", f"#{drill_id} is not a drill")
        incidents = await self._incidents(drill_id)
        return DrillReport(
            drill=drill,
            incidents=incidents,
            steps=figures(incidents),
            by_operator=by_operator(incidents),
            previous=await self._previous(drill),
        )

    async def _incidents(self, drill_id: int) -> list[Incident]:
        rules = self.rules()
        alarms = await self.alarms.in_window(drill_id)
        return [incident(a, rules) for a in alarms if a.mode is Mode.DRILL]

    async def _previous(self, drill: Window) -> Earlier | None:
        earlier = [
            w
            for w in await self.maintenance.windows(mode=Mode.DRILL)
            if (w.starts_at, w.id) < (drill.starts_at, drill.id)
        ]
        if not earlier:
            return None
        last = max(earlier, key=lambda w: (w.starts_at, w.id))
        incidents = await self._incidents(last.id)
        return Earlier(
            drill_id=last.id,
            starts_at=last.starts_at,
            incidents=len(incidents),
            steps=figures(incidents),
        )
