"""Changing the rules while the cloud runs: validate first, apply in one step, audit both.

A new file is read once, validated in full (the rules file's own checks, then against the
site's registry: a policy that escalates to the street supervisor needs one on file), and
only then swapped into the rules core — one assignment, so evaluation sees the old rules or
the new ones, never a mix, and the state of unchanged rules carries over. A file that fails
is refused with the reason; the rules in force stay. Both outcomes go to the audit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cloud.access.audit import Audit
from cloud.rules import LoadedRules, RulesCore, RulesFile, load_rules_with_digest
from cloud.rules.policies import Target
from cloud.site.registry import Registry
from cloud.times import from_epoch
from contract.site import ConfigFileError

log = logging.getLogger(__name__)


def check_against_site(loaded: LoadedRules, registry: Registry) -> None:
    """What the rules file cannot know on its own: the site it is used with."""
    config = loaded.config
    street = registry.site.street.id
    needs = [
        p.name
        for p in config.policies
        if any(n.to is Target.STREET_SUPERVISOR for n in (*p.notify, *p.escalate))
    ]
    if needs and street not in config.contacts.street_supervisors:
        raise ConfigFileError(
            f"{loaded.path}: contacts.street_supervisors: no entry for street {street!r} of "
            f"the site, but policies {needs} escalate to the street supervisor"
        )


@dataclass(frozen=True, slots=True)
class Summary:
    version: str
    digest: str
    path: str
    loaded_at: datetime
    rules: int
    policies: int
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


def _definitions(config: RulesFile) -> dict[str, tuple[object, ...]]:
    defs: dict[str, list[object]] = {}
    for rule in (*config.events, *config.thresholds, *config.rates, *config.counts):
        defs.setdefault(rule.rule, []).append(rule)
    return {k: tuple(v) for k, v in defs.items()}


class RulesReloader:
    def __init__(
        self,
        path: Path,
        loaded: LoadedRules,
        core: RulesCore,
        registry: Registry,
        audit: Audit,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.core = core
        self.registry = registry
        self.audit = audit
        self.clock = clock
        self.current = loaded
        self.loaded_at = clock()
        self._lock = asyncio.Lock()  # one reload at a time

    def summary(
        self,
        added: tuple[str, ...] = (),
        removed: tuple[str, ...] = (),
        changed: tuple[str, ...] = (),
    ) -> Summary:
        config = self.current.config
        return Summary(
            version=config.version,
            digest=self.current.digest,
            path=self.current.path,
            loaded_at=from_epoch(self.loaded_at),
            rules=len(config.rule_ids()),
            policies=len(config.policies),
            added=added,
            removed=removed,
            changed=changed,
        )

    async def reload(self, actor: str) -> Summary:
        """Read, validate and apply the rules file; raises ConfigFileError (audited) if bad."""
        async with self._lock:
            try:
                loaded = await asyncio.to_thread(load_rules_with_digest, self.path)
                check_against_site(loaded, self.registry)
            except ConfigFileError as exc:
                log.error("rules reload refused; the rules in force stay:\n%s", exc)
                await self.audit.record(actor, "rules_reload_refused", str(exc))
                raise
            old = _definitions(self.current.config)
            new = _definitions(loaded.config)
            added = tuple(sorted(set(new) - set(old)))
            removed = tuple(sorted(set(old) - set(new)))
            changed = tuple(sorted(k for k in set(old) & set(new) if old[k] != new[k]))
            others = [
                name
                for name in ("supervision", "inhibit", "contacts", "policies")
                if getattr(self.current.config, name) != getattr(loaded.config, name)
            ]
            previous = self.current
            self.core.reconfigure(loaded.config)  # the one step that changes what runs
            self.current = loaded
            self.loaded_at = self.clock()
            detail = (
                f"{previous.digest} → {loaded.digest} (version {loaded.config.version or '-'})"
                f"; added {list(added)}, removed {list(removed)}, changed {list(changed)}"
                f"; {', '.join(others) or 'nothing else'} changed"
            )
            await self.audit.record(actor, "rules_reloaded", detail)
            log.info("rules reloaded by %s: %s", actor, detail)
            return self.summary(added, removed, changed)
