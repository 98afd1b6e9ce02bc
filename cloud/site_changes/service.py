"""Applying a change to the site registry while the cloud runs: validate, save, swap.

One change at a time: the operation (cloud/site/edit.py, or a CSV import) makes a new site
from the one in force and validates it (contract and hardware, in a thread: it reads the
model and profile files); the rules in force are checked against it (a policy that escalates
to the street supervisor needs one on file for the site's street); then it is saved as a new
version with its audit entry in one transaction, and — under the same database lock, so no
message is stored against half of each — swapped into the shared `Registry` and the rules
core's supervision (unchanged devices keep their state; new ones get a grace period).
Supervision alarms of removed devices and gateways are cleared ("removed from the
registry"): nothing is left to clear them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cloud.alarms.book import AlarmBook
from cloud.notify.announce import Announcer
from cloud.rules import RulesCore
from cloud.rules.decisions import Decision
from cloud.rules.reload import RulesReloader, check_against_site
from cloud.site.edit import replace_all
from cloud.site.hardware import Hardware
from cloud.site.registry import Registry
from cloud.site.store import SiteStore, SiteVersion, file_digest
from cloud.site.tree import Change, SiteEditError
from contract.site import ConfigFileError, Site, load_site

log = logging.getLogger(__name__)

#: Told about every new site in force (e.g. to keep the broker's accounts in step).
Listener = Callable[[Site, SiteVersion], Awaitable[None]]


class SiteService:
    def __init__(
        self,
        *,
        store: SiteStore,
        registry: Registry,
        core: RulesCore,
        reloader: RulesReloader,
        book: AlarmBook,
        announcer: Announcer,
        site_file: Path,
        hardware: Hardware | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.registry = registry
        self.core = core
        self.reloader = reloader
        self.book = book
        self.announcer = announcer
        self.site_file = site_file
        self.hardware = hardware or Hardware()
        self.clock = clock
        self.listeners: list[Listener] = []
        self._lock = asyncio.Lock()  # one change at a time

    async def preview(self, operation: Callable[[Site], Change]) -> Change:
        """The change an operation would make (validated, not saved): a dry run."""
        change = await asyncio.to_thread(operation, self.registry.site)
        self._check_rules(change.site)
        return change

    async def apply(
        self,
        actor: str,
        operation: Callable[[Site], Change],
        *,
        source: tuple[str, str] | None = None,
    ) -> tuple[Change, SiteVersion]:
        """Make, validate, save and swap in the change; raises SiteEditError (nothing done)."""
        async with self._lock:
            change = await self.preview(operation)
            cleared: list[Decision] = []

            version = await self.store.save(
                change.site,
                actor,
                change.action,
                change.reason,
                source=source,
                replacement=change.replacement,
            )
            # swapped in at once, on the event loop: the registry and the rules' supervision
            # change in one step (a batch being stored meanwhile places its alarms with the
            # registry it was checked against)
            self.registry.replace(change.site, version.version)
            cleared.extend(
                self.core.update_registry(
                    self.registry.devices(), self.registry.gateways(), self.clock()
                )
            )
            log.info("site version %d by %s: %s", version.version, actor, change.reason)
        if cleared:
            await self.announcer.announce(await self.book.apply(cleared, self.clock()))
        for listener in self.listeners:
            try:
                await listener(change.site, version)
            except Exception:
                log.exception("a site listener failed on version %d", version.version)
        return change, version

    def _check_rules(self, site: Site) -> None:
        try:
            check_against_site(self.reloader.current, Registry(site))
        except ConfigFileError as exc:
            raise SiteEditError(
                f"与告警规则不符：{exc}", f"does not fit the rules: {exc}"
            ) from None

    async def reimport(self, actor: str) -> tuple[Change, SiteVersion]:
        """Read the site file again and make it the site in force (an admin's decision)."""
        path = self.site_file
        try:
            site = await asyncio.to_thread(load_site, path)
            digest = await asyncio.to_thread(file_digest, path)
        except (ConfigFileError, OSError) as exc:
            raise SiteEditError(f"站点文件无法导入：{exc}", f"site file refused: {exc}") from None
        reason = f"re-imported from {path}"
        return await self.apply(
            actor,
            lambda current: replace_all(current, site, reason, self.hardware),
            source=(str(path), digest),
        )

    async def file_differs(self) -> bool:
        return await self.store.file_differs(self.site_file)
