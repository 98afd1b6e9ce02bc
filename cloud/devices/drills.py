"""A drill's scripted incidents, sent to the gateway of the device to happen there
(`cmd/drill`, contract/drill.py): the gateway sends each back as that device's event with the
drill's number, so it takes the real path through the outbox, the broker and ingest, where
the drill gate honours the number (cloud/devices/maintenance.py). Only for a drill running
now and a device it covers; every incident sent is audited.

The drill's report: cloud/duty/drill_report.py. Not built yet: a script run on a timetable.
"""

from __future__ import annotations

import uuid

from cloud.access.audit import Audit
from cloud.alarms.actions import SendCommand
from cloud.alarms.model import Mode
from cloud.devices.maintenance import Maintenance
from cloud.errors import Conflict, Unavailable
from contract import drill
from contract.models import Command, utc_now


class DrillIncidents:
    def __init__(self, maintenance: Maintenance, audit: Audit, send_command: SendCommand) -> None:
        self.maintenance = maintenance
        self.audit = audit
        self.send = send_command

    async def inject(
        self, drill_id: int, device: str, incident: drill.DrillIncident, actor: str
    ) -> str:
        """Send one incident of drill `drill_id` to `device`'s gateway; the command's id."""
        window = await self.maintenance.get(drill_id)
        now = utc_now()
        if window.mode is not Mode.DRILL:
            raise Conflict.said(f"#{drill_id} 不是应急演练", f"#{drill_id} is not a drill")
        if not window.covers(window.gateway, device, now.timestamp()):
            raise Conflict.said(
                f"演练 #{drill_id} 此刻不在进行，或不含设备 {device}",
                f"drill #{drill_id} is not running now or does not cover {device}",
            )
        incident = incident.model_copy(update={"drill": drill_id})
        command = Command(
            id=f"drill-{drill_id}-{uuid.uuid4().hex[:12]}",
            ts=now,
            device=device,
            args=incident.args(),
        )
        sent = await self.send(window.gateway, drill.COMMAND, command)
        what = f"drill #{drill_id}: {incident.type.value} of {window.gateway}/{device}"
        await self.audit.record(
            actor, "drill_incident", f"{what}: {'sent' if sent else 'NOT sent'}"
        )
        if not sent:
            raise Unavailable.said(
                "消息服务器暂时不可达，演练事件未发送", "the broker cannot be reached: not sent"
            )
        return command.id
