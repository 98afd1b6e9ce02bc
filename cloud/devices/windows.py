"""Walk tests and maintenance windows as installers and planners ask for them: the gateway and
devices named are checked against the registry first (`NotFound`, `Refused`), and ending a
window closes the test alarms it recorded. The windows themselves, and the gate on the
message path, are cloud/devices/maintenance.py."""

from __future__ import annotations

from datetime import datetime

from cloud.alarms.book import AlarmBook
from cloud.alarms.model import Mode
from cloud.devices.maintenance import Maintenance, Planned, Window
from cloud.errors import NotFound, Refused
from cloud.site.registry import Registry
from cloud.times import to_epoch


class Windows:
    def __init__(self, maintenance: Maintenance, registry: Registry, book: AlarmBook) -> None:
        self.maintenance = maintenance
        self.registry = registry
        self.book = book

    def _check(self, gateway: str, devices: list[str]) -> None:
        if not self.registry.has_gateway(gateway):
            raise NotFound(f"no gateway {gateway!r}")
        unknown = [d for d in devices if self.registry.device(gateway, d) is None]
        if unknown:
            raise Refused(f"not devices of {gateway}: {unknown}")

    async def start_walk_test(
        self, gateway: str, devices: list[str], minutes: float, actor: str, note: str = ""
    ) -> Window:
        """An installer's walk test of a gateway's devices (all of them if none are named)."""
        self._check(gateway, devices)
        return await self.maintenance.start_walk_test(gateway, devices, minutes, actor, note)

    async def schedule(
        self,
        mode: Planned,
        gateway: str,
        devices: list[str],
        starts_at: datetime,
        ends_at: datetime,
        actor: str,
        note: str = "",
    ) -> Window:
        """A maintenance window, or an emergency drill (应急演练), planned ahead for these
        devices (cloud/devices/maintenance.py)."""
        self._check(gateway, devices)
        return await self.maintenance.schedule(
            mode, gateway, devices, to_epoch(starts_at), to_epoch(ends_at), actor, note
        )

    async def windows(self, *, open_only: bool, mode: Mode | None = None) -> list[Window]:
        return await self.maintenance.windows(open_only=open_only, mode=mode)

    async def get(self, window_id: int) -> Window:
        return await self.maintenance.get(window_id)

    async def walk_test(self, window_id: int) -> Window:
        """A window that is a walk test (`NotFound` for a maintenance window)."""
        window = await self.maintenance.get(window_id)
        if window.mode is not Mode.WALK_TEST:
            raise NotFound(f"#{window_id} is not a walk test")
        return window

    async def end(self, window_id: int, actor: str) -> Window:
        """End a window now; the test alarms it recorded are closed."""
        window = await self.maintenance.end(window_id, actor)
        await self.book.close_window(window_id, actor)
        return window

    async def end_walk_test(self, window_id: int, actor: str) -> Window:
        await self.walk_test(window_id)
        return await self.end(window_id, actor)
