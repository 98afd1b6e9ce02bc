"""The ledger (台账): every case the duty room had, filtered and paged, exported as CSV and as
an Excel workbook, and summed up as a report — time to accept and to resolve per level
(nearest-rank percentiles), acceptance within the routing policy's budget, and the
false-alarm rate per device model and per building.

Reads only, from the alarm book's tables (`alarms`, `alarm_log`), each query in one round
trip to the database thread. Times in the database are UTC epoch seconds; what an operator
types and reads is Beijing time (Asia/Shanghai, no daylight saving), so a date filter means a
local day and the exports show local times.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from cloud.alarms.model import LEVEL_NAMES, Alarm, AlarmState, FalseAlarmCause, Mode, Outcome
from cloud.db.database import Conn, Database, Row
from cloud.rules.config import Policy, RulesFile
from contract.models import Kind

try:
    BEIJING: timezone | ZoneInfo = ZoneInfo("Asia/Shanghai")
except ZoneInfoNotFoundError:  # no tz database: China has had no daylight saving since 1991
    BEIJING = timezone(timedelta(hours=8), "CST")

#: An export holds at most this many cases; a wider filter is refused with the count. Excel
#: is the smaller: openpyxl writes ~1,300 rows/s here without lxml (CSV ~10,000 rows/s).
EXPORT_MAX_ROWS = {"csv": 50_000, "xlsx": 10_000}
PERCENTILE_METHOD = (
    "nearest rank: the p-th percentile of n sorted values is the value at rank ceil(p/100 * n)"
    " (1-based), always one of the observed times, no interpolation"
)

_HALF_US = 0.5e-6
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4}


# ---- the filter ------------------------------------------------------------------------------


def _level(value: Any) -> Any:
    """1-4, or the level's name (I, II, III, IV; also Ⅰ…Ⅳ)."""
    if isinstance(value, str):
        text = value.strip().upper().replace("Ⅰ", "I").replace("Ⅱ", "II")
        text = text.replace("Ⅲ", "III").replace("Ⅳ", "IV")
        if text in _ROMAN:
            return _ROMAN[text]
    return value


def _moment(value: Any, *, end_of_day: bool) -> Any:
    """An ISO date (a whole local day) or datetime (naive: Beijing time) → an aware datetime."""
    if value is None:
        return value
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=BEIJING)
    if not isinstance(value, str):
        raise ValueError("expected an ISO date (2027-01-15) or datetime (2027-01-15T08:30)")
    text = value.strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date like 2027-01-15") from None
        _in_range(day.year, text)
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time(0), BEIJING)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a date (2027-01-15) nor a datetime (2027-01-15T08:30)"
        ) from None
    _in_range(moment.year, text)
    return moment if moment.tzinfo else moment.replace(tzinfo=BEIJING)


def _in_range(year: int, text: str) -> None:
    if not 1970 <= year <= 2999:
        raise ValueError(f"{text!r} is out of range: the years 1970-2999")


Level = Annotated[int, BeforeValidator(_level), Field(ge=1, le=4)]
CommunityId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
From = Annotated[datetime | None, BeforeValidator(lambda v: _moment(v, end_of_day=False))]
To = Annotated[datetime | None, BeforeValidator(lambda v: _moment(v, end_of_day=True))]


class LedgerFilter(BaseModel):
    """Which cases: all of them unless narrowed. Repeat a parameter for several values
    (`level=1&level=2`)."""

    model_config = ConfigDict(extra="forbid")

    date_from: From = Field(
        None,
        description="Received at or after: a date (the start of that day in Beijing time) or an"
        " ISO datetime (without an offset: Beijing time)",
    )
    date_to: To = Field(
        None,
        description="Received before: a date means up to the END of that day (Beijing time),"
        " a datetime is exclusive (without an offset: Beijing time)",
    )
    community: list[CommunityId] = Field([], max_length=50, description="Community ids")
    kind: list[Kind] = Field([], max_length=20)
    level: list[Level] = Field([], max_length=4, description="1-4 or I, II, III, IV")
    outcome: list[Outcome] = Field([], max_length=10)
    state: list[AlarmState] = Field([], max_length=10)
    include_tests: bool = Field(
        False, description="Also alarms recorded during walk tests and maintenance windows"
    )
    verified: bool | None = Field(
        None, description="true: only cases a supervisor verified (督办核实); false: the others"
    )

    @model_validator(mode="after")
    def _range(self) -> LedgerFilter:
        if self.date_from and self.date_to and self.date_from >= self.date_to:
            raise ValueError(
                f"date_from ({self.date_from.isoformat()}) is not before date_to"
                f" ({self.date_to.isoformat()}, exclusive)"
            )
        return self

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = []
        args: list[object] = []
        if not self.include_tests:
            clauses.append("mode = ?")
            args.append(Mode.LIVE.value)
        # Times are stored as float seconds and shown to the microsecond (rounded): a bound
        # equal to a case's time as shown counts as that case's time.
        if self.date_from is not None:
            clauses.append("received_at >= ?")
            args.append(self.date_from.timestamp() - _HALF_US)
        if self.date_to is not None:
            clauses.append("received_at < ?")
            args.append(self.date_to.timestamp() - _HALF_US)
        columns: Iterable[tuple[str, Sequence[object]]] = (
            ("community_id", self.community),
            ("kind", [k.value for k in self.kind]),
            ("level", self.level),
            ("outcome", [o.value for o in self.outcome]),
            ("state", [s.value for s in self.state]),
        )
        for column, given in columns:
            values = list(dict.fromkeys(given))  # a value given twice counts once
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        if self.verified is not None:
            clauses.append(f"verified_at IS {'NOT ' if self.verified else ''}NULL")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def describe(self) -> dict[str, Any]:
        """The filter as given (for the audit and the export's summary)."""
        return self.model_dump(mode="json", exclude_defaults=True)


class LedgerQuery(LedgerFilter):
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=500)


class ExportQuery(LedgerFilter):
    lang: Literal["zh", "en"] = Field("zh", description="Column headers and words")


# ---- one row of the ledger ---------------------------------------------------------------------


class LedgerRow(BaseModel):
    id: int = Field(description="Case number")
    level: int
    level_name: str
    kind: str
    rule: str
    title_zh: str
    title_en: str
    community_id: str
    community: str
    grid: str
    building_id: str
    building: str
    home: str
    gateway: str
    device: str
    model: str
    mode: Mode
    state: AlarmState
    repeats: int
    received_at: datetime
    accepted_at: datetime | None
    accepted_by: str | None
    time_to_accept_s: float | None
    policy: str | None = Field(description="The routing policy that set the budget")
    budget_s: float | None = Field(
        description="Acceptance budget (live alarms only): accept_by - received_at as the"
        " alarm book fixed it when the alarm was raised, else its policy's budget_s"
    )
    within_budget: bool | None = Field(
        description="Accepted within the budget; false once the budget ran out without an"
        " acceptance; null while still inside it, or for a case nobody had to accept"
    )
    dispatched_at: datetime | None
    dispatched_by: str | None
    dispatched_to: str | None
    feedback: str = Field(description="Feedback notes (情况反馈), oldest first")
    feedback_at: datetime | None
    feedback_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: Outcome | None
    cause: FalseAlarmCause | None = Field(description="Why a false alarm was one")
    note: str | None
    time_to_resolve_s: float | None
    escalations: int
    verified_at: datetime | None
    verified_by: str | None


class LedgerPage(BaseModel):
    total: int
    page: int
    page_size: int
    pages: int
    items: list[LedgerRow]


def policy_of(alarm: Alarm, rules: RulesFile) -> Policy:
    """The policy whose budget applies: the one the escalator recorded on the alarm (if the
    rules in force still have it), else the one the rules choose for its rule and level."""
    return _policy(alarm.policy, alarm.rule, alarm.level, rules)


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds(), 3)


#: The fields a ledger row copies from the alarm as they are.
_SHARED = (set(LedgerRow.model_fields) & set(Alarm.model_fields)) - {"policy"}


def _policy(name: str | None, rule: str, level: int, rules: RulesFile) -> Policy:
    """See policy_of (from the alarm's columns)."""
    if name:
        for policy in rules.policies:
            if policy.name == name:
                return policy
    return rules.policy_for(rule, level)


def _budget_and_within(
    *,
    live: bool,
    policy: Policy | None,
    received: float,
    accept_by: float | None,
    tta: float | None,
    resolved: float | None,
    now: float,
) -> tuple[float | None, bool | None]:
    """The acceptance budget (live alarms only) and whether the case kept it (None: not
    decided yet, or nobody had to accept it). Times in epoch seconds; tta: time to accept."""
    budget: float | None = None
    if live and accept_by is not None:  # fixed when raised: a later reload does not move it
        budget = round(accept_by - received, 3)
    elif policy is not None:
        budget = policy.budget_s
    within: bool | None = None
    if budget is not None:
        if tta is not None:
            within = tta <= budget
        else:  # never accepted: late once the budget ran out while it waited
            waited_until = resolved if resolved is not None else now
            if waited_until - received > budget:
                within = False
    return budget, within


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def ledger_row(alarm: Alarm, feedback: Sequence[str], rules: RulesFile, now: float) -> LedgerRow:
    live = alarm.mode is Mode.LIVE
    policy = policy_of(alarm, rules) if live else None
    tta = _seconds(alarm.received_at, alarm.accepted_at)
    budget, within = _budget_and_within(
        live=live,
        policy=policy,
        received=alarm.received_at.timestamp(),
        accept_by=_ts(alarm.accept_by),
        tta=tta,
        resolved=_ts(alarm.resolved_at),
        now=now,
    )
    return LedgerRow(
        **alarm.model_dump(include=_SHARED),
        time_to_accept_s=tta,
        budget_s=budget,
        within_budget=within,
        feedback="; ".join(feedback),
        time_to_resolve_s=_seconds(alarm.received_at, alarm.resolved_at),
        policy=policy.name if policy else alarm.policy,
    )


# ---- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """Rows as fetched (read on the database thread; turned into cases elsewhere)."""

    total: int
    rows: list[Row]
    feedback: dict[int, list[str]]

    def cases(self, rules: RulesFile, now: float) -> list[LedgerRow]:
        out = []
        for row in self.rows:
            alarm = Alarm.from_row(row)
            out.append(ledger_row(alarm, self.feedback.get(alarm.id, []), rules, now))
        return out


def _select(conn: Conn, filt: LedgerFilter, limit: int | None, offset: int) -> Found:
    where, args = filt.where()
    total = int(conn.execute(f"SELECT count(*) FROM alarms{where}", args).fetchone()[0])
    sql = f"SELECT * FROM alarms{where} ORDER BY received_at DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        args = [*args, limit, offset]
    rows = list(conn.execute(sql, args))
    feedback: dict[int, list[str]] = {}
    ids = [r["id"] for r in rows]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        notes = conn.execute(
            "SELECT alarm_id, detail FROM alarm_log WHERE action = 'feedback' AND alarm_id IN"
            f" ({','.join('?' * len(chunk))}) ORDER BY id",
            chunk,
        )
        for alarm_id, detail in notes:
            feedback.setdefault(alarm_id, []).append(detail)
    return Found(total, rows, feedback)


async def count(db: Database, filt: LedgerFilter) -> int:
    where, args = filt.where()
    return int(await db.fetch_value(f"SELECT count(*) FROM alarms{where}", args))


async def page(db: Database, query: LedgerQuery, rules: RulesFile, now: float) -> LedgerPage:
    offset = (query.page - 1) * query.page_size
    found = await db.read(lambda c: _select(c, query, query.page_size, offset))
    return LedgerPage(
        total=found.total,
        page=query.page,
        page_size=query.page_size,
        pages=max(1, math.ceil(found.total / query.page_size)),
        items=found.cases(rules, now),
    )


async def rows(db: Database, filt: LedgerFilter, rules: RulesFile, now: float) -> list[LedgerRow]:
    """Every matching case, newest first (for exports and the report). The database thread
    only fetches; the rows become cases on a worker thread, off the event loop."""
    found = await db.read(lambda c: _select(c, filt, None, 0))
    return await asyncio.to_thread(found.cases, rules, now)


# ---- the report's cases: a few columns of each, not the whole row ------------------------------

#: A report covers at most this many cases; a wider filter is refused with the count.
REPORT_MAX_ROWS = 200_000
_REPORT_COLUMNS = (
    "level, rule, mode, policy, state, outcome, cause, received_at, accept_by, accepted_at,"
    " resolved_at, model, building_id, community, building"
)


class TooMany(Exception):
    """More cases match than a report or an export may hold."""

    def __init__(self, total: int, limit: int) -> None:
        super().__init__(f"{total} cases match; at most {limit}")
        self.total = total
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ReportCase:
    """What the report needs of a case (the same names and meanings as in LedgerRow)."""

    level: int
    state: AlarmState
    outcome: Outcome | None
    cause: FalseAlarmCause | None
    accepted_at: float | None
    time_to_accept_s: float | None
    time_to_resolve_s: float | None
    budget_s: float | None
    within_budget: bool | None
    model: str
    building_id: str
    community: str
    building: str


def _at(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def report_case(row: Row, rules: RulesFile, now: float) -> ReportCase:
    live = row["mode"] == Mode.LIVE.value
    policy = _policy(row["policy"], row["rule"], row["level"], rules) if live else None
    # times through datetimes, exactly as the ledger's rows compute them
    received = datetime.fromtimestamp(row["received_at"], UTC)
    tta = _seconds(received, _at(row["accepted_at"]))
    budget, within = _budget_and_within(
        live=live,
        policy=policy,
        received=received.timestamp(),
        accept_by=row["accept_by"],
        tta=tta,
        resolved=row["resolved_at"],
        now=now,
    )
    return ReportCase(
        level=row["level"],
        state=AlarmState(row["state"]),
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        cause=FalseAlarmCause(row["cause"]) if row["cause"] else None,
        accepted_at=row["accepted_at"],
        time_to_accept_s=tta,
        time_to_resolve_s=_seconds(received, _at(row["resolved_at"])),
        budget_s=budget,
        within_budget=within,
        model=row["model"],
        building_id=row["building_id"],
        community=row["community"],
        building=row["building"],
    )


def _select_for_report(conn: Conn, filt: LedgerFilter) -> list[Row]:
    where, args = filt.where()
    total = int(conn.execute(f"SELECT count(*) FROM alarms{where}", args).fetchone()[0])
    if total > REPORT_MAX_ROWS:
        raise TooMany(total, REPORT_MAX_ROWS)
    return list(conn.execute(f"SELECT {_REPORT_COLUMNS} FROM alarms{where}", args))


async def report_cases(
    db: Database, filt: LedgerFilter, rules: RulesFile, now: float
) -> list[ReportCase]:
    """The matching cases as the report reads them: fifteen columns a case, no log; raises
    TooMany past REPORT_MAX_ROWS. The rows become cases on a worker thread."""
    found = await db.read(lambda c: _select_for_report(c, filt))
    return await asyncio.to_thread(lambda: [report_case(r, rules, now) for r in found])


# ---- the report -------------------------------------------------------------------------------


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
        generated_at=datetime.fromtimestamp(now, UTC),
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


# ---- exports -----------------------------------------------------------------------------------

_WORDS = {
    "zh": {
        "levels": {1: "Ⅰ级", 2: "Ⅱ级", 3: "Ⅲ级", 4: "Ⅳ级"},
        "kinds": {
            "call": "一键呼叫",
            "smoke": "烟感",
            "gas": "燃气",
            "air": "空气",
            "water": "水浸",
            "power": "电路",
            "gateway": "网关",
        },
        "outcomes": {
            "handled": "已处置",
            "false_alarm": "误报",
            "test": "测试",
            "cleared": "自动解除",
        },
        "causes": {
            "mistouch": "误触",
            "device_fault": "设备故障",
            "cooking": "烹饪油烟",
            "unannounced_test": "测试未报备",
            "other": "其他",
        },
        "states": {"active": "待受理", "accepted": "已受理", "resolved": "已办结"},
        "modes": {"live": "值班", "walk_test": "巡检测试", "maintenance": "维护"},
        "yes": "是",
        "no": "否",
        "system": "系统",
        "sheet": "台账",
        "summary": "汇总",
    },
    "en": {
        "levels": {1: "I", 2: "II", 3: "III", 4: "IV"},
        "kinds": {},
        "outcomes": {
            "handled": "handled",
            "false_alarm": "false alarm",
            "test": "test",
            "cleared": "cleared",
        },
        "causes": {
            "mistouch": "mistouch",
            "device_fault": "device fault",
            "cooking": "cooking fumes",
            "unannounced_test": "unannounced test",
            "other": "other",
        },
        "states": {"active": "not accepted", "accepted": "accepted", "resolved": "resolved"},
        "modes": {"live": "live", "walk_test": "walk test", "maintenance": "maintenance"},
        "yes": "yes",
        "no": "no",
        "system": "system",
        "sheet": "Ledger",
        "summary": "Summary",
    },
}

#: (field, Chinese header, English header, Excel column width)
COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("id", "案件编号", "Case no.", 9),
    ("level", "级别", "Level", 7),
    ("kind", "类型", "Kind", 9),
    ("title", "告警", "Alarm", 22),
    ("community", "社区", "Community", 12),
    ("grid", "网格", "Grid", 10),
    ("building", "楼栋", "Building", 14),
    ("home", "户", "Home", 11),
    ("device", "设备", "Device", 12),
    ("model", "设备型号", "Device model", 18),
    ("received_at", "接收时间（北京时间）", "Received (Beijing time)", 20),
    ("accepted_at", "受理时间", "Accepted", 20),
    ("accepted_by", "受理人", "Accepted by", 10),
    ("time_to_accept_s", "受理用时（秒）", "Time to accept (s)", 12),
    ("budget_s", "受理时限（秒）", "Acceptance budget (s)", 12),
    ("within_budget", "时限内受理", "Accepted within budget", 10),
    ("dispatched_at", "派单时间", "Dispatched", 20),
    ("dispatched_to", "派给", "Dispatched to", 16),
    ("feedback", "情况反馈", "Feedback", 28),
    ("resolved_at", "办结时间", "Resolved", 20),
    ("resolved_by", "办结人", "Resolved by", 10),
    ("outcome", "处置结果", "Outcome", 10),
    ("cause", "误报原因", "False-alarm cause", 12),
    ("note", "处置说明", "Note", 28),
    ("time_to_resolve_s", "办结用时（秒）", "Time to resolve (s)", 12),
    ("escalations", "升级次数", "Escalations", 9),
    ("verified_at", "督办核实时间", "Verified", 20),
    ("verified_by", "核实人", "Verified by", 10),
    ("state", "状态", "State", 9),
    ("mode", "记录类型", "Record", 9),
)

_TIME_FIELDS = {"received_at", "accepted_at", "dispatched_at", "resolved_at", "verified_at"}


def headers(lang: str) -> list[str]:
    return [zh if lang == "zh" else en for _, zh, en, _ in COLUMNS]


def local(moment: datetime | None) -> datetime | None:
    """An aware time → naive Beijing time (what Excel and a spreadsheet reader show)."""
    return None if moment is None else moment.astimezone(BEIJING).replace(tzinfo=None)


def _cells(row: LedgerRow, lang: str) -> list[Any]:
    """One case as export values: times as naive Beijing datetimes, numbers as numbers."""
    words = _WORDS[lang]
    out: list[Any] = []
    for name, *_ in COLUMNS:
        value: Any
        if name in _TIME_FIELDS:
            value = local(getattr(row, name))
        elif name == "level":
            value = words["levels"][row.level]
        elif name == "kind":
            value = words["kinds"].get(row.kind, row.kind)
        elif name == "title":
            value = row.title_zh if lang == "zh" else row.title_en
        elif name == "within_budget":
            value = (
                None if row.within_budget is None else words["yes" if row.within_budget else "no"]
            )
        elif name == "outcome":
            value = words["outcomes"].get(row.outcome.value) if row.outcome else None
        elif name == "cause":
            value = words["causes"].get(row.cause.value) if row.cause else None
        elif name == "state":
            value = words["states"][row.state.value]
        elif name == "mode":
            value = words["modes"][row.mode.value]
        elif name in ("accepted_by", "resolved_by") and getattr(row, name) == "system":
            value = words["system"]
        else:
            value = getattr(row, name)
        out.append(value)
    return out


#: A spreadsheet reads a cell starting with one of these as a formula (=HYPERLINK(…), +cmd…,
#: -2+3, @SUM(…); a tab or carriage return ahead of them), full-width forms included.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


#: The control characters a workbook cannot hold (as openpyxl's ILLEGAL_CHARACTERS_RE, which
#: raises on them; openpyxl itself is imported only when a workbook is written).
ILLEGAL_CHARACTERS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def clean_text(text: str) -> str:
    """Text as a workbook can hold it: control characters (other than tab, newline and
    carriage return) removed; openpyxl refuses a cell with one."""
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def is_formula_like(text: str) -> bool:
    return text.startswith(FORMULA_START)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        value = clean_text(value)
        # an apostrophe makes a spreadsheet show the text as typed instead of running it
        return "'" + value if is_formula_like(value) else value
    return value


def to_csv(cases: Iterable[LedgerRow], lang: str) -> bytes:
    """UTF-8 with a byte-order mark (so Excel reads the Chinese right), CRLF line ends. Text
    that a spreadsheet would run as a formula starts with an apostrophe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers(lang))
    for case in cases:
        writer.writerow([_csv_value(v) for v in _cells(case, lang)])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(
    cases: Sequence[LedgerRow],
    lang: str,
    *,
    filt: LedgerFilter,
    actor: str,
    now: float,
) -> bytes:
    """An Excel workbook: the cases (styled header, widths, real datetimes in Beijing time,
    frozen header, auto-filter) and a summary sheet (filter, who exported, counts)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    words = _WORDS[lang]
    book = Workbook(write_only=True)
    sheet = book.create_sheet(str(words["sheet"]))
    bold = Font(bold=True, color="FFFFFF")
    fill = PatternFill("solid", fgColor="20232A")
    wrap = Alignment(vertical="center", wrap_text=True)
    for i, (*_, width) in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{len(cases) + 1}"

    def header_cell(text: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=text)
        cell.font, cell.fill, cell.alignment = bold, fill, wrap
        return cell

    sheet.append([header_cell(h) for h in headers(lang)])
    for case in cases:
        out: list[Any] = []
        for value in _cells(case, lang):
            if isinstance(value, datetime):
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
                out.append(cell)
            elif isinstance(value, str):
                text = clean_text(value)
                if is_formula_like(text):  # text as typed, never a formula
                    cell = WriteOnlyCell(sheet, value=text)
                    cell.data_type = "s"
                    out.append(cell)
                else:
                    out.append(text)
            else:
                out.append(value)
        sheet.append(out)

    summary = book.create_sheet(str(words["summary"]))
    summary.column_dimensions["A"].width = 22
    summary.column_dimensions["B"].width = 40
    zh = lang == "zh"
    exported = WriteOnlyCell(summary, value=local(datetime.fromtimestamp(now, UTC)))
    exported.number_format = "yyyy-mm-dd hh:mm:ss"
    summary.append([header_cell("台账导出" if zh else "Ledger export"), header_cell("")])
    summary.append(["导出时间（北京时间）" if zh else "Exported (Beijing time)", exported])
    summary.append(["导出人" if zh else "Exported by", actor])
    summary.append(["记录数" if zh else "Cases", len(cases)])
    described = filt.describe()
    summary.append(["筛选条件" if zh else "Filter", "" if described else ("全部" if zh else "all")])
    for key, value in described.items():
        summary.append([key, ", ".join(map(str, value)) if isinstance(value, list) else value])
    summary.append([])
    summary.append(
        [
            header_cell("级别" if zh else "Level"),
            header_cell("数量" if zh else "Cases"),
            header_cell("误报" if zh else "False alarms"),
        ]
    )
    for level, name in words["levels"].items():
        of_level = [c for c in cases if c.level == level]
        false_alarms = sum(c.outcome is Outcome.FALSE_ALARM for c in of_level)
        summary.append([name, len(of_level), false_alarms])
    out_buffer = io.BytesIO()
    book.save(out_buffer)
    return out_buffer.getvalue()
