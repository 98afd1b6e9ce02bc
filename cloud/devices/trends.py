"""Trends: gas and air readings of a device, a home or a building over the last hour, day,
week, month or year, as bucket means from the telemetry store, with the limit lines of the
rules in force.

- Ranges and buckets: 1h → 1 min means, 1d → 15 min, 1w → 1 h, 30d → 6 h, 1y → 1 day
  (`RANGES`); the store reads its 1-minute or 1-hour aggregates where they serve
  (`cloud/telemetry/history.py`). Buckets are the store's: aligned to the epoch, named by
  their start, empty ones left out; the answer puts every series on one time axis (`times`,
  Unix seconds) with `null` where a device has no point in a bucket, which is the shape
  uPlot draws.
- A home or a building is one series per device that has readings of the field in the range.
- Limits: every step of every threshold rule of the file in force (`cloud.core.config`, read
  at the time of asking) on the field, with its level; the GB/T 18883-2022 indoor-air fields
  are labelled with the standard and the averaging window the limit is defined over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from cloud.errors import NotFound, Refused
from cloud.rules.config import RulesFile
from cloud.site.registry import DeviceInfo, Registry
from cloud.telemetry.base import TelemetryStore

LEVEL_ZH = {1: "Ⅰ级", 2: "Ⅱ级", 3: "Ⅲ级", 4: "Ⅳ级"}
LEVEL_EN = {1: "level I", 2: "level II", 3: "level III", 4: "level IV"}


class TrendRange(StrEnum):
    HOUR = "1h"
    DAY = "1d"
    WEEK = "1w"
    MONTH = "30d"
    YEAR = "1y"


#: range → (how far back, bucket)
RANGES: dict[TrendRange, tuple[timedelta, timedelta]] = {
    TrendRange.HOUR: (timedelta(hours=1), timedelta(minutes=1)),
    TrendRange.DAY: (timedelta(days=1), timedelta(minutes=15)),
    TrendRange.WEEK: (timedelta(days=7), timedelta(hours=1)),
    TrendRange.MONTH: (timedelta(days=30), timedelta(hours=6)),
    TrendRange.YEAR: (timedelta(days=365), timedelta(days=1)),
}


class TrendField(StrEnum):
    """The readings of the telemetry contract (`contract.models.Values`) worth a trend."""

    CH4 = "ch4_pct_lel"
    PM1 = "pm1_ugm3"
    PM25 = "pm25_ugm3"
    PM10 = "pm10_ugm3"
    CO2 = "co2_ppm"
    HCHO = "hcho_mgm3"
    TVOC = "tvoc_mgm3"
    TEMP = "temp_c"
    RH = "rh_pct"
    BATTERY = "battery_pct"
    RSSI = "rssi_dbm"
    CURRENT = "current_a"
    RESIDUAL = "residual_ma"


@dataclass(frozen=True)
class FieldInfo:
    unit: str
    zh: str
    en: str
    standard: str | None = None


GBT_18883 = "GB/T 18883-2022"
FIELDS: dict[TrendField, FieldInfo] = {
    TrendField.CH4: FieldInfo("%LEL", "甲烷", "Methane"),
    TrendField.PM1: FieldInfo("µg/m³", "PM1.0", "PM1.0"),
    TrendField.PM25: FieldInfo("µg/m³", "PM2.5", "PM2.5", GBT_18883),
    TrendField.PM10: FieldInfo("µg/m³", "PM10", "PM10", GBT_18883),
    TrendField.CO2: FieldInfo("ppm", "二氧化碳", "CO2", GBT_18883),
    TrendField.HCHO: FieldInfo("mg/m³", "甲醛", "Formaldehyde", GBT_18883),
    TrendField.TVOC: FieldInfo("mg/m³", "TVOC", "TVOC", GBT_18883),
    TrendField.TEMP: FieldInfo("°C", "温度", "Temperature"),
    TrendField.RH: FieldInfo("%", "相对湿度", "Humidity"),
    TrendField.BATTERY: FieldInfo("%", "电池电量", "Battery"),
    TrendField.RSSI: FieldInfo("dBm", "信号强度", "Signal"),
    TrendField.CURRENT: FieldInfo("A", "电流", "Current"),
    TrendField.RESIDUAL: FieldInfo("mA", "剩余电流", "Residual current"),
}


class TargetError(NotFound):
    """No such building, home or device in the registry."""


class FieldDescription(BaseModel):
    field: TrendField
    unit: str
    name_zh: str
    name_en: str
    standard: str | None


def field_descriptions() -> list[FieldDescription]:
    return [
        FieldDescription(
            field=name, unit=info.unit, name_zh=info.zh, name_en=info.en, standard=info.standard
        )
        for name, info in FIELDS.items()
    ]


class LimitLine(BaseModel):
    rule: str
    level: int
    value: float
    direction: str = Field(description="above, at_or_above, below or at_or_below")
    window_s: float = Field(description="The mean the limit applies to (0: each reading)")
    models: list[str] | None = Field(description="Only for these device models, if set")
    standard: str | None
    label_zh: str
    label_en: str


class TrendSeries(BaseModel):
    gateway: str
    device: str
    model: str
    home_id: str
    home: str
    label: str = Field(description="The legend's name of the line")
    values: list[float | None] = Field(description="One per `times` entry; null: no reading")


class Trend(BaseModel):
    field: TrendField
    unit: str
    name_zh: str
    name_en: str
    range: TrendRange
    bucket_s: int
    start: datetime
    end: datetime
    scope: str = Field(description="device, home or building")
    target: str = Field(description="What was asked for: the device, home or building id")
    target_name: str
    times: list[int] = Field(description="Bucket starts, Unix seconds, oldest first")
    series: list[TrendSeries]
    limits: list[LimitLine]


def _window_text(seconds: float) -> tuple[str, str]:
    if not seconds:
        return "", ""
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours}小时均值", f"{hours} h mean"
    minutes = seconds / 60
    return f"{minutes:g}分钟均值", f"{minutes:g} min mean"


_OPS = {"above": ">", "at_or_above": "≥", "below": "<", "at_or_below": "≤"}


def limit_lines(config: RulesFile, field: TrendField) -> list[LimitLine]:
    """Every step of the threshold rules on this field in the rules file, with its level."""
    info = FIELDS[field]
    out: list[LimitLine] = []
    for rule in config.thresholds:
        if rule.field != field.value:
            continue
        window_zh, window_en = _window_text(rule.window_s)
        for step in rule.levels:
            for direction, op in _OPS.items():
                value = getattr(step, direction)
                if value is None:
                    continue
                who_zh = info.standard or rule.zh
                who_en = info.standard or rule.en
                bound = f"{op}{value:g} {info.unit}"
                out.append(
                    LimitLine(
                        rule=rule.rule,
                        level=step.level,
                        value=value,
                        direction=direction,
                        window_s=rule.window_s,
                        models=rule.models,
                        standard=info.standard,
                        label_zh=" ".join(
                            p for p in (who_zh, window_zh, bound, LEVEL_ZH[step.level]) if p
                        ),
                        label_en=" ".join(
                            p for p in (who_en, window_en, bound, LEVEL_EN[step.level]) if p
                        ),
                    )
                )
    return out


@dataclass(frozen=True)
class Target:
    scope: str
    id: str
    name: str
    devices: list[DeviceInfo]


def resolve_target(
    registry: Registry,
    *,
    building: str | None = None,
    home: str | None = None,
    gateway: str | None = None,
    device: str | None = None,
) -> Target:
    """The devices of one building, one home or one device (gateway and device id)."""
    infos = [
        info for key in sorted(registry.devices()) if (info := registry.device(*key)) is not None
    ]
    if device is not None or gateway is not None:
        if device is None or gateway is None:
            raise Refused("a device is named by both gateway and device")
        found = registry.device(gateway, device)
        if found is None:
            raise TargetError(f"no device {device!r} on gateway {gateway!r}")
        return Target("device", f"{gateway}/{device}", f"{found.place.home} {device}", [found])
    if home is not None:
        chosen = [i for i in infos if i.place.home_id == home]
        found_home = registry.home(home)
        if found_home is None:
            raise TargetError(f"no home {home!r}")
        name = f"{chosen[0].place.building} {found_home.name}" if chosen else found_home.name
        return Target("home", home, name, chosen)
    if building is not None:
        chosen = [i for i in infos if i.place.building_id == building]
        place = next((i.place for i in chosen), None)
        if place is None:
            raise TargetError(f"no building {building!r} with registered devices")
        return Target("building", building, place.building, chosen)
    raise Refused("name a building, a home, or a gateway and device")


async def trend(
    store: TelemetryStore,
    config: RulesFile,
    target: Target,
    field: TrendField,
    span: TrendRange,
    now: datetime | None = None,
) -> Trend:
    """The bucket means of the field for the target's devices (StoreError if the store fails)."""
    end = now or datetime.now(UTC)
    back, bucket = RANGES[span]
    start = end - back

    async def one(info: DeviceInfo) -> list[tuple[datetime, float]]:
        return await store.query(
            gateway=info.gateway,
            device=info.device,
            field=field.value,
            start=start,
            end=end,
            every=bucket,
        )

    results = await asyncio.gather(*(one(info) for info in target.devices))
    ids = [info.device for info in target.devices]
    by_device: list[tuple[DeviceInfo, dict[int, float]]] = []
    for info, found in zip(target.devices, results, strict=True):
        if found or target.scope == "device":
            by_device.append((info, {int(ts.timestamp()): value for ts, value in found}))
    times = sorted({t for _, points in by_device for t in points})
    series = []
    for info, points in by_device:
        name = info.device if ids.count(info.device) == 1 else f"{info.gateway}/{info.device}"
        label = name if target.scope == "device" else f"{info.place.home} {name}"
        series.append(
            TrendSeries(
                gateway=info.gateway,
                device=info.device,
                model=info.model,
                home_id=info.place.home_id,
                home=info.place.home,
                label=label,
                values=[points.get(t) for t in times],
            )
        )
    info_f = FIELDS[field]
    return Trend(
        field=field,
        unit=info_f.unit,
        name_zh=info_f.zh,
        name_en=info_f.en,
        range=span,
        bucket_s=int(bucket.total_seconds()),
        start=start,
        end=end,
        scope=target.scope,
        target=target.id,
        target_name=target.name,
        times=times,
        series=series,
        limits=limits_for(limit_lines(config, field), target.devices),
    )


def limits_for(lines: Iterable[LimitLine], devices: Iterable[DeviceInfo]) -> list[LimitLine]:
    """The limit lines that apply to these devices: a rule restricted to certain models
    (LimitLine.models) only where one of the devices is of such a model."""
    models = {info.model for info in devices}
    return [line for line in lines if line.models is None or models & set(line.models)]


class TargetDevice(BaseModel):
    gateway: str
    device: str
    model: str


class TargetHome(BaseModel):
    home_id: str
    home: str
    devices: list[TargetDevice]


class TargetBuilding(BaseModel):
    community: str
    grid: str
    building_id: str
    building: str
    homes: list[TargetHome]


class Targets(BaseModel):
    buildings: list[TargetBuilding]
    fields: list[FieldDescription]


def targets(registry: Registry) -> Targets:
    """Buildings → homes → devices with registered devices, for the page's pickers."""
    buildings: dict[str, TargetBuilding] = {}
    homes: dict[str, TargetHome] = {}
    for key in sorted(registry.devices()):
        info = registry.device(*key)
        if info is None:
            continue
        place = info.place
        building = buildings.get(place.building_id)
        if building is None:
            building = buildings[place.building_id] = TargetBuilding(
                community=place.community,
                grid=place.grid,
                building_id=place.building_id,
                building=place.building,
                homes=[],
            )
        home = homes.get(place.home_id)
        if home is None:
            home = homes[place.home_id] = TargetHome(
                home_id=place.home_id, home=place.home, devices=[]
            )
            building.homes.append(home)
        home.devices.append(
            TargetDevice(gateway=info.gateway, device=info.device, model=info.model)
        )
    for building in buildings.values():
        building.homes.sort(key=lambda h: h.home_id)
    return Targets(
        buildings=sorted(buildings.values(), key=lambda b: b.building_id),
        fields=field_descriptions(),
    )


class Trends:
    """Charts for the duty room and the installers, from the registry as it is now, the
    telemetry store and the rules in force when asked."""

    def __init__(
        self, registry: Registry, store: TelemetryStore, rules: Callable[[], RulesFile]
    ) -> None:
        self.registry = registry
        self.store = store
        self.rules = rules

    def targets(self) -> Targets:
        return targets(self.registry)

    async def trend(
        self,
        field: TrendField,
        span: TrendRange,
        *,
        building: str | None = None,
        home: str | None = None,
        gateway: str | None = None,
        device: str | None = None,
    ) -> Trend:
        """One chart (`NotFound` for an unknown target, `Refused` for an unclear one,
        StoreError if the store cannot answer)."""
        target = resolve_target(
            self.registry, building=building, home=home, gateway=gateway, device=device
        )
        return await trend(self.store, self.rules(), target, field, span)
