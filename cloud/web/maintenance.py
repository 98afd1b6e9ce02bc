"""Walk tests (installers, on site) and maintenance windows (planned by supervisors and
admins): while one covers a device its alarms are recorded as tests, not sent to the duty
room. The walk-test report is the installer's view: which devices were heard and what they
raised. It names homes, never residents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from cloud.alarms.model import Alarm, Mode
from cloud.devices.maintenance import Window
from cloud.parts import Cloud
from cloud.web.deps import CloudDep, InstallerUser, PlannerUser, RowId

router = APIRouter(prefix="/api", tags=["maintenance"])


class WalkTestStart(BaseModel):
    gateway: str
    devices: list[str] = Field(default_factory=list, description="Empty: every device")
    minutes: float = Field(30, gt=0, le=240)
    note: str = Field("", max_length=500)


class WindowPlan(BaseModel):
    gateway: str
    devices: list[str] = Field(default_factory=list)
    starts_at: datetime
    ends_at: datetime
    note: str = Field("", max_length=500)


class DeviceSeen(BaseModel):
    device: str
    model: str
    home: str
    events: int
    last_type: str | None
    last_at: datetime | None


class TestAlarm(BaseModel):
    id: int
    device: str
    rule: str
    level: int
    title_zh: str
    title_en: str
    repeats: int
    received_at: datetime
    state: str


class WalkTestReport(BaseModel):
    window: Window
    devices: list[DeviceSeen]
    alarms: list[TestAlarm]


def _check(cloud: Cloud, gateway: str, devices: list[str]) -> None:
    if not cloud.registry.has_gateway(gateway):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no gateway {gateway!r}")
    unknown = [d for d in devices if cloud.registry.device(gateway, d) is None]
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"not devices of {gateway}: {unknown}"
        )


@router.post("/walktests", response_model=Window, status_code=status.HTTP_201_CREATED)
async def start_walk_test(body: WalkTestStart, cloud: CloudDep, user: InstallerUser) -> Window:
    _check(cloud, body.gateway, body.devices)
    return await cloud.maintenance.start_walk_test(
        body.gateway, body.devices, body.minutes, user.name, body.note
    )


@router.get("/walktests", response_model=list[Window])
async def walk_tests(cloud: CloudDep, user: InstallerUser, open_only: bool = True) -> list[Window]:
    return await cloud.maintenance.windows(open_only=open_only, mode=Mode.WALK_TEST)


@router.get("/walktests/{window_id}", response_model=WalkTestReport)
async def walk_test_report(
    window_id: RowId, cloud: CloudDep, user: InstallerUser
) -> WalkTestReport:
    window = await _get(cloud, window_id)
    until = (window.ended_at or window.ends_at).timestamp()
    events = await cloud.alarms.events_of(window.gateway, window.starts_at.timestamp(), until)
    seen: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        seen.setdefault(str(event["device"]), []).append(event)
    devices = []
    for (gateway, device), model in sorted(cloud.registry.devices().items()):
        if gateway != window.gateway or (window.devices and device not in window.devices):
            continue
        info = cloud.registry.device(gateway, device)
        mine = seen.get(device, [])
        last = mine[-1] if mine else None
        devices.append(
            DeviceSeen(
                device=device,
                model=model,
                home=info.place.home if info else "",
                events=len(mine),
                last_type=str(last["type"]) if last else None,
                last_at=datetime.fromtimestamp(float(last["received_at"]), UTC) if last else None,
            )
        )
    alarms: list[Alarm] = await cloud.alarms.in_window(window_id)
    return WalkTestReport(
        window=window,
        devices=devices,
        alarms=[TestAlarm.model_validate(a.model_dump()) for a in alarms],
    )


@router.post("/walktests/{window_id}/end", response_model=Window)
async def end_walk_test(window_id: RowId, cloud: CloudDep, user: InstallerUser) -> Window:
    window = await _get(cloud, window_id)
    if window.mode is not Mode.WALK_TEST:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"#{window_id} is not a walk test")
    return await _end(cloud, window_id, user.name)


@router.post("/maintenance", response_model=Window, status_code=status.HTTP_201_CREATED)
async def plan_window(body: WindowPlan, cloud: CloudDep, user: PlannerUser) -> Window:
    _check(cloud, body.gateway, body.devices)
    return await cloud.maintenance.schedule(
        body.gateway,
        body.devices,
        body.starts_at.timestamp(),
        body.ends_at.timestamp(),
        user.name,
        body.note,
    )


@router.get("/maintenance", response_model=list[Window])
async def windows(cloud: CloudDep, user: PlannerUser, open_only: bool = True) -> list[Window]:
    return await cloud.maintenance.windows(open_only=open_only)


@router.post("/maintenance/{window_id}/end", response_model=Window)
async def end_window(window_id: RowId, cloud: CloudDep, user: PlannerUser) -> Window:
    return await _end(cloud, window_id, user.name)


async def _get(cloud: Cloud, window_id: int) -> Window:
    return await cloud.maintenance.get(window_id)


async def _end(cloud: Cloud, window_id: int, actor: str) -> Window:
    window = await cloud.maintenance.end(window_id, actor)
    await cloud.book.close_window(window_id, actor)
    return window
