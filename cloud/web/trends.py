"""Trends of gas and air readings for the duty room and the installers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from cloud.devices.trends import Targets, Trend, TrendField, TrendRange
from cloud.web.deps import DeviceReader, TrendsDep

router = APIRouter(prefix="/api/trends", tags=["trends"])

_Id = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.get("/targets", response_model=Targets)
async def trend_targets(trends: TrendsDep, user: DeviceReader) -> Targets:
    """Buildings, homes and devices that can be charted, and the fields with their units."""
    return trends.targets()


class Refused(BaseModel):
    detail: str = Field(description="Why, in words")


class Invalid(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="Why: a sentence, or FastAPI's list of invalid parameters"
    )


@router.get(
    "",
    response_model=Trend,
    responses={
        404: {"model": Refused, "description": "no such building, home or device"},
        422: {"model": Invalid, "description": "unknown field or range, or not one target"},
        503: {"model": Refused, "description": "the telemetry store cannot answer now"},
    },
)
async def get_trend(
    trends: TrendsDep,
    user: DeviceReader,
    field: Annotated[TrendField, Query(description="A reading of the telemetry contract")],
    range: Annotated[TrendRange, Query(description="1h (1 min means), 1d (15 min), 1w (1 h)")],
    building: _Id = None,
    home: _Id = None,
    gateway: _Id = None,
    device: _Id = None,
) -> Trend:
    """Bucket means of one field for a device (`gateway` and `device`), a home or a building
    (one series per device), with the limit lines of the rules in force."""
    named = sum(x is not None for x in (building, home)) + (
        gateway is not None or device is not None
    )
    if named != 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "name exactly one of: building, home, or gateway and device",
        )
    return await trends.trend(
        field, range, building=building, home=home, gateway=gateway, device=device
    )
