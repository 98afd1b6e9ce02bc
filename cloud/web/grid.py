"""The grid worker's phone page API (网格员): their cases — accept, feedback with a photo,
resolve — and the photos (cloud/duty/grid_cases.py says which cases are theirs)."""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from cloud.access.users import DUTY_ROLES, Role
from cloud.alarms.model import Alarm
from cloud.duty.grid_cases import MAX_PHOTO, GridCase
from cloud.errors import NotFound, Refused
from cloud.web.alarms import TypedText
from cloud.web.deps import CurrentUser, GridCasesDep, GridWorkerUser, RowId

router = APIRouter(prefix="/api/grid", tags=["grid worker"])


class Feedback(BaseModel):
    note: TypedText = Field("", max_length=2000)
    photo: str | None = Field(
        None,
        max_length=(MAX_PHOTO * 4) // 3 + 200,
        description="The photo as base64 (a data: URL's prefix is allowed): JPEG, PNG or WebP",
    )


class Resolve(BaseModel):
    note: TypedText = Field("", max_length=1000)


@router.get("/cases", response_model=list[GridCase])
async def my_cases(grid: GridCasesDep, user: GridWorkerUser) -> list[GridCase]:
    """The open cases dispatched to this grid worker (and their grids' visit tasks)."""
    return await grid.of(user.name)


@router.post("/cases/{alarm_id}/accept", response_model=GridCase)
async def accept(alarm_id: RowId, grid: GridCasesDep, user: GridWorkerUser) -> GridCase:
    return await grid.accept(alarm_id, user.name)


@router.post("/cases/{alarm_id}/feedback", response_model=GridCase)
async def feedback(
    alarm_id: RowId, body: Feedback, grid: GridCasesDep, user: GridWorkerUser
) -> GridCase:
    photo = None
    if body.photo:
        text = body.photo.split(",", 1)[1] if body.photo.startswith("data:") else body.photo
        try:
            photo = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Refused.said("照片数据无效", "the photo is not valid base64") from exc
    return await grid.feedback(alarm_id, user.name, body.note, photo)


@router.post("/cases/{alarm_id}/resolve", response_model=Alarm)
async def resolve(
    alarm_id: RowId, body: Resolve, grid: GridCasesDep, user: GridWorkerUser
) -> Alarm:
    return await grid.resolve(alarm_id, user.name, body.note)


@router.get("/photos/{photo_id}", response_class=Response)
async def photo(photo_id: RowId, grid: GridCasesDep, user: CurrentUser) -> Response:
    """A feedback photo: for the duty room, and for the grid worker who took it."""
    mime, data, account = await grid.photo(photo_id)
    if user.role not in DUTY_ROLES and not (user.role is Role.GRID_WORKER and user.name == account):
        raise NotFound.said(f"没有照片 {photo_id}", f"no photo {photo_id}")
    return Response(data, media_type=mime)
