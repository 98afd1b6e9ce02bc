"""The site registry over HTTP (/api/site): read the tree, change it, import homes from a CSV.

Who may do what:
- the tree (communities → grids → buildings → homes, gateways and devices): every signed-in
  role. It never carries resident data, for anyone: installers work from it on site.
- changes to the structure, gateways and devices, and the CSV import: installers and admins.
- residents and their contacts (personal data): read by duty-room roles (operators,
  supervisors, admins), every read audited; changed by supervisors and admins only.
- re-importing the site file over the stored registry: admins.

Every change is validated in full before anything is saved (422 with the reason naming the
thing: "unknown grid wg-09", "duplicate home h-1 in building ld-01"), saved as a new version
and audited. The CSV goes as the request body (`Content-Type: text/csv`), not a multipart
form: python-multipart is not installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from cloud.access.users import DUTY_ROLES, Role, User
from cloud.site.edit import (
    add_building,
    add_community,
    add_device,
    add_gateway,
    add_grid,
    add_homes,
    change_building,
    change_grid,
    move_device,
    remove_device,
    remove_home,
    rename_community,
    rename_home,
    replace_device,
    set_residents,
)
from cloud.site.homes_csv import MAX_ROWS, CsvRejected, HomePlanned, RowError, plan_import
from cloud.site.store import Replacement, SiteVersion
from cloud.site.tree import Change, SiteEditError
from cloud.site_changes.config_push import ConfigPushState
from cloud.web.deps import AdminUser, CloudDep, CurrentUser, DutyUser
from contract.models import GatewayId
from contract.site import DeviceSpec, Name, Resident, Site, Slug, Street, Worker


class Refused(BaseModel):
    detail: str = Field(description="Why, in words")


class Invalid(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="Why, naming the thing (Chinese / English), or FastAPI's list of invalid fields"
    )


router = APIRouter(
    prefix="/api/site",
    tags=["site"],
    responses={
        401: {"model": Refused, "description": "not signed in"},
        403: {"model": Refused, "description": "this role may not do this"},
        422: {"model": Invalid, "description": "refused: the reason names what is wrong"},
    },
)

MAX_CSV_BYTES = 2 * 1024 * 1024


async def _editor(user: CurrentUser) -> User:
    if user.role not in (Role.INSTALLER, Role.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} cannot change the site")
    return user


async def _resident_editor(user: CurrentUser) -> User:
    if user.role not in (Role.SUPERVISOR, Role.ADMIN):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"role {user.role} cannot change resident data"
        )
    return user


#: Installers (on site) and admins change the structure, gateways and devices.
EditorUser = Annotated[User, Depends(_editor)]
#: Residents and their contacts are duty-room data: supervisors and admins change them.
ResidentEditorUser = Annotated[User, Depends(_resident_editor)]


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


async def _apply(cloud: CloudDep, user: User, operation: Callable[[Site], Change]) -> SiteChanged:
    try:
        _, version = await cloud.site.apply(user.name, operation)
    except SiteEditError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.detail) from None
    return SiteChanged(
        version=version.version,
        saved_at=version.saved_at,
        saved_by=version.saved_by,
        reason=version.reason,
    )


# ---- reading --------------------------------------------------------------------------------


@router.get("", response_model=SiteTree)
async def site_tree(cloud: CloudDep, user: CurrentUser) -> SiteTree:
    """The whole registry as a tree, without resident data (for every role)."""
    registry = cloud.registry
    site, version = registry.site, registry.version
    street, communities = _tree(site, workers=user.role in DUTY_ROLES)
    hardware = cloud.site.hardware
    models, profiles = await asyncio.to_thread(
        lambda: (hardware.models_available(), hardware.profiles_available())
    )
    return SiteTree(
        street=street,
        version=version,
        communities=communities,
        models=models,
        profiles=profiles,
        file_differs=await cloud.site.file_differs(),
    )


@router.get("/config-pushes", response_model=list[ConfigPushState])
async def config_pushes(cloud: CloudDep, user: CurrentUser) -> list[ConfigPushState]:
    """Per gateway: the last configuration sent after a site change, and its answer."""
    return cloud.config_push.states()


@router.get("/versions", response_model=list[SiteVersion])
async def versions(
    cloud: CloudDep, user: CurrentUser, limit: int = Query(100, ge=1, le=1000)
) -> list[SiteVersion]:
    return await cloud.site.store.versions(limit)


# ---- communities, grids, buildings, homes ---------------------------------------------------


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
async def new_community(body: NewCommunity, cloud: CloudDep, user: EditorUser) -> SiteChanged:
    return await _apply(cloud, user, lambda s: add_community(s, body.id, body.name))


@router.patch("/communities/{community_id}", response_model=SiteChanged)
async def rename_a_community(
    community_id: str, body: Rename, cloud: CloudDep, user: EditorUser
) -> SiteChanged:
    return await _apply(cloud, user, lambda s: rename_community(s, community_id, body.name))


@router.post("/grids", response_model=SiteChanged, status_code=status.HTTP_201_CREATED)
async def new_grid(body: NewGrid, cloud: CloudDep, user: EditorUser) -> SiteChanged:
    _may_set_worker(user, body.worker)
    return await _apply(
        cloud, user, lambda s: add_grid(s, body.community, body.id, body.name, body.worker)
    )


@router.patch("/grids/{grid_id}", response_model=SiteChanged)
async def change_a_grid(
    grid_id: str, body: GridChange, cloud: CloudDep, user: EditorUser
) -> SiteChanged:
    _may_set_worker(user, body.worker)
    return await _apply(cloud, user, lambda s: change_grid(s, grid_id, body.name, body.worker))


def _may_set_worker(user: User, worker: Worker | None) -> None:
    """The grid worker is told of every alarm of the grid and first in escalations: who that
    is (and their phone) is the duty room's decision, not an installer's."""
    if worker is not None and user.role is not Role.ADMIN:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {user.role} cannot set the grid worker (alarms go to that phone): an admin does",
        )


@router.post("/buildings", response_model=SiteChanged, status_code=status.HTTP_201_CREATED)
async def new_building(body: NewBuilding, cloud: CloudDep, user: EditorUser) -> SiteChanged:
    return await _apply(
        cloud, user, lambda s: add_building(s, body.grid, body.id, body.name, body.address)
    )


@router.patch("/buildings/{building_id}", response_model=SiteChanged)
async def change_a_building(
    building_id: str, body: BuildingChange, cloud: CloudDep, user: EditorUser
) -> SiteChanged:
    return await _apply(
        cloud, user, lambda s: change_building(s, building_id, body.name, body.address)
    )


@router.post("/homes", response_model=SiteChanged, status_code=status.HTTP_201_CREATED)
async def new_homes(body: NewHomes, cloud: CloudDep, user: EditorUser) -> SiteChanged:
    homes = [(h.id, h.name) for h in body.homes]
    return await _apply(cloud, user, lambda s: add_homes(s, body.building, homes))


@router.patch("/homes/{home_id}", response_model=SiteChanged)
async def rename_a_home(
    home_id: str, body: Rename, cloud: CloudDep, user: EditorUser
) -> SiteChanged:
    return await _apply(cloud, user, lambda s: rename_home(s, home_id, body.name))


@router.delete("/homes/{home_id}", response_model=SiteChanged)
async def delete_home(home_id: str, cloud: CloudDep, user: EditorUser) -> SiteChanged:
    """Refused (422) while devices are bound to the home, and for an installer while
    residents are on file (their data is the duty room's: an admin removes it)."""
    drop = user.role is Role.ADMIN
    return await _apply(cloud, user, lambda s: remove_home(s, home_id, drop_residents=drop))


# ---- residents (duty-room data) -------------------------------------------------------------


class Residents(BaseModel):
    home: str
    residents: list[Resident]


class ResidentsChange(BaseModel):
    residents: list[Resident] = Field(max_length=20)


@router.get(
    "/homes/{home_id}/residents",
    response_model=Residents,
    responses={404: {"model": Refused, "description": "no such home"}},
)
async def residents(home_id: str, cloud: CloudDep, user: DutyUser) -> Residents:
    """Who lives there and whom to call: duty-room roles only; every read is audited."""
    home = cloud.registry.home(home_id)
    if home is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown home {home_id}")
    await cloud.audit.record(user.name, "resident_data_read", f"home {home_id}")
    return Residents(home=home_id, residents=list(home.residents))


@router.put("/homes/{home_id}/residents", response_model=SiteChanged)
async def change_residents(
    home_id: str, body: ResidentsChange, cloud: CloudDep, user: ResidentEditorUser
) -> SiteChanged:
    return await _apply(cloud, user, lambda s: set_residents(s, home_id, body.residents))


# ---- gateways and devices -------------------------------------------------------------------


class NewGateway(BaseModel):
    id: GatewayId
    building: Slug
    profile: Slug


class DeviceMove(BaseModel):
    home: Slug


class DeviceReplacement(BaseModel):
    serial: str | None = Field(None, min_length=1, max_length=64, description="The new unit's")
    note: str = Field("", max_length=500)


@router.post("/gateways", response_model=SiteChanged, status_code=status.HTTP_201_CREATED)
async def new_gateway(body: NewGateway, cloud: CloudDep, user: EditorUser) -> SiteChanged:
    hardware = cloud.site.hardware
    return await _apply(
        cloud, user, lambda s: add_gateway(s, body.id, body.building, body.profile, hardware)
    )


@router.post(
    "/gateways/{gateway_id}/devices",
    response_model=SiteChanged,
    status_code=status.HTTP_201_CREATED,
)
async def new_device(
    gateway_id: str, body: DeviceSpec, cloud: CloudDep, user: EditorUser
) -> SiteChanged:
    """Bind a device to a home of the gateway's building; the model must exist and its pins,
    ADC channel and serial port must be free on the gateway's board."""
    hardware = cloud.site.hardware
    return await _apply(cloud, user, lambda s: add_device(s, gateway_id, body, hardware))


@router.post("/gateways/{gateway_id}/devices/{device_id}/move", response_model=SiteChanged)
async def move_a_device(
    gateway_id: str, device_id: str, body: DeviceMove, cloud: CloudDep, user: EditorUser
) -> SiteChanged:
    return await _apply(cloud, user, lambda s: move_device(s, gateway_id, device_id, body.home))


@router.post("/gateways/{gateway_id}/devices/{device_id}/replace", response_model=SiteChanged)
async def replace_a_device(
    gateway_id: str,
    device_id: str,
    body: DeviceReplacement,
    cloud: CloudDep,
    user: EditorUser,
) -> SiteChanged:
    """A new unit for a failed one: same id, home, pins and history; who, when and the old
    and new serial are recorded."""
    return await _apply(
        cloud, user, lambda s: replace_device(s, gateway_id, device_id, body.serial, body.note)
    )


@router.get(
    "/gateways/{gateway_id}/devices/{device_id}/replacements", response_model=list[Replacement]
)
async def replacements(
    gateway_id: str, device_id: str, cloud: CloudDep, user: CurrentUser
) -> list[Replacement]:
    return await cloud.site.store.replacements(gateway_id, device_id)


@router.delete("/gateways/{gateway_id}/devices/{device_id}", response_model=SiteChanged)
async def delete_device(
    gateway_id: str, device_id: str, cloud: CloudDep, user: EditorUser
) -> SiteChanged:
    """From now on its messages are rejected as unregistered; its history stays."""
    return await _apply(cloud, user, lambda s: remove_device(s, gateway_id, device_id))


# ---- CSV import and re-import ---------------------------------------------------------------


class ImportResult(BaseModel):
    dry_run: bool
    version: int | None = Field(description="The new version (None on a dry run)")
    buildings: list[str] = Field(description="Buildings the file creates")
    homes: list[HomePlanned]


class ImportRejected(BaseModel):
    detail: list[RowError] | list[dict[str, Any]] = Field(
        description="Every problem with its row and column (or FastAPI's list of invalid fields)"
    )


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_CSV_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "CSV over 2 MB: import in parts")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CSV_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "CSV over 2 MB: import in parts")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/import",
    response_model=ImportResult,
    responses={
        413: {"model": Refused, "description": "the file is over 2 MB"},
        422: {"model": ImportRejected, "description": "every problem, by row; nothing applied"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The spreadsheet as CSV (UTF-8 with or without BOM, or GBK)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_homes(
    request: Request,
    cloud: CloudDep,
    user: EditorUser,
    dry_run: bool = Query(False, description="Check and show what would change; save nothing"),
) -> ImportResult:
    """Homes from the street office's spreadsheet: all rows or none (422 lists every
    problem with its row and column)."""
    raw = await _body(request)
    holder: list[HomePlanned] = []
    buildings: list[str] = []

    def operation(site: Site) -> Change:
        change, plan = plan_import(site, raw)
        holder.extend(plan.homes)
        buildings.extend(plan.buildings)
        return change

    try:
        if dry_run:
            await cloud.site.preview(operation)
            version = None
        else:
            _, saved = await cloud.site.apply(user.name, operation)
            version = saved.version
    except CsvRejected as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, [e.model_dump() for e in exc.errors]
        ) from None
    except SiteEditError as exc:
        error = RowError(row=0, zh=exc.zh, en=exc.en)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [error.model_dump()]) from None
    return ImportResult(dry_run=dry_run, version=version, buildings=buildings, homes=holder)


@router.post("/reimport", response_model=SiteChanged)
async def reimport(cloud: CloudDep, user: AdminUser) -> SiteChanged:
    """Read the site file (SC_CLOUD_SITE_FILE) again and make it the registry, as a new
    version (the edits made since stay in the earlier versions)."""
    try:
        _, version = await cloud.site.reimport(user.name)
    except SiteEditError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.detail) from None
    return SiteChanged(
        version=version.version,
        saved_at=version.saved_at,
        saved_by=version.saved_by,
        reason=version.reason,
    )
