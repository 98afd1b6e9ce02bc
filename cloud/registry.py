"""Who and where: every gateway and device placed in street → community → grid → building → home.

Built from a site file (`firmware_configs/sites/`). Ingest asks it whether a gateway and device
exist and belong together; alarms take their routing chain from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.site import Building, Community, Grid, Home, Site, Worker


@dataclass(frozen=True, slots=True)
class Place:
    """The routing chain of one device: where it is and who is responsible."""

    street_id: str
    street: str
    community_id: str
    community: str
    grid_id: str
    grid: str
    building_id: str
    building: str
    home_id: str
    home: str


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    gateway: str
    device: str
    model: str
    place: Place


class Registry:
    def __init__(self, site: Site) -> None:
        self.site = site
        self._homes: dict[str, tuple[Community, Grid, Building, Home]] = {}
        self._buildings: dict[str, tuple[Community, Grid, Building]] = {}
        for community in site.communities:
            for grid in community.grids:
                for building in grid.buildings:
                    self._buildings[building.id] = (community, grid, building)
                    for home in building.homes:
                        self._homes[home.id] = (community, grid, building, home)
        self._grids: dict[str, Grid] = {
            grid.id: grid for community in site.communities for grid in community.grids
        }
        self._gateways = {gw.id: gw for gw in site.gateways}
        self._devices: dict[tuple[str, str], DeviceInfo] = {}
        for gw in site.gateways:
            for spec in gw.devices:
                self._devices[(gw.id, spec.id)] = DeviceInfo(
                    gateway=gw.id, device=spec.id, model=spec.model, place=self._place(spec.home)
                )

    def _place(self, home_id: str) -> Place:
        community, grid, building, home = self._homes[home_id]
        return self._chain(community, grid, building, home)

    def _chain(
        self, community: Community, grid: Grid, building: Building, home: Home | None
    ) -> Place:
        street = self.site.street
        return Place(
            street_id=street.id,
            street=street.name,
            community_id=community.id,
            community=community.name,
            grid_id=grid.id,
            grid=grid.name,
            building_id=building.id,
            building=building.name,
            home_id=home.id if home else "",
            home=home.name if home else "",
        )

    def has_gateway(self, gateway: str) -> bool:
        return gateway in self._gateways

    def device(self, gateway: str, device: str) -> DeviceInfo | None:
        return self._devices.get((gateway, device))

    def gateway_place(self, gateway: str) -> Place | None:
        """A gateway's building, as a Place whose home is the building itself."""
        spec = self._gateways.get(gateway)
        if spec is None:
            return None
        community, grid, building = self._buildings[spec.building]
        return self._chain(community, grid, building, None)

    def home(self, home_id: str) -> Home | None:
        entry = self._homes.get(home_id)
        return entry[3] if entry else None

    def gateways(self) -> list[str]:
        return list(self._gateways)

    def devices(self) -> dict[tuple[str, str], str]:
        """(gateway, device) → model of every registered device."""
        return {key: info.model for key, info in self._devices.items()}

    def grid_worker(self, grid_id: str) -> Worker | None:
        grid = self._grids.get(grid_id)
        return grid.worker if grid else None
