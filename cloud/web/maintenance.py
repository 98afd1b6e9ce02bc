"""Walk tests (installers, on site) and maintenance windows (planned by supervisors and
admins): while one covers a device its alarms are recorded as tests, not sent to the duty
room — a life-safety alarm excepted (cloud/devices/maintenance.py). The board lists the ones
running now (`GET /api/windows/now`). The walk-test report is the installer's view: which
devices were heard and what they raised. It names homes, never residents."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from cloud.alarms.model import Mode
from cloud.devices.maintenance import Planned, Window
from cloud.devices.walk_test_report import WalkTestReport
from cloud.devices.windows import Windows
from cloud.duty.drill_report import DrillReport
from cloud.web.deps import (
    DrillReportsDep,
    DrillsDep,
    DutyUser,
    InstallerUser,
    PlannerUser,
    RowId,
    WalkTestsDep,
    WindowsDep,
)
from contract.drill import DrillIncident
from contract.models import EventType, Values

router = APIRouter(prefix="/api", tags=["maintenance"])


class WalkTestStart(BaseModel):
    gateway: str
    devices: list[str] = Field(default_factory=list, description="Empty: every device")
    minutes: float = Field(30, ge=1, le=240, description="1 to 240 (the form's limits)")
    note: str = Field("", max_length=500)


class WindowPlan(BaseModel):
    gateway: str
    devices: list[str] = Field(default_factory=list)
    starts_at: datetime
    ends_at: datetime
    note: str = Field("", max_length=500)


@router.post("/walktests", response_model=Window, status_code=status.HTTP_201_CREATED)
async def start_walk_test(body: WalkTestStart, windows: WindowsDep, user: InstallerUser) -> Window:
    return await windows.start_walk_test(
        body.gateway, body.devices, body.minutes, user.name, body.note
    )


@router.get("/walktests", response_model=list[Window])
async def walk_tests(
    windows: WindowsDep, user: InstallerUser, open_only: bool = True
) -> list[Window]:
    return await windows.windows(open_only=open_only, mode=Mode.WALK_TEST)


@router.get("/walktests/{window_id}", response_model=WalkTestReport)
async def walk_test_report(
    window_id: RowId, walk_tests: WalkTestsDep, user: InstallerUser
) -> WalkTestReport:
    return await walk_tests.report(window_id)


@router.post("/walktests/{window_id}/end", response_model=Window)
async def end_walk_test(window_id: RowId, windows: WindowsDep, user: InstallerUser) -> Window:
    return await windows.end_walk_test(window_id, user.name)


@router.get("/windows/now", response_model=list[Window])
async def running_windows(windows: WindowsDep, user: DutyUser) -> list[Window]:
    """The walk tests and maintenance windows running now, for the duty room's board (which
    devices, until when, by whom): their non-life-safety alarms are recorded as tests."""
    now = datetime.now(UTC)
    return [w for w in await windows.windows(open_only=True) if w.starts_at <= now < w.ends_at]


@router.post("/maintenance", response_model=Window, status_code=status.HTTP_201_CREATED)
async def plan_window(body: WindowPlan, windows: WindowsDep, user: PlannerUser) -> Window:
    return await _plan(Mode.MAINTENANCE, body, windows, user.name)


@router.get("/maintenance", response_model=list[Window])
async def windows(windows: WindowsDep, user: PlannerUser, open_only: bool = True) -> list[Window]:
    return await windows.windows(open_only=open_only)


@router.post("/drills", response_model=Window, status_code=status.HTTP_201_CREATED)
async def plan_drill(body: WindowPlan, windows: WindowsDep, user: PlannerUser) -> Window:
    """An emergency drill (应急演练) of a gateway's devices: only events that carry its number
    (`Event.drill`) are its, recorded with mode `drill` and never escalated; everything else
    from those devices stays real. Ended like a window (`/maintenance/{id}/end`)."""
    return await _plan(Mode.DRILL, body, windows, user.name)


async def _plan(mode: Planned, body: WindowPlan, windows: Windows, actor: str) -> Window:
    return await windows.schedule(
        mode, body.gateway, body.devices, body.starts_at, body.ends_at, actor, body.note
    )


@router.get("/drills", response_model=list[Window])
async def drills(windows: WindowsDep, user: PlannerUser, open_only: bool = True) -> list[Window]:
    return await windows.windows(open_only=open_only, mode=Mode.DRILL)


class Incident(BaseModel):
    device: str
    type: EventType
    values: Values = Field(default_factory=Values)


class IncidentSent(BaseModel):
    command_id: str


@router.post(
    "/drills/{drill_id}/incidents",
    response_model=IncidentSent,
    status_code=status.HTTP_202_ACCEPTED,
)
async def inject_incident(
    drill_id: RowId, body: Incident, drills: DrillsDep, user: PlannerUser
) -> IncidentSent:
    """One scripted incident of a running drill, sent to the device's gateway (`cmd/drill`)
    to come back as that device's event marked with the drill's number."""
    incident = DrillIncident(drill=drill_id, type=body.type, values=body.values)
    return IncidentSent(command_id=await drills.inject(drill_id, body.device, incident, user.name))


@router.get("/drills/{drill_id}/report", response_model=DrillReport)
async def drill_report(drill_id: RowId, reports: DrillReportsDep, user: PlannerUser) -> DrillReport:
    """A drill's report: each incident's steps (shown, accepted, dispatched, resolved) against
    a real alarm's budgets, per operator and shift, beside the previous drill's figures."""
    return await reports.report(drill_id)


@router.post("/maintenance/{window_id}/end", response_model=Window)
async def end_window(window_id: RowId, windows: WindowsDep, user: PlannerUser) -> Window:
    return await windows.end(window_id, user.name)
