"""The rules core: declarative rules (`config`: the file, made of `alarm_rules`,
`supervision_rules` and `policies`), their pure evaluation (`engine`) into decisions
(`decisions`), the cloud's supervision watch (`supervision`) and both behind one face with
inhibition (`core`)."""

from cloud.rules.config import (
    LoadedRules,
    RulesFile,
    load_rules,
    load_rules_with_digest,
)
from cloud.rules.core import Evaluation, RulesCore
from cloud.rules.decisions import AlarmDraft, Clear, Decision, Key
from cloud.rules.engine import Rules

__all__ = [
    "AlarmDraft",
    "Clear",
    "Decision",
    "Evaluation",
    "Key",
    "LoadedRules",
    "Rules",
    "RulesCore",
    "RulesFile",
    "load_rules",
    "load_rules_with_digest",
]
