"""The duty roster: escalation steps that name roles reach whoever is on shift when the step
fires — across the 20:00 shift boundary, after a swap, on a holiday — with a real local HTTP
receiver for the webhook channel and a clock the test moves, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from cloud.duty.roster import DutyRole
from cloud.duty.shifts import shift_at
from cloud.errors import Refused
from cloud.rules import AlarmDraft, load_rules
from tests.cloud.helpers import T0, FakeClock, Parts, WebhookReceiver, book_parts, rules_file

FRIDAY = date(2027, 1, 15)  # T0 is 16:00 Beijing time on this Friday
SATURDAY = date(2027, 1, 16)
BOUNDARY = T0 + 4 * 3600  # 20:00 Beijing: the day shift ends, the night shift begins
STREET, GRID = "jd-jinjiang", "wg-01"


def call(at: float, gateway: str = "gw-ld01") -> AlarmDraft:
    """A call from 1栋101 (gw-ld01) or 2栋101 (gw-ld02), both in grid wg-01."""
    return AlarmDraft(
        "call_for_help",
        1,
        "call",
        gateway,
        "call-0101",
        "一键呼叫求助",
        "Emergency call",
        datetime.fromtimestamp(at, UTC),
        life_safety=True,
    )


def leader_escalation(data: dict[str, Any]) -> None:
    """Life safety: the grid worker and the duty officer at once; the on-call leader once the
    60 s budget is spent."""
    for policy in data["policies"]:
        if policy["name"] == "life_safety":
            policy["notify"] = [
                {"to": "grid_worker", "via": ["webhook"]},
                {"to": "duty_officer", "via": ["webhook"]},  # nobody on the roster: skipped
            ]
            policy["escalate"] = [{"to": "on_call_leader", "via": ["webhook"]}]


async def staff(parts: Parts) -> dict[str, int]:
    """Friday: 甲 day / 乙 night grid worker of wg-01; 李 day / 杜 night on-call leader;
    Saturday night: 王 leads."""
    ids = {}
    for name, phone in (
        ("甲网格", "138 1111 0001"),
        ("乙网格", "138 1111 0002"),
        ("李带班", "138 2222 0001"),
        ("杜带班", "138 2222 0002"),
        ("王带班", "138 2222 0003"),
    ):
        ids[name] = (await parts.roster.add_person(name, phone, "sup")).id
    week = parts.roster.set_weekly
    await week("fri", "day", DutyRole.GRID_WORKER, GRID, ids["甲网格"], "sup")
    await week("fri", "night", DutyRole.GRID_WORKER, GRID, ids["乙网格"], "sup")
    await week("fri", "day", DutyRole.ON_CALL_LEADER, STREET, ids["李带班"], "sup")
    await week("fri", "night", DutyRole.ON_CALL_LEADER, STREET, ids["杜带班"], "sup")
    await week("sat", "night", DutyRole.ON_CALL_LEADER, STREET, ids["王带班"], "sup")
    return ids


def told(webhook: WebhookReceiver, alarm_id: int) -> list[tuple[int, str, str]]:
    return [
        (r["step"], r["to"]["target"], r["to"]["name"])
        for r in webhook.received
        if r["alarm"]["id"] == alarm_id
    ]


async def test_roles_are_resolved_when_the_step_fires_across_the_shift_boundary(
    database_url: str, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    config = load_rules(rules_file(tmp_path, leader_escalation))
    clock = FakeClock(BOUNDARY - 30)  # 19:59:30, the day shift's last half minute
    async with book_parts(
        database_url, clock, config=config, webhook_url=webhook.url, with_roster=True
    ) as parts:
        await staff(parts)
        [before] = await parts.book.apply([call(clock())], clock())
        await parts.escalator.fire_due()
        await parts.escalator.deliver_due()
        clock.advance(61)  # 20:00:31: the budget is spent, and the night shift has begun
        [after] = await parts.book.apply([call(clock(), "gw-ld02")], clock())
        await parts.escalator.fire_due()
        await parts.escalator.deliver_due()
        history = await parts.alarms.history(before.alarm.id)
        notes = await parts.notifications.of_alarm(before.alarm.id)
    [officer] = [n for n in notes if n["target"] == "duty_officer"]
    assert (officer["status"], officer["detail"]) == (
        "skipped",
        "no duty officer on the roster for 2027-01-15 白班",
    )
    assert told(webhook, before.alarm.id) == [
        (0, "grid_worker", "甲网格"),  # raised on the day shift
        (1, "on_call_leader", "杜带班"),  # escalated on the night shift: tonight's leader
    ]
    assert told(webhook, after.alarm.id) == [(0, "grid_worker", "乙网格")]  # the night's worker
    escalate = next(h for h in history if h.action == "escalate")
    assert "2027-01-15 夜班" in escalate.detail and "杜带班" in escalate.detail


async def test_a_swap_changes_who_is_reached_and_is_kept(
    database_url: str, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    config = load_rules(rules_file(tmp_path, leader_escalation))
    clock = FakeClock(BOUNDARY - 30)
    async with book_parts(
        database_url, clock, config=config, webhook_url=webhook.url, with_roster=True
    ) as parts:
        await staff(parts)
        # 杜 (Friday night) and 王 (Saturday night) trade their nights
        friday, saturday = await parts.roster.swap(
            DutyRole.ON_CALL_LEADER,
            STREET,
            (FRIDAY, "night"),
            (SATURDAY, "night"),
            "杜家中有事",
            "sup",
        )
        assert (friday.person.name, friday.source, friday.replaces) == ("王带班", "swap", "杜带班")
        assert (saturday.person.name, saturday.replaces) == ("杜带班", "王带班")
        [raised] = await parts.book.apply([call(clock())], clock())
        await parts.escalator.fire_due()
        clock.advance(61)
        await parts.escalator.fire_due()
        await parts.escalator.deliver_due()
        shifts = await parts.roster.days(FRIDAY, 2)
        audit = await parts.db.fetch_all(
            "SELECT actor, action FROM audit WHERE action = ?", ("roster_swap",)
        )
    assert told(webhook, raised.alarm.id)[-1] == (1, "on_call_leader", "王带班")
    leaders = {
        (s.day, s.shift): a.person.name
        for s in shifts
        for a in s.assignments
        if a.role == DutyRole.ON_CALL_LEADER
    }
    assert leaders == {
        (FRIDAY, "day"): "李带班",
        (FRIDAY, "night"): "王带班",
        (SATURDAY, "night"): "杜带班",
    }
    assert [(r["actor"], r["action"]) for r in audit] == [("sup", "roster_swap")] * 2


async def test_holidays_and_the_night_after_midnight(database_url: str) -> None:
    clock = FakeClock()
    async with book_parts(database_url, clock, with_roster=True) as parts:
        ids = await staff(parts)
        await parts.roster.set_holiday(SATURDAY, "春节", "sup")
        holiday_worker = (await parts.roster.add_person("节日网格", "138 1111 0009", "sup")).id
        await parts.roster.set_weekly(
            "holiday", "night", DutyRole.GRID_WORKER, GRID, holiday_worker, "sup"
        )
        await parts.roster.set_weekly(
            "sat", "night", DutyRole.GRID_WORKER, GRID, ids["乙网格"], "sup"
        )
        at_saturday_night = BOUNDARY + 86400 + 60  # Saturday 20:01: the holiday's pattern …
        at_small_hours = BOUNDARY + 7 * 3600  # Saturday 03:00: still Friday's night shift
        saturday_night = await parts.db.read(lambda c: parts.roster.on_shift(c, at_saturday_night))
        friday_night = await parts.db.read(lambda c: parts.roster.on_shift(c, at_small_hours))
    assert saturday_night.holiday == "春节"
    grid = saturday_night.who(DutyRole.GRID_WORKER, GRID)
    assert grid is not None and (grid.person.name, grid.source) == ("节日网格", "holiday")
    leader = saturday_night.who(
        DutyRole.ON_CALL_LEADER, STREET
    )  # … the weekday's where it is silent
    assert leader is not None and (leader.person.name, leader.source) == ("王带班", "weekly")
    assert friday_night.holiday is None and friday_night.ref == shift_at(BOUNDARY)
    worker = friday_night.who(DutyRole.GRID_WORKER, GRID)
    assert worker is not None and worker.person.name == "乙网格"


async def test_refusals_name_the_reason(database_url: str) -> None:
    clock = FakeClock()
    async with book_parts(database_url, clock, with_roster=True) as parts:
        ids = await staff(parts)
        with pytest.raises(Refused, match="nobody is on the roster for 2027-01-16 白班"):
            await parts.roster.swap(
                DutyRole.ON_CALL_LEADER, STREET, (FRIDAY, "night"), (SATURDAY, "day"), "", "sup"
            )
        with pytest.raises(Refused, match="no such role and scope: grid_worker/wg-99"):
            await parts.roster.set_weekly(
                "fri", "day", DutyRole.GRID_WORKER, "wg-99", ids["甲网格"], "sup"
            )
        with pytest.raises(Refused, match="unknown shift"):
            await parts.roster.set_weekly(
                "fri", "noon", DutyRole.GRID_WORKER, GRID, ids["甲网格"], "sup"
            )
        shifts = await parts.roster.days(FRIDAY, 2)
    # nothing changed by the refused swap
    assert [a.source for s in shifts for a in s.assignments] == ["weekly"] * 5
