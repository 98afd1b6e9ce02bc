"""A new configuration while the gateway runs: pushed by the cloud (`cmd/config`) or the
files read again (SIGHUP, `systemctl reload`).

A pushed one is validated first (gateway/config_store.py), then kept with the previous one.
Only the drivers change (the agent's swap: devices left as they were keep their drivers); the
outbox, the uplink and the boot stay. If the new drivers cannot start, the previous
configuration runs again. One change at a time, and never while the agent starts or stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from contract.models import Command
from edge.config import GatewayConfig
from gateway import commands
from gateway.agent_settings import AgentStats
from gateway.config_store import ConfigRefused, ConfigStore, Pushed, document_of, parse

log = logging.getLogger(__name__)


class ConfigPush:
    """`life` is the agent's start/stop lock and `running` says whether it runs; `current`
    gives the configuration it runs and `swap` runs another one (drivers only)."""

    def __init__(
        self,
        gateway_id: str,
        store: ConfigStore,
        stats: AgentStats,
        *,
        configs_dir: Path | None,
        life: threading.Lock,
        running: Callable[[], bool],
        current: Callable[[], GatewayConfig],
        swap: Callable[[GatewayConfig], None],
    ) -> None:
        self.gateway_id = gateway_id
        self.store = store
        self.stats = stats
        self._configs_dir = configs_dir
        self._life = life
        self._running = running
        self._current = current
        self._swap = swap
        self._lock = threading.Lock()  # one configuration change at a time

    def command(self, command: Command, _drivers: object) -> str:
        """`cmd/config`: the configuration in `document` (YAML), answered in the Reply."""
        if not command.document:
            raise commands.CommandError("config needs the configuration in 'document' (YAML)")
        try:
            pushed = parse(command.document, self.gateway_id, configs_dir=self._configs_dir)
        except ConfigRefused as exc:
            self.stats.configs_refused += 1
            raise commands.CommandError(f"config refused, nothing changed: {exc}") from None
        return self.apply(pushed)

    def apply(self, pushed: Pushed) -> str:
        """Run a validated configuration: keep it (the previous one too), restart the drivers
        with it. If its drivers cannot start, the previous configuration runs again."""
        with self._lock, self._life:
            if not self._running():
                raise commands.CommandError("the agent is not running")
            old = self._current()
            self.store.keep(pushed, running=document_of(old))
            try:
                self._swap(pushed.config)
            except Exception as exc:
                log.exception("new config failed to start; back to the previous one")
                self.store.restore_previous()
                self._swap(old)
                self.stats.configs_refused += 1
                raise commands.CommandError(
                    f"config {pushed.document.version or '(no version)'} failed to start, "
                    f"the previous one runs again: {exc!r}"
                ) from None
            self.stats.configs_applied += 1
        version = pushed.document.version or "(no version)"
        log.info("config applied version=%s devices=%d", version, len(pushed.config.spec.devices))
        return (
            f"config {version} applied: {len(pushed.config.spec.devices)} devices; "
            "the previous one is kept"
        )

    def reload(self, config: GatewayConfig) -> None:
        """Run the configuration files again as they are now (SIGHUP), already validated.
        Only the drivers restart; the outbox, the uplink and the boot stay."""
        with self._lock, self._life:
            if not self._running():
                return
            old = self._current()
            try:
                self._swap(config)
            except Exception:
                self._swap(old)
                raise
        log.info("config reloaded source=%s devices=%d", config.source, len(config.spec.devices))
