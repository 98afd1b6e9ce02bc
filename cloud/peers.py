"""Several cloud processes on one PostgreSQL, kept in step by notices (cloud/db/notices.py)
about what each keeps in memory and another's actions change:

- the live push: every message one process publishes (`LiveHub.publish`) reaches the pages of
  every other (`LiveHub.deliver`), in the order it was published — except the state of the
  process's own link to its broker, which is that process's business;
- walk tests, maintenance windows and drills: a start or end in one process makes every
  other read the open windows again (`Maintenance.load`), so ingest gates by them there too;
- the site registry: a version saved by one process is put in force in every other
  (`SiteService.take_up`: the registry, the rules core, the clears of what was removed);
- how many duty-room pages each process serves (told when it changes and every
  `HEARTBEAT_S`; forgotten after three missed): a message published counts the pages it
  reaches everywhere, so the duty-room push (cloud/notify/push.py) is delivered when a page is
  open at any process, and "no duty-room page open" only when none is known anywhere.

After every LISTEN (the first one, and again after PostgreSQL restarted or the session was
lost: notices sent meanwhile are lost) the windows and the site are read again. On SQLite one
process owns the database: there are no peers (`open_peers` gives None).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path

from cloud.db.notices import Notice, NoticeLink
from cloud.db.url import DatabaseUrl
from cloud.devices.maintenance import Maintenance
from cloud.live.hub import LiveHub
from cloud.live.messages import LiveMessage
from cloud.site_changes.service import SiteService

log = logging.getLogger(__name__)

LIVE = "L"
MAINTENANCE = "M"
SITE = "S"
PAGES = "P"  # how many pages the sender serves
ASK = "Q"  # tell me how many pages you serve (sent after a LISTEN)

#: Seconds between a process's page counts; one not heard for three is forgotten.
HEARTBEAT_S = 10.0

#: live messages about this process alone, not relayed (the pages of each process see the
#: state of that process's link to the broker)
OWN_EVENTS = frozenset({"broker"})


class Peers:
    def __init__(
        self, link: NoticeLink, *, hub: LiveHub, maintenance: Maintenance, site: SiteService
    ) -> None:
        self.link = link
        self.hub = hub
        self.maintenance = maintenance
        self.site = site
        self._pages: dict[str, tuple[int, float]] = {}  # sender → (pages, when told)
        hub.relay = self._relay
        hub.on_listeners = self._tell_pages
        maintenance.on_change.append(lambda: link.send(MAINTENANCE, ""))
        site.on_version = lambda version: link.send(SITE, str(version))

    @property
    def counts(self) -> Counter[str]:
        """Notices sent, failed, received… (cloud/db/notices.py)."""
        return self.link.counts

    @property
    def listening(self) -> asyncio.Event:
        return self.link.listening

    async def run(self) -> None:
        """Send this process's notices and apply the others', until cancelled."""
        await asyncio.gather(
            self.link.sending(), self.link.listen(self._apply, self._reread), self._heartbeat()
        )

    def pages_elsewhere(self) -> int:
        """The duty-room pages the other processes serve, as last told (0 while this process
        does not listen: it would not know)."""
        if not self.link.listening.is_set():
            return 0
        recent = time.monotonic() - 3 * HEARTBEAT_S
        return sum(pages for pages, at in self._pages.values() if at > recent)

    def _relay(self, message: LiveMessage) -> int:
        if message.event in OWN_EVENTS:
            return 0
        self.link.send(LIVE, f"{message.event}\n{message.data}")
        return self.pages_elsewhere()

    def _tell_pages(self) -> None:
        self.link.send(PAGES, str(self.hub.listeners))

    async def _heartbeat(self) -> None:
        while True:
            self._tell_pages()
            await asyncio.sleep(HEARTBEAT_S)

    async def _apply(self, notice: Notice) -> None:
        if notice.kind == LIVE:
            event, _, data = notice.body.partition("\n")
            self.hub.deliver(LiveMessage(event, data))
        elif notice.kind == MAINTENANCE:
            await self.maintenance.load()
        elif notice.kind == SITE:
            await self.site.take_up()
        elif notice.kind == PAGES:
            self._pages[notice.sender] = (int(notice.body), time.monotonic())
        elif notice.kind == ASK:
            self._tell_pages()
        else:
            log.warning("notice of unknown kind %r from %s ignored", notice.kind, notice.sender)

    async def _reread(self) -> None:
        """What was missed while no session listened: read the windows and the site again,
        and ask the others how many pages they serve."""
        self._pages.clear()
        self.link.send(ASK, "")
        await self.maintenance.load()
        await self.site.take_up()


def open_peers(
    database: str | Path, *, hub: LiveHub, maintenance: Maintenance, site: SiteService
) -> Peers | None:
    """The notices between processes where the database is PostgreSQL; None on SQLite."""
    url = DatabaseUrl.parse(database)
    if url.backend != "postgresql":
        return None
    return Peers(NoticeLink(url.target), hub=hub, maintenance=maintenance, site=site)
