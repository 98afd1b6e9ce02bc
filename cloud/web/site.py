"""The site registry over HTTP (/api/site): reading the tree, its versions and the config
pushes here; changing it in the modules beside this one, by resource (site_structure.py,
site_residents.py, site_devices.py, site_import.py), each a router of its own on this prefix.

Who may do what:
- the tree (communities → grids → buildings → homes, gateways and devices): every signed-in
  role. It never carries resident data, for anyone: installers work from it on site.
- changes to the structure, gateways and devices, and the CSV import: installers and admins.
- residents and their contacts (personal data): read by duty-room roles (operators,
  supervisors, admins), every read audited; changed by supervisors and admins only.
- re-importing the site file over the stored registry: admins.

Every change is validated in full before anything is saved (422 with the reason naming the
thing: "unknown grid wg-09", "duplicate home h-1 in building ld-01", cloud/web/errors.py),
saved as a new version and audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cloud.access.users import DUTY_ROLES, User
from cloud.site.store import SiteVersion
from cloud.site.tree import Change
from cloud.site_changes.config_push import ConfigPushState
from cloud.site_changes.service import SiteService
from cloud.web.deps import ConfigPushDep, CurrentUser, RegistryDep, SiteDep
from contract.site import Site, Street, Worker


class Refused(BaseModel):
    detail: str = Field(description="Why, in words")


class Invalid(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="Why, naming the thing (Chinese / English), or FastAPI's list of invalid fields"
    )


def site_router() -> APIRouter:
    """A router of the site's API: its prefix, tag and the refusals every route may answer."""
    return APIRouter(
        prefix="/api/site",
        tags=["site"],
        responses={
            401: {"model": Refused, "description": "not signed in"},
            403: {"model": Refused, "description": "this role may not do this"},
            422: {"model": Invalid, "description": "refused: the reason names what is wrong"},
        },
    )


router = site_router()


# ---- views (never with resident data) -----------------------------------------------------


class DeviceView(BaseModel):
    id: str
    model: str
    home: str
    home_name: str
    pins: dict[str, int]
    adc_channel: int | None
    port: str | None
    serial: str | None


class GatewayView(BaseModel):
    id: str
    profile: str
    devices: list[DeviceView]


class HomeView(BaseModel):
    id: str
    name: str
    devices: list[str] = Field(description="gateway/device of the devices bound to the home")


class BuildingView(BaseModel):
    id: str
    name: str
    address: str
    homes: list[HomeView]
    gateways: list[GatewayView]


class GridView(BaseModel):
    id: str
    name: str
    worker: Worker | None
    buildings: list[BuildingView]


class CommunityView(BaseModel):
    id: str
    name: str
    grids: list[GridView]


class SiteTree(BaseModel):
    street: Street
    version: int
    communities: list[CommunityView]
    models: list[str] = Field(description="Device models (firmware_configs/models/)")
    profiles: list[str] = Field(description="Gateway board profiles (firmware_configs/profiles/)")
    file_differs: bool = Field(
        description="The site file on disk is not the one last imported (admins may re-import)"
    )


def _tree(site: Site, *, workers: bool) -> tuple[Street, list[CommunityView]]:
    """`workers`: with the grid workers (name and phone) — duty roles only."""
    names = {
        home.id: home.name
        for community in site.communities
        for grid in community.grids
        for building in grid.buildings
        for home in building.homes
    }
    bound: dict[str, list[str]] = {}
    gateways: dict[str, list[GatewayView]] = {}
    for gw in site.gateways:
        for d in gw.devices:
            bound.setdefault(d.home, []).append(f"{gw.id}/{d.id}")
        gateways.setdefault(gw.building, []).append(
            GatewayView(
                id=gw.id,
                profile=gw.profile,
                devices=[
                    DeviceView(
                        id=d.id,
                        model=d.model,
                        home=d.home,
                        home_name=names.get(d.home, ""),
                        pins=d.pins,
                        adc_channel=d.adc_channel,
                        port=d.port,
                        serial=d.serial,
                    )
                    for d in gw.devices
                ],
            )
        )
    communities = [
        CommunityView(
            id=c.id,
            name=c.name,
            grids=[
                GridView(
                    id=g.id,
                    name=g.name,
                    worker=g.worker if workers else None,
                    buildings=[
                        BuildingView(
                            id=b.id,
                            name=b.name,
                            address=b.address,
                            homes=[
                                HomeView(id=h.id, name=h.name, devices=bound.get(h.id, []))
                                for h in b.homes
                            ],
                            gateways=gateways.get(b.id, []),
                        )
                        for b in g.buildings
                    ],
                )
                for g in c.grids
            ],
        )
        for c in site.communities
    ]
    return site.street, communities


class SiteChanged(BaseModel):
    """A change saved: the new version in force."""

    version: int
    saved_at: datetime
    saved_by: str
    reason: str

    @classmethod
    def of(cls, version: SiteVersion) -> SiteChanged:
        return cls(
            version=version.version,
            saved_at=version.saved_at,
            saved_by=version.saved_by,
            reason=version.reason,
        )


async def apply(site: SiteService, user: User, operation: Callable[[Site], Change]) -> SiteChanged:
    """Make, validate, save and swap in a change (a refusal is 422, cloud/web/errors.py)."""
    _, version = await site.apply(user.name, operation)
    return SiteChanged.of(version)


# ---- reading --------------------------------------------------------------------------------


@router.get("", response_model=SiteTree)
async def site_tree(registry: RegistryDep, site: SiteDep, user: CurrentUser) -> SiteTree:
    """The whole registry as a tree, without resident data (for every role)."""
    street, communities = _tree(registry.site, workers=user.role in DUTY_ROLES)
    hardware = site.hardware
    models, profiles = await asyncio.to_thread(
        lambda: (hardware.models_available(), hardware.profiles_available())
    )
    return SiteTree(
        street=street,
        version=registry.version,
        communities=communities,
        models=models,
        profiles=profiles,
        file_differs=await site.file_differs(),
    )


@router.get("/config-pushes", response_model=list[ConfigPushState])
async def config_pushes(config_push: ConfigPushDep, user: CurrentUser) -> list[ConfigPushState]:
    """Per gateway: the last configuration sent after a site change, and its answer."""
    return config_push.states()


@router.get("/versions", response_model=list[SiteVersion])
async def versions(
    site: SiteDep, user: CurrentUser, limit: int = Query(100, ge=1, le=1000)
) -> list[SiteVersion]:
    return await site.store.versions(limit)
