"""Health (open to all), ingest figures, rejected input, gateways and telemetry readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from cloud.rejects import RejectedMessage
from cloud.store.base import StoreError
from cloud.web.deps import CloudDep, CurrentUser, DutyUser, RejectsReader

router = APIRouter(tags=["status"])


class Health(BaseModel):
    status: str
    broker_connected: bool


@router.get("/health", response_model=Health)
async def health(cloud: CloudDep) -> Health:
    connected = cloud.ingest.connected.is_set()
    return Health(status="ok" if connected else "degraded", broker_connected=connected)


class Stats(BaseModel):
    ingest: dict[str, int]
    rejected: dict[str, int]
    live_listeners: int
    broker_dropped: int | None = Field(
        description="The broker's count of messages it dropped (Mosquitto $SYS); must stay 0"
    )
    escalation: dict[str, int] = Field(
        default_factory=dict, description="Steps fired and notifications by outcome"
    )
    cross_origin_refused: int = Field(
        0, description="Requests refused as sent by another origin's page since the start"
    )


@router.get("/api/stats", response_model=Stats)
async def stats(request: Request, cloud: CloudDep, user: CurrentUser) -> Stats:
    return Stats(
        ingest=dict(cloud.ingest.counts),
        rejected=dict(cloud.rejects.counts),
        live_listeners=cloud.hub.listeners,
        broker_dropped=cloud.ingest.broker_dropped,
        escalation=dict(cloud.escalator.counts),
        cross_origin_refused=request.app.state.cross_origin["refused"],
    )


@router.get("/api/rejected", response_model=list[RejectedMessage])
async def rejected(
    cloud: CloudDep, user: RejectsReader, limit: int = Query(100, ge=1, le=1000)
) -> list[RejectedMessage]:
    """The most recent rejected messages, with the reason and the raw payload, for
    inspection (admins only: any gateway's untrusted bytes)."""
    return await cloud.rejects.recent(limit)


@router.get("/api/gateways")
async def gateways(cloud: CloudDep, user: CurrentUser) -> list[dict[str, Any]]:
    return await cloud.book.gateways()


class Point(BaseModel):
    ts: datetime
    value: float


@router.get("/api/telemetry", response_model=list[Point])
async def telemetry(
    cloud: CloudDep,
    user: DutyUser,
    gateway: str,
    device: str,
    field: str,
    minutes: int = Query(60, ge=1, le=7 * 24 * 60),
    every_s: int | None = Query(None, ge=1, le=86400),
) -> list[Point]:
    end = datetime.now(UTC)
    try:
        rows = await cloud.store.query(
            gateway=gateway,
            device=device,
            field=field,
            start=end - timedelta(minutes=minutes),
            end=end,
            every=timedelta(seconds=every_s) if every_s else None,
        )
    except StoreError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return [Point(ts=ts, value=value) for ts, value in rows]
