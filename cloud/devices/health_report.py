"""The device page's report (设备状态), as the API answers it: every registered device with its
state and why, its last readings and open alarms; every gateway online or offline since when;
grouped by building. Put together by cloud/devices/health.py.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from cloud.alarms.model import Mode


class DeviceState(StrEnum):
    """In the order of importance: a device's `state` is the first that applies."""

    SILENT = "silent"  # not heard within its time, or its gateway is offline
    FAULTY = "faulty"  # an open fault or tamper alarm
    LOW_BATTERY = "low_battery"  # an open low-battery alarm, or its last reading is low
    UNDER_TEST = "under_test"  # a walk test or a maintenance window covers it
    NEVER_HEARD = "never_heard"  # registered, but nothing heard from it yet (not "online")
    ONLINE = "online"  # none of the above


class GatewayState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # no status ever received and no alarm: nothing to say yet


class AlarmRef(BaseModel):
    id: int
    rule: str
    level: int
    title_zh: str
    title_en: str
    received_at: datetime


class DeviceHealth(BaseModel):
    gateway: str
    device: str
    model: str
    kind: str | None = Field(description="From the device model file, if there is one")
    home_id: str
    home: str
    state: DeviceState
    conditions: list[DeviceState] = Field(description="Every state that applies, by importance")
    reasons: list[str] = Field(description="Why, in English (the page translates the states)")
    last_seen: datetime | None = Field(description="Newest event received or reading taken")
    silent_after_s: float | None = Field(description="Silent when not heard for this long")
    battery_pct: float | None
    battery_at: datetime | None
    rssi_dbm: float | None
    rssi_at: datetime | None
    test_mode: Mode | None = Field(None, description="walk_test or maintenance, if under test")
    test_window: int | None = None
    alarms: list[AlarmRef] = Field(
        description="Its open live alarms (duty roles only: empty for others)"
    )


class GatewayHealth(BaseModel):
    gateway: str
    state: GatewayState
    since: datetime | None = Field(description="Online since / offline since")
    last_seen: datetime | None
    reason: str
    alarm: AlarmRef | None = Field(None, description="Its open gateway_offline alarm")


class BuildingHealth(BaseModel):
    community_id: str
    community: str
    grid_id: str
    grid: str
    building_id: str
    building: str
    gateways: list[GatewayHealth]
    devices: list[DeviceHealth]


class HealthReport(BaseModel):
    at: datetime
    counts: dict[DeviceState, int] = Field(description="Devices per (most important) state")
    gateway_counts: dict[GatewayState, int]
    low_battery_pct: float = Field(description="The battery level counted as low")
    alarms_shown: bool = Field(
        True, description="false: the open alarms are left out (a role outside the duty room)"
    )
    store_error: str | None = Field(None, description="The telemetry store could not answer")
    buildings: list[BuildingHealth]
