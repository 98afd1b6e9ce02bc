"""Routing: who is told about an alarm, through which channels, and when.

Pure. An alarm is placed by the registry (street → community → grid → building → home); its
policy (from the rules file, by rule or by level) gives a plan of steps, each at an offset
from when the cloud received the alarm:

- step 0 at once (`notify`; the street's duty room has already had the live push),
- steps 1…n when the acceptance budget has run out, one every `escalate_every_s`
  (`escalate`: the street supervisor, then the residents' emergency contacts, …),
- then reminders every `remind_every_s` to everyone told so far, `reminders` times.

The escalator (`cloud/routing/escalation.py`) runs the steps off durable timers; an accepted or
resolved alarm stops the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.alarms.model import Alarm
from cloud.duty.roster import OnShift
from cloud.rules.policies import Contacts, Notify, Policy, Target, Via
from cloud.site.registry import Registry

NOTIFY = "notify"
ESCALATE = "escalate"
REMIND = "remind"


@dataclass(frozen=True, slots=True)
class PlanStep:
    index: int
    offset_s: float  # after the alarm was received
    reason: str  # notify, escalate or remind
    notify: tuple[Notify, ...]


@dataclass(frozen=True, slots=True)
class Recipient:
    target: Target
    name: str
    phone: str | None


def step(policy: Policy, index: int) -> PlanStep | None:
    """Step `index` of a policy's plan, or None past its end."""
    chain = len(policy.escalate)
    if index == 0:
        return PlanStep(0, 0.0, NOTIFY, tuple(policy.notify))
    if index <= chain:
        offset = policy.budget_s + (index - 1) * policy.escalate_every_s
        return PlanStep(index, offset, ESCALATE, (policy.escalate[index - 1],))
    reminder = index - chain
    if reminder > policy.reminders:
        return None
    if chain:  # after the last escalation step
        first = policy.budget_s + (chain - 1) * policy.escalate_every_s + policy.remind_every_s
    else:  # no chain: the first reminder when the budget runs out
        first = policy.budget_s
    everyone: dict[Target, set[Via]] = {}
    fallbacks: dict[Target, list[Via]] = {}
    for notify in (*policy.notify, *policy.escalate):
        everyone.setdefault(notify.to, set()).update(notify.via)
        later = fallbacks.setdefault(notify.to, [])
        later.extend(v for v in notify.fallback if v not in later)
    if not everyone:  # nobody but the duty room: remind it
        everyone[Target.DUTY_ROOM] = {Via.PUSH}
    told = tuple(
        Notify(to=t, via=sorted(v), fallback=fallbacks.get(t, [])) for t, v in everyone.items()
    )
    return PlanStep(index, first + (reminder - 1) * policy.remind_every_s, REMIND, told)


def plan(policy: Policy) -> list[PlanStep]:
    steps: list[PlanStep] = []
    index = 0
    while (s := step(policy, index)) is not None:
        steps.append(s)
        index += 1
    return steps


def fallback_for(step: PlanStep, target: str, used: set[str]) -> Via | None:
    """The next channel to try for a person of `target` in this step, after the ones `used`
    (every channel that has a row for them already), or None when the chain is spent."""
    for notify in step.notify:
        if notify.to.value != target:
            continue
        for via in notify.fallback:
            if via.value not in used:
                return via
    return None


def recipients(
    target: Target,
    alarm: Alarm,
    registry: Registry,
    contacts: Contacts,
    on_shift: OnShift | None = None,
) -> tuple[list[Recipient], str]:
    """The people behind a target for this alarm, or none and the reason why. Roles of the
    duty roster are whoever `on_shift` (the shift in force when the step fires) names."""
    if target is Target.DUTY_ROOM:
        return [Recipient(target, "duty room", None)], ""
    scope = alarm.grid_id if target is Target.GRID_WORKER else alarm.street_id
    rostered = on_shift.who(target.value, scope) if on_shift is not None else None
    if rostered is not None:
        return [Recipient(target, rostered.person.name, rostered.person.phone)], ""
    if target is Target.GRID_WORKER:
        worker = registry.grid_worker(alarm.grid_id)
        if worker is None:
            return [], f"no grid worker on file for grid {alarm.grid_id}"
        return [Recipient(target, worker.name, worker.phone)], ""
    if target is Target.DUTY_OFFICER:
        when = on_shift.ref.label() if on_shift is not None else "this shift"
        return [], f"no duty officer on the roster for {when}"
    if target in (Target.STREET_SUPERVISOR, Target.ON_CALL_LEADER):
        person = contacts.street_supervisors.get(alarm.street_id)
        if person is None:
            return [], f"no supervisor on file for street {alarm.street_id}"
        return [Recipient(target, person.name, person.phone)], ""
    home = registry.home(alarm.home_id) if alarm.home_id else None
    people = [
        Recipient(target, f"{c.name} ({c.relation} of {r.name})" if c.relation else c.name, c.phone)
        for r in (home.residents if home else [])
        for c in r.contacts
    ]
    if not people:
        where = alarm.home_id or alarm.building_id
        return [], f"no emergency contacts on file for {where}"
    return people, ""
