"""Who and where: every gateway and device placed in street → community → grid → building → home.

Built from the site document in force (stored in the cloud database, seeded from a site file in
`firmware_configs/sites/`; see cloud/site/store.py). Ingest asks it whether a gateway and device
exist and belong together; alarms take their routing chain from it. Edits while the cloud runs
(cloud/site/edit.py) swap in a whole new site with `replace()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.site import Building, Community, GatewaySpec, Grid, Home, Site, Worker


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


@dataclass(frozen=True, slots=True)
class _Maps:
    """Every lookup of one site, built together: a registry swaps the whole set at once."""

    site: Site
    version: int
    homes: dict[str, tuple[Community, Grid, Building, Home]]
    buildings: dict[str, tuple[Community, Grid, Building]]
    grids: dict[str, Grid]
    gateways: dict[str, GatewaySpec]
    devices: dict[tuple[str, str], DeviceInfo]


def _chain(
    site: Site, community: Community, grid: Grid, building: Building, home: Home | None
) -> Place:
    street = site.street
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


def _build(site: Site, version: int) -> _Maps:
    homes: dict[str, tuple[Community, Grid, Building, Home]] = {}
    buildings: dict[str, tuple[Community, Grid, Building]] = {}
    grids: dict[str, Grid] = {}
    for community in site.communities:
        for grid in community.grids:
            grids[grid.id] = grid
            for building in grid.buildings:
                buildings[building.id] = (community, grid, building)
                for home in building.homes:
                    homes[home.id] = (community, grid, building, home)
    devices: dict[tuple[str, str], DeviceInfo] = {}
    for gw in site.gateways:
        for spec in gw.devices:
            devices[(gw.id, spec.id)] = DeviceInfo(
                gateway=gw.id,
                device=spec.id,
                model=spec.model,
                place=_chain(site, *homes[spec.home]),
            )
    return _Maps(
        site=site,
        version=version,
        homes=homes,
        buildings=buildings,
        grids=grids,
        gateways={gw.id: gw for gw in site.gateways},
        devices=devices,
    )


class Registry:
    """One shared object for the cloud's lifetime; `replace()` swaps in a new site in one
    assignment, so every holder (ingest, the rules, the alarm book, escalation, the web app)
    sees the new site from then on, and a lookup never sees half of each."""

    def __init__(self, site: Site, version: int = 0) -> None:
        self._m = _build(site, version)

    def replace(self, site: Site, version: int) -> None:
        """Make `site` (already validated; saved as `version`) the registry's site."""
        self._m = _build(site, version)  # built first, then the one assignment

    @property
    def site(self) -> Site:
        return self._m.site

    @property
    def version(self) -> int:
        """The stored version of the site in force (0: not from the database)."""
        return self._m.version

    def has_gateway(self, gateway: str) -> bool:
        return gateway in self._m.gateways

    def device(self, gateway: str, device: str) -> DeviceInfo | None:
        return self._m.devices.get((gateway, device))

    def gateway_place(self, gateway: str) -> Place | None:
        """A gateway's building, as a Place whose home is the building itself."""
        m = self._m
        spec = m.gateways.get(gateway)
        if spec is None:
            return None
        community, grid, building = m.buildings[spec.building]
        return _chain(m.site, community, grid, building, None)

    def home(self, home_id: str) -> Home | None:
        entry = self._m.homes.get(home_id)
        return entry[3] if entry else None

    def gateways(self) -> list[str]:
        return list(self._m.gateways)

    def devices(self) -> dict[tuple[str, str], str]:
        """(gateway, device) → model of every registered device."""
        return {key: info.model for key, info in self._m.devices.items()}

    def grid_worker(self, grid_id: str) -> Worker | None:
        grid = self._m.grids.get(grid_id)
        return grid.worker if grid else None
