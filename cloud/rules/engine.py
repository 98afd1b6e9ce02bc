"""Rule evaluation: events and readings in, decisions out (raise or repeat an alarm, clear it).

Pure and synchronous: no I/O; time comes in with the data (a reading's or event's own time for
windows, holds and rates) or as an argument (`now`, the cloud's clock, for clear holds that
must run out while nothing arrives). The state is per device and rule: whether the condition
is firing, since when a bound or a clear has held, the running windows. The alarm book turns
decisions into alarms and is idempotent, so a repeat for an alarm an operator already closed
opens a new one, and a clear for an alarm that is not open does nothing.

Hysteresis is explicit: a rising rule fires at its lowest bound and clears only under its
`clear_below` (and after `clear_hold_s`), so a value wobbling between the two never flaps.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cloud.rules.alarm_rules import INERT, CountRule, EventRule, RateRule, ThresholdRule
from cloud.rules.config import RulesFile
from cloud.rules.decisions import AlarmDraft, Clear, Decision, Key
from cloud.rules.windows import MeanWindow
from cloud.times import from_epoch
from contract.models import Event, EventType, Kind, Reading


@dataclass(slots=True)
class _Condition:
    firing: bool = False
    pending_since: float | None = None  # beyond a bound since (reading time), for hold_s
    clear_since: float | None = None  # beyond the clear bound since (reading time)
    clear_due: float | None = None  # an event rule's clear takes effect then (cloud time)


R = TypeVar("R", EventRule, ThresholdRule, RateRule, CountRule)
W = TypeVar("W", ThresholdRule, RateRule)
E = TypeVar("E", EventRule, CountRule)


def _variants(rules: Sequence[R]) -> dict[str, list[R]]:
    by_id: dict[str, list[R]] = {}
    for rule in rules:
        by_id.setdefault(rule.rule, []).append(rule)
    return by_id


def _by_kind(table: dict[str, list[W]]) -> dict[Kind, list[list[W]]]:
    """The rules (each with its variants) that may apply to a reading of each kind."""
    out: dict[Kind, list[list[W]]] = {}
    for variants in table.values():
        for kind in {rule.kind for rule in variants}:
            out.setdefault(kind, []).append(variants)
    return out


def _by_type(table: dict[str, list[E]]) -> dict[EventType, list[list[E]]]:
    """The rules (each with its variants) an event of each type may fire or clear."""
    out: dict[EventType, list[list[E]]] = {}
    for variants in table.values():
        types: set[EventType] = set()
        for rule in variants:
            types.add(rule.type)
            types.update(getattr(rule, "clear_on", ()))
        for event_type in types:
            out.setdefault(event_type, []).append(variants)
    return out


def _pick(variants: list[R], model: str | None) -> R | None:
    """The model-specific variant of a rule if there is one for this model, else the generic."""
    generic = None
    for rule in variants:
        if rule.models is None:
            generic = rule
        elif model is not None and model in rule.models:
            return rule
    return generic


class Rules:
    """Evaluates events and readings against one rules file, keeping per-device state."""

    def __init__(self, config: RulesFile) -> None:
        self.config = config
        self._events = _variants(config.events)
        self._thresholds = _variants(config.thresholds)
        self._rates = _variants(config.rates)
        #: by the kind of reading they watch (a reading is checked against its kind's only)
        self._thresholds_by_kind = _by_kind(self._thresholds)
        self._rates_by_kind = _by_kind(self._rates)
        self._counts = _variants(config.counts)
        #: by the type of event that fires or clears them (an event is checked against those)
        self._events_by_type = _by_type(self._events)
        self._counts_by_type = _by_type(self._counts)
        self._state: dict[Key, _Condition] = {}
        self._means: dict[Key, MeanWindow] = {}
        self._rises: dict[Key, deque[tuple[float, float]]] = {}
        self._seen: dict[Key, deque[float]] = {}
        self._firing_on: Counter[tuple[str, str]] = Counter()  # (gateway, rule) → firing keys
        self._clears_due: set[Key] = set()

    # ---- state --------------------------------------------------------------------------

    def _cond(self, key: Key) -> _Condition:
        cond = self._state.get(key)
        if cond is None:
            cond = self._state[key] = _Condition()
        return cond

    def _set_firing(self, key: Key, cond: _Condition, firing: bool) -> None:
        if cond.firing != firing:
            cond.firing = firing
            self._firing_on[(key[0], key[2])] += 1 if firing else -1
        if not firing:
            cond.clear_due = None
            self._clears_due.discard(key)

    def restore(self, keys: Iterable[Key]) -> None:
        """After a restart: these (gateway, device, rule) have an open alarm, so the rule is
        firing (a clear must be able to close them)."""
        for key in keys:
            self._set_firing(key, self._cond(key), True)

    def forget(self, gateways: set[str]) -> None:
        """Another worker handles these gateways now (cloud/ingest/shards.py): their
        conditions and windows go, without a Clear (their alarms stay open for the other)."""
        for table in (self._state, self._means, self._rises, self._seen):
            for key in [k for k in table if k[0] in gateways]:
                del table[key]
        self._clears_due = {k for k in self._clears_due if k[0] not in gateways}
        for pair in [p for p in self._firing_on if p[0] in gateways]:
            del self._firing_on[pair]

    def firing(self, key: Key) -> bool:
        cond = self._state.get(key)
        return bool(cond and cond.firing)

    def firing_on(self, gateway: str, rule: str) -> Key | None:
        """The key of a firing condition of this rule on this gateway, if any."""
        if self._firing_on[(gateway, rule)] <= 0:
            return None
        for key, cond in self._state.items():
            if cond.firing and key[0] == gateway and key[2] == rule:
                return key
        return None

    def unfire(self, key: Key) -> None:
        """A draft was muted (inhibited): as if the rule had not fired."""
        cond = self._state.get(key)
        if cond is not None:
            self._set_firing(key, cond, False)

    def reconfigure(self, config: RulesFile) -> Rules:
        """A new engine for a new rules file, carrying the state of this one: a rule whose
        definition is unchanged keeps everything (windows, holds); a changed rule keeps only
        whether it is firing (so its open alarms can still clear); a removed rule is dropped."""
        new = Rules(config)
        old_defs = self._definitions()
        new_defs = new._definitions()
        for key, cond in self._state.items():
            rule = key[2]
            if rule not in new_defs:
                continue
            if old_defs.get(rule) == new_defs[rule]:
                copy = _Condition(cond.firing, cond.pending_since, cond.clear_since, cond.clear_due)
                new._state[key] = copy
                if copy.firing:
                    new._firing_on[(key[0], rule)] += 1
                if copy.clear_due is not None:
                    new._clears_due.add(key)
            elif cond.firing:
                new._set_firing(key, new._cond(key), True)

        def keeps(key: Key) -> bool:
            return key[2] in new_defs and old_defs.get(key[2]) == new_defs[key[2]]

        new._means.update((k, v) for k, v in self._means.items() if keeps(k))
        new._rises.update((k, v) for k, v in self._rises.items() if keeps(k))
        new._seen.update((k, v) for k, v in self._seen.items() if keeps(k))
        return new

    def _definitions(self) -> dict[str, object]:
        defs: dict[str, object] = {}
        for table in (self._events, self._thresholds, self._rates, self._counts):
            for rule_id, variants in table.items():
                defs[rule_id] = tuple(variants)
        return defs

    # ---- events ---------------------------------------------------------------------------

    def on_event(self, event: Event, model: str | None = None, now: float = 0.0) -> list[Decision]:
        """Decisions for one event. `now` (the cloud's clock) starts clear holds."""
        if event.type.value in INERT:
            return []  # tests and heartbeats neither raise nor clear anything
        out: list[Decision] = []
        ts = event.ts.timestamp()
        for variants in self._events_by_type.get(event.type, ()):
            rule = _pick(variants, model)
            if rule is None or (rule.kind is not None and rule.kind is not event.kind):
                continue
            key = (event.gateway, event.device, rule.rule)
            if event.type is rule.type:
                cond = self._cond(key)
                cond.clear_due = None
                self._clears_due.discard(key)
                self._set_firing(key, cond, True)
                out.append(self._draft(rule, event, rule.level, rule.life_safety))
            elif event.type in rule.clear_on:
                known = self._state.get(key)
                if known is None or not known.firing:
                    continue
                cond = known
                if rule.clear_hold_s <= 0:
                    self._set_firing(key, cond, False)
                    out.append(
                        Clear(
                            rule.rule,
                            event.gateway,
                            event.device,
                            event.ts,
                            f"{event.type} from the device",
                            event.id,
                        )
                    )
                elif cond.clear_due is None:
                    cond.clear_due = now + rule.clear_hold_s
                    self._clears_due.add(key)
        for count_variants in self._counts_by_type.get(event.type, ()):
            count = _pick(count_variants, model)
            if count is None or count.type is not event.type:
                continue
            if count.kind is not None and count.kind is not event.kind:
                continue
            key = (event.gateway, event.device, count.rule)
            seen = self._seen.setdefault(key, deque())
            seen.append(ts)
            while seen and seen[0] < ts - count.within_s:
                seen.popleft()
            if len(seen) >= count.at_least:
                seen.clear()  # the next alarm (or repeat) needs as many again
                self._set_firing(key, self._cond(key), True)
                out.append(self._draft(count, event, count.level, False))
        return out

    def _draft(
        self, rule: EventRule | CountRule, event: Event, level: int, life_safety: bool
    ) -> AlarmDraft:
        present = event.values.present()
        return AlarmDraft(
            rule=rule.rule,
            level=level,
            kind=event.kind.value,
            gateway=event.gateway,
            device=event.device,
            title_zh=rule.zh,
            title_en=rule.en,
            device_ts=event.ts,
            value=next(iter(present.values())) if present else None,
            event_id=event.id,
            life_safety=life_safety,
            group=rule.group or event.kind.value,
        )

    # ---- readings -------------------------------------------------------------------------

    def on_reading(
        self, gateway: str, reading: Reading, model: str | None = None
    ) -> list[Decision]:
        values = reading.values.present()
        ts = reading.ts.timestamp()
        out: list[Decision] = []
        for variants in self._thresholds_by_kind.get(reading.kind, ()):
            rule = _pick(variants, model)
            if rule is None or rule.kind is not reading.kind or rule.field not in values:
                continue
            self._threshold(rule, gateway, reading, ts, values[rule.field], out)
        for rate_variants in self._rates_by_kind.get(reading.kind, ()):
            rate = _pick(rate_variants, model)
            if rate is None or rate.kind is not reading.kind or rate.field not in values:
                continue
            self._rate(rate, gateway, reading, ts, values[rate.field], out)
        return out

    def _threshold(
        self,
        rule: ThresholdRule,
        gateway: str,
        reading: Reading,
        ts: float,
        value: float,
        out: list[Decision],
    ) -> None:
        key = (gateway, reading.device, rule.rule)
        if rule.window_s:
            window = self._means.get(key)
            if window is None:
                window = self._means[key] = MeanWindow(rule.window_s)
            value = window.add(ts, value)
        cond = self._cond(key)
        level = rule.level_of(value)
        if level is not None:
            cond.clear_since = None
            if not cond.firing:
                if rule.hold_s > 0:
                    if cond.pending_since is None:
                        cond.pending_since = ts
                    if ts - cond.pending_since < rule.hold_s:
                        return
                cond.pending_since = None
                self._set_firing(key, cond, True)
            latched = rule.life_safety_at_level is not None and level <= rule.life_safety_at_level
            out.append(
                AlarmDraft(
                    rule=rule.rule,
                    level=level,
                    kind=reading.kind.value,
                    gateway=gateway,
                    device=reading.device,
                    title_zh=rule.zh,
                    title_en=rule.en,
                    device_ts=reading.ts,
                    value=round(value, 3),
                    life_safety=latched,
                    group=rule.group or reading.kind.value,
                )
            )
            return
        cond.pending_since = None
        if not cond.firing:
            return
        if not rule.cleared(value):
            cond.clear_since = None  # inside the hysteresis band: nothing changes
            return
        if rule.clear_hold_s > 0:
            if cond.clear_since is None:
                cond.clear_since = ts
            if ts - cond.clear_since < rule.clear_hold_s:
                return
        cond.clear_since = None
        self._set_firing(key, cond, False)
        out.append(
            Clear(rule.rule, gateway, reading.device, reading.ts, f"{rule.field} {round(value, 3)}")
        )

    def _rate(
        self,
        rule: RateRule,
        gateway: str,
        reading: Reading,
        ts: float,
        value: float,
        out: list[Decision],
    ) -> None:
        key = (gateway, reading.device, rule.rule)
        points = self._rises.setdefault(key, deque())
        points.append((ts, value))
        while points and points[0][0] < ts - rule.within_s:
            points.popleft()
        rise = value - min(v for _, v in points)
        cond = self._cond(key)
        if rise >= rule.rise:
            self._set_firing(key, cond, True)
            out.append(
                AlarmDraft(
                    rule=rule.rule,
                    level=rule.level,
                    kind=reading.kind.value,
                    gateway=gateway,
                    device=reading.device,
                    title_zh=rule.zh,
                    title_en=rule.en,
                    device_ts=reading.ts,
                    value=round(rise, 3),
                    group=rule.group or reading.kind.value,
                )
            )
        elif cond.firing and rise < rule.clear_bound:
            self._set_firing(key, cond, False)
            out.append(
                Clear(
                    rule.rule,
                    gateway,
                    reading.device,
                    reading.ts,
                    f"{rule.field} rise {round(rise, 3)} within {rule.within_s:g} s",
                )
            )

    # ---- time -----------------------------------------------------------------------------

    def tick(self, now: float) -> list[Clear]:
        """Clears whose hold ran out by `now` (the cloud's clock)."""
        out: list[Clear] = []
        for key in sorted(self._clears_due):
            cond = self._state[key]
            if cond.clear_due is not None and cond.clear_due <= now:
                self._set_firing(key, cond, False)
                out.append(Clear(key[2], key[0], key[1], from_epoch(now), "clear held"))
        return out
