"""Shift handover (交接班): the outgoing operator makes a summary of what the next shift takes
over — the open cases, the overdue ones, the devices and gateways offline or faulty — with a
note; the incoming operator (another account) acknowledges it. Both are kept, with who and
when, and audited.

Overdue: an open case not accepted within its acceptance budget (`accept_by`), or accepted but
still open `OPEN_TOO_LONG_S` after it was received.

The shift handed over is the one whose end is nearest: made at 19:50 or at 20:10, it is the
day shift ending at 20:00; the incoming shift is the one after it, and its duty officer on the
roster is named as the expected receiver.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from pydantic import BaseModel, Field

from cloud.access.audit import Audit
from cloud.alarms.model import Alarm, AlarmState, Mode
from cloud.alarms.queries import AlarmQueries
from cloud.db.database import Conn, Database, Row
from cloud.devices.health import HealthReports
from cloud.devices.health_report import DeviceState, GatewayState
from cloud.duty.roster import DutyRole, Roster
from cloud.duty.shifts import ShiftRef, by_code, shift_at
from cloud.errors import Conflict, NotFound, Refused
from cloud.times import from_epoch

OPEN_TOO_LONG_S = 24 * 3600


class CaseLine(BaseModel):
    id: int
    level: int
    title_zh: str
    title_en: str
    where: str
    state: AlarmState
    received_at: datetime
    accept_by: datetime | None
    accepted_by: str | None
    dispatched_to: str | None
    overdue: bool


class DeviceLine(BaseModel):
    gateway: str
    device: str | None = Field(description="None: the gateway itself")
    where: str
    state: str = Field(description="offline (a gateway), silent or faulty")
    last_seen: datetime | None
    reason: str


class Summary(BaseModel):
    open_cases: list[CaseLine]
    overdue: list[CaseLine]
    devices: list[DeviceLine]
    store_error: str | None = None


class Handover(BaseModel):
    id: int
    day: date
    shift: str
    shift_zh: str
    shift_en: str
    incoming_expected: str | None = Field(
        description="The next shift's duty officer on the roster, if any"
    )
    made_at: datetime
    made_by: str
    note: str
    summary: Summary
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_note: str | None


def outgoing_shift(now: float) -> ShiftRef:
    """The shift whose end is nearest to `now` (the one being handed over)."""
    current = shift_at(now)
    begun = now - current.begins.timestamp()
    left = current.ends.timestamp() - now
    return shift_at(current.begins.timestamp() - 1) if begun < left else current


def _case(alarm: Alarm, now: float) -> CaseLine:
    budget = alarm.accept_by
    late = alarm.state is AlarmState.ACTIVE and budget is not None and budget.timestamp() < now
    open_long = (
        alarm.state is AlarmState.ACCEPTED and now - alarm.received_at.timestamp() > OPEN_TOO_LONG_S
    )
    return CaseLine(
        id=alarm.id,
        level=alarm.level,
        title_zh=alarm.title_zh,
        title_en=alarm.title_en,
        where=" ".join(p for p in (alarm.community, alarm.building, alarm.home) if p),
        state=alarm.state,
        received_at=alarm.received_at,
        accept_by=alarm.accept_by,
        accepted_by=alarm.accepted_by,
        dispatched_to=alarm.dispatched_to,
        overdue=late or open_long,
    )


class Handovers:
    def __init__(
        self,
        db: Database,
        alarms: AlarmQueries,
        health: HealthReports,
        roster: Roster,
        audit: Audit,
    ) -> None:
        self.db = db
        self.alarms = alarms
        self.health = health
        self.roster = roster
        self.audit = audit

    async def summary(self, now: float) -> Summary:
        # a drill's cases are the drill's (closed when it ends), never handed over as real work
        cases = [_case(a, now) for a in await self.alarms.active() if a.mode is Mode.LIVE]
        report = await self.health.report(now, with_alarms=False)
        devices: list[DeviceLine] = []
        for building in report.buildings:
            offline = set()
            for gw in building.gateways:
                if gw.state is GatewayState.OFFLINE:
                    offline.add(gw.gateway)
                    devices.append(
                        DeviceLine(
                            gateway=gw.gateway,
                            device=None,
                            where=building.building,
                            state="offline",
                            last_seen=gw.last_seen,
                            reason=gw.reason,
                        )
                    )
            for d in building.devices:  # a gateway offline is one line, not one per device
                if d.gateway in offline or d.state not in (DeviceState.SILENT, DeviceState.FAULTY):
                    continue
                devices.append(
                    DeviceLine(
                        gateway=d.gateway,
                        device=d.device,
                        where=f"{building.building} {d.home}",
                        state=d.state.value,
                        last_seen=d.last_seen,
                        reason="; ".join(d.reasons),
                    )
                )
        return Summary(
            open_cases=cases,
            overdue=[c for c in cases if c.overdue],
            devices=devices,
            store_error=report.store_error,
        )

    async def summary_now(self) -> Summary:
        """What a handover made now would say (not kept)."""
        return await self.summary(self.db.clock())

    async def make(self, actor: str, note: str) -> Handover:
        """The outgoing operator's handover of the shift ending nearest to now."""
        now = self.db.clock()
        out = outgoing_shift(now)
        summary = await self.summary(now)
        street = self.roster.registry.site.street.id

        def add(conn: Conn) -> int:
            after = self.roster.on_shift(conn, out.ends.timestamp())  # the incoming shift
            officer = after.who(DutyRole.DUTY_OFFICER, street)
            row = conn.execute(
                "INSERT INTO handovers (on_day, shift, made_at, made_by, summary, note,"
                " incoming_expected) VALUES (?,?,?,?,?,?,?) RETURNING id",
                (
                    out.day.isoformat(),
                    out.shift.code,
                    now,
                    actor,
                    summary.model_dump_json(),
                    note,
                    officer.person.name if officer else None,
                ),
            ).fetchone()
            self.audit.add(
                conn,
                actor,
                "handover_made",
                f"{row['id']}: {out.label()}, {len(summary.open_cases)} open,"
                f" {len(summary.overdue)} overdue, {len(summary.devices)} devices",
                now,
            )
            return int(row["id"])

        handover_id = await self.db.write(add)
        return await self.get(handover_id)

    async def acknowledge(self, handover_id: int, actor: str, note: str) -> Handover:
        """The incoming operator takes the shift over: once, and not the one who made it."""
        now = self.db.clock()

        def ack(conn: Conn) -> None:
            row = conn.execute(
                "SELECT made_by, acknowledged_by FROM handovers WHERE id = ?", (handover_id,)
            ).fetchone()
            if row is None:
                raise NotFound.said(f"没有交接班记录 {handover_id}", f"no handover {handover_id}")
            if row["acknowledged_by"] is not None:
                raise Conflict.said(
                    f"该交接班已由 {row['acknowledged_by']} 接收",
                    f"already acknowledged by {row['acknowledged_by']}",
                )
            if row["made_by"] == actor:
                raise Refused.said(
                    "交班人不能自己接班：请由接班值班员确认",
                    "the outgoing operator cannot acknowledge their own handover: the incoming"
                    " one does",
                )
            conn.execute(
                "UPDATE handovers SET acknowledged_at = ?, acknowledged_by = ?, ack_note = ?"
                " WHERE id = ?",
                (now, actor, note, handover_id),
            )
            self.audit.add(conn, actor, "handover_acknowledged", str(handover_id), now)

        await self.db.write(ack)
        return await self.get(handover_id)

    async def get(self, handover_id: int) -> Handover:
        row = await self.db.fetch_one("SELECT * FROM handovers WHERE id = ?", (handover_id,))
        if row is None:
            raise NotFound.said(f"没有交接班记录 {handover_id}", f"no handover {handover_id}")
        return _handover(row)

    async def recent(self, limit: int = 20) -> list[Handover]:
        rows = await self.db.fetch_all(
            "SELECT * FROM handovers ORDER BY made_at DESC, id DESC LIMIT ?", (limit,)
        )
        return [_handover(r) for r in rows]


def _handover(row: Row) -> Handover:
    shift = by_code(row["shift"])
    return Handover(
        id=row["id"],
        day=date.fromisoformat(row["on_day"]),
        shift=shift.code,
        shift_zh=shift.zh,
        shift_en=shift.en,
        incoming_expected=row["incoming_expected"],
        made_at=from_epoch(row["made_at"]),
        made_by=row["made_by"],
        note=row["note"],
        summary=Summary.model_validate(json.loads(row["summary"])),
        acknowledged_at=from_epoch(row["acknowledged_at"]),
        acknowledged_by=row["acknowledged_by"],
        ack_note=row["ack_note"],
    )
