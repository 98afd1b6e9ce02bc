"""The alarm book applying the rules core's decisions: what a clear does to a latched, an
unaccepted and an accepted alarm; latching on the way up; tests kept apart from live cases."""

from __future__ import annotations

from datetime import UTC, datetime

from cloud.rules import AlarmDraft, Clear
from tests.cloud.helpers import T0, FakeClock, book_parts

AT = datetime.fromtimestamp(T0, UTC)


def draft(rule: str, device: str, kind: str, level: int, **kw: object) -> AlarmDraft:
    return AlarmDraft(rule, level, kind, "gw-ld01", device, rule, rule, AT, **kw)  # type: ignore[arg-type]


def clear(rule: str, device: str, **kw: object) -> Clear:
    return Clear(rule, "gw-ld01", device, AT, "clear from the device", **kw)  # type: ignore[arg-type]


async def test_a_clear_closes_an_unaccepted_alarm_notes_an_accepted_one_and_never_a_latched_one(
    database_url: str,
) -> None:
    clock = FakeClock()
    async with book_parts(database_url, clock) as parts:
        book = parts.book
        smoke, water, power = (
            r.alarm
            for r in await book.apply(
                [
                    draft("smoke_alarm", "smoke-0102", "smoke", 1, life_safety=True),
                    draft("water_leak", "gas-0101", "water", 3),
                    draft("power_fault", "air-0201", "power", 2),
                ],
                clock(),
            )
        )
        await parts.casework.accept(power.id, "op")
        clock.advance(5)
        changes = await book.apply(
            [
                clear("smoke_alarm", "smoke-0102"),
                clear("water_leak", "gas-0101"),
                clear("power_fault", "air-0201"),
                clear("tamper", "call-0101"),  # nothing open: nothing happens
            ],
            clock(),
        )
        assert [c.change for c in changes] == ["noted", "cleared", "noted"]
        smoke, water, power = [await parts.alarms.get(a.id) for a in (smoke, water, power)]
        assert smoke.state == "active" and smoke.cleared_at is not None
        assert (water.state, water.outcome, water.resolved_by) == ("resolved", "cleared", "system")
        # a closed case escalates no further, but step 0 (not fired yet) still tells the
        # policy's first people that it happened
        assert water.notify_due_at == water.received_at
        assert power.state == "accepted" and power.cleared_at is not None
        log = [(h.action, h.detail) for h in await parts.alarms.history(smoke.id)]
        assert ("device_cleared", "clear from the device; latched: an operator closes it") in log
        # alarming again after a clear: the same open case, the clear forgotten
        [again] = await book.apply(
            [draft("smoke_alarm", "smoke-0102", "smoke", 1, life_safety=True)], clock()
        )
        assert again.alarm.id == smoke.id and again.alarm.cleared_at is None


async def test_an_alarm_that_becomes_life_safety_latches_and_leaves_its_group(
    database_url: str,
) -> None:
    clock = FakeClock()
    async with book_parts(database_url, clock) as parts:
        [low] = await parts.book.apply(
            [draft("methane_high", "gas-0101", "gas", 2, group="gas")], clock()
        )
        assert low.alarm.group_key == "ld-01/gas" and not low.alarm.life_safety
        [high] = await parts.book.apply(
            [draft("methane_high", "gas-0101", "gas", 1, life_safety=True)], clock()
        )
        assert high.alarm.id == low.alarm.id
        assert (high.alarm.level, high.alarm.life_safety, high.alarm.group_key) == (1, True, None)
        [noted] = await parts.book.apply([clear("methane_high", "gas-0101")], clock())
        assert noted.change == "noted" and noted.alarm.state == "active"


async def test_test_alarms_are_kept_apart_from_live_ones(database_url: str) -> None:
    clock = FakeClock()
    async with book_parts(database_url, clock) as parts:
        live = draft("smoke_alarm", "smoke-0102", "smoke", 1, life_safety=True)
        test = draft(
            "smoke_alarm", "smoke-0102", "smoke", 1, life_safety=True, mode="walk_test", window=7
        )
        [a] = await parts.book.apply([live], clock())
        [b] = await parts.book.apply([test], clock())
        assert a.alarm.id != b.alarm.id and b.alarm.mode == "walk_test"
        assert [x.id for x in await parts.alarms.active()] == [a.alarm.id]
        assert [x.id for x in await parts.alarms.in_window(7)] == [b.alarm.id]


async def test_alarms_of_one_level_received_together_stay_in_the_order_they_were_stored(
    database_url: str,
) -> None:
    """Most severe first, then oldest: alarms raised by one batch have the same received_at,
    and the one stored first stays first, also after it was changed (on PostgreSQL an update
    moves a row, so without a tie-breaker the board's order changed when an operator looked)."""
    clock = FakeClock()
    async with book_parts(database_url, clock) as parts:
        first, second = (
            r.alarm
            for r in await parts.book.apply(
                [
                    draft("call_for_help", "call-0101", "call", 1, life_safety=True),
                    draft("smoke_alarm", "smoke-0102", "smoke", 1, life_safety=True),
                ],
                clock(),
            )
        )
        assert first.id < second.id and first.received_at == second.received_at
        await parts.casework.mark_shown(first.id, "op")
        assert [a.id for a in await parts.alarms.active()] == [first.id, second.id]
