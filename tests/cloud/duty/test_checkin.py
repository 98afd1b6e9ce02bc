"""The daily check-in (平安报): a home enrolled with a time; no press of its call button by then
raises exactly one level-III visit task a day, for the grid worker; a check-in clears it. The
check-in goes through the alarm book as ingest stores it; the clock is the test's — and once
through the running cloud, the broker and ingest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.alarms.arrivals import event_arrival
from cloud.alarms.model import Alarm, AlarmState, Outcome
from cloud.duty.checkin import CheckIns
from cloud.errors import NotFound, Refused
from tests.cloud.conftest import (
    Publisher,
    cloud_settings,
    end_session,
    eventually,
    forget_gateway_status,
    running_cloud,
)
from tests.cloud.helpers import T0, FakeClock, Parts, book_parts, event, record
from tests.servers import Mosquitto

HOME = "h-01-0101"  # 1栋101: 王秀英, 82, lives alone; call-0101 on gw-ld01
MORNING = T0 - 8 * 3600  # 08:00 Beijing time, Friday 15 January 2027
TEN = MORNING + 2 * 3600  # 10:00


async def press(parts: Parts, type_: str = "test") -> None:
    """The resident's long press (type test; a short press is a call) at the clock's time."""
    now = parts.db.clock()
    pressed = event(
        device="call-0101", kind="call", type_=type_, ts=datetime.fromtimestamp(now, UTC)
    )
    await record(parts.book, event_arrival(pressed, now), lambda: parts.core.event(pressed, now))


async def tasks(parts: Parts) -> list[dict[str, object]]:
    rows = await parts.db.fetch_all(
        "SELECT id, level, state, outcome, device FROM alarms WHERE rule = 'checkin_missed'"
        " ORDER BY id"
    )
    return [dict(zip(r.keys(), r, strict=True)) for r in rows]


async def test_a_missed_check_in_raises_one_visit_task_and_a_check_in_clears_it(
    database_url: str,
) -> None:
    clock = FakeClock(MORNING)
    async with book_parts(database_url, clock, with_roster=True) as parts:
        daily = CheckIns(parts.db, parts.registry, parts.book, parts.roster.audit)
        await daily.enrol(HOME, "10:00", "sup")
        assert await daily.sweep() == []  # 08:00: not due yet
        clock.now = TEN - 1
        assert await daily.sweep() == []
        clock.now = TEN + 30
        [raised] = await daily.sweep()
        for _ in range(3):  # later sweeps the same day raise nothing more
            clock.advance(600)
            assert await daily.sweep() == []
        assert [t["level"] for t in await tasks(parts)] == [3]
        assert raised.alarm.title_zh.startswith("平安报未报到")
        assert not raised.alarm.life_safety
        # the grid worker is told, the duty room's phone chain is not
        await parts.escalator.fire_due()
        notes = await parts.notifications.of_alarm(raised.alarm.id)
        assert {(n["target"], n["name"]) for n in notes} == {("grid_worker", "李网格")}
        [today] = await daily.today()
        assert (today.state, today.alarm_id) == ("missed", raised.alarm.id)

        clock.advance(300)
        await press(parts)  # 10:35: she checks in after all
        clock.advance(5)
        [cleared] = await daily.sweep()
        assert cleared.alarm.id == raised.alarm.id
        [task] = await tasks(parts)
        assert (task["state"], task["outcome"]) == (AlarmState.RESOLVED, Outcome.CLEARED)
        assert await daily.sweep() == []
        [today] = await daily.today()
        assert today.state == "checked_in"

        clock.advance(86400)  # the next day, no check-in: one new task, that day's
        assert len(await daily.sweep()) == 1
        assert len(await tasks(parts)) == 2


async def test_a_check_in_before_the_time_raises_nothing(database_url: str) -> None:
    clock = FakeClock(MORNING)
    async with book_parts(database_url, clock) as parts:
        daily = CheckIns(parts.db, parts.registry, parts.book, parts.roster.audit)
        await daily.enrol(HOME, "10:00", "sup")
        clock.advance(600)
        await press(parts, "press")  # a call for help also shows she is up
        clock.now = TEN + 60
        assert await daily.sweep() == []
        assert await tasks(parts) == []
        [today] = await daily.today()
        assert today.state == "checked_in" and today.checked_in_at is not None


async def test_enrolment_refusals(database_url: str) -> None:
    async with book_parts(database_url, FakeClock()) as parts:
        daily = CheckIns(parts.db, parts.registry, parts.book, parts.roster.audit)
        with pytest.raises(Refused, match="has no call button"):
            await daily.enrol("h-01-0102", "10:00", "sup")  # a smoke alarm only
        with pytest.raises(Refused, match="not HH:MM"):
            await daily.enrol(HOME, "25:00", "sup")
        with pytest.raises(NotFound, match="no home"):
            await daily.enrol("h-99", "10:00", "sup")
        assert await daily.today() == []


async def test_a_restart_raises_no_second_task(database_url: str) -> None:
    clock = FakeClock(TEN + 60)
    async with book_parts(database_url, clock) as parts:
        daily = CheckIns(parts.db, parts.registry, parts.book, parts.roster.audit)
        await daily.enrol(HOME, "10:00", "sup")
        [raised] = await daily.sweep()
        await parts.casework.accept(raised.alarm.id, "op")
        await parts.casework.resolve(raised.alarm.id, "op", Outcome.HANDLED, "上门看过，平安", None)
    clock.advance(600)
    async with book_parts(database_url, clock) as parts:  # the cloud started again
        daily = CheckIns(parts.db, parts.registry, parts.book, parts.roster.audit)
        assert await daily.sweep() == []  # the day's task was raised (and closed by hand)
        assert len(await tasks(parts)) == 1


async def test_the_running_cloud_sweeps_and_a_long_press_over_mqtt_clears_the_task(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str, gw1: Publisher
) -> None:
    """The sweep as the cloud runs it (every 0.1 s here), the check-in through the broker and
    ingest: a home due by 00:00 is overdue at once; the resident's long press clears it."""
    forget_gateway_status(mosquitto)
    settings = cloud_settings(tmp_path, mosquitto, database=database_url, checkin_sweep_s=0.1)
    async with running_cloud(settings) as running:
        parts = running.cloud
        await parts.duty.checkins.enrol(HOME, "00:00", "sup")
        [task] = await eventually(lambda: parts.alarms.active())
        assert (task.rule, task.level, task.device) == ("checkin_missed", 3, "call-0101")
        pressed = event(device="call-0101", kind="call", type_="test", ts=datetime.now(UTC))
        await asyncio.to_thread(gw1.publish, "sc/v1/gw-ld01/event", pressed.model_dump_json())
        cleared = await eventually(lambda: _resolved(parts.alarms.get(task.id)), timeout=10)
        assert cleared.outcome == Outcome.CLEARED

        async def checked_in() -> bool:  # recorded by its own commit, after the alarm's
            return (await parts.duty.checkins.today())[0].state == "checked_in"

        assert await eventually(checked_in)
    await asyncio.to_thread(end_session, mosquitto, settings.mqtt_client_id)


async def _resolved(alarm: Awaitable[Alarm]) -> Alarm | None:
    found = await alarm
    return found if found.state is AlarmState.RESOLVED else None
