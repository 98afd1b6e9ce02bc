"""The rules core: declarative rules (`config`), their pure evaluation (`engine`), the cloud's
supervision watch (`supervision`) and both behind one face with inhibition (`core`)."""

from cloud.rules.config import (
    LoadedRules,
    RulesConfig,
    RulesFile,
    load_rules,
    load_rules_with_digest,
)
from cloud.rules.core import Evaluation, RulesCore
from cloud.rules.engine import AlarmDraft, Clear, Decision, Key, Rules

__all__ = [
    "AlarmDraft",
    "Clear",
    "Decision",
    "Evaluation",
    "Key",
    "LoadedRules",
    "Rules",
    "RulesConfig",
    "RulesCore",
    "RulesFile",
    "load_rules",
    "load_rules_with_digest",
]
