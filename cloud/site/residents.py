"""Reading residents' data (names, ages, conditions, emergency contacts): personal data, read
only by the duty-room roles (the web app checks the role), and every read is in the audit —
who read whose, when, and for which alarm when it was for one."""

from __future__ import annotations

from cloud.access.audit import Audit
from cloud.errors import NotFound
from cloud.site.registry import Registry
from contract.site import Home


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
