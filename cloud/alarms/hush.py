"""Remote hush (远程消音) of a sounding smoke alarm, as GB/T 45839-2025 allows it: only by the
duty room's authorised roles (the web route takes duty roles only), only on a case an operator
has accepted and not yet resolved, only for a limited time (contract/hush.py: at most
`MAX_HUSH_S`; the detector sounds again and the gateway reports the alarm again if the smoke
persists), and only for a device that can be hushed (its model and wiring, `cannot_hush`).

Every request is in the audit and on the case's log, and so is the device's answer (the
gateway's `reply`: hushed, or refused with the reason), after which the case is pushed to the
boards again so an open case shows it. Requests waiting for their answer are
kept in memory: an answer that arrives after a restart of the cloud is logged, not matched.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from cloud.access.audit import Audit
from cloud.alarms.actions import Announce, SendCommand
from cloud.alarms.book import AlarmBook
from cloud.alarms.model import AlarmState, Mode
from cloud.alarms.queries import AlarmQueries
from cloud.errors import Conflict, Unavailable
from cloud.site.registry import Registry
from contract import hush
from contract.catalogue import Catalogue
from contract.models import Command, Reply, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HushSent:
    """A hush request on its way to the device; its answer comes on the case's log."""

    command_id: str
    alarm_id: int
    duration_s: int


@dataclass(frozen=True)
class _Pending:
    alarm_id: int
    gateway: str
    device: str
    duration_s: int


class Hush:
    def __init__(
        self,
        *,
        alarms: AlarmQueries,
        book: AlarmBook,
        registry: Registry,
        audit: Audit,
        send_command: SendCommand,
        announce: Announce,
        catalogue: Catalogue | None = None,
    ) -> None:
        self._alarms = alarms
        self._book = book
        self._registry = registry
        self._audit = audit
        self._send = send_command
        self._announce = announce
        self._catalogue = catalogue or Catalogue()
        self._pending: dict[str, _Pending] = {}

    async def request(self, alarm_id: int, actor: str, duration_s: int) -> HushSent:
        """Ask the alarm's device to be silent for `duration_s`. Conflict (409, zh/en) when the
        case or the device does not allow it; Unavailable (503) if the broker cannot take it."""
        alarm = await self._alarms.get(alarm_id)
        if alarm.mode is Mode.DRILL:  # the detector is not sounding: never silence a real one
            raise Conflict.said(
                "演练事件：设备并未真正报警，不向设备发送消音指令",
                "a drill's incident: the device is not sounding, no hush is sent to it",
            )
        if alarm.state is AlarmState.ACTIVE:
            raise Conflict.said(
                "请先受理该告警，再远程消音", "accept the case before hushing the alarm"
            )
        if alarm.state is AlarmState.RESOLVED:
            raise Conflict.said("该告警已办结，不能消音", "the case is resolved: nothing to hush")
        reason = self._cannot_hush(alarm.gateway, alarm.device, alarm.model)
        if reason is not None:
            raise Conflict.said(*reason)
        command = Command(
            id=f"hush-{alarm.id}-{uuid.uuid4().hex[:12]}",
            ts=utc_now(),
            device=alarm.device,
            args={"duration_s": duration_s},
        )
        # on the case before it goes, and waiting for its answer: the device may answer
        # before the send returns
        detail = f"远程消音 {duration_s} 秒 / remote hush {duration_s} s"
        await self._book.note(alarm.id, actor, "hush", detail)
        where = f"alarm {alarm.id} {alarm.gateway}/{alarm.device}"
        await self._audit.record(actor, "hush", f"{where}: {detail}")
        self._pending[command.id] = _Pending(alarm.id, alarm.gateway, alarm.device, duration_s)
        if not await self._send(alarm.gateway, hush.COMMAND, command):
            del self._pending[command.id]
            failed = "未发送：消息服务器不可达 / NOT sent: the broker cannot be reached"
            await self._book.note(alarm.id, actor, "hush.result", failed)
            await self._audit.record(actor, "hush.reply", f"{where}: {failed}")
            raise Unavailable.said(
                "消息服务器暂时不可达，消音未发送", "the broker cannot be reached: hush not sent"
            )
        return HushSent(command.id, alarm.id, duration_s)

    def _cannot_hush(self, gateway: str, device: str, model_name: str) -> tuple[str, str] | None:
        try:
            spec = self._registry.site.gateway(gateway)
            pins = next(d.pins for d in spec.devices if d.id == device)
        except (KeyError, StopIteration):
            return ("该设备已不在登记中，无法消音", "the device is no longer registered")
        return hush.cannot_hush(self._catalogue.model(model_name), pins)

    async def on_reply(self, reply: Reply) -> None:
        """A gateway's answer; only answers to our hush requests concern us."""
        pending = self._pending.get(reply.id)
        if pending is None or pending.gateway != reply.gateway:
            return
        del self._pending[reply.id]
        verdict = "设备已消音 / hushed" if reply.ok else "设备未消音 / NOT hushed"
        detail = f"{verdict}: {reply.detail}"
        await self._book.note(pending.alarm_id, f"device {pending.device}", "hush.result", detail)
        await self._audit.record(
            "system",
            "hush.reply",
            f"alarm {pending.alarm_id} {pending.gateway}/{pending.device}: {detail}",
        )
        # the boards redraw an open case with its new history line
        self._announce(await self._alarms.get(pending.alarm_id))
        if not reply.ok:
            log.warning("hush refused alarm=%d: %s", pending.alarm_id, reply.detail)
