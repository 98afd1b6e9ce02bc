"""Properties of the rules core, checked over generated inputs (hypothesis): hysteresis never
flaps, a latched alarm never closes by itself, duplicates never create alarms, and escalation
keeps its order (each step once, none lost) across restarts."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.alarms.arrivals import batch_arrival, event_arrival
from cloud.alarms.model import AlarmState
from cloud.rules import AlarmDraft, Clear, Rules, load_rules
from cloud.rules.alarm_rules import Step, ThresholdRule
from cloud.rules.config import RulesFile
from cloud.rules.policies import Contacts, Notify, Person, Policy, Target, Via
from cloud.settings import DEFAULT_RULES
from contract.models import Kind, Reading, Values
from tests.cloud.helpers import T0, FakeClock, book_parts, event, record

START = datetime.fromtimestamp(T0, UTC)
# No example database: nothing is written into the working tree, every run starts fresh.
FAST = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
# Examples on the alarm book: each makes its own database with the `new_database` fixture,
# once per backend (a function-scoped fixture that is a factory, not state shared by examples).
SLOW = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NewDatabase = Callable[[], AbstractContextManager[str]]


# ---- hysteresis never flaps --------------------------------------------------------------------


@FAST
@given(
    raise_at=st.floats(5, 90),
    band=st.floats(0.5, 20),
    hold_s=st.sampled_from([0, 0, 30]),
    clear_hold_s=st.sampled_from([0, 0, 60]),
    values=st.lists(st.floats(0, 100), max_size=120),
)
def test_hysteresis_never_flaps(
    raise_at: float, band: float, hold_s: float, clear_hold_s: float, values: list[float]
) -> None:
    clear_below = max(raise_at - band, 0.0)
    rule = ThresholdRule(
        rule="x",
        kind=Kind.GAS,
        field="ch4_pct_lel",
        levels=[Step(at_or_above=raise_at, level=2)],
        clear_below=clear_below,
        hold_s=hold_s,
        clear_hold_s=clear_hold_s,
        zh="x",
        en="x",
    )
    rules = Rules(RulesFile(events=[], thresholds=[rule]))
    firing = False
    history: list[tuple[float, float]] = []
    for i, value in enumerate(values):
        at = i * 10.0
        history.append((at, value))
        for decision in rules.on_reading(
            "gw",
            Reading(
                device="d",
                ts=START + timedelta(seconds=at),
                kind=Kind.GAS,
                values=Values(ch4_pct_lel=value),
            ),
        ):
            if isinstance(decision, AlarmDraft):
                # a raise (or a repeat) only ever at or over the bound …
                assert value >= raise_at
                if not firing:  # … and a raise only after holding there for hold_s
                    held = [v for t, v in history if t >= at - hold_s]
                    assert all(v >= clear_below for v in held)
                firing = True
            else:
                assert isinstance(decision, Clear)
                # a clear only when firing, under the clear bound, held for clear_hold_s
                assert firing and value < clear_below
                held = [v for t, v in history if t >= at - clear_hold_s]
                assert all(v < raise_at for v in held)
                firing = False
        # inside the band nothing ever changes state
        if clear_below <= value < raise_at:
            assert rules.firing(("gw", "d", "x")) == firing


@FAST
@given(
    raise_at=st.floats(25, 90),
    band=st.floats(0.5, 20),
    wobble=st.lists(st.floats(0, 1), min_size=1, max_size=100),
)
def test_a_value_wobbling_inside_the_band_makes_no_transitions(
    raise_at: float, band: float, wobble: list[float]
) -> None:
    clear_below = raise_at - band
    rules = Rules(
        RulesFile(
            events=[],
            thresholds=[
                ThresholdRule(
                    rule="x",
                    kind=Kind.GAS,
                    field="ch4_pct_lel",
                    levels=[Step(at_or_above=raise_at, level=2)],
                    clear_below=clear_below,
                    zh="x",
                    en="x",
                )
            ],
        )
    )

    def feed(i: int, value: float) -> list[Any]:
        return rules.on_reading(
            "gw",
            Reading(
                device="d",
                ts=START + timedelta(seconds=i),
                kind=Kind.GAS,
                values=Values(ch4_pct_lel=value),
            ),
        )

    assert len(feed(0, raise_at)) == 1
    for i, w in enumerate(wobble, start=1):
        value = clear_below + w * (raise_at - clear_below) * 0.999
        assert feed(i, value) == []


# ---- a latched alarm never closes by itself ----------------------------------------------------

SMOKE_TYPES = ["alarm", "clear", "test", "heartbeat", "fault", "restore", "tamper", "battery_low"]
step_strategy = st.one_of(
    st.tuples(st.just("smoke"), st.sampled_from(SMOKE_TYPES)),
    st.tuples(st.just("gas"), st.floats(0, 60)),
    st.tuples(st.just("call"), st.sampled_from(["press", "cancel", "test"])),
    st.tuples(st.just("tick"), st.floats(1, 4000)),
)


@SLOW
@given(steps=st.lists(step_strategy, max_size=40))
def test_a_latched_alarm_never_closes_by_itself(
    new_database: NewDatabase, steps: list[tuple[str, Any]]
) -> None:
    with new_database() as database:
        asyncio.run(_latched(database, steps))


async def _latched(database: str, steps: list[tuple[str, Any]]) -> None:
    clock = FakeClock()
    async with book_parts(database, clock) as parts:
        for i, (what, arg) in enumerate(steps):
            now = clock.advance(arg if what == "tick" else 1.0)
            ts = datetime.fromtimestamp(now, UTC)
            if what == "tick":
                await parts.book.apply(parts.core.tick(now).decisions, now)
            elif what == "gas":
                reading = Reading(
                    device="gas-0101", ts=ts, kind=Kind.GAS, values=Values(ch4_pct_lel=arg)
                )
                await record(
                    parts.book,
                    batch_arrival(f"b{i}", "gw-ld01", 1, now),
                    functools.partial(parts.core.readings, "gw-ld01", [reading], now),
                )
            else:
                device = "smoke-0102" if what == "smoke" else "call-0101"
                ev = event(device, what, arg, ts=ts)
                decide = functools.partial(parts.core.event, ev, now)
                await record(parts.book, event_arrival(ev, now), decide)
            for row in await parts.db.fetch_all(
                "SELECT id, state, life_safety FROM alarms WHERE life_safety = 1"
            ):
                assert row["state"] == AlarmState.ACTIVE, f"alarm {row['id']} closed"


# ---- duplicates never create alarms ------------------------------------------------------------

EVENT_POOL = st.lists(
    st.tuples(
        st.sampled_from([("smoke-0102", "smoke"), ("call-0101", "call"), ("gas-0101", "gas")]),
        st.sampled_from(["alarm", "press", "fault", "clear", "restore", "tamper", "test"]),
    ),
    min_size=1,
    max_size=12,
)


@SLOW
@given(pool=EVENT_POOL, deliveries=st.lists(st.integers(0, 11), max_size=40))
def test_duplicates_never_create_alarms(
    new_database: NewDatabase, pool: list[tuple[tuple[str, str], str]], deliveries: list[int]
) -> None:
    events = [
        event(device, kind, type_, event_id=f"ev-{i:04d}-x", ts=START + timedelta(seconds=i))
        for i, ((device, kind), type_) in enumerate(pool)
    ]
    order = [i % len(events) for i in deliveries] + list(range(len(events)))
    first_seen: list[int] = []
    for i in order:
        if i not in first_seen:
            first_seen.append(i)
    with new_database() as database:
        with_duplicates = asyncio.run(_alarms_after(database, [events[i] for i in order]))
    with new_database() as database:
        without = asyncio.run(_alarms_after(database, [events[i] for i in first_seen]))
    assert with_duplicates == without


async def _alarms_after(database: str, deliveries: list[Any]) -> list[tuple[Any, ...]]:
    clock = FakeClock()
    async with book_parts(database, clock) as parts:
        for ev in deliveries:
            now = clock.advance(1.0)
            decide = functools.partial(parts.core.event, ev, now)
            await record(parts.book, event_arrival(ev, now), decide)
        rows = await parts.db.fetch_all(
            "SELECT rule, device, level, repeats, state, first_event_id FROM alarms ORDER BY id"
        )
        return [tuple(r) for r in rows]


# ---- escalation keeps its order, across restarts -------------------------------------------------

ACTION = st.one_of(
    st.tuples(st.just("advance"), st.floats(1, 80)),
    st.tuples(st.sampled_from(["fire", "deliver", "both", "restart"]), st.just(0.0)),
)


def _policy_file(chain: int, reminders: int) -> RulesFile:
    base = load_rules(DEFAULT_RULES)
    targets = [Target.STREET_SUPERVISOR, Target.GRID_WORKER, Target.DUTY_ROOM][:chain]
    policy = Policy(
        name="p",
        levels=[1, 2, 3, 4],
        budget_s=60,
        notify=[Notify(to=Target.GRID_WORKER, via=[Via.PUSH])],
        escalate=[Notify(to=t, via=[Via.PUSH]) for t in targets],
        escalate_every_s=45,
        remind_every_s=100,
        reminders=reminders,
    )
    return base.model_copy(
        update={
            "policies": [policy],
            "contacts": Contacts(
                street_supervisors={"jd-jinjiang": Person(name="值班长", phone="138 0000 0009")}
            ),
        }
    )


@SLOW
@given(
    chain=st.integers(1, 3),
    reminders=st.integers(0, 2),
    actions=st.lists(ACTION, max_size=25),
    accept_at=st.one_of(st.none(), st.integers(0, 25)),
)
def test_escalation_keeps_its_order_and_a_restart_neither_loses_nor_repeats_a_step(
    new_database: NewDatabase,
    chain: int,
    reminders: int,
    actions: list[tuple[str, float]],
    accept_at: int | None,
) -> None:
    with new_database() as database:
        asyncio.run(_escalation(database, _policy_file(chain, reminders), actions, accept_at))


async def _escalation(
    database: str, config: RulesFile, actions: list[tuple[str, float]], accept_at: int | None
) -> None:
    from cloud.routing import policy as routing

    clock = FakeClock()
    delivered: list[tuple[str, int]] = []
    accepted: float | None = None
    incarnation = book_parts(database, clock, config=config)
    parts = await incarnation.__aenter__()
    sub = parts.hub.subscribe()

    def drain() -> None:
        while not sub.queue.empty():
            message = sub.queue.get_nowait().body()
            if message["type"] == "notify":
                delivered.append((message["key"], message["step"]))

    try:
        draft = AlarmDraft(
            "call_for_help",
            1,
            "call",
            "gw-ld01",
            "call-0101",
            "呼叫",
            "Call",
            START,
            life_safety=True,
        )
        [raised] = await parts.book.apply([draft], clock())
        alarm_id = raised.alarm.id
        for i, (what, arg) in enumerate([*actions, ("advance", 0.0)]):
            if accept_at == i and accepted is None:
                await parts.casework.accept(alarm_id, "op")
                accepted = clock()
            if what == "advance":
                clock.advance(arg)
            elif what == "restart":
                drain()
                await incarnation.__aexit__(None, None, None)
                incarnation = book_parts(database, clock, config=config)
                parts = await incarnation.__aenter__()
                sub = parts.hub.subscribe()
            else:
                if what in ("fire", "both"):
                    await parts.escalator.fire_due()
                if what in ("deliver", "both"):
                    await parts.escalator.deliver_due()
            drain()
        # the end: let everything that is due happen
        for _ in range(10):
            await parts.escalator.fire_due()
            await parts.escalator.deliver_due()
        drain()
    finally:
        await incarnation.__aexit__(None, None, None)

    keys = [k for k, _ in delivered]
    assert len(keys) == len(set(keys)), f"a notification went out twice: {keys}"
    steps = [s for _, s in delivered]
    assert steps == sorted(steps), f"out of order: {steps}"
    policy = config.policies[0]
    stop = accepted if accepted is not None else clock()
    due = {s.index for s in routing.plan(policy) if T0 + s.offset_s <= stop}
    assert set(steps) <= due | {0}
    if accepted is None:
        chain_steps = {s.index for s in routing.plan(policy) if s.reason != routing.REMIND}
        assert (due & chain_steps) <= set(steps), f"a step was lost: due {due}, got {steps}"
