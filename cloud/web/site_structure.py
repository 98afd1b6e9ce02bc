"""The site's structure over HTTP: communities, grids, buildings and homes (installers and
admins; the grid worker, whom alarms go to, only by admins)."""

from __future__ import annotations

from fastapi import HTTPException, status
from pydantic import BaseModel, Field

from cloud.access.users import Role, User
from cloud.site.edit import (
    add_building,
    add_community,
    add_grid,
    add_homes,
    change_building,
    change_grid,
    remove_home,
    rename_community,
    rename_home,
)
from cloud.site.homes_csv import MAX_ROWS
from cloud.web.deps import EditorUser, SiteDep
from cloud.web.site import SiteChanged, apply, site_router
from contract.site import Name, Slug, Worker

router = site_router()


class NewCommunity(BaseModel):
    id: Slug
    name: Name


class Rename(BaseModel):
    name: Name


class NewGrid(BaseModel):
    community: Slug
    id: Slug
    name: Name
    worker: Worker | None = None


class GridChange(BaseModel):
    name: Name | None = None
    worker: Worker | None = None


class NewBuilding(BaseModel):
    grid: Slug
    id: Slug
    name: Name
    address: str = Field("", max_length=200)


class BuildingChange(BaseModel):
    name: Name | None = None
    address: str | None = Field(None, max_length=200)


class NewHome(BaseModel):
    id: Slug
    name: Name


class NewHomes(BaseModel):
    building: Slug
    homes: list[NewHome] = Field(min_length=1, max_length=MAX_ROWS)


@router.post("/communities", response_model=SiteChanged, status_code=status.HTTP_201_CREATED)
async def new_community(body: NewCommunity, site: SiteDep, user: EditorUser) -> SiteChanged:
    return await apply(site, user, lambda s: add_community(s, body.id, body.name))


@router.patch("/communities/{community_id}", response_model=SiteChanged)
async def rename_a_community(
    community_id: str, body: Rename, site: SiteDep, user: EditorUser
) -> SiteChanged:
    return await apply(site, user, lambda s: rename_community(s, community_id, body.name))


@router.post("/grids", response_model=SiteChanged, status_code=status.HTTP_201_CREATED)
async def new_grid(body: NewGrid, site: SiteDep, user: EditorUser) -> SiteChanged:
    _may_set_worker(user, body.worker)
    return await apply(
        site, user, lambda s: add_grid(s, body.community, body.id, body.name, body.worker)
    )


@router.patch("/grids/{grid_id}", response_model=SiteChanged)
async def change_a_grid(
    grid_id: str, body: GridChange, site: SiteDep, user: EditorUser
) -> SiteChanged:
    _may_set_worker(user, body.worker)
    return await apply(site, user, lambda s: change_grid(s, grid_id, body.name, body.worker))


def _may_set_worker(user: User, worker: Worker | None) -> None:
    """The grid worker is told of every alarm of the grid and first in escalations: who that
    is (and their phone) is the duty room's decision, not an installer's."""
    if worker is not None and user.role is not Role.ADMIN:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {user.role} cannot set the grid worker (alarms go to that phone): an admin does",
        )


@router.post("/buildings", response_model=SiteChanged, status_code=status.HTTP_201_CREATED)
async def new_building(body: NewBuilding, site: SiteDep, user: EditorUser) -> SiteChanged:
    return await apply(
        site, user, lambda s: add_building(s, body.grid, body.id, body.name, body.address)
    )


@router.patch("/buildings/{building_id}", response_model=SiteChanged)
async def change_a_building(
    building_id: str, body: BuildingChange, site: SiteDep, user: EditorUser
) -> SiteChanged:
    return await apply(
        site, user, lambda s: change_building(s, building_id, body.name, body.address)
    )


@router.post("/homes", response_model=SiteChanged, status_code=status.HTTP_201_CREATED)
async def new_homes(body: NewHomes, site: SiteDep, user: EditorUser) -> SiteChanged:
    homes = [(h.id, h.name) for h in body.homes]
    return await apply(site, user, lambda s: add_homes(s, body.building, homes))


@router.patch("/homes/{home_id}", response_model=SiteChanged)
async def rename_a_home(home_id: str, body: Rename, site: SiteDep, user: EditorUser) -> SiteChanged:
    return await apply(site, user, lambda s: rename_home(s, home_id, body.name))


@router.delete("/homes/{home_id}", response_model=SiteChanged)
async def delete_home(home_id: str, site: SiteDep, user: EditorUser) -> SiteChanged:
    """Refused (422) while devices are bound to the home, and for an installer while
    residents are on file (their data is the duty room's: an admin removes it)."""
    drop = user.role is Role.ADMIN
    return await apply(site, user, lambda s: remove_home(s, home_id, drop_residents=drop))
