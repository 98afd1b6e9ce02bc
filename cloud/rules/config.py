"""The rules file (`firmware_configs/rules/*.yaml`): what becomes an alarm, at which level,
what clears it, how devices and gateways are supervised, and who is told and when.

Operators write this file, so every model is strict: an unknown key, an unknown unit, a
threshold whose clear bound sits on the wrong side or a level that no policy covers is an
error that names the file and the field (`load_rules`). The parts are in
`alarm_rules.py`, `supervision_rules.py` and `policies.py`; this module is the file as a whole
(its cross-checks: unique rule ids, known rules in inhibitions and policies, every level
covered) and reading it. `cloud/rules/engine.py` evaluates it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from cloud.rules.alarm_rules import CountRule, EventRule, RateRule, ThresholdRule
from cloud.rules.fields import RuleId, Strict
from cloud.rules.policies import DEFAULT_POLICIES, Contacts, Policy
from cloud.rules.supervision_rules import RESERVED, Supervision
from contract.site import ConfigFileError


class Inhibit(Strict):
    """While `source` is firing on a gateway, `targets` from the same gateway are muted."""

    source: RuleId
    targets: list[RuleId] = Field(min_length=1)


class RulesFile(Strict):
    version: str = Field("", max_length=64, description="A label for the audit log")
    events: list[EventRule]
    thresholds: list[ThresholdRule] = Field(default_factory=list)
    rates: list[RateRule] = Field(default_factory=list)
    counts: list[CountRule] = Field(default_factory=list)
    supervision: Supervision = Supervision()
    inhibit: list[Inhibit] = Field(default_factory=list)
    contacts: Contacts = Contacts()
    policies: list[Policy] = Field(default_factory=lambda: list(DEFAULT_POLICIES))

    @model_validator(mode="after")
    def _consistent(self) -> RulesFile:
        sections: dict[str, str] = {}
        for section, rules in (
            ("events", self.events),
            ("thresholds", self.thresholds),
            ("rates", self.rates),
            ("counts", self.counts),
        ):
            variants: dict[str, list[set[str] | None]] = {}
            for rule in rules:
                if rule.rule in RESERVED:
                    raise ValueError(f"{section}: rule id {rule.rule!r} is the cloud's own")
                if sections.setdefault(rule.rule, section) != section:
                    raise ValueError(
                        f"{section}: rule id {rule.rule!r} is already used in {sections[rule.rule]}"
                    )
                seen = variants.setdefault(rule.rule, [])
                models = set(rule.models) if rule.models is not None else None
                for other in seen:
                    if models is None and other is None:
                        raise ValueError(
                            f"{section}: rule {rule.rule!r} appears twice for all models"
                        )
                    if models is not None and other is not None and models & other:
                        raise ValueError(
                            f"{section}: rule {rule.rule!r} appears twice for models "
                            f"{sorted(models & other)}"
                        )
                seen.append(models)
        known = set(sections) | RESERVED
        for i, inhibit in enumerate(self.inhibit):
            for name in (inhibit.source, *inhibit.targets):
                if name not in known:
                    raise ValueError(f"inhibit.{i}: unknown rule {name!r}")
        names: set[str] = set()
        covered: set[int] = set()
        for i, policy in enumerate(self.policies):
            if policy.name in names:
                raise ValueError(f"policies.{i}: name {policy.name!r} is used twice")
            names.add(policy.name)
            for name in policy.rules:
                if name not in known:
                    raise ValueError(f"policies.{i} ({policy.name}): unknown rule {name!r}")
            covered.update(policy.levels)
        missing = sorted({1, 2, 3, 4} - covered)
        if missing:
            raise ValueError(f"policies: no policy covers level(s) {missing}")
        return self

    def policy_for(self, rule: str, level: int) -> Policy:
        """The first policy naming the rule, else the first covering the level."""
        for policy in self.policies:
            if rule in policy.rules:
                return policy
        for policy in self.policies:
            if level in policy.levels:
                return policy
        raise AssertionError("validated: every level is covered")

    def rule_ids(self) -> set[str]:
        ids = {r.rule for r in (*self.events, *self.thresholds, *self.rates, *self.counts)}
        return ids | RESERVED


@dataclass(frozen=True, slots=True)
class LoadedRules:
    """A validated rules file and a fingerprint of the very bytes validated (for the audit)."""

    config: RulesFile
    path: str
    digest: str


def load_rules(path: Path) -> RulesFile:
    return load_rules_with_digest(path).config


def load_rules_with_digest(path: Path) -> LoadedRules:
    """Read the file once, fingerprint it (sha256) and validate it; errors name file and field."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigFileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        config = RulesFile.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {exc.error_count()} problem(s) in {RulesFile.__name__}:"]
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "(top level)"
            lines.append(f"  - {where}: {err['msg']}")
        raise ConfigFileError("\n".join(lines)) from exc
    return LoadedRules(config=config, path=str(path), digest=hashlib.sha256(data).hexdigest()[:16])
