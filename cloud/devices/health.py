"""Device health: for every registered device, whether it is online, silent, faulty, low on
battery or under test, when it was last heard and its last battery and signal readings; for
every gateway, online since / offline since. The duty room's "设备状态" page reads this.

Nothing new is tracked here: the answer is put together, at the time of asking, from what the
cloud already records —

- the registry (read afresh on every call: it can be edited while running);
- the events table (newest `received_at` per device, one seek of `events_by_device` each);
- the telemetry store's newest point per device and field (`TelemetryStore.latest`): last
  seen by its readings, battery % and radio signal;
- the open live alarms: `device_silent`, fault and tamper rules, battery rules,
  `gateway_offline` (which rules count as what is read from the rules in force);
- the rules core's watch (`Watchdog.firing`) and the silence times of the rules in force
  (`supervision.device_silent`: per model, else per kind), else the model's own
  `report_interval_s` (`firmware_configs/models/`);
- the `gateways` table (retained status and last will) and the maintenance windows and walk
  tests (`Maintenance.mode_for`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cloud.alarms.book import AlarmBook
from cloud.alarms.model import Mode
from cloud.db.database import Conn, Database, Row
from cloud.devices.expectations import ModelFacts, RuleSets, model_facts, silent_after
from cloud.devices.health_report import (
    AlarmRef,
    BuildingHealth,
    DeviceHealth,
    DeviceState,
    GatewayHealth,
    GatewayState,
    HealthReport,
)
from cloud.devices.maintenance import Maintenance
from cloud.rules import RulesCore
from cloud.rules.supervision_rules import DEVICE_SILENT, GATEWAY_OFFLINE
from cloud.site.registry import Place, Registry
from cloud.telemetry.base import StoreError, TelemetryStore
from cloud.times import from_epoch

#: How far back the telemetry store is asked for a device's newest readings.
LOOKBACK = timedelta(days=30)


# ---- what the database says -------------------------------------------------------------------


@dataclass
class _Records:
    alarms: list[Row] = field(default_factory=list)
    last_event: dict[tuple[str, str], float] = field(default_factory=dict)


def _read_records(conn: Conn, keys: list[tuple[str, str]]) -> _Records:
    records = _Records()
    conn_rows = conn.execute(
        "SELECT id, rule, level, gateway, device, title_zh, title_en, received_at, device_ts,"
        " cleared_at FROM alarms WHERE state IN ('active', 'accepted') AND mode = ?",
        (Mode.LIVE.value,),
    ).fetchall()
    records.alarms = list(conn_rows)
    for key in keys:
        (newest,) = conn.execute(
            "SELECT max(received_at) FROM events WHERE gateway = ? AND device = ?", key
        ).fetchone()
        if newest is not None:
            records.last_event[key] = float(newest)
    return records


def _ref(row: Row) -> AlarmRef:
    return AlarmRef(
        id=row["id"],
        rule=row["rule"],
        level=row["level"],
        title_zh=row["title_zh"],
        title_en=row["title_en"],
        received_at=from_epoch(row["received_at"]),
    )


# ---- the report -------------------------------------------------------------------------------


class HealthReports:
    """The device page's report, from the registry, the alarm book, the rules core's watch,
    the telemetry store and the maintenance windows."""

    def __init__(
        self,
        *,
        db: Database,
        registry: Registry,
        core: RulesCore,
        book: AlarmBook,
        store: TelemetryStore,
        maintenance: Maintenance,
    ) -> None:
        self.db = db
        self.registry = registry
        self.core = core
        self.book = book
        self.store = store
        self.maintenance = maintenance

    async def report(self, now: float | None = None, *, with_alarms: bool = True) -> HealthReport:
        """Every registered device and gateway with its state, grouped by building. Without
        `with_alarms` (a reader outside the duty room) the open alarms themselves are left out:
        their titles name residents' homes; the states and reasons (rule names) stay.

        An open alarm whose condition the device has since cleared (cleared_at: an accepted case
        the operator has yet to close) is a case, not a state of the device: it is listed but
        decides nothing."""
        now = self.db.clock() if now is None else now
        registry = self.registry  # read afresh: the registry can be edited while running
        config = self.core.config
        rules = RuleSets.of(config)
        devices = registry.devices()
        gateways = registry.gateways()
        keys = sorted(set(devices) | {(gw, gw) for gw in gateways})

        facts = await asyncio.to_thread(model_facts, devices.values())
        records = await self.db.read(lambda conn: _read_records(conn, keys))
        statuses = {str(g["id"]): g for g in await self.book.gateways()}

        latest: dict[tuple[str, str], dict[str, tuple[datetime, float]]] = {}
        store_error = None
        try:
            for point in await self.store.latest(since=from_epoch(now) - LOOKBACK):
                latest.setdefault((point.gateway, point.device), {})[point.field] = (
                    point.ts,
                    point.value,
                )
        except StoreError as exc:
            store_error = str(exc)

        open_by_device: dict[tuple[str, str], list[Row]] = {}
        firing_by_device: dict[tuple[str, str], list[Row]] = {}  # not cleared since
        for row in records.alarms:
            key = (row["gateway"], row["device"])
            open_by_device.setdefault(key, []).append(row)
            if row["cleared_at"] is None:
                firing_by_device.setdefault(key, []).append(row)

        def last_seen(key: tuple[str, str]) -> float | None:
            seen = [records.last_event.get(key)]
            seen += [ts.timestamp() for ts, _ in latest.get(key, {}).values()]
            known = [s for s in seen if s is not None]
            return max(known) if known else None

        # gateways
        gateway_health: dict[str, GatewayHealth] = {}
        for gw in gateways:
            gateway_health[gw] = _gateway(
                gw, statuses.get(gw), firing_by_device.get((gw, gw), []), last_seen((gw, gw))
            )
            if not with_alarms:
                gateway_health[gw].alarm = None

        # devices, by building
        buildings: dict[str, BuildingHealth] = {}
        counts = dict.fromkeys(DeviceState, 0)
        for key in sorted(devices):
            info = registry.device(*key)
            if info is None:  # removed while we were reading
                continue
            gw, dev = key
            place = info.place
            building = _building(buildings, place)
            model_fact = facts.get(info.model, ModelFacts(None, None))
            after = silent_after(config, info.model, model_fact)
            readings = latest.get(key, {})
            battery = readings.get("battery_pct")
            rssi = readings.get("rssi_dbm")
            alarms = open_by_device.get(key, [])
            rules_open = {row["rule"] for row in firing_by_device.get(key, [])}
            mode, window = self.maintenance.mode_for(gw, dev, now)
            seen = last_seen(key)

            conditions: list[DeviceState] = []
            reasons: list[str] = []
            gateway_down = gateway_health.get(gw)
            if DEVICE_SILENT in rules_open or self.core.watchdog.firing((gw, dev, DEVICE_SILENT)):
                conditions.append(DeviceState.SILENT)
                reasons.append("device_silent alarm open")
            elif gateway_down is not None and gateway_down.state is GatewayState.OFFLINE:
                conditions.append(DeviceState.SILENT)
                reasons.append(f"gateway {gw} offline")
            elif after is not None and seen is not None and now - seen > after:
                conditions.append(DeviceState.SILENT)
                reasons.append(f"not heard for {now - seen:.0f} s (expected every {after:g} s)")
            faults = sorted(rules_open & rules.faults)
            if faults:
                conditions.append(DeviceState.FAULTY)
                reasons.append("open: " + ", ".join(faults))
            low = sorted(rules_open & rules.battery)
            if low:
                conditions.append(DeviceState.LOW_BATTERY)
                reasons.append("open: " + ", ".join(low))
            elif battery is not None and battery[1] <= rules.low_battery_pct:
                conditions.append(DeviceState.LOW_BATTERY)
                reasons.append(f"battery {battery[1]:g} % ≤ {rules.low_battery_pct:g} %")
            if mode is not Mode.LIVE:
                conditions.append(DeviceState.UNDER_TEST)
                reasons.append(f"{mode.value} #{window}")
            if seen is None and not conditions:
                conditions.append(DeviceState.NEVER_HEARD)
                reasons.append("never heard")
            state = conditions[0] if conditions else DeviceState.ONLINE
            counts[state] += 1
            building.devices.append(
                DeviceHealth(
                    gateway=gw,
                    device=dev,
                    model=info.model,
                    kind=model_fact.kind,
                    home_id=place.home_id,
                    home=place.home,
                    state=state,
                    conditions=conditions or [DeviceState.ONLINE],
                    reasons=reasons,
                    last_seen=from_epoch(seen),
                    silent_after_s=after,
                    battery_pct=battery[1] if battery else None,
                    battery_at=battery[0] if battery else None,
                    rssi_dbm=rssi[1] if rssi else None,
                    rssi_at=rssi[0] if rssi else None,
                    test_mode=None if mode is Mode.LIVE else mode,
                    test_window=window,
                    alarms=[_ref(row) for row in alarms] if with_alarms else [],
                )
            )

        gateway_counts = dict.fromkeys(GatewayState, 0)
        for gw, health in gateway_health.items():
            gateway_counts[health.state] += 1
            gw_place = registry.gateway_place(gw)
            if gw_place is None:
                continue
            building = _building(buildings, gw_place)
            building.gateways.append(health)

        ordered = sorted(
            buildings.values(), key=lambda b: (b.community_id, b.grid_id, b.building_id)
        )
        return HealthReport(
            at=from_epoch(now),
            counts=counts,
            gateway_counts=gateway_counts,
            low_battery_pct=rules.low_battery_pct,
            alarms_shown=with_alarms,
            store_error=store_error,
            buildings=ordered,
        )


def _building(buildings: dict[str, BuildingHealth], place: Place) -> BuildingHealth:
    """The building's entry of the report, made on first use."""
    building = buildings.get(place.building_id)
    if building is None:
        building = buildings[place.building_id] = BuildingHealth(
            community_id=place.community_id,
            community=place.community,
            grid_id=place.grid_id,
            grid=place.grid,
            building_id=place.building_id,
            building=place.building,
            gateways=[],
            devices=[],
        )
    return building


def _gateway(
    gateway: str,
    status: dict[str, object] | None,
    offline_alarms: list[Row],
    seen: float | None,
) -> GatewayHealth:
    """Online since / offline since: from its retained status (birth, last will) and its open
    gateway_offline alarm (which also covers a gateway that went quiet without a will)."""
    alarm = next((row for row in offline_alarms if row["rule"] == GATEWAY_OFFLINE), None)
    if (
        alarm is not None
        and status is not None
        and status["state"] == GatewayState.ONLINE.value
        and isinstance(status["since"], datetime)
        and status["since"].timestamp() >= alarm["received_at"]
    ):
        alarm = None  # back online since the alarm was raised (its clear not in yet)
    status_seen = status["last_seen"] if status else None
    seen_at = from_epoch(seen)
    if isinstance(status_seen, datetime) and (seen_at is None or status_seen > seen_at):
        seen_at = status_seen
    since = status["since"] if status else None
    since_at = since if isinstance(since, datetime) else None
    if status is not None and status["state"] == GatewayState.OFFLINE.value:
        return GatewayHealth(
            gateway=gateway,
            state=GatewayState.OFFLINE,
            since=since_at,
            last_seen=seen_at,
            reason="status offline (last will)",
            alarm=_ref(alarm) if alarm else None,
        )
    if alarm is not None:
        return GatewayHealth(
            gateway=gateway,
            state=GatewayState.OFFLINE,
            since=from_epoch(alarm["device_ts"]),
            last_seen=seen_at,
            reason="gateway_offline alarm open (nothing heard)",
            alarm=_ref(alarm),
        )
    if status is not None:
        return GatewayHealth(
            gateway=gateway,
            state=GatewayState.ONLINE,
            since=since_at,
            last_seen=seen_at,
            reason="status online",
        )
    return GatewayHealth(
        gateway=gateway,
        state=GatewayState.UNKNOWN,
        since=None,
        last_seen=seen_at,
        reason="no status received yet",
    )
