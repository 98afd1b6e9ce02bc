"""The rules core: the rule engine, the supervision watch and inhibition behind one face.

Still pure: messages and the time go in, decisions come out. Ingest feeds it; the alarm book
records what it decides. `reconfigure()` swaps in a new, already validated rules file in one
step (the state carries over), so evaluation never runs against half a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from cloud.rules.config import RulesFile
from cloud.rules.decisions import AlarmDraft, Clear, Decision, Key
from cloud.rules.engine import Rules
from cloud.rules.supervision import Watchdog
from contract.models import Event, Reading


@dataclass
class Evaluation:
    """What one message (or one tick) produced."""

    decisions: list[Decision] = field(default_factory=list)
    #: (source key, muted draft): reported once per source firing, for the source's log
    inhibited: list[tuple[Key, AlarmDraft]] = field(default_factory=list)
    muted: int = 0


class RulesCore:
    def __init__(
        self,
        config: RulesFile,
        *,
        devices: Mapping[tuple[str, str], str],
        gateways: Iterable[str],
        now: float,
    ) -> None:
        """`devices`: (gateway, device) → model of every registered device."""
        self.rules = Rules(config)
        self.watchdog = Watchdog(config.supervision, devices, gateways, now)
        self._models = dict(devices)
        self._gateways = list(gateways)
        #: whether this process handles a gateway (None: all; cloud/ingest/shards.py sets it)
        self._scope: Callable[[str], bool] | None = None
        self._reported: dict[Key, set[Key]] = {}

    @property
    def config(self) -> RulesFile:
        return self.rules.config

    def reconfigure(self, config: RulesFile) -> None:
        rules = self.rules.reconfigure(config)
        self.watchdog.reconfigure(config.supervision)
        self.rules = rules  # one assignment: evaluation sees the old file or the new one

    def update_registry(
        self, devices: Mapping[tuple[str, str], str], gateways: Iterable[str], now: float
    ) -> list[Decision]:
        """The site registry changed (cloud/site/edit.py): the devices and gateways to
        supervise and their models. Unchanged devices keep their state; what returns are
        Clears for supervision alarms of removed devices and gateways."""
        self._models = dict(devices)
        self._gateways = list(gateways)
        return self.watchdog.update(*self._watched(), now)

    def scope_to(self, holds: Callable[[str], bool], open_keys: Iterable[Key], now: float) -> None:
        """Handle only the gateways `holds` says yes to from now on (the shards this worker
        holds; a gateway registered later is asked too). Gateways given up are forgotten
        without a Clear: their alarms stay open for the worker that takes them. Gateways
        taken start a fresh grace period of supervision, and `open_keys` (open alarms read
        from the database) make their rules firing, so a clear can close them."""
        before = self._scope
        given_up = {gw for gw in self._gateways if (before is None or before(gw)) and not holds(gw)}
        taken = {gw for gw in self._gateways if holds(gw) and before is not None and not before(gw)}
        self._scope = holds
        if given_up:
            self.rules.forget(given_up)
            self.watchdog.forget(given_up)
            self._reported = {k: v for k, v in self._reported.items() if k[0] not in given_up}
        self.watchdog.update(*self._watched(), now)
        self.restore(key for key in open_keys if key[0] in taken)

    def _watched(self) -> tuple[dict[tuple[str, str], str], list[str]]:
        holds = self._scope
        if holds is None:
            return self._models, self._gateways
        devices = {key: model for key, model in self._models.items() if holds(key[0])}
        return devices, [gw for gw in self._gateways if holds(gw)]

    def restore(self, keys: Iterable[Key]) -> None:
        keys = list(keys)
        self.rules.restore(keys)
        self.watchdog.restore(keys)

    def model(self, gateway: str, device: str) -> str | None:
        return self._models.get((gateway, device))

    # ---- inputs ---------------------------------------------------------------------------

    def event(self, event: Event, now: float) -> Evaluation:
        decisions = self.watchdog.heard(event.gateway, event.device, now, event.kind.value)
        decisions += self.rules.on_event(event, self.model(event.gateway, event.device), now)
        return self._inhibit(decisions)

    def readings(self, gateway: str, readings: Iterable[Reading], now: float) -> Evaluation:
        decisions: list[Decision] = []
        heard: set[str] = set()
        for reading in readings:
            if reading.device not in heard:
                heard.add(reading.device)
                decisions += self.watchdog.heard(gateway, reading.device, now, reading.kind.value)
            decisions += self.rules.on_reading(
                gateway, reading, self.model(gateway, reading.device)
            )
        if not heard:
            decisions += self.watchdog.heard(gateway, None, now)
        return self._inhibit(decisions)

    def status(self, gateway: str, online: bool, now: float) -> Evaluation:
        return self._inhibit(self.watchdog.status(gateway, online, now))

    def events_missing(
        self, gateway: str, boot: str, first: int, last: int, since: float, now: float
    ) -> Evaluation:
        return self._inhibit(self.watchdog.events_missing(gateway, boot, first, last, since, now))

    def refused(self, gateway: str, count: int, now: float) -> Evaluation:
        return self._inhibit(self.watchdog.refused(gateway, count, now))

    def blind(self, now: float) -> None:
        """The cloud cannot hear any gateway now (its broker is down): no silence counts."""
        self.watchdog.blind(now)

    def tick(self, now: float) -> Evaluation:
        decisions: list[Decision] = list(self.rules.tick(now))
        decisions += self.watchdog.tick(now)
        return self._inhibit(decisions)

    # ---- inhibition -----------------------------------------------------------------------

    def _source(self, gateway: str, rule: str) -> Key | None:
        return self.watchdog.firing_on(gateway, rule) or self.rules.firing_on(gateway, rule)

    def mutes(self, draft: AlarmDraft) -> Key | None:
        """The firing source alarm that mutes this draft (Alertmanager's inhibition), if any."""
        for rule in self.config.inhibit:
            if draft.rule in rule.targets and rule.source != draft.rule:
                source = self._source(draft.gateway, rule.source)
                if source is not None:
                    return source
        return None

    def _inhibit(self, decisions: list[Decision]) -> Evaluation:
        result = Evaluation()
        if not self.config.inhibit:
            result.decisions = decisions
            return result
        for decision in decisions:
            if isinstance(decision, Clear):
                self._reported.pop(decision.key, None)
                result.decisions.append(decision)
                continue
            source = self.mutes(decision)
            if source is None:
                result.decisions.append(decision)
                continue
            result.muted += 1
            self.rules.unfire(decision.key)
            self.watchdog.unfire(decision.key)
            seen = self._reported.setdefault(source, set())
            if decision.key not in seen:
                seen.add(decision.key)
                result.inhibited.append((source, decision))
        return result
