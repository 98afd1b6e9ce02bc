"""Residents and their contacts over HTTP: personal data, the duty room's. Read by the
duty-room roles (every read audited), changed by supervisors and admins only."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cloud.site.edit import set_residents
from cloud.site.residents import ResidentBrief
from cloud.web.deps import DutyUser, ResidentEditorUser, ResidentsDep, SiteDep
from cloud.web.site import Refused, SiteChanged, apply, site_router
from contract.site import Resident

router = site_router()


class Residents(BaseModel):
    home: str
    residents: list[Resident]


class ResidentsChange(BaseModel):
    residents: list[Resident] = Field(max_length=20)


class Glance(BaseModel):
    homes: dict[str, list[ResidentBrief]] = Field(
        description="home id → its residents: name, age, flags (no phone, no contacts)"
    )


@router.get("/residents/glance", response_model=Glance)
async def glance(residents: ResidentsDep, user: DutyUser) -> Glance:
    """Who lives where, in brief, for the board's rows: duty-room roles only; each read is
    audited (one line, `resident_glance_read`). Phones stay in the case (`GET
    /api/alarms/{id}/resident`, audited per alarm)."""
    return Glance(homes=await residents.at_a_glance(user.name))


@router.get(
    "/homes/{home_id}/residents",
    response_model=Residents,
    responses={404: {"model": Refused, "description": "no such home"}},
)
async def residents(home_id: str, residents: ResidentsDep, user: DutyUser) -> Residents:
    """Who lives there and whom to call: duty-room roles only; every read is audited."""
    home = await residents.of_home(home_id, user.name)
    return Residents(home=home_id, residents=list(home.residents))


@router.put("/homes/{home_id}/residents", response_model=SiteChanged)
async def change_residents(
    home_id: str, body: ResidentsChange, site: SiteDep, user: ResidentEditorUser
) -> SiteChanged:
    return await apply(site, user, lambda s: set_residents(s, home_id, body.residents))
