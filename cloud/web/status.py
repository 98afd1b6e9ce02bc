"""Health (open to all), ingest figures, rejected input, gateways and telemetry readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from cloud.ingest.rejects import RejectedMessage
from cloud.web.deps import (
    AnnouncerDep,
    BookDep,
    BrokerLinkDep,
    CurrentUser,
    DutyUser,
    EscalatorDep,
    HubDep,
    IngestDep,
    RejectsDep,
    RejectsReader,
    StoreDep,
)

router = APIRouter(tags=["status"])


class Health(BaseModel):
    """Open to all without sign-in: whether the cloud works, nothing more (the details of a
    broker outage are in `GET /api/stats`)."""

    status: str = Field(description="ok, or degraded while ingest has no broker")
    broker_connected: bool


@router.get("/health", response_model=Health)
async def health(link: BrokerLinkDep) -> Health:
    connected = link.connected.is_set()
    return Health(status="ok" if connected else "degraded", broker_connected=connected)


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class BrokerStatus(BaseModel):
    """Ingest's link to the MQTT broker. While it is down the web app keeps serving, events
    wait at the broker (for the cloud's persistent session) and the board says so."""

    connected: bool
    down_since: datetime | None = Field(
        description="Since when the broker has been unreachable (the first failed attempt or"
        " the lost session); null while connected and before the first attempt has ended"
    )
    last_error: str | None = Field(description="Why the last attempt failed; null when up")
    failed_attempts: int = Field(description="Failed attempts in this outage")
    next_attempt_at: datetime | None = Field(
        description="When ingest tries again (back-off with jitter, capped)"
    )


class Stats(BaseModel):
    ingest: dict[str, int]
    rejected: dict[str, int]
    live_listeners: int
    broker: BrokerStatus
    broker_dropped: int | None = Field(
        description="Messages the broker dropped while the cloud watched its counter"
        " (Mosquitto's $SYS/broker/publish/messages/dropped); must stay 0. Known within two"
        " of the broker's $SYS passes after ingest connects, also when the broker has dropped"
        " nothing for long (Mosquitto then does not repeat its count); null until then, or for"
        " a broker that publishes no such count"
    )
    broker_dropped_total: int | None = Field(
        description="The broker's own total of dropped messages, as last published; null"
        " when it has not published it since ingest subscribed (Mosquitto publishes it only"
        " when it changes, and keeps it for a newcomer for 60 s)"
    )
    escalation: dict[str, int] = Field(
        default_factory=dict, description="Steps fired and notifications by outcome"
    )
    cross_origin_refused: int = Field(
        0, description="Requests refused as sent by another origin's page since the start"
    )


@router.get("/api/stats", response_model=Stats)
async def stats(
    request: Request,
    user: CurrentUser,
    ingest: IngestDep,
    announcer: AnnouncerDep,
    escalator: EscalatorDep,
    rejects: RejectsDep,
    hub: HubDep,
    link: BrokerLinkDep,
) -> Stats:
    return Stats(
        ingest=dict(ingest.counts + announcer.counts),
        rejected=dict(rejects.counts),
        live_listeners=hub.listeners,
        broker=BrokerStatus(
            connected=link.connected.is_set(),
            down_since=_utc(link.down_since),
            last_error=link.last_error,
            failed_attempts=link.failures,
            next_attempt_at=_utc(link.retry_at),
        ),
        broker_dropped=ingest.drops.dropped,
        broker_dropped_total=ingest.drops.total,
        escalation=dict(escalator.counts),
        cross_origin_refused=request.app.state.cross_origin["refused"],
    )


@router.get("/api/rejected", response_model=list[RejectedMessage])
async def rejected(
    rejects: RejectsDep, user: RejectsReader, limit: int = Query(100, ge=1, le=1000)
) -> list[RejectedMessage]:
    """The most recent rejected messages, with the reason and the raw payload, for
    inspection (admins only: any gateway's untrusted bytes)."""
    return await rejects.recent(limit)


@router.get("/api/gateways")
async def gateways(book: BookDep, user: CurrentUser) -> list[dict[str, Any]]:
    return await book.gateways()


class Point(BaseModel):
    ts: datetime
    value: float


@router.get("/api/telemetry", response_model=list[Point])
async def telemetry(
    store: StoreDep,
    user: DutyUser,
    gateway: str,
    device: str,
    field: str,
    minutes: int = Query(60, ge=1, le=7 * 24 * 60),
    every_s: int | None = Query(None, ge=1, le=86400),
) -> list[Point]:
    end = datetime.now(UTC)
    rows = await store.query(
        gateway=gateway,
        device=device,
        field=field,
        start=end - timedelta(minutes=minutes),
        end=end,
        every=timedelta(seconds=every_s) if every_s else None,
    )
    return [Point(ts=ts, value=value) for ts, value in rows]
