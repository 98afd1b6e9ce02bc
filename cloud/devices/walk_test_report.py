"""What an installer sees of a walk test: the report (which devices were heard, what they
raised) and the live view they poll on site (each device's latest event, reading, battery and
signal since the test began, and the ones never seen). It names homes, never residents."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from cloud.alarms.queries import AlarmQueries
from cloud.devices.expectations import model_facts
from cloud.devices.maintenance import Window
from cloud.devices.windows import Windows
from cloud.site.registry import DeviceInfo, Registry
from cloud.telemetry.base import StoreError, TelemetryStore
from cloud.times import from_epoch, to_epoch
from contract.models import Kind

log = logging.getLogger(__name__)

#: Telemetry fields shown per device kind (battery and signal for every kind).
FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.AIR: ("pm25_ugm3", "pm10_ugm3", "co2_ppm", "hcho_mgm3", "tvoc_mgm3", "temp_c", "rh_pct"),
    Kind.GAS: ("ch4_pct_lel",),
    Kind.POWER: ("current_a", "residual_ma"),
}
COMMON_FIELDS = ("battery_pct", "rssi_dbm")


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


class LiveDevice(BaseModel):
    device: str
    model: str
    kind: Kind | None
    home: str = Field(description="The home's name (never its residents)")
    seen: bool
    events: int
    last_type: str | None
    last_at: datetime | None
    values: dict[str, float] = Field(description="Latest value of each field in the test")
    values_at: datetime | None
    battery_pct: float | None
    rssi_dbm: float | None


class WalkTestLive(BaseModel):
    window: Window
    devices: list[LiveDevice]
    seen: int
    never_seen: list[str]
    alarms: list[TestAlarm]


def _at(event: dict[str, Any]) -> datetime:
    return from_epoch(float(event["received_at"]))


def _fields(kind: Kind | None) -> tuple[str, ...]:
    return (*FIELDS.get(kind, ()), *COMMON_FIELDS) if kind else (*COMMON_FIELDS,)


class WalkTestReports:
    def __init__(
        self,
        windows: Windows,
        alarms: AlarmQueries,
        registry: Registry,
        store: TelemetryStore,
    ) -> None:
        self.windows = windows
        self.alarms = alarms
        self.registry = registry
        self.store = store

    def _devices(self, window: Window) -> Iterator[tuple[str, str, DeviceInfo | None]]:
        """(device, model, info) of each device the window covers, by id."""
        for (gateway, device), model in sorted(self.registry.devices().items()):
            if gateway != window.gateway or (window.devices and device not in window.devices):
                continue
            yield device, model, self.registry.device(gateway, device)

    async def _events(self, window: Window, until: datetime) -> dict[str, list[dict[str, Any]]]:
        """device → its events received since the window began, oldest first."""
        events = await self.alarms.events_of(
            window.gateway, to_epoch(window.starts_at), to_epoch(until)
        )
        by_device: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_device.setdefault(str(event["device"]), []).append(event)
        return by_device

    async def _test_alarms(self, window_id: int) -> list[TestAlarm]:
        alarms = await self.alarms.in_window(window_id)
        return [TestAlarm.model_validate(a.model_dump()) for a in alarms]

    async def report(self, window_id: int) -> WalkTestReport:
        """Which devices of a window were heard (events, the last one) and what they raised."""
        window = await self.windows.get(window_id)
        seen = await self._events(window, window.ended_at or window.ends_at)
        devices = []
        for device, model, info in self._devices(window):
            mine = seen.get(device, [])
            last = mine[-1] if mine else None
            devices.append(
                DeviceSeen(
                    device=device,
                    model=model,
                    home=info.place.home if info else "",
                    events=len(mine),
                    last_type=str(last["type"]) if last else None,
                    last_at=_at(last) if last else None,
                )
            )
        return WalkTestReport(
            window=window, devices=devices, alarms=await self._test_alarms(window_id)
        )

    async def _readings(
        self, gateway: str, start: datetime, end: datetime
    ) -> dict[str, dict[str, tuple[datetime, float]]]:
        """device → field → the newest reading since the test began: one query for the
        gateway; none while the store cannot answer (the events still show)."""
        try:
            points = await self.store.latest(since=start)
        except StoreError as exc:
            log.warning("walk test: telemetry not read gateway=%s error=%r", gateway, str(exc))
            return {}
        found: dict[str, dict[str, tuple[datetime, float]]] = {}
        for point in points:
            if point.gateway == gateway and point.ts <= end:
                found.setdefault(point.device, {})[point.field] = (point.ts, point.value)
        return found

    async def live(self, window_id: int) -> WalkTestLive:
        """Every device of a walk test: whether it was heard since the test began, its latest
        event and its latest reading, battery and signal (from events and telemetry)."""
        window = await self.windows.walk_test(window_id)
        start = window.starts_at
        end = min(window.ended_at or window.ends_at, datetime.now(UTC))
        by_device = await self._events(window, end)
        latest = await self._readings(window.gateway, start, end + timedelta(seconds=1))
        covered = list(self._devices(window))
        facts = await asyncio.to_thread(model_facts, [model for _, model, _ in covered])
        devices: list[LiveDevice] = []
        for device, model, info in covered:
            model_kind = facts[model].kind
            kind = Kind(model_kind) if model_kind else None
            mine = by_device.get(device, [])
            values: dict[str, tuple[datetime, float]] = {}
            for event in mine:
                for name, value in json.loads(str(event["values"]) or "{}").items():
                    if value is not None:
                        values[name] = (_at(event), float(value))
            wanted = _fields(kind)
            readings = {f: v for f, v in latest.get(device, {}).items() if f in wanted}
            for name, (at, value) in readings.items():
                if name not in values or values[name][0] <= at:
                    values[name] = (at, value)
            last = mine[-1] if mine else None
            devices.append(
                LiveDevice(
                    device=device,
                    model=model,
                    kind=kind,
                    home=info.place.home if info else "",
                    seen=bool(mine or readings),
                    events=len(mine),
                    last_type=str(last["type"]) if last else None,
                    last_at=_at(last) if last else None,
                    values={name: value for name, (_, value) in sorted(values.items())},
                    values_at=max((at for at, _ in values.values()), default=None),
                    battery_pct=values["battery_pct"][1] if "battery_pct" in values else None,
                    rssi_dbm=values["rssi_dbm"][1] if "rssi_dbm" in values else None,
                )
            )
        return WalkTestLive(
            window=window,
            devices=devices,
            seen=sum(d.seen for d in devices),
            never_seen=[d.device for d in devices if not d.seen],
            alarms=await self._test_alarms(window_id),
        )
