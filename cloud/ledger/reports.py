"""The ledger's report: time to accept and to resolve per level (nearest-rank percentiles),
acceptance within the routing policy's budget, the false-alarm rate per device model and per
building, and the false alarms' causes. Pure: cases in, figures out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from cloud.alarms.model import LEVEL_NAMES, AlarmState, Outcome
from cloud.ledger.cases import LedgerRow, ReportCase
from cloud.ledger.filters import LedgerFilter
from cloud.times import from_epoch

PERCENTILE_METHOD = (
    "nearest rank: the p-th percentile of n sorted values is the value at rank ceil(p/100 * n)"
    " (1-based), always one of the observed times, no interpolation"
)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (see PERCENTILE_METHOD); None for no values."""
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


class Percentiles(BaseModel):
    n: int
    p50: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        return cls(
            n=len(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
        )


class BudgetStats(BaseModel):
    within: int = Field(description="Accepted within the budget")
    missed: int = Field(description="Accepted late, or the budget ran out without acceptance")
    undecided: int = Field(
        description="Not counted: still inside the budget, or closed by the system in time"
    )
    pct_within: float | None = Field(description="100 * within / (within + missed)")
    budgets_s: list[float] = Field(description="The budgets that applied (from the policies)")


class LevelReport(BaseModel):
    level: int | None = Field(description="null: all levels together")
    level_name: str
    count: int
    open: int
    accepted: int
    resolved: int
    false_alarms: int
    time_to_accept_s: Percentiles
    time_to_resolve_s: Percentiles
    budget: BudgetStats


class FalseAlarmRate(BaseModel):
    key: str
    label: str
    resolved: int
    false_alarms: int
    rate_pct: float | None = Field(description="100 * false_alarms / resolved")


class CauseCount(BaseModel):
    cause: str = Field(description="A false alarm's cause; 'unknown' for one closed without")
    count: int
    share_pct: float | None = Field(description="100 * count / all false alarms")


class Report(BaseModel):
    generated_at: datetime
    filter: dict[str, Any]
    count: int
    percentile_method: str = PERCENTILE_METHOD
    levels: list[LevelReport] = Field(description="Levels I-IV, each present even if empty")
    total: LevelReport
    by_model: list[FalseAlarmRate]
    by_building: list[FalseAlarmRate]
    false_alarm_causes: list[CauseCount]


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


#: A case as the report reads it: a ledger row, or the report's slimmer copy.
Case = LedgerRow | ReportCase


def _level_report(level: int | None, cases: Sequence[Case]) -> LevelReport:
    resolved = [c for c in cases if c.state is AlarmState.RESOLVED]
    within = sum(c.within_budget is True for c in cases)
    missed = sum(c.within_budget is False for c in cases)
    return LevelReport(
        level=level,
        level_name=LEVEL_NAMES[level] if level else "all",
        count=len(cases),
        open=len(cases) - len(resolved),
        accepted=sum(c.accepted_at is not None for c in cases),
        resolved=len(resolved),
        false_alarms=sum(c.outcome is Outcome.FALSE_ALARM for c in cases),
        time_to_accept_s=Percentiles.of(
            [c.time_to_accept_s for c in cases if c.time_to_accept_s is not None]
        ),
        # the time a person took: cases the system closed itself (cleared) are left out
        time_to_resolve_s=Percentiles.of(
            [
                c.time_to_resolve_s
                for c in resolved
                if c.time_to_resolve_s is not None and c.outcome is not Outcome.CLEARED
            ]
        ),
        budget=BudgetStats(
            within=within,
            missed=missed,
            undecided=len(cases) - within - missed,
            pct_within=_pct(within, within + missed),
            budgets_s=sorted({c.budget_s for c in cases if c.budget_s is not None}),
        ),
    )


def _rates(cases: Sequence[Case], key: Callable[[Case], tuple[str, str]]) -> list[FalseAlarmRate]:
    counts: dict[str, list[Any]] = {}
    for case in cases:
        if case.state is not AlarmState.RESOLVED:
            continue
        k, label = key(case)
        entry = counts.setdefault(k, [label, 0, 0])
        entry[1] += 1
        entry[2] += case.outcome is Outcome.FALSE_ALARM
    out = [
        FalseAlarmRate(key=k, label=label, resolved=n, false_alarms=f, rate_pct=_pct(f, n))
        for k, (label, n, f) in counts.items()
    ]
    out.sort(key=lambda r: (-(r.rate_pct or 0), -r.resolved, r.key))
    return out


def report(cases: Sequence[Case], filt: LedgerFilter, now: float) -> Report:
    """Pure: the report of the given cases (CPU only; run it off the event loop)."""
    by_level: dict[int, list[Case]] = {n: [] for n in LEVEL_NAMES}
    for case in cases:
        by_level[case.level].append(case)
    return Report(
        generated_at=from_epoch(now),
        filter=filt.describe(),
        count=len(cases),
        levels=[_level_report(n, by_level[n]) for n in sorted(by_level)],
        total=_level_report(None, cases),
        by_model=_rates(cases, lambda c: (c.model, c.model)),
        by_building=_rates(cases, lambda c: (c.building_id, f"{c.community} {c.building}")),
        false_alarm_causes=_causes(cases),
    )


def _causes(cases: Sequence[Case]) -> list[CauseCount]:
    causes = Counter(
        c.cause.value if c.cause else "unknown" for c in cases if c.outcome is Outcome.FALSE_ALARM
    )
    whole = sum(causes.values())
    return [
        CauseCount(cause=cause, count=n, share_pct=_pct(n, whole))
        for cause, n in sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
