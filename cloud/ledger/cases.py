"""A case as the ledger shows it: one row per alarm, with the times it took (to accept, to
resolve) and whether it was accepted within its routing policy's budget; and the slimmer copy
the report reads (`ReportCase`), computed the same way from a few columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from cloud.alarms.model import Alarm, AlarmState, FalseAlarmCause, Mode, Outcome
from cloud.db.database import Row
from cloud.rules.config import RulesFile
from cloud.rules.policies import Policy
from cloud.times import from_epoch, to_epoch


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
    dispatch_notes: str = Field("", description="Each dispatch: to whom and its note, oldest first")
    verify_note: str = Field("", description="The supervisor's note when verifying (督办核实)")
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


def ledger_row(
    alarm: Alarm, notes: Mapping[str, Sequence[str]], rules: RulesFile, now: float
) -> LedgerRow:
    """One case of the ledger; `notes` are its log's details by action (feedback, dispatched,
    verified), oldest first."""
    live = alarm.mode is Mode.LIVE
    policy = policy_of(alarm, rules) if live else None
    tta = _seconds(alarm.received_at, alarm.accepted_at)
    budget, within = _budget_and_within(
        live=live,
        policy=policy,
        received=alarm.received_at.timestamp(),
        accept_by=to_epoch(alarm.accept_by),
        tta=tta,
        resolved=to_epoch(alarm.resolved_at),
        now=now,
    )
    return LedgerRow(
        **alarm.model_dump(include=_SHARED),
        time_to_accept_s=tta,
        budget_s=budget,
        within_budget=within,
        feedback="; ".join(notes.get("feedback", ())),
        dispatch_notes="; ".join(notes.get("dispatched", ())),
        verify_note="; ".join(n for n in notes.get("verified", ()) if n),
        time_to_resolve_s=_seconds(alarm.received_at, alarm.resolved_at),
        policy=policy.name if policy else alarm.policy,
    )


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


def report_case(row: Row, rules: RulesFile, now: float) -> ReportCase:
    live = row["mode"] == Mode.LIVE.value
    policy = _policy(row["policy"], row["rule"], row["level"], rules) if live else None
    # times through datetimes, exactly as the ledger's rows compute them
    received = from_epoch(row["received_at"])
    tta = _seconds(received, from_epoch(row["accepted_at"]))
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
        time_to_resolve_s=_seconds(received, from_epoch(row["resolved_at"])),
        budget_s=budget,
        within_budget=within,
        model=row["model"],
        building_id=row["building_id"],
        community=row["community"],
        building=row["building"],
    )
