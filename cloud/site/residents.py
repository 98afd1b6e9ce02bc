"""Reading residents' data (names, ages, conditions, emergency contacts): personal data, read
only by the duty-room roles (the web app checks the role), and every read is in the audit —
who read whose, when, and for which alarm when it was for one."""

from __future__ import annotations

from pydantic import BaseModel

from cloud.access.audit import Audit
from cloud.errors import NotFound
from cloud.site.registry import Registry
from contract.site import Home, ResidentFlag


class ResidentBrief(BaseModel):
    """Who lives in a home, as the board's row shows it: name, age and flags; never a phone,
    a contact or the conditions' text (those are in the case, behind the audited read)."""

    name: str
    age: int | None
    flags: list[ResidentFlag]


class ResidentReads:
    def __init__(self, registry: Registry, audit: Audit) -> None:
        self.registry = registry
        self.audit = audit

    async def of_home(self, home_id: str, actor: str) -> Home:
        """The home with its residents, as the registry has it now (audited
        `resident_data_read`)."""
        home = self.registry.home(home_id)
        if home is None:
            raise NotFound(f"unknown home {home_id}")
        await self.audit.record(actor, "resident_data_read", f"home {home_id}")
        return home

    async def at_a_glance(self, actor: str) -> dict[str, list[ResidentBrief]]:
        """Every home with someone on file → its residents in brief, for the board's rows
        (audited `resident_glance_read` once per read, with how many homes: a page reads it
        when it opens and when an alarm comes from a home it does not know)."""
        homes = {
            home.id: [ResidentBrief(name=r.name, age=r.age, flags=r.flags) for r in home.residents]
            for community in self.registry.site.communities
            for grid in community.grids
            for building in grid.buildings
            for home in building.homes
            if home.residents
        }
        await self.audit.record(actor, "resident_glance_read", f"{len(homes)} homes")
        return homes

    async def behind_alarm(
        self, alarm_id: int, home_id: str | None, building: str, actor: str
    ) -> Home:
        """The home an alarm came from, with its residents, for the responders (audited
        `resident_read`, naming the alarm, the home and whom)."""
        home = self.registry.home(home_id) if home_id else None
        if home is None:
            raise NotFound(f"alarm {alarm_id} is not from a home on file")
        names = ", ".join(r.name for r in home.residents) or "nobody on file"
        await self.audit.record(
            actor,
            "resident_read",
            f"alarm {alarm_id}: home {home.id} ({building} {home.name}): {names}",
        )
        return home
