"""What a device is expected to do, from the files in force: how long it may stay silent
(the rules' `supervision.device_silent` per model, else per kind, else the model's own
`report_interval_s`), which rules mean a fault or a low battery, and the battery level that
counts as low.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cloud.rules.config import RulesFile
from contract.catalogue import Catalogue
from contract.devices import load_model
from contract.models import EventType
from contract.site import ConfigFileError

#: Battery at or under this is low when the rules in force name no battery threshold.
DEFAULT_LOW_BATTERY_PCT = 20.0


@dataclass(frozen=True)
class RuleSets:
    """Which rules of the file in force mean a fault, a low battery; the battery threshold."""

    faults: frozenset[str]
    battery: frozenset[str]
    low_battery_pct: float

    @classmethod
    def of(cls, config: RulesFile) -> RuleSets:
        faults = {
            r.rule for r in config.events if r.type in (EventType.FAULT, EventType.TAMPER)
        } | {r.rule for r in config.counts if r.type is EventType.FAULT}
        battery = {r.rule for r in config.events if r.type is EventType.BATTERY_LOW}
        low = None
        for rule in config.thresholds:
            if rule.field != "battery_pct":
                continue
            battery.add(rule.rule)
            for step in rule.levels:
                bound = step.at_or_below if step.at_or_below is not None else step.below
                if bound is not None:
                    low = bound if low is None else max(low, bound)
        return cls(
            frozenset(faults), frozenset(battery), DEFAULT_LOW_BATTERY_PCT if low is None else low
        )


@dataclass(frozen=True)
class ModelFacts:
    kind: str | None
    report_interval_s: float | None


@lru_cache(maxsize=256)
def _model_facts(path: Path, mtime_ns: int) -> ModelFacts:
    try:
        model = load_model(path)
    except (ConfigFileError, OSError, ValueError):
        return ModelFacts(None, None)
    return ModelFacts(model.kind.value, model.report_interval_s)


def model_facts(models: Iterable[str]) -> dict[str, ModelFacts]:
    """Kind and report interval of each device model (files re-read when they change)."""
    out: dict[str, ModelFacts] = {}
    for name in set(models):
        path = Catalogue().model_path(name)
        try:
            out[name] = _model_facts(path, path.stat().st_mtime_ns)
        except OSError:
            out[name] = ModelFacts(None, None)
    return out


def silent_after(config: RulesFile, model: str, facts: ModelFacts) -> float | None:
    """How long a device may say nothing: the cloud's silence rule for its model, else for its
    kind, else the model's own report interval; None if it is not expected to report."""
    cfg = config.supervision.device_silent
    if model in cfg.models:
        return cfg.models[model]
    for kind, after in cfg.after_s.items():
        if kind.value == facts.kind:
            return after
    return facts.report_interval_s
