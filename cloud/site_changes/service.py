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

Where several cloud processes share one PostgreSQL, a version another process saved is taken
up here with `take_up` (cloud/peers.py calls it on that process's notice, told through
`on_version`): the same swap into the registry and the rules core, and the same clears, by
whichever process gets them first; the `followers` are told of the new site. What an edit
does once — its audit entry, the `listeners` (the config push to the gateways, revoking a
removed gateway's credentials) — stays with the process that made it.
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

#: Told about every new site this process's edits put in force (e.g. to keep the broker's
#: accounts in step): what an edit does once.
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
        #: told about a version another process saved, once taken up here
        self.followers: list[Callable[[Site], None]] = []
        #: told the number of every version this process saved, once in force here
        self.on_version: Callable[[int], None] | None = None
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
        """Make, validate, save and swap in the change; raises SiteEditError, or Conflict if
        another process saved a version since the one in force here (nothing done)."""
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
                after=self.registry.version or None,  # 0: a registry not from the database
            )
            cleared.extend(self._swap(change.site, version.version))
            log.info("site version %d by %s: %s", version.version, actor, change.reason)
            if self.on_version is not None:
                self.on_version(version.version)
        await self._clear(cleared)
        for listener in self.listeners:
            try:
                await listener(change.site, version)
            except Exception:
                log.exception("a site listener failed on version %d", version.version)
        return change, version

    async def take_up(self) -> int | None:
        """Put the newest stored version in force if it is newer than the one in force (saved
        by another process); returns its number, or None if there was none newer."""
        async with self._lock:
            newest = await self.store.newest()
            if newest is None or newest[1].version <= self.registry.version:
                return None
            site, version = newest
            cleared = self._swap(site, version.version)
            log.info(
                "site version %d (saved by %s through another process) in force here",
                version.version,
                version.saved_by,
            )
        for follower in self.followers:
            follower(site)
        await self._clear(cleared)
        return version.version

    def _swap(self, site: Site, version: int) -> list[Decision]:
        """Swapped in at once, on the event loop: the registry and the rules' supervision
        change in one step (a batch being stored meanwhile places its alarms with the registry
        it was checked against); the clears of what was removed."""
        self.registry.replace(site, version)
        return self.core.update_registry(
            self.registry.devices(), self.registry.gateways(), self.clock()
        )

    async def _clear(self, cleared: list[Decision]) -> None:
        """Supervision alarms of removed devices and gateways, cleared and announced."""
        if cleared:
            await self.announcer.announce(await self.book.apply(cleared, self.clock()))

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
