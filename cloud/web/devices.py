"""Device health for the duty room and the installers: `GET /api/devices/health`."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.access.users import DUTY_ROLES
from cloud.devices.health_report import HealthReport
from cloud.web.deps import DeviceReader, HealthDep

router = APIRouter(prefix="/api/devices", tags=["devices"])


@router.get("/health", response_model=HealthReport)
async def device_health(health: HealthDep, user: DeviceReader) -> HealthReport:
    """Every registered device with its state (online, silent, faulty, low battery, under
    test), last seen, battery and signal; every gateway online since / offline since; grouped
    by community, grid and building, with counts per state. The open alarms (their titles
    name residents' homes) are for the duty roles only, as /api/alarms is."""
    return await health.report(with_alarms=user.role in DUTY_ROLES)
