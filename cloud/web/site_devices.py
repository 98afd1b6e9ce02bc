"""Gateways and devices of the site over HTTP (installers and admins): add a gateway, bind a
device to a home, move, replace or remove it, and the record of replacements."""

from __future__ import annotations

from fastapi import status
from pydantic import BaseModel, Field

from cloud.site.edit import add_device, add_gateway, move_device, remove_device, replace_device
from cloud.site.store import Replacement
from cloud.web.deps import CurrentUser, EditorUser, SiteDep
from cloud.web.site import SiteChanged, apply, site_router
from contract.models import GatewayId
from contract.site import DeviceSpec, Slug

router = site_router()


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
async def new_gateway(body: NewGateway, site: SiteDep, user: EditorUser) -> SiteChanged:
    hardware = site.hardware
    return await apply(
        site, user, lambda s: add_gateway(s, body.id, body.building, body.profile, hardware)
    )


@router.post(
    "/gateways/{gateway_id}/devices",
    response_model=SiteChanged,
    status_code=status.HTTP_201_CREATED,
)
async def new_device(
    gateway_id: str, body: DeviceSpec, site: SiteDep, user: EditorUser
) -> SiteChanged:
    """Bind a device to a home of the gateway's building; the model must exist and its pins,
    ADC channel and serial port must be free on the gateway's board."""
    hardware = site.hardware
    return await apply(site, user, lambda s: add_device(s, gateway_id, body, hardware))


@router.post("/gateways/{gateway_id}/devices/{device_id}/move", response_model=SiteChanged)
async def move_a_device(
    gateway_id: str, device_id: str, body: DeviceMove, site: SiteDep, user: EditorUser
) -> SiteChanged:
    return await apply(site, user, lambda s: move_device(s, gateway_id, device_id, body.home))


@router.post("/gateways/{gateway_id}/devices/{device_id}/replace", response_model=SiteChanged)
async def replace_a_device(
    gateway_id: str,
    device_id: str,
    body: DeviceReplacement,
    site: SiteDep,
    user: EditorUser,
) -> SiteChanged:
    """A new unit for a failed one: same id, home, pins and history; who, when and the old
    and new serial are recorded."""
    return await apply(
        site, user, lambda s: replace_device(s, gateway_id, device_id, body.serial, body.note)
    )


@router.get(
    "/gateways/{gateway_id}/devices/{device_id}/replacements", response_model=list[Replacement]
)
async def replacements(
    gateway_id: str, device_id: str, site: SiteDep, user: CurrentUser
) -> list[Replacement]:
    return await site.store.replacements(gateway_id, device_id)


@router.delete("/gateways/{gateway_id}/devices/{device_id}", response_model=SiteChanged)
async def delete_device(
    gateway_id: str, device_id: str, site: SiteDep, user: EditorUser
) -> SiteChanged:
    """From now on its messages are rejected as unregistered; its history stays."""
    return await apply(site, user, lambda s: remove_device(s, gateway_id, device_id))
